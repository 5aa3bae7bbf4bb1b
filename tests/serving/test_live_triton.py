"""The gateway over a real Triton server, driven by the official ``openai`` client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.real_components import reason

pytest.importorskip("tritonclient.grpc.aio", reason=reason("triton", "no tritonclient"))
openai = pytest.importorskip("openai", reason=reason("openai", "no openai client"))

from serving.backends.base import BackendSettings  # noqa: E402
from tests.serving.backends.conftest import text_model  # noqa: E402, F401
from tests.serving.backends.triton_fixtures import (  # noqa: E402, F401
    MODEL_NAME,
    TritonServer,
    triton_repository,
    triton_server,
)
from tests.serving.conftest import LiveGateway  # noqa: E402
from tests.train.conftest import chat_tokenizer  # noqa: E402, F401

MESSAGES: list[Any] = [{"role": "user", "content": "71 year old woman with COPD. Readmitted?"}]


@pytest.mark.slow
def test_openai_client_chat_completions_and_streaming_through_triton(
    live_gateway: LiveGateway,
    triton_server: TritonServer,  # noqa: F811
) -> None:
    settings = BackendSettings("tiny", triton_server.grpc_url, options={"triton_model": MODEL_NAME})
    url = live_gateway("triton", settings)
    client = openai.OpenAI(base_url=url.v1, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["tiny"]

    chat = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=10, temperature=0
    )
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage is not None and chat.usage.completion_tokens >= 1

    stream = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=10, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == chat.choices[0].message.content

    completion = client.completions.create(
        model="tiny", prompt="CHIEF COMPLAINT:", max_tokens=8, temperature=0
    )
    text_stream = client.completions.create(
        model="tiny", prompt="CHIEF COMPLAINT:", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in text_stream if c.choices) == (
        completion.choices[0].text
    )
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x", max_tokens=4000)
