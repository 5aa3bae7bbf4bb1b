"""The transformers backend against the Backend contract, on tiny random models.

Greedy output is compared with ``model.generate(do_sample=False)`` of the same
folder, alone and batched; adapters with ``PeftModel`` generation; the VLM
with generate on the processor's inputs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm.errors import BadInputError
from serving.backends import create_backend
from serving.backends.base import BackendSettings, GenerationRequest, SamplingParams
from serving.backends.transformers.backend import TransformersBackend
from serving.errors import BackendUnavailableError, BadRequestError, ModelNotFoundError
from tests.serving.backends.conftest import Output, png_data_url
from tests.serving.backends.transformers.conftest import StartBackend, collect, stats

CHAT = [
    {"role": "system", "content": "You are a clinical assistant."},
    {"role": "user", "content": "71 year old woman with COPD, cough and fever. Readmitted?"},
]
PROMPTS = [
    "CHIEF COMPLAINT: cough",
    "Labs: WBC 14.2 K/uL, lactate 2.1 mmol/L. Vitals: heart rate 104, temperature 38.4 C.",
    "Summarize",
    "Chest radiograph shows right lower lobe consolidation consistent with pneumonia. "
    "The patient was admitted, treated with antibiotics and discharged home.",
]


def chat_request(
    messages: list[dict[str, Any]] | None = None,
    model: str = "tiny",
    adapter: str | None = None,
    **sampling: Any,
) -> GenerationRequest:
    params = {"max_tokens": 16, "temperature": 0.0, **sampling}
    return GenerationRequest(
        "req", model, SamplingParams(**params), messages=messages or CHAT, adapter=adapter
    )


def completion_request(prompt: str, model: str = "tiny", **sampling: Any) -> GenerationRequest:
    params = {"max_tokens": 16, "temperature": 0.0, **sampling}
    return GenerationRequest("req", model, SamplingParams(**params), prompt=prompt)


def reference(model: Any, tokenizer: Any, request: GenerationRequest) -> tuple[str, str, int]:
    """(text, finish_reason, tokens) of ``model.generate`` greedy for the request."""
    if request.messages is not None:
        inputs = tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        inputs = tokenizer(request.prompt, return_tensors="pt")
    max_new = request.sampling.max_tokens
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
    new = ids[0, inputs["input_ids"].shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id)
    finish = "stop" if new and new[-1] in eos else "length"
    return tokenizer.decode(new, skip_special_tokens=True), finish, len(new)


@pytest.fixture(scope="module")
def plain(text_model: Path) -> tuple[Any, Any]:
    model = AutoModelForCausalLM.from_pretrained(str(text_model), local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(str(text_model), local_files_only=True)


def check_contract(output: Output, n: int, prompt_tokens: int | None = None) -> None:
    """One finish per choice, usage on the last chunk only, token counts adding up."""
    finishes = [c.index for c in output.chunks if c.finish_reason]
    assert sorted(finishes) == list(range(n))
    assert output.chunks[-1].usage is not None
    assert all(c.usage is None for c in output.chunks[:-1])
    usage = output.usage
    assert usage.completion_tokens == sum(c.token_count for c in output.chunks)
    if prompt_tokens is not None:
        assert usage.prompt_tokens == prompt_tokens


# ---------------------------------------------------------------- greedy equals generate


def test_greedy_chat_and_completion_equal_generate(
    start_backend: StartBackend, text_model: Path, plain: tuple[Any, Any]
) -> None:
    backend = start_backend(text_model)
    for request in (chat_request(max_tokens=24), completion_request(PROMPTS[1], max_tokens=24)):
        text, finish, tokens = reference(*plain, request)
        output = asyncio.run(collect(backend, request))
        assert output.text == text
        assert output.finish == {0: finish}
        check_contract(output, 1, prompt_tokens=backend.count_prompt_tokens(request))
        assert output.usage.completion_tokens == tokens


@pytest.mark.slow
def test_greedy_batched_with_other_lengths_equals_generate(
    start_backend: StartBackend, text_model: Path, plain: tuple[Any, Any]
) -> None:
    backend = start_backend(text_model, max_wait_ms=200)
    requests = [completion_request(p, max_tokens=12 + 3 * i) for i, p in enumerate(PROMPTS)]
    requests.append(chat_request(max_tokens=20))
    expected = [reference(*plain, r)[:2] for r in requests]

    async def run_all() -> list[Output]:
        return await asyncio.gather(*(collect(backend, r) for r in requests))

    outputs = asyncio.run(run_all())
    assert [(o.text, o.finish[0]) for o in outputs] == expected
    assert stats(backend).largest_batch == len(requests)
    assert stats(backend).prefill_passes == 1


def test_late_arrivals_join_a_running_batch_and_stay_exact(
    start_backend: StartBackend, text_model: Path, plain: tuple[Any, Any]
) -> None:
    backend = start_backend(text_model, max_wait_ms=0)
    long_request = completion_request(PROMPTS[3], max_tokens=40)
    late = [completion_request(p, max_tokens=10) for p in PROMPTS[:3]]

    async def run() -> list[Output]:
        first = asyncio.create_task(collect(backend, long_request))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(collect(backend, r)) for r in late]
        return [await first] + [await t for t in rest]

    outputs = asyncio.run(run())
    expected = [reference(*plain, r)[0] for r in [long_request, *late]]
    assert [o.text for o in outputs] == expected
    counters = stats(backend)
    assert counters.prefill_passes >= 2 and counters.largest_batch >= 2


# ---------------------------------------------------------------- sampling


def test_seed_reproducible_and_n_choices_differ(
    start_backend: StartBackend, text_model: Path
) -> None:
    backend = start_backend(text_model)
    seeded = chat_request(temperature=1.0, top_p=0.95, seed=7, max_tokens=12)
    first = asyncio.run(collect(backend, seeded))
    again = asyncio.run(collect(backend, seeded))
    other = asyncio.run(collect(backend, chat_request(temperature=1.0, seed=8, max_tokens=12)))
    assert first.text == again.text
    assert first.text != other.text

    three = chat_request(temperature=1.0, seed=7, n=3, max_tokens=10)
    output = asyncio.run(collect(backend, three))
    check_contract(output, 3)
    assert len(set(output.texts.values())) == 3
    assert output.usage.completion_tokens <= 30


def test_stop_string_trims_and_never_leaks(start_backend: StartBackend, text_model: Path) -> None:
    backend = start_backend(text_model)
    full = asyncio.run(collect(backend, completion_request(PROMPTS[0], max_tokens=30))).text
    assert len(full) > 12
    stop = full[6:10]
    cut = full.index(stop)
    output = asyncio.run(
        collect(backend, completion_request(PROMPTS[0], max_tokens=30, stop=(stop,)))
    )
    assert output.text == full[:cut]
    assert output.finish == {0: "stop"}
    assert all(stop not in c.text for c in output.chunks)
    check_contract(output, 1)


def test_max_tokens_gives_length(start_backend: StartBackend, text_model: Path) -> None:
    backend = start_backend(text_model)
    output = asyncio.run(collect(backend, chat_request(max_tokens=5)))
    if output.finish[0] == "length":
        assert output.usage.completion_tokens == 5
    else:  # the random model may end its turn early; then it must be before the limit
        assert output.usage.completion_tokens < 5


# ---------------------------------------------------------------- adapters


def test_adapters_are_models_and_route_to_their_weights(
    start_backend: StartBackend, text_model: Path, adapters: dict[str, Path], plain: tuple[Any, Any]
) -> None:
    from peft import PeftModel

    backend = start_backend(text_model, adapters)
    served = {m.id: m for m in backend.models()}
    assert set(served) == {"tiny", *adapters}
    assert served["tiny-dx"].parent == "tiny" and served["tiny"].parent is None
    assert served["tiny"].max_model_len == plain[0].config.max_position_embeddings

    base_ref = reference(*plain, chat_request())[0]
    expected = {"tiny": base_ref}
    for name, folder in adapters.items():
        base_model = AutoModelForCausalLM.from_pretrained(str(text_model), local_files_only=True)
        tuned = PeftModel.from_pretrained(base_model, str(folder)).eval()
        expected[name] = reference(tuned, plain[1], chat_request())[0]
    assert len(set(expected.values())) == 3  # the adapters really change the output

    async def run_mixed() -> dict[str, Output]:
        names = ["tiny", "tiny-dx", "tiny.readmit", "tiny", "tiny-dx"]
        outs = await asyncio.gather(
            *(
                collect(backend, chat_request(model=name, adapter=None if name == "tiny" else name))
                for name in names
            )
        )
        return dict(zip(names, outs, strict=True))

    outputs = asyncio.run(run_mixed())
    assert {name: o.text for name, o in outputs.items()} == expected


def test_unknown_model_is_404(start_backend: StartBackend, text_model: Path) -> None:
    backend = start_backend(text_model)
    with pytest.raises(ModelNotFoundError):
        asyncio.run(collect(backend, chat_request(model="nope")))


# ---------------------------------------------------------------- multimodal


def test_vlm_chat_with_image_equals_generate(start_backend: StartBackend, vlm_model: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    backend = start_backend(vlm_model)
    assert backend.multimodal
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the chest radiograph."},
                {"type": "image_url", "image_url": {"url": png_data_url()}},
            ],
        }
    ]
    request = chat_request(messages, max_tokens=12)
    output = asyncio.run(collect(backend, request))

    processor = AutoProcessor.from_pretrained(str(vlm_model), local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(str(vlm_model), local_files_only=True)
    from serving.backends.transformers.chat import render_chat, split_images

    converted, images = split_images(messages)
    inputs = processor(
        text=render_chat(processor, converted), images=images, return_tensors="pt",
        add_special_tokens=False,
    )  # fmt: skip
    with torch.no_grad():
        ids = model.eval().generate(**inputs, max_new_tokens=12, do_sample=False)
    new = ids[0, inputs["input_ids"].shape[1] :].tolist()
    assert output.text == processor.tokenizer.decode(new, skip_special_tokens=True)
    # the 64 patch tokens of the image count as prompt tokens
    assert output.usage.prompt_tokens == inputs["input_ids"].shape[1] > 64

    other_image = [{**messages[0]}]
    other_image[0]["content"] = [
        messages[0]["content"][0],
        {"type": "image_url", "image_url": {"url": png_data_url((10, 200, 10))}},
    ]
    changed = asyncio.run(collect(backend, chat_request(other_image, max_tokens=12)))
    assert changed.text != output.text


def test_bad_images_are_400_naming_the_part(
    start_backend: StartBackend, text_model: Path, vlm_model: Path
) -> None:
    vlm = start_backend(vlm_model)
    bad: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!notb64"}},
            ],
        },
    ]
    with pytest.raises(BadRequestError) as caught:
        asyncio.run(collect(vlm, chat_request(bad)))
    assert caught.value.param == "messages[1].content[1]"
    assert caught.value.status_code == 400

    text_only = start_backend(text_model)
    image_msg = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_data_url()}}]}
    ]
    with pytest.raises(BadRequestError, match="does not accept images"):
        asyncio.run(collect(text_only, chat_request(image_msg)))


# ---------------------------------------------------------------- limits and lifecycle


def test_context_overflow_is_400_and_not_ready_is_503(
    start_backend: StartBackend, text_model: Path
) -> None:
    backend = start_backend(text_model)
    limit = backend.max_model_len("tiny")
    assert limit is not None
    with pytest.raises(BadRequestError) as caught:
        asyncio.run(collect(backend, chat_request(max_tokens=limit)))
    assert caught.value.param == "max_tokens"

    asyncio.run(backend.close())
    assert not backend.ready()
    with pytest.raises(BackendUnavailableError):
        asyncio.run(collect(backend, chat_request()))


def test_options_are_validated_all_at_once(text_model: Path) -> None:
    settings = BackendSettings(
        "tiny", str(text_model), options={"max_batch_size": 0, "dtype": "int3", "batchsize": 4}
    )
    with pytest.raises(BadInputError) as caught:
        create_backend("transformers", settings)
    message = str(caught.value)
    assert "max_batch_size" in message and "dtype" in message and "batchsize" in message


def test_missing_model_folder_fails_start_with_503(tmp_path: Path) -> None:
    backend = TransformersBackend(BackendSettings("tiny", str(tmp_path / "absent")))
    with pytest.raises(BackendUnavailableError, match="model folder not found"):
        asyncio.run(backend.start())
