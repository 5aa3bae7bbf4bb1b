"""Gateway behaviour over a live uvicorn server with the FakeBackend and the openai client."""

from __future__ import annotations

import openai

from tests.serving.conftest import FakeBackend, LiveGateway


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_chat_non_streaming(live_gateway: LiveGateway, fake_backend: FakeBackend) -> None:
    url = live_gateway(fake_backend)
    out = client(url).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert out.choices[0].message.content == "alpha bravo charlie "
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 3
