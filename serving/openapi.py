"""The gateway's OpenAPI schema, served at ``/openapi.json`` (as vLLM's server does).

The ``/v1`` routes read their bodies themselves (the key is checked and the
size limited before anything is parsed), so FastAPI cannot see their models:
this module adds them. Each operation gets its request body (the request
classes of :mod:`serving.protocol`, with this server's own limits: ``max_tokens``
up to ``max_tokens_cap``, ``n`` up to ``max_n``), every status it answers with,
and OpenAI's error body for each error status. ``tests/serving/test_fuzz_api.py``
fuzzes the gateway against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from serving.config import ServeConfig
from serving.gateway import MODELS_ENDPOINT
from serving.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
    ModelList,
)

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    """The ``error`` object of an OpenAI error body."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


class HealthStatus(BaseModel):
    """``GET /health``: the process is alive."""

    status: str


class ReadyStatus(BaseModel):
    """``GET /ready``: whether the backend takes requests (200) or not (503)."""

    status: str
    backend: str


_ERRORS = {
    400: "Invalid JSON or fields, an unsupported parameter, a limit passed, or a prompt longer "
    "than the model's context",
    401: "Missing or unknown API key",
    403: "The key may not use this model",
    404: "No served model has this name",
    413: "Body over max_body_bytes",
    429: "Queue full; retry after Retry-After seconds",
    500: "Unexpected failure (generic message; details in the server log by type only)",
    503: "Backend not ready, engine down or upstream unreachable",
    504: "request_timeout_s passed",
}
_GENERATION_ERRORS = (400, 401, 403, 404, 413, 429, 500, 503, 504)
_MODELS_ERRORS = (401, 500)
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(statuses: tuple[int, ...]) -> dict[str, Any]:
    responses = {str(status): _json(ErrorResponse, _ERRORS[status]) for status in statuses}
    if "429" in responses:
        responses["429"]["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
        }
    return responses


def _sse_event(chunk: type[BaseModel]) -> dict[str, Any]:
    """One SSE event: a chunk, an error body (an error after the 200) or the final ``[DONE]``."""
    payload = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [_ref(chunk), _ref(ErrorResponse)]},
    }
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"if": {"const": "[DONE]"}, "then": True, "else": payload}},
    }


def _generation(
    request: type[BaseModel], answer: type[BaseModel], chunk: type[BaseModel], what: str
) -> dict[str, Any]:
    ok = _json(answer, f"The {what} (JSON), or with stream: true an SSE stream of chunks")
    ok["content"]["text/event-stream"] = {"schema": _sse_event(chunk)}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        },
        "responses": {"200": ok, **_errors(_GENERATION_ERRORS)},
        "security": _BEARER,
    }


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (ChatCompletionRequest.endpoint, "post"): _generation(
            ChatCompletionRequest, ChatCompletionResponse, ChatCompletionChunk, "chat completion"
        ),
        (CompletionRequest.endpoint, "post"): _generation(
            CompletionRequest, CompletionResponse, CompletionChunk, "text completion"
        ),
        (MODELS_ENDPOINT, "get"): {
            "responses": {
                "200": _json(ModelList, "The served models this key may use"),
                **_errors(_MODELS_ERRORS),
            },
            "security": _BEARER,
        },
        ("/health", "get"): {"responses": {"200": _json(HealthStatus, "The process is alive")}},
        ("/ready", "get"): {
            "responses": {
                "200": _json(ReadyStatus, "The backend takes requests"),
                "503": _json(ReadyStatus, "The backend is not ready"),
            }
        },
        ("/metrics", "get"): {
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            }
        },
    }


def _cap(schema: dict[str, Any], field: str, maximum: int) -> None:
    """Set the integer alternative of ``field``'s schema to at most ``maximum``."""
    prop = schema["properties"][field]
    for alternative in prop.get("anyOf", [prop]):
        if alternative.get("type") == "integer":
            alternative["maximum"] = maximum


def _components(config: ServeConfig) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ChatCompletionRequest, "validation"),
        (CompletionRequest, "validation"),
        (ChatCompletionResponse, "serialization"),
        (CompletionResponse, "serialization"),
        (ChatCompletionChunk, "serialization"),
        (CompletionChunk, "serialization"),
        (ModelList, "serialization"),
        (ErrorResponse, "serialization"),
        (HealthStatus, "serialization"),
        (ReadyStatus, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=REF)
    schemas: dict[str, Any] = top["$defs"]
    for request in (ChatCompletionRequest, CompletionRequest):
        schema = schemas[request.__name__]
        _cap(schema, "max_tokens", config.max_tokens_cap)
        _cap(schema, "n", config.max_n)
    _cap(schemas[ChatCompletionRequest.__name__], "max_completion_tokens", config.max_tokens_cap)
    return schemas


def gateway_openapi(app: FastAPI, config: ServeConfig) -> dict[str, Any]:
    """The OpenAPI document of the gateway ``app`` built with ``config``.

    Args:
        app: the gateway app (its routes give the paths).
        config: the gateway settings (their limits go into the request schemas).

    Returns:
        The OpenAPI 3.1 document.

    Raises:
        KeyError: a route this module does not describe (a new route must be added here).
    """
    document = get_openapi(
        title=app.title,
        version=app.version,
        description="OpenAI-compatible gateway of clinical-llm (docs/serving.md).",
        routes=app.routes,
    )
    operations = _operations()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            described = operations[(path, method)]
            operation.update(described)
    components = document.setdefault("components", {})
    components["schemas"] = _components(config)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "API key (sk-clin-...); required when keys are configured",
        }
    }
    return document
