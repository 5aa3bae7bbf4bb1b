"""A local Ray with 2 CPUs for one test module, its session files in a folder of its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.real_components import reason


@contextmanager
def local_ray(env: dict[str, str] | None = None) -> Iterator[Path]:
    """Start Ray through :func:`llm.ray_cluster.ray_session` (what ``--ray-address local``
    runs); yields the folder of its session files (``RAY_TMPDIR``).

    Runs inside the block find Ray connected and use it. ``env`` is set before Ray starts
    (its actors inherit the environment Ray starts with) and restored afterwards.
    """
    pytest.importorskip("ray.data", reason=reason("ray", "cannot import ray.data"))
    from llm.ray_cluster import ray_session

    # short: Ray's socket paths must fit in 107 bytes
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    values = {"RAY_TMPDIR": str(folder), **(env or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        with ray_session("local", num_cpus=2):
            yield folder
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)
