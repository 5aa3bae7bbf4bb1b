"""The client's side of one HTTP request: its body (size-limited) and whether it is still there."""

from __future__ import annotations

from fastapi import Request
from starlette.types import Receive

from serving.errors import BadRequestError, PayloadTooLargeError


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


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


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected (call only after the body is read)."""
    # The body is fully read, so the next message is the disconnect (if any).
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
