"""serving/streaming.py: the per-request deadline of a stream (StallGuard)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serving.backends.base import GenerationChunk
from serving.streaming import StallGuard


async def _chunks(delays: list[float], cleaned: list[str]) -> AsyncIterator[GenerationChunk]:
    try:
        for i, delay in enumerate(delays):
            await asyncio.sleep(delay)
            yield GenerationChunk(0, f"t{i}", 1)
    finally:
        cleaned.append("closed")


def test_a_stream_within_its_time_is_read_to_the_end() -> None:
    async def scenario() -> list[str]:
        guard = StallGuard(5.0)
        stream = _chunks([0.0] * 50, [])
        texts = []
        while (chunk := await guard.next_chunk(stream)) is not None:
            texts.append(chunk.text)
        guard.close()
        return texts

    assert asyncio.run(scenario()) == [f"t{i}" for i in range(50)]


def test_a_stalled_stream_times_out_and_the_backend_sees_the_cancellation() -> None:
    async def scenario() -> tuple[list[str], float, int]:
        cleaned: list[str] = []
        guard = StallGuard(0.2)
        stream = _chunks([0.0, 3.0], cleaned)
        assert (await guard.next_chunk(stream)) is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await guard.next_chunk(stream)
        task = asyncio.current_task()
        assert task is not None
        # the task is usable afterwards: no cancellation left pending on it
        await asyncio.sleep(0.01)
        return cleaned, loop.time() - start, task.cancelling()

    cleaned, waited, cancelling = asyncio.run(scenario())
    assert cleaned == ["closed"]  # the backend's generator ran its clean-up (abort)
    assert 0.1 < waited < 2
    assert cancelling == 0


def test_expiry_between_chunks_is_reported_without_cancelling() -> None:
    async def scenario() -> bool:
        guard = StallGuard(0.05)
        stream = _chunks([0.0, 0.0], [])
        await guard.next_chunk(stream)
        await asyncio.sleep(0.2)  # the caller is busy elsewhere (sending) when time runs out
        assert guard.expired
        with pytest.raises(asyncio.TimeoutError):
            await guard.next_chunk(stream)
        task = asyncio.current_task()
        return task is not None and task.cancelling() == 0

    assert asyncio.run(scenario())


def test_an_outside_cancellation_stays_a_cancellation() -> None:
    async def scenario(expire_too: bool) -> None:
        guards: list[StallGuard] = []

        async def reader() -> None:
            guards.append(StallGuard(10.0))
            await guards[0].next_chunk(_chunks([3.0], []))

        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0.01)
        task.cancel()  # the client left (or shutdown) ...
        if expire_too:
            guards[0]._expire()  # ... in the same loop turn as the deadline passed
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        guards[0].close()

    asyncio.run(scenario(expire_too=False))
    asyncio.run(scenario(expire_too=True))
