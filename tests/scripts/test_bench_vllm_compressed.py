"""scripts/bench_vllm_compressed.py times compressed-tensors folders under vLLM beside the base."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compress.test_llmcompressor import _quantized, vllm_shaped_model  # noqa: F401
from tests.models.conftest import chat_tokenizer  # noqa: F401  (fixture of vllm_shaped_model)
from tests.real_components import reason
from tests.scripts.fixtures import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_every_engine_is_timed_and_the_ratios_are_to_the_base(
    tmp_path_factory: pytest.TempPathFactory,
    vllm_shaped_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))
    w8a8, _ = _quantized(tmp_path_factory, vllm_shaped_model, "llmcompressor-w8a8")
    out = tmp_path / "bench.json"
    script = str(REPO / "scripts/bench_vllm_compressed.py")
    argv = [sys.executable, script, "--base", str(vllm_shaped_model), "--variant", str(w8a8),
            "--new-tokens", "4", "--batch", "1,2", "--rounds", "1", "--max-model-len", "256",
            "--json", str(out)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [
        ("base", 1), (w8a8.name, 1), ("base", 2), (w8a8.name, 2),
    ]  # fmt: skip
    base, variant = rows[0], rows[1]
    assert base["quantization"] is None and variant["quantization"] == "compressed-tensors"
    assert base["speedup"] == 1.0 and variant["tokens_per_s"] > 0
    # both figures are rounded to 2 decimals: a slow variant's ratio (0.2) is off by up to 0.005
    ratio = variant["tokens_per_s"] / base["tokens_per_s"]
    assert variant["speedup"] == pytest.approx(ratio, abs=0.01)
    assert variant["size_ratio"] < 1 and variant["peak_rss_mb"] > 0
    assert "| base | 1 |" in proc.stdout
