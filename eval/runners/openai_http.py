"""HTTP runner: any OpenAI-compatible endpoint (``POST {endpoint}/chat/completions``).

Works with the project's serving gateway, ``vllm``'s OpenAI server, or any
hosted endpoint that speaks the API. Requests run concurrently (at most
``concurrency`` at a time). A request that gets 429 or a 5xx status, or fails
to connect, is retried with exponential backoff, honouring the server's
``Retry-After``; when every attempt fails the run stops with an error that
names the URL. The API key is read from an environment variable, sent only in
the ``Authorization`` header and never written anywhere; prompts and
completions are never logged. Error messages carry the status code and the
server's error ``type`` and ``code`` only, never the body's message or any other
body text: an upstream error message may echo the prompt.

Prompts are sent as they are: the server applies its chat template and is
responsible for its context limit (a too-long prompt is the server's 400).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from eval.runners.base import Advance, GenerationParams, Prompt, truncate_at_stop
from llm.errors import BadInputError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# An error's type or code is reported only when it looks like an identifier: an upstream
# could put any text (a prompt echo among it) in these fields too.
_ERROR_TOKEN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class EndpointError(BadInputError):
    """The endpoint refused the request or stayed unreachable (exit 2: check ``--endpoint``)."""


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Returns:
        The delay (0 or more), or None when the header is absent or unreadable.
    """
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _error_summary(response: httpx.Response) -> str:
    """``HTTP 401 (type authentication_error, code invalid_api_key)`` from an error body.

    Only the status code and the OpenAI error body's ``type`` and ``code`` are kept, and
    only when they are identifier-like: the ``message`` (and any other body text) may quote
    the prompt, so it never reaches the exception, the log or the report.
    """
    fields: list[str] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        for name in ("type", "code"):
            value = error.get(name)
            if isinstance(value, str) and _ERROR_TOKEN.match(value):
                fields.append(f"{name} {value}")
    detail = f" ({', '.join(fields)})" if fields else ""
    return f"HTTP {response.status_code}{detail}"


class OpenAIHTTPRunner:
    """Chat completions from an OpenAI-compatible endpoint.

    Args:
        endpoint: base URL including the API prefix (``http://host:8000/v1``).
        model_name: the ``model`` of each request; default: the only model the
            endpoint lists at ``GET {endpoint}/models``.
        api_key_env: name of the environment variable holding the API key.
        concurrency: requests in flight at most.
        max_retries: retries of one request after a 429/5xx/connection error.
        backoff_s: first retry delay; doubled each retry (with jitter), capped at
            ``max_backoff_s``. A ``Retry-After`` header replaces it (capped at
            ``max_retry_after_s``).
        timeout_s: per-request timeout.
        transport: an httpx transport (tests).

    Raises:
        BadInputError: a malformed URL, an unset key variable, or an endpoint
            that does not list exactly one model when ``model_name`` is not given.
        EndpointError: the endpoint cannot be reached.
    """

    kind = "openai"
    supports_images = False
    supports_loglikelihood = False

    def __init__(
        self,
        endpoint: str,
        *,
        model_name: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        timeout_s: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise BadInputError(f"--endpoint {endpoint}: expected an http(s) URL such as "
                                "http://localhost:8000/v1")  # fmt: skip
        if concurrency < 1:
            raise BadInputError(f"--concurrency must be at least 1, got {concurrency}")
        self.endpoint = endpoint.rstrip("/")
        self.api_key_env = api_key_env
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise BadInputError(f"--api-key-env {api_key_env}: the variable is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.concurrency = concurrency
        self.chunk_size = concurrency * 4
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.retries = 0
        self.truncated_prompts = 0  # the server owns its context limit
        self._lock = threading.Lock()
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )
        self.model_name = model_name or self._only_model()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            told = retry_after_seconds(response.headers.get("Retry-After"))
            if told is not None:
                return min(told, self.max_retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return base * random.uniform(0.5, 1.0)  # jitter: concurrent retries do not stampede

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """One API call with retries; the decoded JSON body.

        Raises:
            EndpointError: a non-retryable status, or every attempt failed.
        """
        url = f"{self.endpoint}{path}"
        last = ""
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise EndpointError(f"{url}: the response is not JSON") from None
                last = _error_summary(response)
                if response.status_code not in RETRY_STATUSES:
                    raise EndpointError(f"{url}: {last}")
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            time.sleep(self._delay(attempt, response))
        raise EndpointError(
            f"{url}: no successful answer after {self.max_retries + 1} attempt(s) "
            f"(last: {last}); is the endpoint up?"
        )

    def _only_model(self) -> str:
        body = self._request("GET", "/models")
        ids = [m.get("id") for m in (body.get("data") or []) if isinstance(m, dict)]
        if len(ids) != 1:
            listed = ", ".join(str(i) for i in ids) or "none"
            raise BadInputError(
                f"{self.endpoint}/models lists {len(ids)} model(s) ({listed}): "
                "choose one with --model-name"
            )
        return str(ids[0])

    def complete(self, prompt: Prompt, params: GenerationParams) -> str:
        """One chat completion, cut at the stop strings.

        Raises:
            EndpointError: the request failed (see :meth:`_request`) or the answer
                has no ``choices[0].message``.
        """
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.temperature > 0:
            payload["seed"] = params.seed
        body = self._request("POST", "/chat/completions", payload)
        try:
            content = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(
                f"{self.endpoint}/chat/completions: the answer has no choices[0].message"
            ) from None
        return truncate_at_stop(content or "", params.stop)

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, advance: Advance | None = None
    ) -> list[str]:
        """Completions of ``prompts``, at most ``concurrency`` requests in flight.

        Returns:
            One completion per prompt, in order.

        Raises:
            EndpointError: any request failed after its retries (the others are cancelled).
        """
        results: list[str] = [""] * len(prompts)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures: dict[Future[str], int] = {
                pool.submit(self.complete, prompt, params): i for i, prompt in enumerate(prompts)
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    results[futures[future]] = future.result()
                if advance is not None:
                    advance(len(done))
        return results

    def loglikelihood(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """Not offered: chat endpoints do not score given text.

        Raises:
            BadInputError: always.
        """
        raise BadInputError(
            "the openai runner cannot score answers; use --model with the local or vllm runner"
        )

    def describe(self) -> dict[str, Any]:
        """Endpoint, model name and the key's variable name (never the key)."""
        return {
            "runner": self.kind,
            "endpoint": self.endpoint,
            "model_name": self.model_name,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "retries": self.retries,
        }

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
