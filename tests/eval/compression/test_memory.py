"""Peak memory of a model in a process of its own (``eval/compression/memory.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eval.compression.memory import PeakMemory, measure_peak_memory
from llm.errors import BadInputError
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)


def test_model_memory_is_the_peak_over_the_runtime() -> None:
    memory = PeakMemory(runtime_rss_bytes=400, peak_rss_bytes=1000)
    assert memory.as_json() == {
        "peak_rss_bytes": 1000,
        "runtime_rss_bytes": 400,
        "model_rss_bytes": 600,
    }


def test_the_probe_imports_no_torch_before_it_knows_the_runtime() -> None:
    # an IR is measured as `serve --backend openvino` runs it: openvino-genai, no torch
    code = "import sys, eval.compression.memory; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "False"


def test_a_probe_that_fails_says_so_with_its_last_lines(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"memory probe failed:(.|\n)*model folder not found"):
        measure_peak_memory(tmp_path / "missing", new_tokens=2)


@pytest.mark.slow
def test_torch_model_peak_covers_loading_and_generating(eval_assets: EvalAssets) -> None:  # noqa: F811
    memory = measure_peak_memory(eval_assets.tiny, new_tokens=4)
    # torch and transformers alone take hundreds of MB; the tiny model adds a little
    assert memory.runtime_rss_bytes > 100_000_000
    assert memory.peak_rss_bytes > memory.runtime_rss_bytes
