"""Fixtures of the transformers backend tests: started backends and their scheduler counters.

The model folders (``text_model``, ``adapters``, ``vlm_model``) are shared with the
other backends' tests and live in ``tests/serving/backends/conftest.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.backends.base import BackendSettings, GenerationRequest
from serving.backends.transformers.backend import TransformersBackend
from serving.backends.transformers.batching import SchedulerStats
from tests.serving.backends.conftest import Output


async def collect(backend: TransformersBackend, request: GenerationRequest) -> Output:
    """Consume ``backend.generate(request)`` to the end."""
    output = Output()
    async for chunk in backend.generate(request):
        output.chunks.append(chunk)
    return output


def stats(backend: TransformersBackend) -> SchedulerStats:
    """The scheduler's counters of a started backend."""
    assert backend.scheduler is not None, "the backend is not started"
    return backend.scheduler.stats


StartBackend = Callable[..., TransformersBackend]


@pytest.fixture
def start_backend() -> Iterator[StartBackend]:
    """Factory: ``start_backend(model_dir, adapters=None, **options)`` -> a started backend."""
    started: list[TransformersBackend] = []

    def start(
        model_dir: Path, adapters: dict[str, Path] | None = None, **options: Any
    ) -> TransformersBackend:
        settings = BackendSettings("tiny", str(model_dir), dict(adapters or {}), options)
        backend = TransformersBackend(settings)
        asyncio.run(backend.start())
        started.append(backend)
        return backend

    yield start
    for backend in started:
        asyncio.run(backend.close())
