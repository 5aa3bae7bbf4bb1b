"""Who the synthetic patients are: proportions of a US adult inpatient population.

Shares are rounded from published national inpatient statistics (AHRQ HCUP
National Inpatient Sample summaries, adult non-obstetric stays) and are
documented in docs/synthetic-cohort.md. Age and sex depend on the primary
diagnosis (see :mod:`llm.data.synth.profiles`); payer depends on age and
language on race/ethnicity.
"""

from __future__ import annotations

import numpy as np

from llm.data.schema import age_band_of
from llm.data.synth.profiles import Profile

RACE_ETHNICITY: dict[str, float] = {
    "White": 0.63,
    "Black": 0.17,
    "Hispanic": 0.11,
    "Asian": 0.04,
    "Native American": 0.01,
    "Other": 0.02,
    "unknown": 0.02,
}
PAYER_65_PLUS: dict[str, float] = {
    "Medicare": 0.88,
    "Private": 0.06,
    "Medicaid": 0.04,
    "Self-pay": 0.01,
    "Other": 0.01,
}
PAYER_UNDER_65: dict[str, float] = {
    "Private": 0.42,
    "Medicaid": 0.34,
    "Medicare": 0.10,
    "Self-pay": 0.10,
    "Other": 0.04,
}
LANGUAGE_BY_RACE: dict[str, dict[str, float]] = {
    "Hispanic": {"English": 0.58, "Spanish": 0.42},
    "Asian": {"English": 0.62, "Chinese": 0.16, "Vietnamese": 0.12, "Other": 0.10},
    "Other": {"English": 0.85, "Other": 0.15},
}
LANGUAGE_DEFAULT: dict[str, float] = {"English": 0.985, "Other": 0.015}
LANGUAGES = ("English", "Spanish", "Chinese", "Vietnamese", "Other")
PAYERS = ("Medicare", "Medicaid", "Private", "Self-pay", "Other")
SEXES = ("female", "male")
MIN_AGE, MAX_AGE = 18, 101


def choose(rng: np.random.Generator, shares: dict[str, float]) -> str:
    """One key of ``shares``, drawn with probability proportional to its value."""
    keys = list(shares)
    p = np.array([shares[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_demographics(rng: np.random.Generator, profile: Profile) -> dict[str, str | int]:
    """Draw sex, age, race/ethnicity, payer and language for a patient with ``profile``.

    Returns:
        The fields of :class:`llm.data.schema.Demographics` (age_band matches age).
    """
    sex = "female" if rng.random() < profile.p_female else "male"
    age = int(np.clip(round(rng.normal(profile.age_mean, profile.age_sd)), MIN_AGE, MAX_AGE))
    race = choose(rng, RACE_ETHNICITY)
    payer = choose(rng, PAYER_65_PLUS if age >= 65 else PAYER_UNDER_65)
    language = choose(rng, LANGUAGE_BY_RACE.get(race, LANGUAGE_DEFAULT))
    return {
        "sex": sex,
        "age": age,
        "age_band": age_band_of(age),
        "race_ethnicity": race,
        "payer": payer,
        "language": language,
    }
