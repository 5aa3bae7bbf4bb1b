"""Serving logic of the ``/v1`` endpoints: auth, limits, routing, queueing, streaming.

The routes in :mod:`serving.app` only hand the raw request to the
:class:`Gateway`: :meth:`Gateway.generate` (with the endpoint's request class
from :mod:`serving.protocol`) or :meth:`Gateway.list_models`. A generation
request goes through: key check (401) → body size (413) → parse (400, unknown
fields logged by name) → model routing (404, 403) → token budget (400) →
admission queue (429) → backend generation under the per-request deadline
(504) while watching for a client that goes away (the backend generator is
cancelled). Every request, whatever its route and outcome, ends in
:meth:`Gateway._answer` with one audit line and one metrics observation
(:mod:`serving.accounting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from serving.accounting import RequestLedger, RequestTrace
from serving.audit import AuditLog, AuditRecord
from serving.auth import Caller, KeyRing
from serving.backends.base import Backend, GenerationChunk, GenerationRequest
from serving.config import ServeConfig
from serving.connection import ClientGone, read_body, wait_for_disconnect
from serving.errors import (
    BackendUnavailableError,
    BadRequestError,
    ModelNotFoundError,
    RequestTimeoutError,
    ServingError,
)
from serving.errors_http import CLIENT_CLOSED, error_response, error_status, log_unexpected
from serving.limits import AdmissionQueue
from serving.metrics import GatewayMetrics
from serving.protocol import ChoiceText, ModelCard, ModelList, OpenAIRequest
from serving.streaming import SSEResponse, StallGuard, next_chunk, sse

logger = logging.getLogger("serving.gateway")

MODELS_ENDPOINT = "/v1/models"
# while the backend is not ready, requests ask it again at most this often (recovery)
READY_PROBE_INTERVAL_S = 1.0
T = TypeVar("T")


class Gateway:
    """Everything the ``/v1`` endpoints share: backend, keys, queue, audit, metrics.

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
        self.ledger = RequestLedger(audit, metrics)
        self.queue = AdmissionQueue(
            config.max_concurrency,
            config.max_queue,
            config.retry_after_s,
            on_change=metrics.queue_changed,
        )
        self._probe_lock = asyncio.Lock()
        self._last_probe = -READY_PROBE_INTERVAL_S

    # ------------------------------------------------------------ endpoints

    async def list_models(self, request: Request) -> Response:
        """Answer ``GET /v1/models``: the served models this caller may use.

        Args:
            request: the HTTP request.

        Returns:
            The model list, or an OpenAI error response.
        """
        record = AuditRecord(request_id=f"models-{time.time_ns()}", endpoint=MODELS_ENDPOINT)
        trace = RequestTrace(counts_tokens=False)
        return await self._answer(record, trace, self._models(request, record))

    async def generate(self, request: Request, protocol: type[OpenAIRequest]) -> Response:
        """Answer one ``/v1/chat/completions`` or ``/v1/completions`` request.

        Args:
            request: the HTTP request.
            protocol: the endpoint's request class (``ChatCompletionRequest`` or
                ``CompletionRequest``).

        Returns:
            A JSON response, an SSE stream, or an OpenAI error response.
        """
        request_id = protocol.id_prefix + uuid.uuid4().hex
        record = AuditRecord(request_id=request_id, endpoint=protocol.endpoint)
        trace = RequestTrace()
        return await self._answer(record, trace, self._generate(request, protocol, record, trace))

    async def _answer(
        self, record: AuditRecord, trace: RequestTrace, work: Awaitable[Response]
    ) -> Response:
        """Answer with ``work``'s response or with the error it raised, then close the request.

        The audit line and the metrics are written here, except for a stream:
        its :class:`~serving.streaming.SSEResponse` closes the request when the stream ends.
        """
        handed_off = False
        try:
            response = await work
            handed_off = isinstance(response, SSEResponse)
            return response
        except ClientGone:
            record.status = CLIENT_CLOSED
            record.error_type = "client_closed"
            return Response(status_code=CLIENT_CLOSED)
        except Exception as exc:
            record.status, record.error_type = error_status(exc)
            return error_response(exc, record.request_id)
        finally:
            if not handed_off:
                self.ledger.close(record, trace)

    async def _models(self, request: Request, record: AuditRecord) -> Response:
        caller = self.authenticate(request)
        record.key_id = caller.key_id
        created = int(time.time())
        cards = [
            ModelCard.of(served, created)
            for served in self.backend.models()
            if caller.may_use(served.id)
        ]
        record.status = 200
        return JSONResponse(ModelList(data=cards).model_dump())

    async def _generate(
        self,
        request: Request,
        protocol: type[OpenAIRequest],
        record: AuditRecord,
        trace: RequestTrace,
    ) -> Response:
        caller = self.authenticate(request)
        record.key_id = caller.key_id
        body = await read_body(request, self.config.max_body_bytes)
        parsed = protocol.model_validate_json(body or b"{}")
        parsed.check_supported()
        # a name that is not served is client text and may carry anything
        record.model = self.metrics.model_label(parsed.model)
        record.stream = parsed.stream
        await self.ensure_ready()
        gen_request, trace.prompt_tokens = self.build_request(parsed, caller, record.request_id)
        record.prompt_hmac = self.audit.hash_prompt(gen_request.prompt, gen_request.messages)
        if parsed.stream:
            return await self._start_stream(request, parsed, gen_request, record, trace)
        choices = await self._watched(request, trace, self._collect(gen_request, trace))
        record.status = 200
        return JSONResponse(parsed.response_body(record.request_id, choices, trace.final_usage()))

    # ---------------------------------------------------------------- readiness

    async def probe_backend(self, max_age_s: float = 0.0) -> bool:
        """Ask the backend now whether it can take requests (``Backend.check_ready``).

        One probe runs at a time. An upstream or engine that died and came back
        is found ready here and used again, without a restart of the gateway.

        Args:
            max_age_s: when a probe ran less than this long ago, answer from
                ``Backend.ready`` instead of probing again.

        Returns:
            True when the backend is ready.
        """
        async with self._probe_lock:
            if max_age_s and time.monotonic() - self._last_probe < max_age_s:
                return self.backend.ready()
            self._last_probe = time.monotonic()
            try:
                return bool(await self.backend.check_ready())
            except Exception as exc:
                logger.warning(
                    "readiness probe of the %s backend failed: %s",
                    self.backend.name,
                    type(exc).__name__,
                )
                return False

    async def ensure_ready(self) -> None:
        """Return when the backend is ready, probing it (at most once a second) when it was not.

        Raises:
            BackendUnavailableError: the backend is still not ready (503).
        """
        if self.backend.ready():
            return
        if not await self.probe_backend(max_age_s=READY_PROBE_INTERVAL_S):
            raise BackendUnavailableError(
                f"backend {self.backend.name!r} is not ready", code="backend_not_ready"
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
                    param=parsed.prompt_field,
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
        self, parsed: OpenAIRequest, caller: Caller, request_id: str
    ) -> tuple[GenerationRequest, int | None]:
        """Turn a parsed OpenAI request into the backend's request (routing and budget checked).

        Returns:
            The backend request and the prompt's token count (None when unknown).
        """
        adapter = self.route(parsed.model, caller)
        draft = parsed.to_generation_request(request_id, 1, adapter)
        max_tokens, prompt_tokens = self.token_budget(parsed, draft)
        return replace(draft, sampling=parsed.to_sampling_params(max_tokens)), prompt_tokens

    # ------------------------------------------------------------- execution

    def remaining(self, trace: RequestTrace) -> float:
        """Seconds left of this request's time limit."""
        return self.config.request_timeout_s - trace.elapsed()

    def timed_out(self) -> RequestTimeoutError:
        """The 504 of a request that ran past its time limit."""
        return RequestTimeoutError(
            f"generation did not finish within {self.config.request_timeout_s:g} s",
            code="request_timeout",
        )

    async def _watched(self, request: Request, trace: RequestTrace, work: Awaitable[T]) -> T:
        """Run ``work`` until it ends, the deadline passes (504) or the client leaves.

        The work is cancelled in the last two cases, which cancels the backend generator.
        """
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(wait_for_disconnect(request.receive))
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

    async def _collect(self, request: GenerationRequest, trace: RequestTrace) -> list[ChoiceText]:
        """Queue, then run the backend to the end; returns ``(text, finish_reason)`` per choice."""
        texts = [""] * request.sampling.n
        finishes: list[str | None] = [None] * request.sampling.n
        async with self.queue.slot():
            trace.generating = True
            stream = self.backend.generate(request)
            try:
                async for chunk in stream:
                    trace.saw(chunk)
                    texts[chunk.index] += chunk.text
                    if chunk.finish_reason is not None:
                        finishes[chunk.index] = chunk.finish_reason
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        return list(zip(texts, finishes, strict=True))

    async def _start_stream(
        self,
        request: Request,
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
        trace.generating = True
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
            self.ledger.close(record, trace)

        try:
            first: GenerationChunk | None = await self._watched(request, trace, next_chunk(stream))
        except BaseException:
            # nothing was sent yet: the caller answers with the error's status and audits
            closed = True
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            self.queue.release()
            raise
        created = int(time.time())
        events = self._events(parsed, gen_request, first, stream, record, trace, created, close)
        return SSEResponse(events, on_close=close)

    async def _events(
        self,
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
        # written; SSEResponse calls it again (a no-op then) or on disconnect.
        request_id = gen_request.request_id
        for opening in parsed.stream_opening(request_id, created):
            yield sse(opening)
        chunk = first
        guard = StallGuard(self.remaining(trace))
        try:
            while chunk is not None:
                trace.saw(chunk)
                if chunk.text or chunk.finish_reason is not None:
                    yield sse(parsed.stream_chunk(request_id, created, chunk))
                try:
                    chunk = await guard.next_chunk(stream)
                except asyncio.TimeoutError:
                    raise self.timed_out() from None
        except Exception as exc:
            record.status, record.error_type = error_status(exc)
            if not isinstance(exc, ServingError | ValidationError):
                log_unexpected(request_id, exc)
            body = json.loads(bytes(error_response(exc, request_id).body))
            yield sse(body)
            await close()
            yield sse("[DONE]")
            return
        finally:
            guard.close()
        if parsed.include_usage():
            yield sse(parsed.stream_usage(request_id, created, trace.final_usage()))
        record.status = 200
        await close()
        yield sse("[DONE]")
