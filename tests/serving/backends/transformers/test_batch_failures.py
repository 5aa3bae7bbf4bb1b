"""One request's failure fails that request only; the engine's failure fails the whole batch.

The tiny model and the real scheduler run every test; the faults are injected into
them (a sampler that raises for one request, a forward pass that raises for one
prompt or for every decode step), because no valid request makes the real model
or sampler raise (the last one that did, a tiny ``top_p``, was fixed in 25f2134).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from serving.backends.base import GenerationRequest, SamplingParams
from serving.backends.transformers.backend import TransformersBackend
from serving.backends.transformers.batching import BatchScheduler
from serving.backends.transformers.decoding import TokenSampler
from serving.errors import BackendUnavailableError, ServingError
from tests.serving.backends.conftest import Output
from tests.serving.backends.transformers.conftest import StartBackend, collect, stats

HEALTHY = [
    "CHIEF COMPLAINT: cough and fever for three days.",
    "Labs: WBC 14.2 K/uL",
    "Reply with the answer only.",
]
POISONED = "Chest radiograph shows right lower lobe consolidation."
MARKER_TEMPERATURE = 0.77  # the sampler of the request that fails


def request(prompt: str, **sampling: Any) -> GenerationRequest:
    params = {"max_tokens": 12, "temperature": 0.0, **sampling}
    return GenerationRequest(prompt[:8], "tiny", SamplingParams(**params), prompt=prompt)


async def gather_outcomes(
    backend: TransformersBackend, requests: list[GenerationRequest]
) -> list[Output | BaseException]:
    async def one(r: GenerationRequest) -> Output:
        async with asyncio.timeout(60):
            return await collect(backend, r)

    return await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)


def drained(scheduler: BatchScheduler) -> None:
    """Wait (bounded) until the worker has dropped every finished or failed row."""
    deadline = time.monotonic() + 10
    while scheduler.running or scheduler.queue_depth:
        assert time.monotonic() < deadline, "rows left in the batch"
        time.sleep(0.01)


def alone(backend: TransformersBackend, requests: list[GenerationRequest]) -> list[str]:
    """Each request served by itself: what its batch mates must not change."""

    async def run() -> list[str]:
        return [(await collect(backend, r)).text for r in requests]

    return asyncio.run(run())


def test_a_failing_sampler_fails_its_request_only(
    start_backend: StartBackend, text_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = start_backend(text_model, max_batch_size=8, max_wait_ms=300)
    real_sample = TokenSampler.sample
    calls: list[int] = []

    def sample(self: TokenSampler, logits: torch.Tensor) -> int:
        if self.temperature == MARKER_TEMPERATURE:
            calls.append(1)
            if len(calls) == 3:  # mid-stream: after its first tokens went out
                raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        return real_sample(self, logits)

    monkeypatch.setattr(TokenSampler, "sample", sample)
    healthy = [request(p) for p in HEALTHY]
    bad = request(POISONED, temperature=MARKER_TEMPERATURE, seed=0, max_tokens=40)
    outcomes = asyncio.run(gather_outcomes(backend, [*healthy, bad]))

    assert stats(backend).largest_batch == 4, "the four requests did not share a batch"
    failure = outcomes[-1]
    assert isinstance(failure, ServingError) and not isinstance(failure, BackendUnavailableError)
    assert (failure.status_code, failure.code) == (500, "generation_failed")
    assert POISONED not in failure.message
    answers = outcomes[:-1]
    assert all(isinstance(o, Output) and o.usage.completion_tokens >= 1 for o in answers)
    assert [o.text for o in answers if isinstance(o, Output)] == alone(backend, healthy)
    assert len(calls) == 3  # its other steps were not sampled after it failed
    assert backend.scheduler is not None
    drained(backend.scheduler)


def test_a_failing_prefill_fails_its_request_only(
    start_backend: StartBackend, text_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = start_backend(text_model, max_batch_size=8, max_wait_ms=300)
    scheduler = backend.scheduler
    assert scheduler is not None
    poisoned_ids = backend._tokenizer(POISONED, add_special_tokens=False)["input_ids"]
    real_forward = scheduler._forward
    prefills: list[int] = []

    def forward(input_ids: torch.Tensor, *args: Any) -> torch.Tensor:
        if input_ids.shape[1] > 1:  # a prefill
            prefills.append(input_ids.shape[0])
            tails = input_ids[:, -len(poisoned_ids) :].tolist()
            if poisoned_ids in tails:
                raise IndexError("index out of range in self")
        return real_forward(input_ids, *args)

    monkeypatch.setattr(scheduler, "_forward", forward)
    healthy = [request(p) for p in HEALTHY]
    outcomes = asyncio.run(gather_outcomes(backend, [healthy[0], request(POISONED), *healthy[1:]]))

    # one batched prefill of all four failed; each was tried alone, the poisoned one failed
    assert prefills == [4, 1, 1, 1, 1]
    failure = outcomes[1]
    assert isinstance(failure, ServingError) and failure.status_code == 500
    assert failure.code == "generation_failed"
    answers = [outcomes[0], *outcomes[2:]]
    assert all(isinstance(o, Output) for o in answers)
    assert [o.text for o in answers if isinstance(o, Output)] == alone(backend, healthy)


def test_an_engine_failure_fails_the_whole_batch_and_the_backend_goes_on(
    start_backend: StartBackend, text_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = start_backend(text_model, max_batch_size=8, max_wait_ms=300)
    scheduler = backend.scheduler
    assert scheduler is not None
    real_forward = scheduler._forward
    broken = {"decode": True, "prefill": False}

    def forward(input_ids: torch.Tensor, *args: Any) -> torch.Tensor:
        if broken["prefill" if input_ids.shape[1] > 1 else "decode"]:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return real_forward(input_ids, *args)

    monkeypatch.setattr(scheduler, "_forward", forward)
    requests = [request(p) for p in [*HEALTHY, POISONED]]
    # a decode forward pass fails: every request of the batch gets a 503
    outcomes = asyncio.run(gather_outcomes(backend, requests))
    assert all(isinstance(o, BackendUnavailableError) for o in outcomes), outcomes
    # every prefill fails, also one at a time: the engine, 503 for all
    broken.update(decode=False, prefill=True)
    outcomes = asyncio.run(gather_outcomes(backend, requests))
    assert all(isinstance(o, BackendUnavailableError) for o in outcomes), outcomes
    # the engine works again: the same backend answers, no restart
    broken.update(prefill=False)
    outcomes = asyncio.run(gather_outcomes(backend, requests))
    assert [o.text for o in outcomes if isinstance(o, Output)] == alone(backend, requests)
    assert scheduler.alive
    drained(scheduler)
