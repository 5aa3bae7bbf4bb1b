"""Server-sent events: the response that streams them and the deadline of each wait.

:class:`SSEResponse` runs the request's clean-up however the stream ends;
:class:`StallGuard` enforces the request's deadline while the stream waits
for the backend's next chunk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from serving.backends.base import GenerationChunk


class SSEResponse(StreamingResponse):
    """A streaming response whose clean-up runs however the stream ends.

    Starlette may cancel a stream before its iterator ever starts (client gone
    right away), and then the generator's ``finally`` never runs: the
    ``on_close`` callback here always does.
    """

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], Awaitable[None]]):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()


def sse(payload: dict[str, Any] | str) -> str:
    """One SSE ``data:`` event of a JSON payload (or of a literal such as ``[DONE]``)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


async def next_chunk(stream: AsyncIterator[GenerationChunk]) -> GenerationChunk | None:
    """The stream's next chunk, or None at its end."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


class StallGuard:
    """The request's deadline while a stream waits for its next chunk: one timer per request.

    When the time is up while the stream's task waits for a chunk, the task is
    cancelled and the wait raises ``asyncio.TimeoutError``; when it was up
    before the wait began, the wait raises it at once. ``asyncio.timeout`` around each wait
    would do the same with a new timer, and look-ups of the running loop and
    task, per streamed token: about three system calls per token more than
    vLLM's own server makes (docs/benchmarks.md).

    Args:
        seconds: time left for the request.
    """

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._waiting = False
        self.expired = False
        self._deadline = self._loop.time() + max(0.0, seconds)
        self._timer = self._loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._waiting and self._task is not None:
            # Only while the task is suspended in next_chunk's await: the
            # cancellation lands there, whether or not the chunk arrived meanwhile.
            self._task.cancel()

    async def next_chunk(self, stream: AsyncIterator[GenerationChunk]) -> GenerationChunk | None:
        """The next chunk (None at the end), or ``asyncio.TimeoutError`` when the time is up.

        Raises:
            asyncio.TimeoutError: the deadline passed before the chunk came.
        """
        # the timer runs on the next loop turn after the deadline; the clock knows already
        if self.expired or self._loop.time() >= self._deadline:
            raise asyncio.TimeoutError
        self._waiting = True
        try:
            return await next_chunk(stream)
        except asyncio.CancelledError:
            # ours alone (not also the client leaving or shutdown): a timeout.
            # Python 3.10 does not count cancellations (no Task.uncancel).
            uncancel = getattr(self._task, "uncancel", None)
            if self.expired and (uncancel is None or uncancel() == 0):
                raise asyncio.TimeoutError from None
            raise
        finally:
            self._waiting = False

    def close(self) -> None:
        """Drop the timer (the stream ended or failed)."""
        self._timer.cancel()
