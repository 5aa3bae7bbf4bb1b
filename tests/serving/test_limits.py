"""The admission queue: slots, FIFO hand-over, cancellation, and 429 over a live server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

import httpx
import pytest

from serving.errors import OverloadedError
from serving.limits import AdmissionQueue
from tests.serving.conftest import FakeBackend, LiveGateway


def test_queue_admits_queues_and_refuses() -> None:
    async def scenario() -> None:
        changes: list[tuple[int, int]] = []
        queue = AdmissionQueue(1, 1, retry_after_s=3, on_change=lambda a, b: changes.append((a, b)))
        await queue.acquire()
        waiter = asyncio.ensure_future(queue.acquire())
        await asyncio.sleep(0)
        assert (queue.in_flight, queue.waiting) == (1, 1)
        with pytest.raises(OverloadedError) as err:
            await queue.acquire()
        assert err.value.headers == {"Retry-After": "3"}
        queue.release()
        await waiter
        assert (queue.in_flight, queue.waiting) == (1, 0)
        queue.release()
        assert (queue.in_flight, queue.waiting) == (0, 0)
        assert changes[-1] == (0, 0)

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_the_line() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue(1, 2)
        await queue.acquire()
        first = asyncio.ensure_future(queue.acquire())
        second = asyncio.ensure_future(queue.acquire())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert queue.waiting == 1
        queue.release()
        await second  # the slot skipped the cancelled waiter
        queue.release()
        assert (queue.in_flight, queue.waiting) == (0, 0)

    asyncio.run(scenario())


def test_slot_handed_over_then_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue(1, 2)
        await queue.acquire()
        first = asyncio.ensure_future(queue.acquire())
        second = asyncio.ensure_future(queue.acquire())
        await asyncio.sleep(0)
        queue.release()  # slot handed to first ...
        first.cancel()  # ... which is cancelled before it runs
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)
        assert queue.in_flight == 1
        queue.release()
        assert queue.in_flight == 0

    asyncio.run(scenario())


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.slow
def test_full_queue_answers_429_with_retry_after(live_gateway: LiveGateway) -> None:
    backend = FakeBackend(token_delay_s=0.05)
    url = live_gateway(
        backend, config_overrides={"max_concurrency": 1, "max_queue": 1, "retry_after_s": 2}
    )
    body = {"model": "tiny", "prompt": "a", "max_tokens": 20}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(httpx.post, url + "/v1/completions", json=body, timeout=30)
        wait_until(lambda: backend.started == 1)
        second = pool.submit(httpx.post, url + "/v1/completions", json=body, timeout=30)
        gateway = url.server.app.state.gateway
        wait_until(lambda: gateway.queue.waiting == 1)
        metrics = httpx.get(url + "/metrics").text
        refused = httpx.post(url + "/v1/completions", json=body)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "queue_full"
        assert first.result().status_code == 200
        assert second.result().status_code == 200
    assert "clinical_llm_queue_depth 1.0" in metrics
    assert "clinical_llm_in_flight 1.0" in metrics
    assert [line["status"] for line in url.audit_lines()].count(429) == 1
