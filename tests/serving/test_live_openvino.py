"""The gateway over the ``openvino`` backend, on a real exported IR, with the ``openai`` client.

The tiny random Llama is exported with INT8 weights by the real exporter (its own venv,
``tests/compress/openvino_fixtures.py``) and served by ``openvino-genai`` in the gateway's
process. Streamed text must equal the non-streamed text; the limits are the gateway's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.real_components import reason

pytest.importorskip("openvino_genai", reason=reason("openvino", "no openvino-genai"))
openai = pytest.importorskip("openai", reason=reason("openai", "no openai client"))

from serving.backends.base import BackendSettings  # noqa: E402
from tests.compress.openvino_fixtures import tiny_openvino_ir  # noqa: E402, F401
from tests.serving.backends.conftest import text_model  # noqa: E402, F401
from tests.serving.conftest import LiveGateway  # noqa: E402
from tests.train.conftest import chat_tokenizer  # noqa: E402, F401

MESSAGES: list[Any] = [{"role": "user", "content": "71 year old woman with COPD. Readmitted?"}]


@pytest.mark.slow
def test_openai_client_chat_completions_and_streaming_through_openvino(
    live_gateway: LiveGateway,
    tiny_openvino_ir: Path,  # noqa: F811
) -> None:
    url = live_gateway("openvino", BackendSettings("tiny-ov", str(tiny_openvino_ir)))
    client = openai.OpenAI(base_url=url.v1, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["tiny-ov"]

    chat = client.chat.completions.create(
        model="tiny-ov", messages=MESSAGES, max_tokens=12, temperature=0
    )
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage is not None and chat.usage.completion_tokens >= 1
    assert chat.usage.prompt_tokens > 5

    stream = client.chat.completions.create(
        model="tiny-ov", messages=MESSAGES, max_tokens=12, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == chat.choices[0].message.content

    completion = client.completions.create(
        model="tiny-ov", prompt="CHIEF COMPLAINT:", max_tokens=8, temperature=0
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 8
    text_stream = client.completions.create(
        model="tiny-ov", prompt="CHIEF COMPLAINT:", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in text_stream if c.choices) == (
        completion.choices[0].text
    )

    sampled = client.completions.create(
        model="tiny-ov", prompt="CHIEF COMPLAINT:", max_tokens=6, temperature=1.0, n=2, seed=3
    )
    assert sorted(c.index for c in sampled.choices) == [0, 1]
    assert sampled.usage is not None and sampled.usage.completion_tokens == 12

    with pytest.raises(openai.BadRequestError):  # prompt + max_tokens beyond the context
        client.completions.create(model="tiny-ov", prompt="x", max_tokens=100_000)
    with pytest.raises(openai.BadRequestError):  # the backend is text-only
        client.chat.completions.create(
            model="tiny-ov",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
                    ],
                }
            ],
            max_tokens=4,
        )
