"""``openai`` backend: forward to any OpenAI-compatible upstream (a vLLM fleet, TGI, another
gateway), for scaling past one machine.

``--model NAME=http://host:port/v1`` serves the upstream's model under NAME.
``backend_options``: ``upstream_model`` (the upstream's name, default NAME),
``api_key_env`` (environment variable holding the upstream's key),
``timeout_s`` (read timeout, default 300), ``connect_timeout_s`` (default 5),
``max_connections`` (pool size, default 64). ``--adapter LOCAL=UPSTREAM``
serves another upstream model (e.g. a LoRA the upstream serves) under LOCAL.

Every request is streamed from the upstream, so time to first token is real
and a cancelled request closes its upstream connection (which makes vLLM
abort the generation). Upstream errors keep their status; their message text
is not forwarded, since an upstream may echo parts of the prompt in it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from llm.errors import BadInputError
from serving.backends.base import (
    Backend,
    BackendSettings,
    GenerationChunk,
    GenerationRequest,
    ServedModel,
    Usage,
)
from serving.errors import (
    BackendUnavailableError,
    BadRequestError,
    ModelNotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServingError,
)

logger = logging.getLogger("serving.backends.openai")

_KNOWN_OPTIONS = {
    "upstream_model",
    "api_key_env",
    "timeout_s",
    "connect_timeout_s",
    "max_connections",
}


def upstream_error(status: int, body: bytes, retry_after: str | None) -> ServingError:
    """The gateway error for an upstream error answer, keeping its status.

    Args:
        status: the upstream's HTTP status.
        body: its (OpenAI-shaped) error body.
        retry_after: its Retry-After header, for 429.

    Returns:
        An error whose message names the status, type and code, never the upstream's text.
    """
    detail: dict[str, Any] = {}
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            detail = parsed["error"]
    except ValueError:
        pass
    kind = detail.get("type") if isinstance(detail.get("type"), str) else None
    code = detail.get("code") if isinstance(detail.get("code"), str) else None
    param = detail.get("param") if isinstance(detail.get("param"), str) else None
    message = f"upstream answered {status}" + (f" ({kind})" if kind else "")
    if status == 429:
        try:
            wait = float(retry_after) if retry_after else 1.0
        except ValueError:
            wait = 1.0
        return OverloadedError(message + "; retry later", retry_after=wait, code="upstream_busy")
    if status == 404:
        return ModelNotFoundError(message, param=param or "model", code=code)
    if status == 413:
        return PayloadTooLargeError(message, code=code)
    if status in (401, 403):
        # the gateway's own credentials: a server configuration problem, not the client's
        return BackendUnavailableError(
            message + ": the upstream refused the gateway's key (check api_key_env)",
            code="upstream_auth",
        )
    if 400 <= status < 500:
        return BadRequestError(message, param=param, code=code, status_code=status)
    return BackendUnavailableError(message, code="upstream_error")


class OpenAIUpstreamBackend(Backend):
    """Forwards requests to an OpenAI-compatible ``/v1`` upstream over a pooled httpx client."""

    name = "openai"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        unknown = set(settings.options) - _KNOWN_OPTIONS
        if unknown:
            raise BadInputError(
                f"backend_options: unknown option(s) for the openai backend: "
                f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(_KNOWN_OPTIONS))})"
            )
        self.base_url = settings.model_path.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise BadInputError(
                f"model path: the openai backend needs an upstream URL like "
                f"http://host:port/v1, got {settings.model_path!r}"
            )
        options = settings.options
        # served name -> upstream model name
        self.upstream_names: dict[str, str] = {
            settings.model_name: str(options.get("upstream_model", settings.model_name))
        }
        for local, upstream in settings.adapters.items():
            self.upstream_names[local] = str(upstream)
        self.timeout = httpx.Timeout(
            float(options.get("timeout_s", 300.0)),
            connect=float(options.get("connect_timeout_s", 5.0)),
        )
        self.limits = httpx.Limits(
            max_connections=int(options.get("max_connections", 64)),
            max_keepalive_connections=int(options.get("max_connections", 64)),
        )
        self.api_key_env = options.get("api_key_env")
        self._client: httpx.AsyncClient | None = None
        self._served: list[ServedModel] = []
        self._healthy = False

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(str(self.api_key_env))
        if not key:
            raise BackendUnavailableError(
                f"api_key_env: environment variable {self.api_key_env} is not set"
            )
        return {"Authorization": f"Bearer {key}"}

    async def start(self) -> None:
        """Open the connection pool and check that the upstream serves every mapped model.

        Raises:
            BackendUnavailableError: the upstream does not answer, or lacks a model.
        """
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            limits=self.limits,
            headers=self._headers(),
        )
        listed = await self._upstream_models()
        missing = sorted(set(self.upstream_names.values()) - set(listed))
        if missing:
            raise BackendUnavailableError(
                f"upstream {self.base_url} does not serve {', '.join(missing)} "
                f"(it serves: {', '.join(sorted(listed)) or 'nothing'})"
            )
        base = self.settings.model_name
        self._served = [
            ServedModel(
                id=local,
                root=upstream,
                parent=None if local == base else base,
                max_model_len=listed[upstream].get("max_model_len"),
            )
            for local, upstream in self.upstream_names.items()
        ]
        self._healthy = True

    async def _upstream_models(self) -> dict[str, dict[str, Any]]:
        assert self._client is not None
        try:
            # a probe: bounded by the connect timeout, not by the generation read timeout
            response = await self._client.get("/models", timeout=self.timeout.connect)
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"upstream {self.base_url} is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise upstream_error(
                response.status_code, response.content, response.headers.get("retry-after")
            )
        data = response.json().get("data", [])
        return {str(item["id"]): item for item in data if isinstance(item, dict) and "id" in item}

    async def close(self) -> None:
        """Close the connection pool."""
        self._healthy = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def ready(self) -> bool:
        """True once started and while the last upstream call or probe found it answering."""
        return self._client is not None and self._healthy

    async def check_ready(self) -> bool:
        """Ask the upstream's ``/models`` now (connect timeout bounds it); updates :meth:`ready`.

        An upstream that answers but no longer serves a mapped model is not ready.
        """
        if self._client is None:
            return False
        try:
            listed = await self._upstream_models()
        except ServingError:
            self._healthy = False
        else:
            self._healthy = set(self.upstream_names.values()) <= set(listed)
        return self._healthy

    def models(self) -> list[ServedModel]:
        """The served names, mapped onto the upstream's models (known after ``start``)."""
        return list(self._served)

    def payload(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The upstream path and JSON body of ``request`` (always streamed, with usage)."""
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.upstream_names[request.model],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": sampling.n,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if request.messages is not None:
            body["messages"] = request.messages
            return "/chat/completions", body
        body["prompt"] = request.prompt
        return "/completions", body

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream ``request`` from the upstream, one chunk per upstream SSE event.

        Raises:
            BackendUnavailableError: the upstream is unreachable or failed (503).
            RequestTimeoutError: the upstream stopped answering within ``timeout_s``.
            ServingError: the upstream's 4xx, with its status.
        """
        if self._client is None:
            raise BackendUnavailableError("the openai backend is not started")
        path, body = self.payload(request)
        finished: set[int] = set()
        usage: list[Usage] = []
        try:
            async with self._client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    raise upstream_error(
                        response.status_code,
                        await response.aread(),
                        response.headers.get("retry-after"),
                    )
                self._healthy = True
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    for chunk in self._chunks(json.loads(data), finished, usage):
                        yield chunk
        except httpx.TimeoutException:
            raise RequestTimeoutError(
                f"upstream {self.base_url} did not answer within {self.timeout.read:g} s"
            ) from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # refused, or the connection dropped mid-answer (upstream killed): not ready
            # until a probe (check_ready) finds it answering again
            self._healthy = False
            raise BackendUnavailableError(
                f"upstream {self.base_url} is unreachable ({type(exc).__name__})"
            ) from None
        # an upstream that ended a choice without a finish_reason still ends it here
        for index in range(request.sampling.n):
            if index not in finished:
                yield GenerationChunk(index=index, finish_reason="stop")
        # usage goes on the very last chunk, as the backend contract says
        if usage:
            yield GenerationChunk(index=request.sampling.n - 1, usage=usage[-1])

    @staticmethod
    def _chunks(
        event: dict[str, Any], finished: set[int], usage: list[Usage]
    ) -> list[GenerationChunk]:
        if "error" in event:
            error = event["error"] if isinstance(event["error"], dict) else {}
            status = int(error.get("code") or 502) if str(error.get("code", "")).isdigit() else 502
            raise upstream_error(status, json.dumps({"error": error}).encode(), None)
        chunks = []
        for choice in event.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta")
            text = (delta or {}).get("content") if delta is not None else choice.get("text")
            finish = choice.get("finish_reason")
            if finish is not None:
                finish = "length" if finish == "length" else "stop"
                finished.add(index)
            if text or finish:
                chunks.append(
                    GenerationChunk(
                        index=index,
                        text=text or "",
                        token_count=1 if text else 0,
                        finish_reason=finish,
                    )
                )
        counts = event.get("usage")
        if isinstance(counts, dict) and "prompt_tokens" in counts:
            usage.append(
                Usage(int(counts["prompt_tokens"]), int(counts.get("completion_tokens") or 0))
            )
        return chunks
