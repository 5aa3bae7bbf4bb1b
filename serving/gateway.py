"""Serving logic of the generation endpoints: auth, limits, routing, queueing, streaming.

The routes in :mod:`serving.app` only hand the raw request to
:meth:`Gateway.generate`. One request goes through: key check (401) → body
size (413) → parse (400, unknown fields logged by name) → model routing (404,
403) → token budget (400) → admission queue (429) → backend generation under
the per-request deadline (504) while watching for a client that goes away
(the backend generator is cancelled). Every request, whatever its outcome,
ends with one audit line and one metrics observation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from serving.audit import AuditLog, AuditRecord, prompt_sha256
from serving.auth import Caller, KeyRing
from serving.backends.base import Backend, GenerationChunk, GenerationRequest, Usage
from serving.config import ServeConfig
from serving.errors import (
    BackendUnavailableError,
    BadRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServingError,
)
from serving.errors_http import CLIENT_CLOSED, error_response, error_status, log_unexpected
from serving.limits import AdmissionQueue
from serving.metrics import GatewayMetrics
from serving.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    OpenAIRequest,
    UsageBody,
    chunk_event,
    role_event,
    usage_event,
)

logger = logging.getLogger("serving.gateway")

Kind = Literal["chat", "completion"]
ENDPOINTS: dict[Kind, str] = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


@dataclass
class RequestTrace:
    """Timings and counts of one request, for the audit line and the metrics."""

    started: float = field(default_factory=time.perf_counter)
    first_text: float | None = None
    last_text: float | None = None
    completion_tokens: int = 0
    usage: Usage | None = None
    prompt_tokens: int | None = None

    def saw(self, chunk: GenerationChunk) -> None:
        """Account for one backend chunk."""
        now = time.perf_counter()
        if chunk.text or chunk.token_count:
            if self.first_text is None:
                self.first_text = now
            self.last_text = now
        self.completion_tokens += chunk.token_count
        if chunk.usage is not None:
            self.usage = chunk.usage

    def final_usage(self) -> Usage:
        """The backend's usage, or one counted from the chunks when it sent none."""
        if self.usage is not None:
            return self.usage
        return Usage(self.prompt_tokens or 0, self.completion_tokens)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it is larger than ``limit`` bytes.

    Both the declared ``Content-Length`` and the bytes actually received are
    checked, so a chunked or lying client cannot get past the limit.

    Raises:
        PayloadTooLargeError: the body is over the limit.
        BadRequestError: the Content-Length header is not a number.
    """
    too_large = PayloadTooLargeError(
        f"request body is larger than this server's limit of {limit} bytes",
        code="payload_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequestError("Content-Length header is not a number")
        if int(declared) > limit:
            raise too_large
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _wait_for_disconnect(receive: Receive) -> None:
    # The body is fully read, so the next message is the disconnect (if any).
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _SSEResponse(StreamingResponse):
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


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


class Gateway:
    """Everything the generation endpoints share: backend, keys, queue, audit, metrics.

    Args:
        backend: the generation engine (started by the app's lifespan).
        config: the gateway settings.
        keys: the API keys (empty: open access, loopback only).
        audit: where the audit lines go.
        metrics: the Prometheus metrics.
    """

    def __init__(
        self,
        backend: Backend,
        config: ServeConfig,
        keys: KeyRing,
        audit: AuditLog,
        metrics: GatewayMetrics,
    ) -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        self.audit = audit
        self.metrics = metrics
        self.queue = AdmissionQueue(
            config.max_concurrency,
            config.max_queue,
            config.retry_after_s,
            on_change=metrics.queue_changed,
        )

    # ------------------------------------------------------------ bookkeeping

    def finish(self, record: AuditRecord, trace: RequestTrace) -> None:
        """Write the audit line and the metrics of a request that has ended."""
        usage = trace.usage
        record.prompt_tokens = usage.prompt_tokens if usage else trace.prompt_tokens
        record.completion_tokens = usage.completion_tokens if usage else trace.completion_tokens
        record.latency_ms = round((time.perf_counter() - trace.started) * 1000, 2)
        if trace.first_text is not None:
            record.ttft_ms = round((trace.first_text - trace.started) * 1000, 2)
        self.audit.write(record)
        decode_s = (
            trace.last_text - trace.first_text
            if trace.first_text is not None and trace.last_text is not None
            else None
        )
        self.metrics.observe_request(
            model=record.model,
            endpoint=record.endpoint,
            status=record.status,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            ttft_s=(record.ttft_ms / 1000) if record.ttft_ms is not None else None,
            decode_s=decode_s,
        )

    def remaining(self, trace: RequestTrace) -> float:
        """Seconds left of this request's time limit."""
        return self.config.request_timeout_s - (time.perf_counter() - trace.started)

    def timed_out(self) -> RequestTimeoutError:
        """The 504 of a request that ran past its time limit."""
        return RequestTimeoutError(
            f"generation did not finish within {self.config.request_timeout_s:g} s",
            code="request_timeout",
        )

    # ---------------------------------------------------------------- routing

    def authenticate(self, request: Request) -> Caller:
        """The caller of ``request`` (401 when keys are on and the key is missing or bad)."""
        return self.keys.authenticate(request.headers.get("authorization"))

    def route(self, model: str, caller: Caller) -> str | None:
        """Check that ``model`` is served and allowed; return its adapter name (None: base).

        Raises:
            BackendUnavailableError: the backend is not ready.
            PermissionDeniedError: the key may not use this model.
            ModelNotFoundError: no served model has this name.
        """
        if not self.backend.ready():
            raise BackendUnavailableError(
                f"backend {self.backend.name!r} is not ready", code="backend_not_ready"
            )
        # permission first, so a restricted key cannot probe which names exist
        caller.check_model(model)
        if model not in {served.id for served in self.backend.models()}:
            raise ModelNotFoundError(
                "the model does not exist on this server; GET /v1/models lists the served ones",
                param="model",
                code="model_not_found",
            )
        return model if model in self.backend.settings.adapters else None

    def token_budget(
        self, parsed: OpenAIRequest, request: GenerationRequest
    ) -> tuple[int, int | None]:
        """max_tokens for ``request`` and its prompt length (when the backend can count).

        Raises:
            BadRequestError: over the max_tokens cap, n over max_n, or prompt plus
                max_tokens longer than the model's context.
        """
        cfg = self.config
        if parsed.n > cfg.max_n:
            raise BadRequestError(f"n: at most {cfg.max_n} choices per request", param="n")
        asked = parsed.requested_max_tokens()
        if asked is not None and asked > cfg.max_tokens_cap:
            raise BadRequestError(
                f"max_tokens: {asked} is over this server's cap of {cfg.max_tokens_cap}",
                param="max_tokens",
            )
        default = min(cfg.default_max_tokens, cfg.max_tokens_cap)
        prompt_tokens = self.backend.count_prompt_tokens(request)
        context = self.backend.max_model_len(request.model)
        if prompt_tokens is None or context is None:
            return (asked or default), prompt_tokens
        room = context - prompt_tokens
        if asked is None:
            if room < 1:
                raise BadRequestError(
                    f"the prompt is {prompt_tokens} tokens, which fills the model's context "
                    f"of {context} tokens",
                    param="messages" if request.kind == "chat" else "prompt",
                    code="context_length_exceeded",
                )
            return min(default, room), prompt_tokens
        if asked > room:
            raise BadRequestError(
                f"the prompt ({prompt_tokens} tokens) plus max_tokens ({asked}) is over the "
                f"model's context of {context} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return asked, prompt_tokens

    def build_request(
        self, kind: Kind, parsed: OpenAIRequest, caller: Caller, request_id: str
    ) -> tuple[GenerationRequest, int | None]:
        """Turn a parsed OpenAI request into the backend's request (routing and budget checked).

        Returns:
            The backend request and the prompt's token count (None when unknown).
        """
        adapter = self.route(parsed.model, caller)
        placeholder = parsed.to_sampling_params(1)
        if kind == "chat":
            assert isinstance(parsed, ChatCompletionRequest)
            draft = GenerationRequest(
                request_id,
                parsed.model,
                placeholder,
                messages=parsed.chat_messages(),
                adapter=adapter,
            )
        else:
            assert isinstance(parsed, CompletionRequest)
            draft = GenerationRequest(
                request_id, parsed.model, placeholder, prompt=parsed.prompt_text(), adapter=adapter
            )
        max_tokens, prompt_tokens = self.token_budget(parsed, draft)
        final = GenerationRequest(
            request_id=request_id,
            model=draft.model,
            sampling=parsed.to_sampling_params(max_tokens),
            prompt=draft.prompt,
            messages=draft.messages,
            adapter=adapter,
        )
        return final, prompt_tokens

    # ------------------------------------------------------------- execution

    async def _watched(self, request: Request, trace: RequestTrace, work: Awaitable[T]) -> T:
        """Run ``work`` until it ends, the deadline passes (504) or the client leaves.

        The work is cancelled in the last two cases, which cancels the backend generator.
        """
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait(
                {task, watcher},
                timeout=max(0.0, self.remaining(trace)),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task in done:
            return task.result()
        if watcher in done:
            raise ClientGone()
        raise self.timed_out()

    async def _collect(self, request: GenerationRequest, trace: RequestTrace) -> list[list[Any]]:
        """Queue, then run the backend to the end; returns ``[text, finish_reason]`` per choice."""
        choices: list[list[Any]] = [["", None] for _ in range(request.sampling.n)]
        async with self.queue.slot():
            stream = self.backend.generate(request)
            try:
                async for chunk in stream:
                    trace.saw(chunk)
                    choice = choices[chunk.index]
                    choice[0] += chunk.text
                    if chunk.finish_reason is not None:
                        choice[1] = chunk.finish_reason
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        return choices

    async def generate(self, request: Request, kind: Kind) -> Response:
        """Answer one ``/v1/chat/completions`` or ``/v1/completions`` request.

        Args:
            request: the HTTP request.
            kind: which endpoint.

        Returns:
            A JSON response, an SSE stream, or an OpenAI error response.
        """
        request_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        trace = RequestTrace()
        record = AuditRecord(request_id=request_id, endpoint=ENDPOINTS[kind])
        handed_off = False
        try:
            caller = self.authenticate(request)
            record.key_id = caller.key_id
            body = await read_body(request, self.config.max_body_bytes)
            model_cls = ChatCompletionRequest if kind == "chat" else CompletionRequest
            parsed: OpenAIRequest = model_cls.model_validate_json(body or b"{}")
            unknown = parsed.unknown_fields()
            if unknown:
                logger.warning(
                    "request %s: ignored unknown field(s): %s", request_id, ", ".join(unknown)
                )
            # a name that is not served is client text and may carry anything
            record.model = self.metrics.model_label(parsed.model)
            record.stream = parsed.stream
            gen_request, trace.prompt_tokens = self.build_request(kind, parsed, caller, request_id)
            record.prompt_sha256 = prompt_sha256(gen_request.prompt, gen_request.messages)
            if parsed.stream:
                response = await self._start_stream(
                    request, kind, parsed, gen_request, record, trace
                )
                handed_off = True
                return response
            choices = await self._watched(request, trace, self._collect(gen_request, trace))
            record.status = 200
            return JSONResponse(self._body(kind, parsed.model, request_id, choices, trace))
        except ClientGone:
            record.status = CLIENT_CLOSED
            record.error_type = "client_closed"
            return Response(status_code=CLIENT_CLOSED)
        except (ServingError, ValidationError, Exception) as exc:
            record.status, record.error_type = error_status(exc)
            return error_response(exc, request_id)
        finally:
            if not handed_off:
                self.finish(record, trace)

    def _body(
        self, kind: Kind, model: str, request_id: str, choices: list[list[Any]], trace: RequestTrace
    ) -> dict[str, Any]:
        usage = UsageBody.of(trace.final_usage())
        if kind == "chat":
            return ChatCompletionResponse(
                id=request_id,
                model=model,
                choices=[
                    ChatChoice(index=i, message=AssistantMessage(content=text), finish_reason=fin)
                    for i, (text, fin) in enumerate(choices)
                ],
                usage=usage,
            ).model_dump()
        return CompletionResponse(
            id=request_id,
            model=model,
            choices=[
                CompletionChoice(index=i, text=text, finish_reason=fin)
                for i, (text, fin) in enumerate(choices)
            ],
            usage=usage,
        ).model_dump()

    async def _start_stream(
        self,
        request: Request,
        kind: Kind,
        parsed: OpenAIRequest,
        gen_request: GenerationRequest,
        record: AuditRecord,
        trace: RequestTrace,
    ) -> Response:
        """Admit the request and fetch its first chunk, then stream the rest as SSE.

        Waiting for the first chunk before sending headers lets queue-full (429),
        bad-request and backend-down errors keep their HTTP status; errors later
        in the stream become an error event followed by ``data: [DONE]``.
        """
        await self._watched(request, trace, self.queue.acquire())
        stream = self.backend.generate(gen_request)
        closed = False

        async def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            self.queue.release()
            if record.status == 0:
                record.status, record.error_type = CLIENT_CLOSED, "client_closed"
            self.finish(record, trace)

        try:
            first: GenerationChunk | None = await self._watched(request, trace, _next_chunk(stream))
        except BaseException:
            # nothing was sent yet: the caller answers with the error's status and audits
            closed = True
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            self.queue.release()
            raise
        created = int(time.time())
        events = self._events(
            kind, parsed, gen_request, first, stream, record, trace, created, close
        )
        return _SSEResponse(events, on_close=close)

    async def _events(
        self,
        kind: Kind,
        parsed: OpenAIRequest,
        gen_request: GenerationRequest,
        first: GenerationChunk | None,
        stream: AsyncIterator[GenerationChunk],
        record: AuditRecord,
        trace: RequestTrace,
        created: int,
        close: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[str]:
        # close() (release the slot, write the audit line) runs before the final
        # [DONE], so a client that has read the whole stream finds its audit line
        # written; _SSEResponse calls it again (a no-op then) or on disconnect.
        request_id, model = gen_request.request_id, gen_request.model
        if kind == "chat":
            yield _sse(role_event(request_id, model, created, gen_request.sampling.n))
        chunk = first
        guard = _StallGuard(self.remaining(trace))
        try:
            while chunk is not None:
                trace.saw(chunk)
                if chunk.text or chunk.finish_reason is not None:
                    yield _sse(chunk_event(kind, request_id, model, created, chunk))
                try:
                    chunk = await guard.next_chunk(stream)
                except asyncio.TimeoutError:
                    raise self.timed_out() from None
        except Exception as exc:
            record.status, record.error_type = error_status(exc)
            if not isinstance(exc, ServingError | ValidationError):
                log_unexpected(request_id, exc)
            body = json.loads(bytes(error_response(exc, request_id).body))
            yield _sse(body)
            await close()
            yield _sse("[DONE]")
            return
        finally:
            guard.close()
        if parsed.include_usage():
            yield _sse(usage_event(kind, request_id, model, created, trace.final_usage()))
        record.status = 200
        await close()
        yield _sse("[DONE]")


async def _next_chunk(stream: AsyncIterator[GenerationChunk]) -> GenerationChunk | None:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


class _StallGuard:
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
            return await _next_chunk(stream)
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
