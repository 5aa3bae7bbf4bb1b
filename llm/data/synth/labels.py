"""The rules that turn a record's facts into its labels.

Each rule reads only facts that the written record states, so anyone can
recompute a label from ``records.jsonl`` (the tests do) and a model can learn
it. docs/synthetic-cohort.md describes the same rules in words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DISPOSITIONS = ("home", "home_with_services", "skilled_nursing_facility", "against_medical_advice")
DISPOSITION_TEXT = {
    "home": "Home",
    "home_with_services": "Home with home health services",
    "skilled_nursing_facility": "Skilled nursing facility",
    "against_medical_advice": "Left against medical advice",
}
DISPOSITION_POINTS = {
    "home": 0,
    "home_with_services": 1,
    "skilled_nursing_facility": 1,
    "against_medical_advice": 3,
}
READMISSION_THRESHOLD = 6
HIGH_RISK_DIAGNOSES = ("heart_failure", "copd_exacerbation")


def rhythm_rule(diagnosis_codes: Iterable[str], heart_rate: float) -> str:
    """ECG rhythm from the index encounter's ICD-10 codes and admission heart rate.

    Any atrial fibrillation code (``I48.*``, primary or chronic) means
    ``atrial_fibrillation``; otherwise sinus, named by rate: above 100
    ``sinus_tachycardia``, below 60 ``sinus_bradycardia``, else ``sinus``.
    """
    if any(code.startswith("I48") for code in diagnosis_codes):
        return "atrial_fibrillation"
    if heart_rate > 100:
        return "sinus_tachycardia"
    if heart_rate < 60:
        return "sinus_bradycardia"
    return "sinus"


def triage_rule(
    *, heart_rate: float, sbp: float, resp_rate: float, spo2: float, temp_c: float
) -> int:
    """ESI-style triage level (1 most urgent) from the admission (arrival) vital signs.

    1: needs immediate life-saving care: SBP < 80, SpO2 < 85, HR > 150, HR < 40 or RR > 35.
    2: high risk: SBP < 90, SpO2 < 90, HR > 130, RR > 28 or temperature >= 39.5 C.
    3: danger-zone vitals: HR > 100, RR > 20, SpO2 < 92, temperature >= 38.0 C or SBP > 180.
    4: any other vital outside normal (HR 60-100, RR 12-20, SpO2 >= 95, 36.0-37.9 C, SBP 100-160).
    5: all vitals normal.
    """
    if sbp < 80 or spo2 < 85 or heart_rate > 150 or heart_rate < 40 or resp_rate > 35:
        return 1
    if sbp < 90 or spo2 < 90 or heart_rate > 130 or resp_rate > 28 or temp_c >= 39.5:
        return 2
    if heart_rate > 100 or resp_rate > 20 or spo2 < 92 or temp_c >= 38.0 or sbp > 180:
        return 3
    normal = (
        60 <= heart_rate <= 100
        and 12 <= resp_rate <= 20
        and spo2 >= 95
        and 36.0 <= temp_c < 38.0
        and 100 <= sbp <= 160
    )
    return 5 if normal else 4


@dataclass(frozen=True)
class ReadmissionInputs:
    """The facts the discharge summary states that the readmission rule uses."""

    age: int
    comorbidity_count: int  # secondary (non-primary) diagnoses of the index admission
    prior_admissions_year: int  # inpatient admissions in the 365 days before the index one
    disposition: str  # one of DISPOSITIONS
    lives_alone: bool
    abnormal_discharge_labs: int  # discharge-panel results outside their reference range
    length_of_stay_days: int
    primary_diagnosis: str


def readmission_points(f: ReadmissionInputs) -> int:
    """Points of the 30-day readmission score.

    age >= 80: 2, 65-79: 1; comorbidities >= 4: 2, 2-3: 1; prior admissions in the
    year: 1 → 2, >= 2 → 3; disposition: home 0, home with services 1, skilled
    nursing facility 1, against medical advice 3; lives alone: 1; abnormal
    discharge labs: 1 each, at most 2; length of stay >= 7 days: 1; primary
    diagnosis heart failure or COPD exacerbation: 1.
    """
    points = 2 if f.age >= 80 else 1 if f.age >= 65 else 0
    points += 2 if f.comorbidity_count >= 4 else 1 if f.comorbidity_count >= 2 else 0
    points += 3 if f.prior_admissions_year >= 2 else 2 if f.prior_admissions_year == 1 else 0
    points += DISPOSITION_POINTS[f.disposition]
    points += 1 if f.lives_alone else 0
    points += min(f.abnormal_discharge_labs, 2)
    points += 1 if f.length_of_stay_days >= 7 else 0
    points += 1 if f.primary_diagnosis in HIGH_RISK_DIAGNOSES else 0
    return points


def readmission_rule(f: ReadmissionInputs) -> str:
    """``"yes"`` when :func:`readmission_points` reaches :data:`READMISSION_THRESHOLD`."""
    return "yes" if readmission_points(f) >= READMISSION_THRESHOLD else "no"
