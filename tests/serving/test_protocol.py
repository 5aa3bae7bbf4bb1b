"""OpenAI protocol models: parsing, unsupported parameters refused, sampling params."""

from __future__ import annotations

import re
import time

import pytest
from pydantic import ValidationError

from serving.backends.base import GenerationChunk, Usage
from serving.errors import BadRequestError
from serving.errors_http import validation_error
from serving.protocol import ChatCompletionRequest, CompletionRequest, is_image_data_url


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


CHAT = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("tool_choice", "auto"),
        ("functions", [{"name": "f"}]),
        ("response_format", {"type": "json_object"}),
        ("logprobs", True),
        ("top_logprobs", 2),
        ("presence_penalty", 0.5),
        ("frequency_penalty", -1),
        ("logit_bias", {"50256": -100}),
        ("store", True),
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy"}),
        ("reasoning_effort", "low"),
        ("top_k", 5),  # not OpenAI's at all: a vLLM extension
    ],
)
def test_unsupported_chat_parameters_are_refused_by_name(field: str, value: object) -> None:
    request = ChatCompletionRequest.model_validate({**CHAT, field: value})
    with pytest.raises(BadRequestError) as caught:
        request.check_supported()
    error = caught.value
    assert (error.status_code, error.param, error.code) == (400, field, "unsupported_parameter")
    assert error.message.startswith(f"unsupported parameter(s): {field}: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [("logprobs", 0), ("echo", True), ("best_of", 2), ("suffix", "x"), ("presence_penalty", 1)],
)
def test_unsupported_completion_parameters_are_refused_by_name(field: str, value: object) -> None:
    request = CompletionRequest.model_validate({"model": "m", "prompt": "p", field: value})
    with pytest.raises(BadRequestError, match=f"^unsupported parameter.s.: {field}: not supported"):
        request.check_supported()


def test_neutral_values_of_unsupported_parameters_are_accepted() -> None:
    # what clients such as LangChain send by default asks for nothing: no reason to refuse it
    neutral = {
        "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
        "logprobs": False, "top_logprobs": None, "presence_penalty": 0, "frequency_penalty": 0.0,
        "logit_bias": {}, "parallel_tool_calls": True, "store": False, "metadata": {},
        "modalities": ["text"], "service_tier": "auto", "audio": None, "safety_identifier": "u1",
    }  # fmt: skip
    ChatCompletionRequest.model_validate({**CHAT, **neutral}).check_supported()
    completion = {"echo": False, "best_of": 1, "suffix": "", "logprobs": None, "logit_bias": {}}
    CompletionRequest.model_validate({"model": "m", "prompt": "p", **completion}).check_supported()
    # type-exact: 0 is not false, false is not 0, and a list is not the empty object
    for field, value in (("logprobs", 0), ("presence_penalty", False), ("logit_bias", [])):
        with pytest.raises(BadRequestError):
            ChatCompletionRequest.model_validate({**CHAT, field: value}).check_supported()


def test_refused_field_names_are_repeated_only_when_harmless() -> None:
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "Patient Name: X": 1, "echo": True, "b": 1, "c": 1, "d": 1}
    )
    with pytest.raises(BadRequestError) as caught:
        request.check_supported()
    message = caught.value.message
    assert "Patient" not in message and caught.value.param == "b"
    assert message.endswith("and 1 more; 1 field(s) with names that are not identifiers")
    only_odd = ChatCompletionRequest.model_validate({**CHAT, "MRN 99887766": 1})
    with pytest.raises(BadRequestError) as caught:
        only_odd.check_supported()
    assert caught.value.param is None and "99887766" not in caught.value.message


def test_request_schema_lists_refused_parameters_and_no_others() -> None:
    schema = ChatCompletionRequest.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tools"]["anyOf"] == [
        {"type": "array", "maxItems": 0},
        {"type": "null"},
    ]
    assert "only [] or null" in schema["properties"]["tools"]["description"]
    completion = CompletionRequest.model_json_schema()
    assert "echo" in completion["properties"] and "tools" not in completion["properties"]


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


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("data:image/png;base64,AAAA", True),
        ("data:image/png;base64,AA==", True),
        ("data:image/jpeg;charset=utf-8;base64,/9j/", True),
        ("data:image/png,AAAA", False),  # not base64
        ("data:image/png;base64,AAA", False),  # not whole quads: b64decode refused it
        ("data:image/png;base64,A=AA", False),
        ("data:image/png;base64,AA A", False),
        ("data:image/;base64,AAAA", False),
    ],
)
def test_image_data_urls_are_checked_like_the_schema_says(url: str, valid: bool) -> None:
    assert is_image_data_url(url) is valid
    pattern = ChatCompletionRequest.model_json_schema()["$defs"]["ImageURL"]["properties"]["url"]
    assert (re.match(pattern["pattern"], url) is not None) is valid


def test_image_data_url_check_is_linear_on_crafted_urls() -> None:
    # the first single-regex check took seconds on these (run in the event loop)
    crafted = [
        "data:image/png" + ";a" * (2 * 2**20) + ";base64,AAAA",
        "data:image/png;base64," + "A" * (4 * 2**20) + "AAA!",
    ]
    started = time.perf_counter()
    assert not any(is_image_data_url(url) for url in crafted)
    assert time.perf_counter() - started < 1.0


def test_empty_prompt_is_refused_at_parse() -> None:
    for prompt in ("", [""]):
        with pytest.raises(ValidationError) as err:
            CompletionRequest.model_validate({"model": "m", "prompt": prompt})
        assert validation_error(err.value).param == "prompt"


def test_subnormal_temperature_decodes_greedily() -> None:
    # a temperature float32 rounds to 0 made the engines divide by zero
    request = CompletionRequest.model_validate({"model": "m", "prompt": "p", "temperature": 5e-324})
    assert request.to_sampling_params(1).temperature == 0.0
    assert (
        CompletionRequest(model="m", prompt="p", temperature=0.5).to_sampling_params(1).temperature
        == 0.5
    )


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
