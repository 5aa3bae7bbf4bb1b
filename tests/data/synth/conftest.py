"""Small cohorts generated once per test session (each takes about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.data.synth import BiasSpec, generate_cohort

COHORT_PATIENTS = 60
COHORT_SEED = 20240611


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-patient cohort without bias."""
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(n_patients=COHORT_PATIENTS, seed=COHORT_SEED, out_dir=out, workers=1)
    return out


@pytest.fixture(scope="session")
def biased_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cohort with every Black patient's documentation degraded."""
    out = tmp_path_factory.mktemp("biased")
    generate_cohort(
        n_patients=COHORT_PATIENTS,
        seed=COHORT_SEED,
        out_dir=out,
        workers=1,
        bias=[BiasSpec("race_ethnicity", "Black", 1.0)],
    )
    return out
