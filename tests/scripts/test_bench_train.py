"""scripts/bench_train.py: the synthetic data and the step-loop comparison, run small."""

from __future__ import annotations

from pathlib import Path

from llm.train.datasets import dataset_provenance, load_task_split
from tests.scripts.fixtures import load_script, run_script


def test_synthetic_chats_spread_their_lengths_and_load_as_a_task_dataset(tmp_path: Path) -> None:
    bench = load_script("bench_train")
    rows = bench.synthetic_chats(200, max_length=1024, seed=3)
    words = sorted(len(r["messages"][1]["content"].split()) for r in rows)
    assert words[len(words) // 10] * 3 < words[9 * len(words) // 10]  # p90 over 3x p10

    overrides = bench.write_synthetic_task(tmp_path / "data", rows)

    assert overrides == [f"data.dataset_dir={tmp_path / 'data'}", "data.tasks=[diagnosis]"]
    train = load_task_split(tmp_path / "data", bench.SYNTHETIC_TASK, "train")
    assert [r["messages"] for r in train] == [r["messages"] for r in rows]
    counts = dataset_provenance(tmp_path / "data", [bench.SYNTHETIC_TASK])["tasks"]
    assert counts[bench.SYNTHETIC_TASK]["counts"] == {"train": 200}


def test_step_loop_comparison_reports_both_modes(tmp_path: Path) -> None:
    args = ["--examples", "48", "--max-length", "256", "--batch-size", "4", "--warmup", "1"]
    report = run_script("bench_train", args, tmp_path / "bench.json")
    padded, packed = report["results"]
    assert (padded["mode"], packed["mode"]) == ("padded", "packed")
    assert report["tokenize"]["read"] == 48 == report["tokenize"]["used"]
    # packing fills the slots padding leaves empty; both count real tokens only
    assert packed["padding"] < padded["padding"]
    for row in (padded, packed):
        assert 0 < row["real_tokens"] <= row["slots"] and row["tokens_per_s"] > 0
    assert report["packed_over_padded"] == packed["tokens_per_s"] / padded["tokens_per_s"]
