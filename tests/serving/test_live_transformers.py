"""The transformers backend behind a live gateway (uvicorn), driven by the openai client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from openai.types.chat import ChatCompletionMessageParam
from transformers import AutoModelForCausalLM, AutoTokenizer

from serving.backends.base import BackendSettings
from serving.backends.transformers.backend import TransformersBackend
from tests.serving.backends import conftest as backend_fixtures
from tests.serving.backends.conftest import png_data_url
from tests.serving.conftest import LiveGateway
from tests.train.fixtures import TrainingAssets, training_assets  # noqa: F401

pytestmark = pytest.mark.slow  # each test starts a real server and loads a model

# the tiny random models of the backend tests (their conftest is not in scope here)
chat_tokenizer = backend_fixtures.chat_tokenizer
text_model = backend_fixtures.text_model
adapters = backend_fixtures.adapters
vlm_model = backend_fixtures.vlm_model

CHAT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a clinical assistant."},
    {"role": "user", "content": "71 year old woman with COPD, cough and fever. Readmitted?"},
]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)


def settings(
    model: Path, adapter_dirs: dict[str, Path] | None = None, **options: Any
) -> BackendSettings:
    return BackendSettings("tiny", str(model), dict(adapter_dirs or {}), options)


def greedy_reference(model_dir: Path, max_new_tokens: int) -> str:
    """``model.generate`` greedy continuation of :data:`CHAT` (the ground truth)."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    inputs: Any = tokenizer.apply_chat_template(
        [{"role": str(m["role"]), "content": str(m.get("content"))} for m in CHAT],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    prompt_length = len(inputs["input_ids"][0])
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tokenizer.decode(ids[0, prompt_length:], skip_special_tokens=True))


def test_chat_and_streaming_match_generate(live_gateway: LiveGateway, text_model: Path) -> None:
    url = live_gateway("transformers", settings(text_model))
    api = client(url)
    expected = greedy_reference(text_model, 20)

    out = api.chat.completions.create(model="tiny", messages=CHAT, max_tokens=20, temperature=0)
    assert out.choices[0].message.content == expected
    assert out.usage is not None and out.usage.completion_tokens == 20
    assert out.choices[0].finish_reason == "length"

    stream = api.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=20,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finishes, usage = [], [], None
    for event in stream:
        if event.usage is not None:
            usage = event.usage
        for choice in event.choices:
            deltas.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(deltas) == expected
    assert len([d for d in deltas if d]) > 1  # it really streamed token by token
    assert finishes == ["length"]
    assert usage is not None and usage.completion_tokens == 20


def test_completions_with_n_seed_and_stop(live_gateway: LiveGateway, text_model: Path) -> None:
    url = live_gateway("transformers", settings(text_model))
    api = client(url)
    prompt = "CHIEF COMPLAINT: cough and fever for three days."
    full = api.completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0)
    text = full.choices[0].text
    stop = text[5:9]
    cut = api.completions.create(
        model="tiny", prompt=prompt, max_tokens=24, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"

    def sampled() -> list[str]:
        out = api.completions.create(
            model="tiny", prompt=prompt, max_tokens=10, temperature=1.0, seed=42, n=3
        )
        return [c.text for c in sorted(out.choices, key=lambda c: c.index)]

    first = sampled()
    assert first == sampled()
    assert len(set(first)) == 3

    streamed = api.completions.create(
        model="tiny", prompt=prompt, max_tokens=24, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == text


def test_adapter_is_its_own_model(
    live_gateway: LiveGateway, text_model: Path, adapters: dict[str, Path]
) -> None:
    url = live_gateway("transformers", settings(text_model, adapters))
    api = client(url)
    listed = {m.id: m for m in api.models.list().data}
    assert set(listed) == {"tiny", "tiny-dx", "tiny.readmit"}

    def answer(model: str) -> str | None:
        out = api.chat.completions.create(model=model, messages=CHAT, max_tokens=12, temperature=0)
        return out.choices[0].message.content

    base = answer("tiny")
    assert base == greedy_reference(text_model, 12)
    assert answer("tiny-dx") != base
    assert answer("tiny.readmit") not in (base, answer("tiny-dx"))
    with pytest.raises(openai.NotFoundError):
        answer("tiny-unknown")


def test_image_chat_on_the_vlm(live_gateway: LiveGateway, vlm_model: Path) -> None:
    url = live_gateway("transformers", settings(vlm_model))
    api = client(url)
    messages: list[ChatCompletionMessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the chest radiograph."},
                {"type": "image_url", "image_url": {"url": png_data_url()}},
            ],
        }
    ]
    out = api.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    assert out.choices[0].message.content
    assert out.usage is not None and out.usage.prompt_tokens > 64  # 64 image patch tokens

    broken: list[ChatCompletionMessageParam] = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        }
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="tiny", messages=broken, max_tokens=8)
    assert "messages[0].content[0]" in str(caught.value)


def test_client_disconnect_frees_the_batch(live_gateway: LiveGateway, text_model: Path) -> None:
    url = live_gateway("transformers", settings(text_model))
    backend = url.backend
    assert isinstance(backend, TransformersBackend) and backend.scheduler is not None
    stream = client(url).completions.create(
        model="tiny", prompt="Labs: WBC 14.2", max_tokens=1500, temperature=0, stream=True
    )
    for seen, _ in enumerate(stream):
        if seen >= 3:
            break
    stream.close()  # drop the connection mid-stream
    counters = backend.scheduler.stats
    deadline = time.monotonic() + 10
    while backend.scheduler.running and time.monotonic() < deadline:
        time.sleep(0.05)
    steps = counters.decode_steps
    time.sleep(0.3)
    assert counters.decode_steps == steps < 1000  # stopped long before max_tokens


def test_tiny_clinical_model_answers(
    live_gateway: LiveGateway,
    training_assets: TrainingAssets,  # noqa: F811
) -> None:
    url = live_gateway("transformers", settings(training_assets.model))
    out = client(url).chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=8, temperature=0
    )
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > 10
