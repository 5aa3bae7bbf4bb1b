"""Backpressure: a bounded admission queue in front of the backend.

At most ``max_concurrency`` requests generate at once and at most
``max_queue`` wait for a slot; anything beyond is answered 429 with
``Retry-After`` at once, instead of piling up latency for everyone.
Slots are handed to waiters in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from serving.errors import OverloadedError


class AdmissionQueue:
    """Counts in-flight and waiting requests; hands out slots first come, first served.

    Args:
        max_concurrency: requests allowed to generate at the same time.
        max_queue: requests allowed to wait for a slot.
        retry_after_s: the ``Retry-After`` hint of a 429.
        on_change: called with ``(in_flight, waiting)`` after every change (metrics).
    """

    def __init__(
        self,
        max_concurrency: int,
        max_queue: int,
        retry_after_s: float = 1.0,
        on_change: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("max_concurrency must be >= 1 and max_queue >= 0")
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self._on_change = on_change
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Requests holding a slot."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._in_flight, len(self._waiters))

    async def acquire(self) -> None:
        """Take a slot, waiting in line if all are busy.

        Raises:
            OverloadedError: every slot is busy and the line is full (429).
        """
        if self._in_flight < self.max_concurrency and not self._waiters:
            self._in_flight += 1
            self._changed()
            return
        if len(self._waiters) >= self.max_queue:
            raise OverloadedError(
                f"server is at capacity ({self.max_concurrency} in flight, "
                f"{self.max_queue} queued); retry later",
                retry_after=self.retry_after_s,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._changed()
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # the slot was handed over just as we were cancelled: pass it on
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._changed()
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the next waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                # the slot moves to the waiter: in_flight stays the same
                waiter.set_result(None)
                self._changed()
                return
        self._in_flight -= 1
        self._changed()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with queue.slot():`` holds one slot for the block."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()
