"""Random predictions for eval tests: reproducible, with chosen group effects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SEXES = ["female", "male", "other"]
RACES = ["Asian", "Black", "Hispanic", "White"]
AGE_BANDS = ["18-39", "40-64", "65-79", "80+"]
PAYERS = ["Medicare", "Medicaid", "Private", "Self-pay"]


def random_predictions(
    n: int, seed: int, *, worse_group: str | None = "Black", gap: float = 0.1
) -> list[dict[str, Any]]:
    """``n`` binary predictions; accuracy is ``gap`` lower for race ``worse_group``.

    Some demographics are missing (``None`` / absent) so ``unknown`` groups occur,
    and the ``other`` sex is rare so it is a small group at ``min_group_size=30``
    for a few hundred rows.
    """
    rng = np.random.default_rng(seed)
    sex = rng.choice(SEXES, n, p=[0.5, 0.47, 0.03])
    race = rng.choice(RACES, n)
    age = rng.choice(np.array([*AGE_BANDS, None], dtype=object), n, p=[0.24] * 4 + [0.04])
    payer = rng.choice(PAYERS, n)
    reference = rng.choice(["yes", "no"], n, p=[0.4, 0.6])
    p_correct = np.where(race == worse_group, 0.9 - gap, 0.9)
    correct = rng.random(n) < p_correct
    prediction = np.where(correct, reference, np.where(reference == "yes", "no", "yes"))
    score = np.clip(np.where(prediction == "yes", 0.7, 0.3) + rng.normal(0, 0.2, n), 0, 1)
    rows = []
    for i in range(n):
        demographics: dict[str, Any] = {"sex": sex[i], "race_ethnicity": race[i], "payer": payer[i]}
        if age[i] is not None:
            demographics["age_band"] = age[i]
        rows.append(
            {
                "id": f"ex{i}",
                "prediction": str(prediction[i]),
                "reference": str(reference[i]),
                "score": round(float(score[i]), 4),
                "demographics": demographics,
            }
        )
    return rows


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as a predictions JSONL file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
