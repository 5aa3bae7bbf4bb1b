"""The FastAPI app: thin routes over :class:`serving.gateway.Gateway`.

``create_app(backend, config)`` wires keys, audit log, metrics and the
admission queue around a backend; the lifespan starts and closes the backend.
Every ``/v1`` route only hands the request to the gateway, which audits and
meters it; :mod:`serving.errors_http` maps every exception to an OpenAI-shaped
error. The probes (``/health``, ``/ready``, ``/metrics``) need no key and are
not audited.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.audit import AuditLog, load_audit_key
from serving.auth import KeyRing, check_exposure, load_keyring
from serving.backends.base import Backend
from serving.config import ServeConfig
from serving.errors import (
    BadRequestError,
    ModelNotFoundError,
    ServingError,
)
from serving.errors_http import error_response
from serving.gateway import MODELS_ENDPOINT, Gateway
from serving.metrics import GatewayMetrics
from serving.openapi import gateway_openapi
from serving.protocol import ChatCompletionRequest, CompletionRequest

logger = logging.getLogger("serving.gateway")


def create_app(backend: Backend, config: ServeConfig, keys: KeyRing | None = None) -> FastAPI:
    """Build the gateway app around ``backend``.

    Args:
        backend: the generation engine; the app's lifespan calls ``start()`` and ``close()``.
        config: the gateway settings.
        keys: API keys (checked against ``config.host`` here); None loads them once with
            :func:`~serving.auth.load_keyring` (``api_keys_file``, ``CLINICAL_LLM_API_KEYS``).

    Returns:
        The FastAPI application.

    Raises:
        BadInputError: a bad keys file, no keys while the host is not loopback, or an audit
            key that is too short, open to others or unreadable.
    """
    if keys is None:
        keys = load_keyring(config)
    else:
        check_exposure(config, keys)
    metrics = GatewayMetrics(
        config.served_names(), adapters=config.adapters, base_model=config.model_name
    )
    audit = AuditLog(config.audit_log, load_audit_key(config.audit_key_file))
    gateway = Gateway(backend, config, keys, audit, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        audit.open()
        started = time.perf_counter()
        try:
            await backend.start()
        except BaseException:
            audit.close()
            raise
        metrics.serve_models(served.id for served in backend.models())
        logger.info(
            "backend %s ready in %.1f s, serving %d model(s)",
            backend.name,
            time.perf_counter() - started,
            len(backend.models()),
        )
        try:
            yield
        finally:
            await backend.close()
            audit.close()

    app = FastAPI(
        title="clinical-llm gateway",
        lifespan=lifespan,
        # the schema is served (clients and fuzzers read it); the docs pages stay off
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    app.openapi = functools.cache(lambda: gateway_openapi(app, config))  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: ServingError
        if exc.status_code == 404:
            error = ModelNotFoundError(f"no route {request.url.path}", code="route_not_found")
        else:
            error = BadRequestError(str(exc.detail), code="http_error", status_code=exc.status_code)
        # keeps e.g. the Allow header of a 405, which HTTP requires
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(BadRequestError("invalid request parameters").body(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    @app.post(ChatCompletionRequest.endpoint)
    async def chat_completions(request: Request) -> Response:
        return await gateway.generate(request, ChatCompletionRequest)

    @app.post(CompletionRequest.endpoint)
    async def completions(request: Request) -> Response:
        return await gateway.generate(request, CompletionRequest)

    @app.get(MODELS_ENDPOINT)
    async def list_models(request: Request) -> Response:
        return await gateway.list_models(request)

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        # asks the backend now: an upstream that died (or came back) is seen at once
        if await gateway.probe_backend():
            return JSONResponse({"status": "ready", "backend": backend.name})
        return JSONResponse({"status": "not ready", "backend": backend.name}, status_code=503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return PlainTextResponse(metrics.render(), media_type=metrics.content_type)

    return app
