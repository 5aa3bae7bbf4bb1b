"""A full-size cohort in parallel workers: the label and population proportions the docs promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.data.synth import BiasSpec, generate_cohort

N = 2000


@pytest.mark.slow
def test_full_cohort_proportions(tmp_path: Path) -> None:
    finished: list[int] = []
    summary = generate_cohort(
        n_patients=N,
        seed=7,
        out_dir=tmp_path,
        workers=2,
        bias=[BiasSpec("race_ethnicity", "Black", 0.3)],
        progress=finished.append,
    )
    assert sum(finished) == N
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    labels = manifest["labels"]
    assert 0.25 <= labels["readmission_30d"]["yes"] / N <= 0.35
    assert set(labels["rhythm"]) == {
        "sinus",
        "sinus_tachycardia",
        "sinus_bradycardia",
        "atrial_fibrillation",
    }
    assert set(labels["triage_level"]) == {"1", "2", "3", "4", "5"}
    assert min(labels["primary_diagnosis"].values()) > 0.05 * N
    demographics = manifest["demographics"]
    assert 0.55 < demographics["race_ethnicity"]["White"] / N < 0.70
    assert 0.13 < demographics["race_ethnicity"]["Black"] / N < 0.21
    assert demographics["age_band"]["65-79"] + demographics["age_band"]["80+"] > 0.5 * N
    assert 0.2 < summary.degraded[0] / manifest["bias"][0]["group_size"] < 0.4
    assert len(list((tmp_path / "waveforms").rglob("*.npy"))) == N
