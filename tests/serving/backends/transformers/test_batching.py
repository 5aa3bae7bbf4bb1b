"""The scheduler and its parts: text deltas, samplers, KV cache reshaping, batching, cancelling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.cache_utils import DynamicCache

from serving.backends.base import GenerationChunk, GenerationRequest, SamplingParams
from serving.backends.transformers.decoding import TextStream, TokenSampler, choice_seed
from serving.backends.transformers.kv_cache import BatchCache, concat_rows, select_rows
from tests.serving.backends.transformers.conftest import StartBackend, collect, stats

NOTES = [
    "CHIEF COMPLAINT: cough and fever for three days.",
    "Labs: WBC 14.2 K/uL",
    "Chest radiograph shows right lower lobe consolidation consistent with pneumonia.",
    "Reply with the answer only.",
]


def completion(
    prompt: str, model: str = "tiny", adapter: str | None = None, **sampling: Any
) -> GenerationRequest:
    params = {"max_tokens": 8, "temperature": 0.0, **sampling}
    return GenerationRequest("r", model, SamplingParams(**params), prompt=prompt, adapter=adapter)


# ---------------------------------------------------------------- text deltas


def test_text_stream_holds_back_partial_utf8(chat_tokenizer: Any) -> None:
    text = "Temp 38.4 °C, pain 7/10 → morphine €5 ✓"
    ids = chat_tokenizer.encode(text, add_special_tokens=False)
    # the ASCII-trained byte-level tokenizer splits these characters into byte tokens
    assert len(ids) > len(text.split())
    stream = TextStream(chat_tokenizer)
    deltas = [stream.add(i)[0] for i in ids]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) + stream.flush() == text
    assert any(d == "" for d in deltas)  # something was held back mid-character


def test_text_stream_stop_string_never_leaks(chat_tokenizer: Any) -> None:
    text = "Answer: yes. END of note. ENDNOTE follows"
    ids = chat_tokenizer.encode(text, add_special_tokens=False)
    stream = TextStream(chat_tokenizer, stop=("ENDNOTE", "###"))
    emitted = ""
    stopped = False
    for token in ids:
        delta, stopped = stream.add(token)
        emitted += delta
        assert "ENDNOTE"[:4] not in emitted[len("Answer: yes. END of note. ") :]
        if stopped:
            break
    assert stopped
    assert emitted == "Answer: yes. END of note. "


def test_text_stream_releases_a_false_stop_prefix(chat_tokenizer: Any) -> None:
    ids = chat_tokenizer.encode("no EN here", add_special_tokens=False)
    stream = TextStream(chat_tokenizer, stop=("END",))
    out = "".join(stream.add(i)[0] for i in ids) + stream.flush()
    assert out == "no EN here"


# ---------------------------------------------------------------- samplers


def test_sampler_seed_reproducible_and_top_p_floor_is_greedy() -> None:
    logits = torch.randn(64, generator=torch.Generator().manual_seed(0))
    draws_a = [TokenSampler(1.0, 1.0, 11, torch.device("cpu")) for _ in range(2)]
    sequences = [[s.sample(logits) for _ in range(20)] for s in draws_a]
    assert sequences[0] == sequences[1]
    assert len(set(sequences[0])) > 1  # it really samples
    narrow = TokenSampler(1.0, 1e-6, 3, torch.device("cpu"))
    assert {narrow.sample(logits) for _ in range(20)} == {int(torch.argmax(logits))}
    # a top_p float32 rounds to 0 (found by the API fuzz test) keeps the top token too
    subnormal = TokenSampler(1.0, 5e-324, 3, torch.device("cpu"))
    assert subnormal.sample(logits) == int(torch.argmax(logits))
    assert TokenSampler(0.0, 1.0, None, torch.device("cpu")).greedy
    assert choice_seed(5, 0) != choice_seed(5, 1) and choice_seed(None, 1) is None


# ---------------------------------------------------------------- KV cache reshaping


def _prefill(model: Any, prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, BatchCache]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache = DynamicCache()
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
        use_cache=True,
    )  # fmt: skip
    return out.logits[:, -1], BatchCache(cache, mask)


def _step(model: Any, tokens: list[int], batch: BatchCache) -> torch.Tensor:
    positions = batch.mask.sum(1, keepdim=True)
    batch.mask = torch.cat([batch.mask, torch.ones(batch.rows, 1, dtype=torch.long)], dim=1)
    out = model(
        input_ids=torch.tensor([[t] for t in tokens]), attention_mask=batch.mask,
        position_ids=positions, past_key_values=batch.cache, use_cache=True,
    )  # fmt: skip
    return out.logits[:, -1]


def test_joined_and_pruned_caches_decode_like_separate_ones(
    text_model: Path, chat_tokenizer: Any
) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(text_model), local_files_only=True).eval()
    prompts = [chat_tokenizer.encode(n, add_special_tokens=False) for n in NOTES[:3]]
    pad = chat_tokenizer.pad_token_id
    with torch.inference_mode():
        alone = []
        for p in prompts:
            logits, cache = _prefill(model, [p], pad)
            token = int(logits.argmax())
            alone.append((token, _step(model, [token], cache)[0]))
        # rows 0 and 1 prefilled together and stepped once, then row 2 joins with its own prefill
        first_logits, running = _prefill(model, prompts[:2], pad)
        tokens = first_logits.argmax(-1).tolist()
        _step(model, tokens, running)
        late_logits, late = _prefill(model, prompts[2:], pad)
        joined = concat_rows(running, late)
        assert joined.rows == 3
        # rows 0/1 feed a second token; row 2 feeds its first
        second = _step(model, [0, 0, int(late_logits.argmax())], joined)
        torch.testing.assert_close(second[2], alone[2][1], rtol=1e-4, atol=1e-4)
        # keeping only row 1 trims the columns that were padding for it, and keeps it exact
        pruned = select_rows(joined, [1])
        assert pruned.mask.shape[1] < joined.mask.shape[1] and bool(pruned.mask.all())
        again = _step(model, [5], pruned)
        full = _step(model, [9, 5, 7], joined)
        torch.testing.assert_close(again[0], full[1], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- batching and cancellation


def test_sixteen_concurrent_requests_share_forward_passes(
    start_backend: StartBackend, text_model: Path
) -> None:
    backend = start_backend(text_model, max_batch_size=16, max_wait_ms=100)
    requests = [completion(NOTES[i % 4] + " " * (i % 3), max_tokens=16) for i in range(16)]

    async def run() -> list[Any]:
        return await asyncio.gather(*(collect(backend, r) for r in requests))

    outputs = asyncio.run(run())
    assert all(o.usage.completion_tokens >= 1 for o in outputs)
    counters = stats(backend)
    sequential_passes = sum(o.usage.completion_tokens for o in outputs)  # 1 prefill + n-1 steps
    assert counters.largest_batch == 16
    assert counters.forward_passes * 4 <= sequential_passes
    # identical prompts decode identically whatever their batch position
    by_prompt: dict[str, set[str]] = {}
    for r, o in zip(requests, outputs, strict=True):
        by_prompt.setdefault(r.prompt or "", set()).add(o.text)
    assert all(len(texts) == 1 for texts in by_prompt.values())


def test_max_batch_size_one_serves_one_at_a_time(
    start_backend: StartBackend, text_model: Path
) -> None:
    batched = start_backend(text_model, max_batch_size=8, max_wait_ms=100)
    single = start_backend(text_model, max_batch_size=1)
    requests = [completion(n, max_tokens=10) for n in NOTES]

    async def run(backend: Any) -> list[str]:
        return [o.text for o in await asyncio.gather(*(collect(backend, r) for r in requests))]

    assert asyncio.run(run(single)) == asyncio.run(run(batched))
    assert stats(single).largest_batch == 1
    assert stats(single).prefill_passes == len(NOTES)
    assert stats(batched).largest_batch == len(NOTES)


def test_cancelled_request_stops_consuming_steps(
    start_backend: StartBackend, text_model: Path
) -> None:
    backend = start_backend(text_model, max_wait_ms=100)
    companion_tokens = 30

    async def run() -> tuple[int, int]:
        long_stream = cast(
            AsyncGenerator[GenerationChunk, None],
            backend.generate(completion(NOTES[2], max_tokens=400)),
        )
        companion = asyncio.create_task(
            collect(backend, completion(NOTES[0], max_tokens=companion_tokens))
        )
        received = 0
        async for chunk in long_stream:
            received += chunk.token_count
            if received >= 3:
                break
        await long_stream.aclose()  # what the gateway does when the client disconnects
        await companion
        await asyncio.sleep(0.1)
        return received, stats(backend).decode_steps

    received, steps_after = asyncio.run(run())
    counters = stats(backend)
    # the long request would have needed 399 decode steps; it left the batch, and the
    # batch ended with the companion (whose 30 tokens take 29 steps after its prefill)
    assert counters.decode_steps <= companion_tokens
    assert counters.sequence_steps <= 2 * companion_tokens
    assert counters.decode_steps == steps_after
    assert counters.largest_batch == 2
    assert received >= 3


def test_cancelled_while_queued_is_never_prefilled(
    start_backend: StartBackend, text_model: Path
) -> None:
    backend = start_backend(text_model, max_batch_size=1)

    scheduler = backend.scheduler
    assert scheduler is not None

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(30):
            while not condition():
                await asyncio.sleep(0.001)

    async def run() -> None:
        # the first request runs before the second is sent (both prepare their prompts in
        # threads, so the second could otherwise be queued first), and it is long so that
        # it still runs when the second is queued: a fixed sleep was not enough, a fast
        # machine finished 40 tokens within 50 ms
        first = asyncio.create_task(collect(backend, completion(NOTES[0], max_tokens=400)))
        await until(lambda: scheduler.running == 1)
        queued = cast(
            AsyncGenerator[GenerationChunk, None],
            backend.generate(completion(NOTES[1], max_tokens=40)),
        )
        waiter: asyncio.Future[GenerationChunk] = asyncio.ensure_future(queued.__anext__())
        await until(lambda: scheduler.queue_depth == 1 or waiter.done())  # waiting behind it
        assert not waiter.done(), "the first request ended before the second was queued"
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await queued.aclose()
        await first

    asyncio.run(run())
    assert stats(backend).admitted_requests == 1
    assert scheduler.queue_depth == 0


def test_adapter_batches_keep_arrival_order(
    start_backend: StartBackend, text_model: Path, adapters: dict[str, Path]
) -> None:
    backend = start_backend(text_model, adapters, max_wait_ms=200)
    order = [None, "tiny-dx", None, "tiny-dx", "tiny.readmit"]

    async def run() -> list[str]:
        tasks = []
        for adapter in order:
            request = completion(NOTES[0], model=adapter or "tiny", adapter=adapter)
            tasks.append(asyncio.create_task(collect(backend, request)))
            await asyncio.sleep(0.01)
        return [o.text for o in await asyncio.gather(*tasks)]

    texts = asyncio.run(run())
    # one batch per run of equal adapters in arrival order: base | dx | base | dx | readmit
    assert stats(backend).prefill_passes == len(order)
    assert texts[0] == texts[2] and texts[1] == texts[3]
    assert len({texts[0], texts[1], texts[4]}) == 3
