"""scripts/bench_ray_eval.py: one process, then Ray with 1 and 2 actors, the same bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)
from tests.real_components import reason
from tests.scripts.fixtures import REPO

pytestmark = pytest.mark.slow  # a local Ray and three arms: about a minute


def test_every_arm_writes_the_bytes_of_one_process(eval_assets: EvalAssets, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("ray.data", reason=reason("ray", "cannot import ray.data"))
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must be short
    argv = [sys.executable, str(REPO / "scripts/bench_ray_eval.py")]
    argv += ["--model", str(eval_assets.random), "--dataset-dir", str(eval_assets.datasets)]
    argv += ["--limit", "4", "--out", str(tmp_path / "bench")]
    try:
        proc = subprocess.run(
            argv, env=dict(os.environ, RAY_TMPDIR=ray_tmp), capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    arms = [line for line in proc.stdout.splitlines() if line.startswith(("one process", "ray,"))]
    assert [a.split("  ")[0].strip() for a in arms] == [
        "one process",
        "ray, 1 actor",
        "ray, 2 actors",
    ]
    assert all(a.rstrip().endswith("yes") for a in arms)  # same output and counts
    assert "tasks diagnosis (4), readmission_loglik (4)" in proc.stdout
