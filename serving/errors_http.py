"""The one place where exceptions become OpenAI-shaped HTTP error responses."""

from __future__ import annotations

import logging
import re
import traceback

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from serving.errors import BadRequestError, ServingError

logger = logging.getLogger("serving.gateway")

# Status a client that went away is recorded with (nginx's convention); never sent.
CLIENT_CLOSED = 499
_UNION_TAG = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|function-.*)$")
INTERNAL_MESSAGE = "internal server error; the request id is in the audit log"


def validation_error(exc: ValidationError) -> BadRequestError:
    """A 400 naming the bad fields of a request body (never their values).

    Args:
        exc: pydantic's error for the request model.

    Returns:
        The error to answer with; ``param`` is the first bad field.
    """
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    # the deepest location is the most specific one among a union's alternatives
    errors.sort(key=lambda err: -len(err["loc"]))
    parts = []
    for err in errors[:3]:
        loc = _location(err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    first = _location(errors[0]["loc"]) if errors else None
    return BadRequestError("invalid request: " + "; ".join(parts), param=first or None)


def _location(loc: tuple[int | str, ...]) -> str:
    """A dotted field path without pydantic's union tags (``str``, ``list[...]``)."""
    return ".".join(str(part) for part in loc if not _UNION_TAG.match(str(part)))


def log_unexpected(request_id: str, exc: BaseException) -> None:
    """Log an unexpected failure by type and place only: its message may quote a prompt."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    logger.error("request %s failed: unexpected %s at %s", request_id, type(exc).__name__, where)


def error_response(exc: BaseException, request_id: str = "-") -> JSONResponse:
    """Map any exception to an OpenAI error response.

    ``ServingError`` keeps its status, body and headers; pydantic validation
    errors become 400; anything else becomes 500 with a generic message (and is
    logged by type and place only).

    Args:
        exc: what was raised while answering.
        request_id: for the log line of an unexpected error.

    Returns:
        The JSON error response.
    """
    if isinstance(exc, ValidationError):
        exc = validation_error(exc)
    if isinstance(exc, ServingError):
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)
    log_unexpected(request_id, exc)
    body = ServingError(INTERNAL_MESSAGE).body()
    return JSONResponse(body, status_code=500)


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and OpenAI error type ``error_response`` answers ``exc`` with."""
    if isinstance(exc, ValidationError):
        return 400, BadRequestError.error_type
    if isinstance(exc, ServingError):
        return exc.status_code, exc.error_type
    return 500, ServingError.error_type
