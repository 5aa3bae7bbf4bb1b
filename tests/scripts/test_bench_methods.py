"""scripts/bench_methods.py: one real step of a method's recipe, timed from its manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_model import smollm2  # noqa: F401  (fixture)
from tests.scripts.fixtures import load_script, run_script
from tests.train.fixtures import TrainingAssets, training_assets  # noqa: F401  (fixture)


@pytest.mark.slow
def test_lora_step_time_is_read_from_the_run(
    smollm2: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    args = ["--base", str(smollm2), "--datasets", str(training_assets.datasets),
            "--methods", "lora", "--steps", "1", "--micro-batch", "1", "--max-length", "128",
            "--work", str(tmp_path / "work")]  # fmt: skip
    report = run_script("bench_methods", args, tmp_path / "report.json")
    (row,) = report["methods"]
    assert (row["method"], row["processes"], row["steps"]) == ("lora", 1, 1)
    assert 0 < row["tokens_seen"] <= 128
    assert row["seconds_per_step"] > 0
    assert row["trainable_parameters"] > 0


def test_unknown_methods_and_missing_folders_are_usage_errors(tmp_path: Path) -> None:
    bench = load_script("bench_methods")
    with pytest.raises(SystemExit):
        bench.main(["--methods", "lora,dpo", "--base", str(tmp_path), "--datasets", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench.main(["--base", str(tmp_path / "missing"), "--datasets", str(tmp_path)])
