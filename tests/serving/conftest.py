"""Serving test fixtures: a deterministic FakeBackend and ``live_gateway``, a real uvicorn server.

``live_gateway(backend, settings=None, config_overrides=None)`` starts the
gateway app around a backend (a name from ``serving.backends.BACKENDS`` built
with ``settings``, or a Backend instance) on a free loopback port in a
background thread and returns its base URL (``http://127.0.0.1:PORT``; the
OpenAI client wants ``url.v1``). The audit log and its key go to the test's
tmp_path (``url.audit_log``, ``url.config.audit_key_file``). Every server is
stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.app import create_app
from serving.auth import KeyRing
from serving.backends import create_backend
from serving.backends.base import (
    Backend,
    BackendSettings,
    GenerationChunk,
    GenerationRequest,
    ServedModel,
    Usage,
)
from serving.config import ServeConfig
from serving.errors import ServingError
from serving.keys import ApiKeyEntry, hash_key
from serving.server import BackgroundServer

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


class FakeBackend(Backend):
    """A deterministic backend double: one word per token, with knobs for the error paths.

    Choice ``i`` of a request with seed ``s`` emits ``WORDS[(s + i + k) % 9] + " "`` as
    token ``k``. It honours ``max_tokens`` (finish "length"), ``stop`` strings (text before
    the stop, finish "stop") and ``eos_after`` (finish "stop" after that many tokens).

    Args:
        settings: served names; ``adapters`` become extra models.
        token_delay_s: sleep before each token (to hold requests in flight).
        max_len: the context length reported for every model.
        eos_after: tokens after which a choice ends with "stop" (None: only max_tokens).
        fail_with: raised at the start of generate (before any chunk).
        fail_after: raise ``fail_with`` after this many chunks instead.
        start_error: raised by ``start()``.
    """

    name = "fake"

    def __init__(
        self,
        settings: BackendSettings | None = None,
        *,
        token_delay_s: float = 0.0,
        max_len: int = 128,
        eos_after: int | None = None,
        fail_with: ServingError | Exception | None = None,
        fail_after: int | None = None,
        start_error: Exception | None = None,
    ) -> None:
        super().__init__(settings or BackendSettings(model_name="tiny", model_path="fake://"))
        self.token_delay_s = token_delay_s
        self.max_len = max_len
        self.eos_after = eos_after
        self.fail_with = fail_with
        self.fail_after = fail_after
        self.start_error = start_error
        self.is_ready = False
        self.requests: list[GenerationRequest] = []
        self.started = 0
        self.cancelled = 0
        self.completed = 0
        self.closed = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.is_ready = True

    async def close(self) -> None:
        self.is_ready = False
        self.closed = True

    def ready(self) -> bool:
        return self.is_ready

    def models(self) -> list[ServedModel]:
        base = self.settings.model_name
        served = [ServedModel(id=base, root=self.settings.model_path, max_model_len=self.max_len)]
        for name, path in self.settings.adapters.items():
            served.append(
                ServedModel(id=name, root=str(path), parent=base, max_model_len=self.max_len)
            )
        return served

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return len(request.prompt.split())
        words = 0
        for message in request.messages or []:
            content = message.get("content") or ""
            if isinstance(content, list):
                content = " ".join(part.get("text", "") for part in content)
            words += len(str(content).split()) + 2  # role markers of a chat template
        return words

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.requests.append(request)
        self.started += 1
        try:
            if self.fail_with is not None and self.fail_after is None:
                raise self.fail_with
            sampling = request.sampling
            seed = sampling.seed or 0
            emitted = 0
            total_tokens = 0
            for index in range(sampling.n):
                text = ""
                finish = "length"
                for k in range(sampling.max_tokens):
                    if self.token_delay_s:
                        await asyncio.sleep(self.token_delay_s)
                    else:
                        await asyncio.sleep(0)
                    if self.fail_after is not None and emitted >= self.fail_after:
                        assert self.fail_with is not None
                        raise self.fail_with
                    word = WORDS[(seed + index + k) % len(WORDS)] + " "
                    total_tokens += 1
                    hit = next((s for s in sampling.stop if s in text + word), None)
                    if hit is not None:
                        cut = (text + word).index(hit)
                        delta = (text + word)[len(text) : cut] if cut > len(text) else ""
                        yield GenerationChunk(index=index, text=delta, token_count=1)
                        emitted += 1
                        finish = "stop"
                        break
                    text += word
                    yield GenerationChunk(index=index, text=word, token_count=1)
                    emitted += 1
                    if self.eos_after is not None and k + 1 >= self.eos_after:
                        finish = "stop"
                        break
                yield GenerationChunk(index=index, finish_reason=finish)  # type: ignore[arg-type]
            yield GenerationChunk(
                index=sampling.n - 1,
                usage=Usage(self.count_prompt_tokens(request), total_tokens),
            )
            self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


class GatewayURL(str):
    """The base URL of a live gateway (``http://127.0.0.1:PORT``), with handles for tests."""

    v1: str
    backend: Backend
    config: ServeConfig
    audit_log: Path
    server: BackgroundServer

    def audit_lines(self) -> list[dict[str, Any]]:
        """The audit log's records so far."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]


LiveGateway = Callable[..., GatewayURL]


@pytest.fixture
def live_gateway(tmp_path: Path) -> Iterator[LiveGateway]:
    """Factory: ``live_gateway(backend, settings=None, config_overrides=None, keys=None)``.

    ``backend`` is a Backend instance or a registry name (built from ``settings``).
    ``keys`` is a list of ApiKeyEntry (None: keys from config/env, usually none).
    """
    servers: list[BackgroundServer] = []

    def start(
        backend: Backend | str,
        settings: BackendSettings | None = None,
        config_overrides: dict[str, Any] | None = None,
        keys: list[ApiKeyEntry] | None = None,
    ) -> GatewayURL:
        if isinstance(backend, str):
            if settings is None:
                raise ValueError("a backend name needs settings")
            backend = create_backend(backend, settings)
        audit_log = tmp_path / f"audit-{len(servers)}.jsonl"
        fields: dict[str, Any] = {
            "model_name": backend.settings.model_name,
            "model_path": backend.settings.model_path,
            "adapters": dict(backend.settings.adapters),
            "audit_log": audit_log,
            "audit_key_file": tmp_path / "audit-hmac.key",
            "port": 0,
        }
        fields.update(config_overrides or {})
        config = ServeConfig.model_validate(fields)
        app = create_app(backend, config, KeyRing(keys) if keys is not None else None)
        server = BackgroundServer(app, host=config.host)
        servers.append(server)
        url = GatewayURL(server.start())
        url.v1 = url + "/v1"
        url.backend = backend
        url.config = config
        url.audit_log = config.audit_log
        url.server = server
        return url

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def fake_backend() -> FakeBackend:
    """A FakeBackend serving ``tiny`` and the adapter ``tiny-notes``."""
    return FakeBackend(
        BackendSettings(
            model_name="tiny",
            model_path="fake://tiny",
            adapters={"tiny-notes": Path("/adapters/notes")},
        )
    )


def make_key(key_id: str, models: list[str] | None = None) -> tuple[str, ApiKeyEntry]:
    """A raw test key and its stored entry."""
    raw = f"sk-test-{key_id}-secret"
    return raw, ApiKeyEntry(id=key_id, sha256=hash_key(raw), models=models or ["*"])
