"""scripts/bench_load.py run for real: a gateway subprocess under load, above and below capacity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serving.backends.conftest import text_model  # noqa: F401
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = pytest.mark.slow  # two gateway processes, 5 s of load each

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_load.py"


def run_load(model: Path, work: Path, clients: int, concurrency: int, queue: int) -> dict[str, Any]:
    out = work / f"load-{clients}.json"
    argv = [
        sys.executable, str(SCRIPT), "--model", str(model), "--work", str(work),
        "--clients", str(clients), "--duration", "5", "--max-tokens", "8",
        "--max-concurrency", str(concurrency), "--max-queue", str(queue),
        "--rss-interval-s", "0.2", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["problems"] == []
    assert report["after"] == {
        "health": 200,
        "clinical_llm_in_flight": 0.0,
        "clinical_llm_queue_depth": 0.0,
    }
    assert report["memory"]["samples"] >= 10  # sampled through the run
    assert 4.5 <= report["wall_s"] < 60
    return report


def test_over_capacity_gets_clean_429s_and_no_other_error(
    tmp_path: Path,
    text_model: Path,  # noqa: F811
) -> None:
    report = run_load(text_model, tmp_path, clients=8, concurrency=2, queue=2)
    outcomes = report["outcomes"]
    assert not report["below_capacity"]
    assert outcomes["other_errors"] == 0 and outcomes["unclean_429"] == 0
    assert outcomes["rejected_429"] > 0 and outcomes["successes"] > 0
    assert report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["ttft_p50_ms"] <= report["latency_p50_ms"]


def test_at_capacity_every_request_succeeds(
    tmp_path: Path,
    text_model: Path,  # noqa: F811
) -> None:
    report = run_load(text_model, tmp_path, clients=4, concurrency=2, queue=2)
    outcomes = report["outcomes"]
    assert report["below_capacity"]
    assert outcomes["other_errors"] == outcomes["rejected_429"] == 0
    assert outcomes["successes"] >= 4
    assert outcomes["output_tokens"] == 8 * outcomes["successes"]  # greedy runs to max_tokens
