"""Faults in serving: clients that leave mid-stream, engines and upstreams that die and come back.

Real components on loopback, each bounded in time:

- the transformers backend, a client that drops its stream after one chunk:
  generation stops, the slot is freed, ``/metrics`` counts it;
- the ``openai`` backend over a real upstream process (``python -m llm serve``,
  transformers backend) that is SIGKILLed mid-stream and started again on the
  same port: 503 and ``/ready`` 503 while it is down, answers again after,
  without a gateway restart (vLLM's own server as the upstream:
  ``test_openai_upstream_vllm.py``);
- a real Triton server killed and started again on the same ports;
- the vllm backend's dead-engine path with an engine double (the restart logic,
  fast; a real engine core SIGKILLed: ``test_faults_vllm_engine.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm.env import private_env
from llm.net import free_port
from serving.backends.base import BackendSettings
from serving.backends.transformers.backend import TransformersBackend
from tests.serving.backends.conftest import text_model  # noqa: F401
from tests.serving.conftest import LiveGateway
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = pytest.mark.slow  # real servers and models


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample of the gateway's ``/metrics`` (0 when absent)."""
    text = httpx.get(url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {what}"
        time.sleep(0.05)


def first_text_event(lines: Iterator[str]) -> dict[str, Any]:
    """Read SSE lines until the first event that carries text.

    Takes the line iterator, not the response: httpx closes a response whose
    line iterator is dropped, which would be a disconnect.
    """
    for line in lines:
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            if any(choice.get("text") for choice in event.get("choices", [])):
                return event
    raise AssertionError("the stream ended without text")


# ---------------------------------------------------------------- client gone mid-stream


def test_client_gone_mid_stream_stops_generation_and_frees_the_slot(
    live_gateway: LiveGateway,
    text_model: Path,  # noqa: F811
) -> None:
    # one slot, no queue: a leaked slot would turn the next request into a 429
    url = live_gateway(
        "transformers",
        BackendSettings("tiny", str(text_model)),
        config_overrides={"max_concurrency": 1, "max_queue": 0},
    )
    backend = url.backend
    assert isinstance(backend, TransformersBackend) and backend.scheduler is not None
    body = {
        "model": "tiny",
        "prompt": "Labs: WBC 14.2",
        "max_tokens": 2000,
        "temperature": 0,  # greedy: this prompt runs to max_tokens (sampling may stop early)
        "stream": True,
    }
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", url + "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first_text_event(lines)
        assert metric(url, "clinical_llm_in_flight") == 1
    # the connection is closed here, mid-stream
    wait_until(lambda: metric(url, "clinical_llm_in_flight") == 0, 10, "slot freed")
    cancelled = {"model": "tiny", "reason": "client_gone"}
    wait_until(
        lambda: metric(url, "clinical_llm_generations_cancelled_total", **cancelled) == 1,
        10,
        "cancellation counted",
    )
    assert metric(url, "clinical_llm_requests_total", status="499", model="tiny") == 1
    scheduler = backend.scheduler
    wait_until(lambda: not scheduler.running, 10, "sequence dropped from the batch")
    steps = scheduler.stats.decode_steps
    time.sleep(0.3)
    assert scheduler.stats.decode_steps == steps < 1000  # stopped long before 2000
    assert url.audit_lines()[-1]["status"] == 499
    # the slot is really free: the next request gets it
    again = httpx.post(url + "/v1/completions", json={**body, "stream": False, "max_tokens": 4})
    assert again.status_code == 200
    assert metric(url, "clinical_llm_generations_cancelled_total", **cancelled) == 1


# ---------------------------------------------------------------- an upstream that dies


class UpstreamProcess:
    """``python -m llm serve`` (transformers backend) on a fixed loopback port, killable."""

    def __init__(self, model: Path, work: Path) -> None:
        self.model = model
        self.work = work
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "llm", "serve", "--backend", "transformers",
            "--model", f"tiny={self.model}", "--port", str(self.port),
            "--audit-log", str(self.work / "upstream-audit.jsonl"),
        ]  # fmt: skip
        with (self.work / "upstream.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=private_env(os.environ), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, (self.work / "upstream.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "upstream did not start"
            time.sleep(0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def upstream(
    tmp_path: Path,
    text_model: Path,  # noqa: F811
) -> Iterator[UpstreamProcess]:
    process = UpstreamProcess(text_model, tmp_path)
    process.start()
    yield process
    process.kill()


def test_upstream_killed_gives_503_then_the_gateway_recovers(
    live_gateway: LiveGateway, upstream: UpstreamProcess
) -> None:
    settings = BackendSettings(
        "clinic", upstream.v1, {}, {"upstream_model": "tiny", "connect_timeout_s": 2}
    )
    url = live_gateway("openai", settings)
    body = {"model": "clinic", "prompt": "Labs: WBC 14.2", "max_tokens": 4, "temperature": 0}
    assert httpx.post(url + "/v1/completions", json=body, timeout=60).status_code == 200

    # killed while a stream is running: the stream ends with an OpenAI error event
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", url + "/v1/completions", json={**body, "max_tokens": 2000, "stream": True}
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first_text_event(lines)
        upstream.kill()
        tail = [line for line in lines if line.startswith("data: ")]
    assert tail[-1] == "data: [DONE]"
    error = json.loads(tail[-2][6:])["error"]
    assert error["type"] == "service_unavailable"
    assert metric(url, "clinical_llm_in_flight") == 0

    # down: 503 in OpenAI's shape, streamed or not, and /ready says so
    for stream in (False, True):
        down = httpx.post(url + "/v1/completions", json={**body, "stream": stream}, timeout=30)
        assert down.status_code == 503, down.text
        assert set(down.json()["error"]) == {"message", "type", "param", "code"}
        assert down.json()["error"]["type"] == "service_unavailable"
    ready = httpx.get(url + "/ready", timeout=30)
    assert (ready.status_code, ready.json()["status"]) == (503, "not ready")
    assert httpx.get(url + "/health").status_code == 200  # the gateway itself is alive

    # back on the same port: the same gateway process answers again
    upstream.start()
    wait_until(lambda: httpx.get(url + "/ready", timeout=30).status_code == 200, 30, "ready")
    again = httpx.post(url + "/v1/completions", json=body, timeout=60)
    assert again.status_code == 200
    assert again.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_requests_alone_recover_the_gateway_without_a_ready_probe(
    live_gateway: LiveGateway, upstream: UpstreamProcess
) -> None:
    """No orchestrator calls /ready: the next request after the upstream is back succeeds."""
    settings = BackendSettings(
        "clinic", upstream.v1, {}, {"upstream_model": "tiny", "connect_timeout_s": 2}
    )
    url = live_gateway("openai", settings)
    body = {"model": "clinic", "prompt": "Labs", "max_tokens": 2}
    upstream.kill()
    assert httpx.post(url + "/v1/completions", json=body, timeout=30).status_code == 503
    upstream.start()
    time.sleep(1.1)  # the gateway probes a backend that is not ready at most once a second
    assert httpx.post(url + "/v1/completions", json=body, timeout=60).status_code == 200


# ---------------------------------------------------------------- a Triton server that dies


def test_triton_server_killed_gives_503_then_the_gateway_recovers(
    live_gateway: LiveGateway,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    text_model: Path,  # noqa: F811
) -> None:
    pytest.importorskip("tritonclient.grpc.aio", reason="no tritonclient")
    from tests.serving.backends import triton_fixtures

    triton_fixtures.ensure_venv(tmp_path_factory)
    repository = tmp_path / "repository"
    triton_fixtures.export_triton(text_model, repository, name=triton_fixtures.MODEL_NAME)
    log = tmp_path / "triton.log"
    server = triton_fixtures.start_server(repository, triton_fixtures.MODEL_NAME, log)
    ports = (int(server.grpc_url.rsplit(":", 1)[1]), int(server.http_url.rsplit(":", 1)[1]))
    try:
        settings = BackendSettings(
            "clinic", server.grpc_url, {}, {"triton_model": triton_fixtures.MODEL_NAME}
        )
        url = live_gateway("triton", settings)
        body = {"model": "clinic", "prompt": "Labs: WBC", "max_tokens": 3}
        assert httpx.post(url + "/v1/completions", json=body, timeout=60).status_code == 200
        server.process.kill()
        server.process.wait(timeout=30)
        down = httpx.post(url + "/v1/completions", json=body, timeout=60)
        assert down.status_code == 503 and down.json()["error"]["type"] == "service_unavailable"
        assert httpx.get(url + "/ready", timeout=60).status_code == 503
        server = triton_fixtures.start_server(repository, triton_fixtures.MODEL_NAME, log, ports)
        wait_until(lambda: httpx.get(url + "/ready", timeout=60).status_code == 200, 60, "ready")
        assert httpx.post(url + "/v1/completions", json=body, timeout=60).status_code == 200
    finally:
        triton_fixtures.stop_server(server.process)


# ---------------------------------------------------------------- a vLLM engine that dies


class DeadOnCue:
    """A stand-in for vLLM's ``AsyncLLM``: only ``errored`` and ``shutdown`` are used here."""

    def __init__(self) -> None:
        self.errored = False
        self.shut_down = 0
        self.model_config = type("ModelConfig", (), {"max_model_len": 64})()

    def shutdown(self) -> None:
        self.shut_down += 1


def test_dead_vllm_engine_is_restarted_while_the_gateway_answers_503(
    tmp_path: Path, live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine double: vLLM itself is not needed to test the restart logic (see module doc)."""
    vllm_backend = pytest.importorskip("serving.backends.vllm_backend")
    (tmp_path / "config.json").write_text("{}")
    engines: list[DeadOnCue] = []
    release = threading.Event()

    def build_engine(self: Any) -> DeadOnCue:
        if engines:  # a restart: held until the test lets it go
            assert release.wait(timeout=10)
        engines.append(DeadOnCue())
        return engines[-1]

    monkeypatch.setattr(vllm_backend.VLLMBackend, "_build_engine", build_engine)
    backend = vllm_backend.VLLMBackend(BackendSettings("tiny", str(tmp_path)))
    url = live_gateway(backend)
    assert httpx.get(url + "/ready").status_code == 200
    engines[0].errored = True  # the engine core process died
    body = {"model": "tiny", "prompt": "Labs", "max_tokens": 2}
    down = httpx.post(url + "/v1/completions", json=body)
    assert down.status_code == 503 and down.json()["error"]["code"] == "backend_not_ready"
    assert httpx.get(url + "/ready").status_code == 503
    wait_until(backend.restarting, 5, "restart began")
    # the shutdown runs in a thread of its own: wait for it (a loaded CI machine is slow)
    wait_until(lambda: engines[0].shut_down == 1, 10, "the dead engine shut down")
    assert len(engines) == 1  # ... before the new one was built (held until release)
    assert httpx.get(url + "/ready").status_code == 503  # still starting; one restart at a time
    release.set()
    wait_until(lambda: httpx.get(url + "/ready").status_code == 200, 10, "restarted")
    assert len(engines) == 2 and backend.engine is engines[1]


def test_failed_vllm_restart_is_retried_after_a_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vllm_backend = pytest.importorskip("serving.backends.vllm_backend")
    (tmp_path / "config.json").write_text("{}")
    attempts: list[int] = []

    def build_engine(self: Any) -> DeadOnCue:
        attempts.append(1)
        if len(attempts) == 2:
            raise RuntimeError("engine core failed to start")
        return DeadOnCue()

    monkeypatch.setattr(vllm_backend.VLLMBackend, "_build_engine", build_engine)
    monkeypatch.setattr(vllm_backend, "RESTART_BACKOFF_S", 0.3)
    backend = vllm_backend.VLLMBackend(BackendSettings("tiny", str(tmp_path)))

    async def scenario() -> list[bool]:
        await backend.start()
        backend.engine.errored = True
        seen = [await backend.check_ready()]  # starts restart 1 (it fails)
        while backend.restarting():
            await asyncio.sleep(0.01)
        seen.append(await backend.check_ready())  # within the backoff: no new attempt
        await asyncio.sleep(0.35)
        seen.append(await backend.check_ready())  # starts restart 2 (it works)
        while backend.restarting():
            await asyncio.sleep(0.01)
        seen.append(await backend.check_ready())
        await backend.close()
        return seen

    assert asyncio.run(scenario()) == [False, False, False, True]
    assert len(attempts) == 3
