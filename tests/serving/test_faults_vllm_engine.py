"""A real vLLM engine death: its engine-core process SIGKILLed under a live gateway.

The gateway (uvicorn in this process, vllm backend, the tiny random Llama of the
vLLM tests) holds a real ``AsyncLLM`` whose engine core is a child process of this
one. Killing that process mid-stream must end the stream with an error event,
answer 503 in OpenAI's shape with ``/ready`` 503, and then, without a gateway
restart, build a new engine that answers as the first one did. The restart
logic alone is tested with an engine double in ``test_faults.py``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.real_components import reason

pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))

from serving.app import create_app
from serving.auth import KeyRing
from serving.backends.base import BackendSettings
from serving.backends.vllm_backend import VLLMBackend
from serving.config import ServeConfig
from serving.server import BackgroundServer
from tests.serving.backends.test_vllm_backend import PROMPT, build_model, engine_options
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# an engine start of the tiny model takes 15-45 s on 2 cores; more on a busy machine
RESTART_TIMEOUT_S = 240.0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not reached within {timeout} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def engine_core_pids(backend: VLLMBackend) -> list[int]:
    """The engine-core processes of the backend's engine, checked to be this test's children."""
    assert backend.engine is not None, "no engine"
    manager = backend.engine.engine_core.resources.engine_manager
    pids = [process.pid for process in manager.processes]
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    assert pids and set(pids) <= children, (pids, children)
    return pids


def holders(thing: object) -> list[str]:
    """What still refers to ``thing`` (frames by code location), for a failure message."""
    out = []
    for ref in gc.get_referrers(thing):
        if isinstance(ref, types.FrameType):
            out.append(f"frame {ref.f_code.co_filename}:{ref.f_lineno} {ref.f_code.co_name}")
        elif isinstance(ref, dict):
            out.append(f"dict with keys {sorted(map(str, ref))[:8]}")
        else:
            out.append(f"{type(ref).__name__} {repr(ref)[:300]}")
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def gateway(
    tmp_path: Path,
    chat_tokenizer: Any,  # noqa: F811
) -> Iterator[tuple[str, VLLMBackend]]:
    """A gateway on a free loopback port over a real vLLM engine: its URL and backend."""
    model = build_model(tmp_path / "tiny-random", chat_tokenizer)
    options = engine_options(tmp_path)
    backend = VLLMBackend(BackendSettings("tiny", str(model), {}, options))
    config = ServeConfig(
        backend="vllm",
        model_name="tiny",
        model_path=str(model),
        backend_options=options,
        audit_log=tmp_path / "audit.jsonl",
        audit_key_file=tmp_path / "audit-hmac.key",
        port=0,
    )
    server = BackgroundServer(create_app(backend, config, KeyRing([])), start_timeout_s=600)
    server.start()
    yield server.url, backend
    server.stop()


def test_engine_core_killed_gives_503_then_a_new_engine_answers(
    gateway: tuple[str, VLLMBackend],
) -> None:
    url, backend = gateway
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    before = httpx.post(url + "/v1/completions", json=body, timeout=60)
    assert before.status_code == 200, before.text
    [victim] = engine_core_pids(backend)
    # on CPU the engine core runs its model worker in a process of its own
    workers = [p.pid for p in psutil.Process(victim).children(recursive=True)]
    dead_engine = weakref.ref(backend.engine)

    # killed while a stream runs (ignore_eos is not an OpenAI field: the random
    # model's greedy text runs to max_tokens, checked below by its finish reason)
    long = {**body, "max_tokens": 400, "stream": True}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", url + "/v1/completions", json=long) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                break
        os.kill(victim, signal.SIGKILL)
        tail = [line for line in lines if line.startswith("data: ")]
    assert tail[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in tail[:-1]]
    assert not any(c.get("finish_reason") for e in events for c in e.get("choices", []))
    assert events[-1]["error"]["type"] == "service_unavailable", events[-1]
    assert not alive(victim)

    # down: 503 in OpenAI's shape, streamed or not, and /ready says so
    for stream in (False, True):
        down = httpx.post(url + "/v1/completions", json={**body, "stream": stream}, timeout=30)
        assert down.status_code == 503, down.text
        assert set(down.json()["error"]) == {"message", "type", "param", "code"}
        assert down.json()["error"]["type"] == "service_unavailable"
    ready = httpx.get(url + "/ready", timeout=30)
    assert ready.status_code == 503, ready.text
    assert httpx.get(url + "/health").status_code == 200  # the gateway itself is alive

    # a new engine, in the same gateway process, answers as the first one did
    took = wait_until(
        lambda: httpx.get(url + "/ready", timeout=30).status_code == 200,
        RESTART_TIMEOUT_S,
        "the gateway ready again after the engine core was killed",
    )
    print(f"ready again {took:.1f} s after the kill had been seen")
    [successor] = engine_core_pids(backend)
    assert successor != victim
    assert not psutil.pid_exists(victim)  # reaped, not left as a zombie
    # the dead engine's worker did not linger (it holds the model and the KV cache)
    wait_until(lambda: not any(map(alive, workers)), 30, f"old workers {workers} gone")
    # nor did the dead AsyncLLM (its output queues and shared memory). vLLM logged the
    # EngineDeadError with its traceback, which holds the dead engine's frames; pytest's
    # log capture keeps such records for its report (a plain handler does not)
    for handler in logging.getLogger().handlers:
        records = getattr(handler, "records", None)
        if isinstance(records, list):
            records.clear()
    gc.collect()
    assert dead_engine() is None, holders(dead_engine())
    again = httpx.post(url + "/v1/completions", json=body, timeout=60)
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["text"] == before.json()["choices"][0]["text"]
    assert again.json()["usage"] == before.json()["usage"]
