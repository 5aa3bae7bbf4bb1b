"""scripts/bench_compress.py times a model and a compressed variant side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llm.compress.folder import compress_model
from llm.compress.methods import CompressionSpec
from tests.compress.conftest import source_model  # noqa: F401  (fixture)
from tests.models.conftest import chat_tokenizer  # noqa: F401  (fixture of source_model)
from tests.scripts.fixtures import REPO


def test_times_every_model_and_gives_ratios_to_the_base(
    source_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    variant = compress_model(
        source_model, tmp_path / "int8", CompressionSpec(method="int8-dynamic")
    )
    out = tmp_path / "speed.json"
    script = str(REPO / "scripts/bench_compress.py")
    argv = [sys.executable, script, "--base", str(source_model), "--variant", str(variant.out)]
    argv += ["--new-tokens", "3", "--rounds", "1", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"base", "int8-dynamic"}
    base, int8 = report["models"]["base"], report["models"]["int8-dynamic"]
    assert base["speedup"] == 1.0 and base["rounds"] == 1
    assert int8["tokens_per_s"] > 0 and int8["first_token_s"] > 0
    assert int8["speedup"] == round(int8["tokens_per_s"] / base["tokens_per_s"], 3)
    assert int8["weights_bytes"] == variant.size_bytes < base["weights_bytes"]
