"""The ``openai`` backend: a gateway forwarding to a second live gateway (the upstream)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm.net import free_port
from serving.backends.base import BackendSettings
from serving.backends.openai_backend import OpenAIUpstreamBackend, upstream_error
from serving.errors import BackendUnavailableError, OverloadedError
from tests.serving.backends.conftest import adapters, text_model  # noqa: F401
from tests.serving.conftest import FakeBackend, GatewayURL, LiveGateway, make_key
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = pytest.mark.slow


def forwarding(
    upstream: GatewayURL, with_adapter: bool = False, **options: object
) -> BackendSettings:
    return BackendSettings(
        model_name="clinic",
        model_path=upstream.v1,
        adapters={"clinic-notes": Path("tiny-notes")} if with_adapter else {},
        options={"upstream_model": "tiny", **options},
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_forwards_chat_completions_and_streams(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    upstream = live_gateway(fake_backend)
    gateway = live_gateway("openai", forwarding(upstream, with_adapter=True))
    client = openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0)
    assert {m.id for m in client.models.list()} == {"clinic", "clinic-notes"}
    out = client.chat.completions.create(
        model="clinic", messages=[{"role": "user", "content": "a b"}], max_tokens=3, n=2, seed=2
    )
    assert [c.message.content for c in out.choices] == [
        "charlie delta echo ",
        "delta echo foxtrot ",
    ]
    assert out.usage is not None and out.usage.completion_tokens == 6
    sent = fake_backend.requests[-1]
    assert sent.model == "tiny" and sent.sampling.seed == 2 and sent.sampling.n == 2
    stream = client.completions.create(
        model="clinic-notes",
        prompt="p",
        max_tokens=4,
        stop=["delta"],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "alpha bravo charlie "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 1
    assert fake_backend.requests[-1].adapter == "tiny-notes"
    # both gateways audit the request; the downstream one under its own names
    assert gateway.audit_lines()[-1]["model"] == "clinic-notes"
    assert upstream.audit_lines()[-1]["model"] == "tiny-notes"


def test_upstream_4xx_keeps_its_status(live_gateway: LiveGateway) -> None:
    upstream = live_gateway(FakeBackend(max_len=8))
    gateway = live_gateway("openai", forwarding(upstream))
    client = openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="clinic", prompt="a b c d e f", max_tokens=5)
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "upstream answered 400" in err.value.message


def test_upstream_busy_is_429_with_retry_after(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(token_delay_s=0.2)
    upstream = live_gateway(
        backend, config_overrides={"max_concurrency": 1, "max_queue": 0, "retry_after_s": 7}
    )
    gateway = live_gateway("openai", forwarding(upstream))
    body = {"model": "clinic", "prompt": "a", "max_tokens": 10, "stream": True}
    with httpx.stream("POST", gateway.v1 + "/completions", json=body, timeout=30) as first:
        assert first.status_code == 200
        refused = httpx.post(gateway.v1 + "/completions", json=body)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "7"


def test_upstream_down_is_503(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    upstream = live_gateway(fake_backend)
    gateway = live_gateway("openai", forwarding(upstream))
    upstream.server.stop()
    response = httpx.post(gateway.v1 + "/completions", json={"model": "clinic", "prompt": "a"})
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]["message"]
    assert upstream.v1 in response.json()["error"]["message"]


def test_start_fails_when_upstream_is_down_or_lacks_the_model(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    dead = BackendSettings(model_name="clinic", model_path=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(RuntimeError, match="failed to start"):
        live_gateway("openai", dead)
    upstream = live_gateway(fake_backend)
    backend = OpenAIUpstreamBackend(
        BackendSettings(model_name="clinic", model_path=upstream.v1, options={})
    )
    import asyncio

    with pytest.raises(BackendUnavailableError, match="does not serve clinic"):
        asyncio.run(backend.start())


def test_upstream_key_from_env(
    live_gateway: LiveGateway, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, entry = make_key("gateway")
    upstream = live_gateway(fake_backend, keys=[entry])
    monkeypatch.setenv("UPSTREAM_KEY", key)
    gateway = live_gateway("openai", forwarding(upstream, api_key_env="UPSTREAM_KEY"))
    body = {"model": "clinic", "prompt": "a", "max_tokens": 2}
    out = httpx.post(gateway.v1 + "/completions", json=body)
    assert out.status_code == 200
    assert upstream.audit_lines()[-1]["key_id"] == "gateway"


def test_client_disconnect_cancels_upstream_generation(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(token_delay_s=0.1)
    upstream = live_gateway(backend)
    gateway = live_gateway("openai", forwarding(upstream))
    body = {"model": "clinic", "prompt": "a", "max_tokens": 100, "stream": True}
    with httpx.stream("POST", gateway.v1 + "/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: "))
    wait_until(lambda: backend.cancelled == 1)
    assert backend.completed == 0
    wait_until(lambda: bool(upstream.audit_lines()))
    assert upstream.audit_lines()[-1]["status"] == 499


def test_upstream_error_mapping() -> None:
    body = json.dumps({"error": {"type": "x", "code": "c", "message": "echo of a prompt"}})
    error = upstream_error(422, body.encode(), None)
    assert error.status_code == 422 and error.code == "c"
    assert "echo" not in error.message
    busy = upstream_error(429, b"", "3")
    assert isinstance(busy, OverloadedError) and busy.headers["Retry-After"] == "3"
    assert upstream_error(500, b"not json", None).status_code == 503
    assert upstream_error(401, b"", None).status_code == 503


def test_bad_options_are_refused() -> None:
    from llm.errors import BadInputError

    with pytest.raises(BadInputError, match="upstream URL"):
        OpenAIUpstreamBackend(BackendSettings(model_name="m", model_path="/local/folder"))
    with pytest.raises(BadInputError, match="unknown option"):
        OpenAIUpstreamBackend(
            BackendSettings(model_name="m", model_path="http://h/v1", options={"tiemout": 1})
        )


def test_upstream_on_the_transformers_backend(
    live_gateway: LiveGateway,
    text_model: Path,  # noqa: F811
    adapters: dict[str, Path],  # noqa: F811
) -> None:
    adapter_name, adapter_path = next(iter(adapters.items()))
    upstream = live_gateway(
        "transformers",
        BackendSettings(
            model_name="tiny", model_path=str(text_model), adapters={adapter_name: adapter_path}
        ),
    )
    gateway = live_gateway(
        "openai",
        BackendSettings(
            model_name="clinic",
            model_path=upstream.v1,
            adapters={"clinic-notes": Path(adapter_name)},
            options={"upstream_model": "tiny"},
        ),
    )
    direct = openai.OpenAI(base_url=upstream.v1, api_key="x", max_retries=0)
    forwarded = openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Summarise: cough and fever for three days."}
    ]
    listed = {m.id: m for m in forwarded.models.list()}
    assert set(listed) == {"clinic", "clinic-notes"}
    for local, remote in (("clinic", "tiny"), ("clinic-notes", adapter_name)):
        want = direct.chat.completions.create(
            model=remote, messages=messages, max_tokens=8, temperature=0
        )
        got = forwarded.chat.completions.create(
            model=local, messages=messages, max_tokens=8, temperature=0
        )
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.usage == want.usage
        streamed = forwarded.chat.completions.create(
            model=local, messages=messages, max_tokens=8, temperature=0, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == want.choices[0].message.content
    base = direct.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, temperature=0
    )
    tuned = direct.chat.completions.create(
        model=adapter_name, messages=messages, max_tokens=8, temperature=0
    )
    # the adapter really changes the output, so the name routing above is tested
    assert base.choices[0].message.content != tuned.choices[0].message.content
