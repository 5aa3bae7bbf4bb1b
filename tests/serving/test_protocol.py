"""OpenAI protocol models: parsing, unknown fields by name, conversion to sampling params."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.backends.base import GenerationChunk, Usage
from serving.errors import BadRequestError
from serving.errors_http import validation_error
from serving.protocol import ChatCompletionRequest, CompletionRequest


def test_to_sampling_params() -> None:
    request = CompletionRequest.model_validate(
        {
            "model": "m",
            "prompt": "p",
            "temperature": 0,
            "top_p": 0.5,
            "seed": 3,
            "stop": "\n",
            "n": 2,
        }
    )
    params = request.to_sampling_params(max_tokens=7)
    assert (params.max_tokens, params.temperature, params.top_p) == (7, 0.0, 0.5)
    assert (params.seed, params.stop, params.n) == (3, ("\n",), 2)
    listed = CompletionRequest.model_validate({"model": "m", "prompt": "p", "stop": ["a", "b"]})
    assert listed.to_sampling_params(1).stop == ("a", "b")


def test_max_completion_tokens_alias() -> None:
    chat = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9}
    )
    assert chat.requested_max_tokens() == 9


def test_unknown_fields_are_kept_by_name_only() -> None:
    request = CompletionRequest.model_validate(
        {"model": "m", "prompt": "p", "logprobs": 2, "echo": True, "Patient Name: X": 1}
    )
    assert request.unknown_fields() == [
        "echo",
        "logprobs",
        "<1 field(s) with non-identifier names>",
    ]


def test_prompt_list_of_one_only() -> None:
    assert CompletionRequest(model="m", prompt=["only"]).prompt_text() == "only"
    with pytest.raises(BadRequestError, match="one prompt per request"):
        CompletionRequest(model="m", prompt=["a", "b"]).prompt_text()


def test_content_parts_and_image_data_urls() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    chat = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "t"}, image]}],
        }
    )
    assert chat.chat_messages()[0]["content"][1] == image
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}
        )  # fmt: skip
    error = validation_error(err.value)
    assert error.param == "messages.0.content.0.image_url.image_url.url"
    assert "data:image" in error.message and "passwd" not in error.message


def test_validation_error_never_echoes_values() -> None:
    with pytest.raises(ValidationError) as err:
        CompletionRequest.model_validate({"model": "m", "prompt": "p", "n": "Jane Doe"})
    error = validation_error(err.value)
    assert error.param == "n" and "Jane" not in error.message


def test_stream_event_shapes() -> None:
    chunk = GenerationChunk(index=1, text="hi", token_count=1, finish_reason="stop")
    chat_request = ChatCompletionRequest(model="m", messages=[{"role": "user"}], n=2)
    chat = chat_request.stream_chunk("id1", 5, chunk)
    assert chat["object"] == "chat.completion.chunk"
    assert chat["choices"][0] == {
        "index": 1, "delta": {"role": None, "content": "hi"}, "finish_reason": "stop",
        "logprobs": None,
    }  # fmt: skip
    text = CompletionRequest(model="m", prompt="p").stream_chunk("id2", 5, chunk)
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "hi"
    [roles] = chat_request.stream_opening("id1", 5)
    assert [c["delta"]["role"] for c in roles["choices"]] == ["assistant", "assistant"]
    assert CompletionRequest(model="m", prompt="p").stream_opening("id2", 5) == []
    usage = chat_request.stream_usage("id1", 5, Usage(3, 4))
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7
