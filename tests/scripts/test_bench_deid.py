"""scripts/bench_deid.py: every arm scored on a small held-out corpus, side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scripts.fixtures import load_script, run_script


@pytest.mark.slow
def test_all_arms_on_a_small_corpus(tmp_path: Path) -> None:
    report = run_script("bench_deid", ["--notes", "12", "--seed", "5"], tmp_path / "r.json")
    assert report["notes"] == 12 and report["seed"] == 5
    arms = report["arms"]
    assert "default" in arms and "presidio" in arms
    expected = {"default", "presidio"} | ({"rules"} if report["today"] == "rules" else set())
    assert set(arms) == expected
    for figures in arms.values():
        assert 0 <= figures["recall"] <= 1 and figures["notes_per_second"] > 0
        ev = figures["evaluation"]
        assert ev["by_entity"]["NAME"]["gold"] > 0
        assert ev["names_by_region"]["overall"]["gold"] == ev["by_entity"]["NAME"]["gold"]
        assert 0 <= figures["clinical_terms_kept"] <= 1
    assert arms[report["today"]]["throughput_vs_today"] == 1.0


def test_project_arm_alone_is_fast_enough_for_the_default_suite(tmp_path: Path) -> None:
    bench = load_script("bench_deid")
    arm = "rules" if bench.has_rules_option() else "default"
    args = ["--notes", "6", "--seed", "1", "--arms", arm, "--json", str(tmp_path / "r.json")]
    report = bench.main(args)
    figures = report["arms"][arm]
    assert figures["throughput_vs_today"] == 1.0
    assert set(figures["evaluation"]["names_by_region"]["by_group"]) <= set(
        report["name_mentions_by_region"]
    )


def test_unknown_arms_are_usage_errors() -> None:
    bench = load_script("bench_deid")
    with pytest.raises(SystemExit):
        bench.main(["--arms", "default,gpt"])
