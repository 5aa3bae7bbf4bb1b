"""Errors the gateway answers with, shaped as OpenAI's ``{"error": {...}}`` body.

Backends and the gateway raise these; one handler in :mod:`serving.app` turns
any of them (and anything unexpected) into a response with the status below.
Messages never contain prompt or completion text: they name fields and limits.
"""

from __future__ import annotations


class ServingError(Exception):
    """An error with an HTTP status and an OpenAI error ``type``."""

    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        if status_code is not None:
            # e.g. a 405 from routing or an upstream's 409, answered with the class's type
            self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-shaped error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequestError(ServingError):
    """400: the request is malformed or asks for more than the model allows."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ServingError):
    """401: no API key, or one that is not known."""

    status_code = 401
    error_type = "authentication_error"


class PermissionDeniedError(ServingError):
    """403: the key is valid but not allowed to use this model."""

    status_code = 403
    error_type = "permission_error"


class ModelNotFoundError(ServingError):
    """404: no served model (base or adapter) has this name."""

    status_code = 404
    error_type = "not_found_error"


class PayloadTooLargeError(ServingError):
    """413: the request body is larger than the configured limit."""

    status_code = 413
    error_type = "invalid_request_error"


class OverloadedError(ServingError):
    """429: the queue is full; the client should retry after ``retry_after`` seconds."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None):
        super().__init__(
            message,
            code=code or "queue_full",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )
        self.retry_after = retry_after


class BackendUnavailableError(ServingError):
    """503: the backend is not ready, has failed, or its upstream does not answer."""

    status_code = 503
    error_type = "service_unavailable"


class RequestTimeoutError(ServingError):
    """504: generation did not finish within the per-request timeout."""

    status_code = 504
    error_type = "timeout_error"
