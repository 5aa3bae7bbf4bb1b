"""Gateway behaviour over a live uvicorn server with the FakeBackend and the openai client."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from serving.backends.base import BackendSettings
from serving.errors import BackendUnavailableError
from tests.serving.conftest import FakeBackend, LiveGateway

pytestmark = pytest.mark.slow  # each test starts a real server


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "summarise the note"}]


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


# ------------------------------------------------------------------ happy paths


def test_chat_non_streaming(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    out = client(url).chat.completions.create(model="tiny", messages=CHAT, max_tokens=3)
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-")
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == "alpha bravo charlie "
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (5, 3)
    assert out.usage.total_tokens == 8


def test_completion_non_streaming_with_seed_n_and_stop(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    out = client(url).completions.create(
        model="tiny", prompt="one two", max_tokens=6, n=2, seed=1, stop=["delta"]
    )
    assert out.object == "text_completion"
    texts = [choice.text for choice in sorted(out.choices, key=lambda c: c.index)]
    # seed 1: choice 0 starts at bravo, choice 1 at charlie; both stop before "delta"
    assert texts == ["bravo charlie ", "charlie "]
    assert [c.finish_reason for c in out.choices] == ["stop", "stop"]
    sent = fake_backend.requests[-1].sampling
    assert (sent.n, sent.seed, sent.stop, sent.max_tokens) == (2, 1, ("delta",), 6)
    assert out.usage is not None and out.usage.prompt_tokens == 2


def test_sampling_params_reach_backend(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    client(url).chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=2, temperature=0.3, top_p=0.9, stop="x"
    )
    request = fake_backend.requests[-1]
    assert request.sampling.temperature == 0.3
    assert request.sampling.top_p == 0.9
    assert request.sampling.stop == ("x",)
    assert request.messages == CHAT
    assert request.adapter is None


def test_adapter_name_routes_to_adapter(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    client(url).completions.create(model="tiny-notes", prompt="a", max_tokens=1)
    assert fake_backend.requests[-1].adapter == "tiny-notes"
    assert fake_backend.requests[-1].model == "tiny-notes"


def test_models_lists_base_and_adapters(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    models = {m.id: m for m in client(url).models.list()}
    assert set(models) == {"tiny", "tiny-notes"}
    raw = httpx.get(url + "/v1/models").json()
    notes = next(m for m in raw["data"] if m["id"] == "tiny-notes")
    assert notes["parent"] == "tiny" and notes["max_model_len"] == 128


def test_chat_streaming_shape(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    stream = client(url).chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=3,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = {0: "", 1: ""}
    finishes = {}
    for chunk in chunks[:-1]:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert text == {0: "alpha bravo charlie ", 1: "bravo charlie delta "}
    assert finishes == {0: "length", 1: "length"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_completion_stream_raw_sse_ends_with_done(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    body = {"model": "tiny", "prompt": "p", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert "".join(p["choices"][0]["text"] for p in payloads) == "alpha bravo "
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"
    # without include_usage no usage-only chunk is sent
    assert all(p["choices"] for p in payloads)


def test_default_max_tokens_shortened_to_fit_context(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(max_len=10, eos_after=None)
    url = live_gateway(backend, config_overrides={"default_max_tokens": 50})
    out = client(url).completions.create(model="tiny", prompt="a b c d")
    assert out.usage is not None and out.usage.completion_tokens == 6  # 10 - 4 prompt tokens


def test_health_ready_and_not_ready(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/ready").status_code == 200
    fake_backend.is_ready = False
    assert httpx.get(url + "/ready").status_code == 503
    with pytest.raises(openai.InternalServerError) as err:
        client(url).completions.create(model="tiny", prompt="a", max_tokens=1)
    assert err.value.status_code == 503
    assert httpx.get(url + "/health").status_code == 200


# ------------------------------------------------------------------ error statuses


def test_unknown_model_is_404(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    with pytest.raises(openai.NotFoundError) as err:
        client(url).chat.completions.create(model="nope", messages=CHAT, max_tokens=1)
    assert err.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert fake_backend.started == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tiny", "messages": []}, "messages"),
        ({"model": "tiny", "messages": CHAT, "temperature": 5}, "temperature"),
        ({"model": "tiny", "messages": CHAT, "max_tokens": 0}, "max_tokens"),
        ({"model": "tiny", "messages": CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": CHAT}, "model"),
        ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_invalid_request_is_400_naming_the_field(
    live_gateway: LiveGateway, fake_backend: FakeBackend, body: dict, param: str
) -> None:
    url = live_gateway(fake_backend)
    response = httpx.post(url + "/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param.split(".")[0] in error["message"]


def test_malformed_json_is_400(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    response = httpx.post(
        url + "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_remote_image_url_is_400(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "http://example.org/x.png"}},
        ],
    }
    response = httpx.post(
        url + "/v1/chat/completions", json={"model": "tiny", "messages": [message]}
    )
    assert response.status_code == 400
    assert "data:image" in response.json()["error"]["message"]


def test_data_url_image_parts_reach_backend(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    message: ChatCompletionMessageParam = {
        "role": "user",
        "content": [
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    client(url).chat.completions.create(model="tiny", messages=[message], max_tokens=1)
    sent = fake_backend.requests[-1].messages
    assert sent is not None and sent[0]["content"][1]["image_url"]["url"].startswith("data:image/")


def test_context_overflow_is_400_before_generation(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(max_len=8)
    url = live_gateway(backend)
    with pytest.raises(openai.BadRequestError) as err:
        client(url).completions.create(model="tiny", prompt="a b c d e", max_tokens=4)
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "5 tokens" in err.value.message and "8 tokens" in err.value.message
    assert backend.started == 0


def test_max_tokens_cap_and_n_cap_are_400(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend, config_overrides={"max_tokens_cap": 10, "max_n": 2})
    with pytest.raises(openai.BadRequestError, match="cap of 10"):
        client(url).completions.create(model="tiny", prompt="a", max_tokens=11)
    with pytest.raises(openai.BadRequestError, match="at most 2"):
        client(url).completions.create(model="tiny", prompt="a", max_tokens=1, n=3)


def test_body_too_large_is_413(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend, config_overrides={"max_body_bytes": 2048})
    big = {"model": "tiny", "prompt": "x " * 2000, "max_tokens": 1}
    response = httpx.post(url + "/v1/completions", json=big)
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["error"]["message"]


def test_body_too_large_without_content_length_is_413(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend, config_overrides={"max_body_bytes": 2048})

    def chunked() -> Iterator[bytes]:
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    response = httpx.post(url + "/v1/completions", content=chunked())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_backend_error_keeps_its_status(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(fail_with=BackendUnavailableError("engine crashed"))
    url = live_gateway(backend)
    with pytest.raises(openai.InternalServerError) as err:
        client(url).completions.create(model="tiny", prompt="a", max_tokens=1)
    assert err.value.status_code == 503
    response = httpx.post(
        url + "/v1/completions", json={"model": "tiny", "prompt": "a", "stream": True}
    )
    # an error before the first chunk keeps its status even when streaming
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"


def test_unexpected_error_is_generic_500(
    live_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend(fail_with=RuntimeError("secret detail 12345"))
    url = live_gateway(backend)
    with caplog.at_level(logging.ERROR, logger="serving"):
        response = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a"})
    assert response.status_code == 500
    assert "secret detail" not in response.text
    assert response.json()["error"]["type"] == "internal_error"
    assert "RuntimeError" in caplog.text and "secret detail" not in caplog.text


def test_error_mid_stream_becomes_error_event(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(fail_with=BackendUnavailableError("engine lost"), fail_after=2)
    url = live_gateway(backend)
    body = {"model": "tiny", "prompt": "p", "max_tokens": 5, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "service_unavailable"
    lines = url.audit_lines()
    assert lines[-1]["status"] == 503 and lines[-1]["stream"] is True


def test_unknown_route_and_method(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    missing = httpx.get(url + "/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = httpx.get(url + "/v1/completions")
    assert wrong.status_code == 405 and "error" in wrong.json()


# ------------------------------------------------------------------ unsupported parameters


def test_unsupported_parameters_get_400_naming_them(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend)
    c = client(url)
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    asks: list[tuple[str, dict[str, Any]]] = [
        ("tools", {"tools": [tool]}),
        ("response_format", {"response_format": {"type": "json_object"}}),
        ("logprobs", {"logprobs": True, "top_logprobs": 2}),
    ]
    for param, extra in asks:
        with pytest.raises(openai.BadRequestError) as err:
            c.chat.completions.create(model="tiny", messages=CHAT, max_tokens=2, **extra)
        body = err.value.body
        assert isinstance(body, dict)
        assert (body["param"], body["code"]) == (param, "unsupported_parameter")
        assert body["message"].startswith(f"unsupported parameter(s): {param}: not supported")
    with pytest.raises(openai.BadRequestError, match="echo: not supported"):
        c.completions.create(model="tiny", prompt="a", max_tokens=1, echo=True)
    raw = httpx.post(url.v1 + "/completions", json={"model": "tiny", "prompt": "a", "top_k": 3})
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "top_k"
    assert fake_backend.started == 0  # refused before any generation
    assert [line["status"] for line in url.audit_lines()] == [400] * 5
    # the neutral values some clients always send are not refused
    ok = c.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=1, tools=[], presence_penalty=0, logprobs=False,
        response_format={"type": "text"},
    )  # fmt: skip
    assert ok.choices[0].message.content == "alpha "


# ------------------------------------------------------------------ timeouts, disconnects


def test_timeout_is_504(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(token_delay_s=0.5)
    url = live_gateway(backend, config_overrides={"request_timeout_s": 0.3})
    with pytest.raises(openai.APIStatusError) as err:
        client(url).completions.create(model="tiny", prompt="a", max_tokens=5)
    assert err.value.status_code == 504
    _wait_for(lambda: backend.cancelled == 1)


def test_timeout_mid_stream_ends_with_error_event(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(token_delay_s=0.2)
    url = live_gateway(backend, config_overrides={"request_timeout_s": 0.7})
    body = {"model": "tiny", "prompt": "p", "max_tokens": 50, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=10) as response:
        events = sse_events(response)
    assert json.loads(events[-2])["error"]["type"] == "timeout_error"
    assert events[-1] == "[DONE]"
    _wait_for(lambda: backend.cancelled == 1)


def _wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _raw_post(url: str, path: str, body: dict) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_cancels_generation(live_gateway: LiveGateway, stream: bool) -> None:
    backend = FakeBackend(token_delay_s=0.1)
    url = live_gateway(backend)
    body = {"model": "tiny", "prompt": "p", "max_tokens": 100, "stream": stream}
    sock = _raw_post(url, "/v1/completions", body)
    _wait_for(lambda: backend.started == 1)
    if stream:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()
    _wait_for(lambda: backend.cancelled == 1)
    assert backend.completed == 0
    _wait_for(lambda: bool(url.audit_lines()))
    assert url.audit_lines()[-1]["status"] == 499
    # the slot was given back
    assert url.server.app.state.gateway.queue.in_flight == 0


# ------------------------------------------------------------------ metrics and audit


def test_metrics_exposition(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    c = client(url)
    c.completions.create(model="tiny", prompt="a b", max_tokens=3)
    list(c.completions.create(model="tiny", prompt="a", max_tokens=2, stream=True))
    c.completions.create(model="tiny-notes", prompt="a", max_tokens=1)
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="someone's name", prompt="a", max_tokens=1)
    text = httpx.get(url + "/metrics").text
    # labels in alphabetical order: adapter, endpoint, model, status
    base, notes = 'adapter="none",model="tiny"', 'adapter="tiny-notes",model="tiny"'
    at = 'endpoint="/v1/completions"'
    base_at = f'adapter="none",{at},model="tiny"'
    notes_at = f'adapter="tiny-notes",{at},model="tiny"'
    unknown_at = f'adapter="unknown",{at},model="unknown"'
    assert f'clinical_llm_requests_total{{{base_at},status="200"}} 2.0' in text
    assert f'clinical_llm_requests_total{{{notes_at},status="200"}} 1.0' in text
    assert f'clinical_llm_requests_total{{{unknown_at},status="404"}} 1.0' in text
    assert "someone" not in text
    assert f"clinical_llm_tokens_out_total{{{base}}} 5.0" in text
    assert f"clinical_llm_tokens_in_total{{{base}}} 3.0" in text
    assert f"clinical_llm_tokens_out_total{{{notes}}} 1.0" in text
    assert f"clinical_llm_time_to_first_token_seconds_count{{{base}}} 2.0" in text
    assert f"clinical_llm_time_per_output_token_seconds_count{{{base}}} 2.0" in text
    # every request ends in the latency histogram, refusals too
    assert f"clinical_llm_request_duration_seconds_count{{{base_at}}} 2.0" in text
    assert f"clinical_llm_request_duration_seconds_count{{{notes_at}}} 1.0" in text
    assert f"clinical_llm_request_duration_seconds_count{{{unknown_at}}} 1.0" in text
    assert "clinical_llm_queue_depth 0.0" in text
    assert "clinical_llm_in_flight 0.0" in text


def test_audit_line_per_request(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    c = client(url)
    c.chat.completions.create(model="tiny", messages=CHAT, max_tokens=2)
    list(c.completions.create(model="tiny-notes", prompt="a b", max_tokens=2, stream=True))
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="nope", prompt="a", max_tokens=1)
    lines = url.audit_lines()
    assert [line["status"] for line in lines] == [200, 200, 404]
    chat, streamed, missing = lines
    assert chat["endpoint"] == "/v1/chat/completions" and chat["model"] == "tiny"
    assert chat["key_id"] == "anonymous"
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (5, 2)
    assert chat["latency_ms"] >= chat["ttft_ms"] > 0
    assert len(chat["prompt_hmac"]) == 64 and len(chat["audit_key_id"]) == 16
    assert streamed["stream"] is True and streamed["model"] == "tiny-notes"
    assert missing["error_type"] == "not_found_error"
    assert len({line["request_id"] for line in lines}) == 3
    assert set(chat) >= {
        "time", "request_id", "key_id", "model", "endpoint", "status", "prompt_tokens",
        "completion_tokens", "latency_ms", "ttft_ms", "prompt_hmac", "audit_key_id",
    }  # fmt: skip


def test_backend_lifecycle_follows_app(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(BackendSettings(model_name="m", model_path="fake://m"))
    url = live_gateway(backend)
    assert backend.ready()
    url.server.stop()
    assert backend.closed


def test_backend_start_failure_fails_startup(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(start_error=BackendUnavailableError("no weights"))
    with pytest.raises(RuntimeError, match="failed to start"):
        live_gateway(backend)
