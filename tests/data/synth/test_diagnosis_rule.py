"""The diagnosis rule: what it reads (labs, vitals, negated findings) and how it decides."""

from __future__ import annotations

import pytest

from llm.data.synth.diagnosis_rule import (
    RecordReading,
    diagnose,
    predict_diagnosis,
    read_findings,
    read_record,
)

NORMAL_LABS = (
    "Labs: WBC 7.1 10*3/uL; Sodium 139 mmol/L; Bicarbonate 25 mmol/L; Creatinine 0.90 mg/dL; "
    "Glucose 101 mg/dL; Troponin I 0.01 ng/mL; BNP 40 pg/mL; Lactate 1.1 mmol/L; "
    "Procalcitonin 0.05 ng/mL; pCO2 arterial 40 mm[Hg]; Beta-hydroxybutyrate 0.2 mmol/L; "
    "Hemoglobin A1c 5.4 %; Anion gap 10 mmol/L."
)
NORMAL_VITALS = "Vitals: T 36.8 C, HR 84, BP 128/76, RR 16, SpO2 97% on room air."


def note(vitals: str = NORMAL_VITALS, labs: str = NORMAL_LABS, hpi: str = "") -> str:
    return (
        f"CHIEF COMPLAINT: SOB\n\nHISTORY OF PRESENT ILLNESS:\n{hpi}\n\n"
        f"PHYSICAL EXAM:\n{vitals}\nHeart: regular rhythm.\n{labs}\n\n"
        "LABS: Creatinine 0.8 mg/dL; Sodium 140 mmol/L\n"
        "VITALS: HR 70/min; BP 120/80 mmHg; RR 14/min; Temp 36.6 C; SpO2 98%"
    )


def test_negated_findings_are_denied_the_rest_present() -> None:
    present, denied = read_findings(
        "Presents with SOB and CP. Denies fevers, palpitatons, or N/V. "
        "He was last seen for abdominal pain.\n"
        "Lungs: diffuse expiratory wheezes; no bibasilar crackles."
    )
    assert present == {"dyspnea", "chest_pain", "wheezes"}
    assert denied == {"fever", "palpitations", "nausea_vomiting", "bibasilar_crackles"}


def test_reads_the_admission_values_before_the_latest_lines() -> None:
    reading = read_record(note(labs=NORMAL_LABS.replace("Creatinine 0.90", "Creatinine 3.10")))
    assert reading.labs["creatinine"] == 3.1  # the note's admission value, not LABS' 0.8
    assert reading.labs["hba1c"] == 5.4 and reading.labs["anion_gap"] == 10
    assert reading.vitals == {
        "temp_c": 36.8,
        "heart_rate": 84,
        "sbp": 128,
        "resp_rate": 16,
        "spo2": 97,
    }
    latest_only = read_record("LABS: BNP 900 pg/mL\nVITALS: HR 120/min; Temp 38.4 C; SpO2 90%")
    assert latest_only.labs == {"bnp": 900}
    assert latest_only.vitals == {"heart_rate": 120, "temp_c": 38.4, "spo2": 90}


@pytest.mark.parametrize(
    ("old", "new", "diagnosis"),
    [
        ("Glucose 101", "Glucose 480", None),  # hyperglycemia alone is no DKA
        ("Troponin I 0.01", "Troponin I 4.20", "myocardial_infarction"),
        ("pCO2 arterial 40", "pCO2 arterial 58", "copd_exacerbation"),
        ("Creatinine 0.90", "Creatinine 3.40", "acute_kidney_injury"),
        ("Lactate 1.1", "Lactate 4.2", "sepsis"),
        ("BNP 40", "BNP 1800", "heart_failure"),
        ("Procalcitonin 0.05", "Procalcitonin 2.10", "pneumonia"),
    ],
)
def test_one_telling_lab_gives_its_diagnosis(old: str, new: str, diagnosis: str | None) -> None:
    predicted = predict_diagnosis(note(labs=NORMAL_LABS.replace(old, new)))
    assert predicted == (diagnosis or predict_diagnosis(note()))


def test_ketoacidosis_needs_glucose_and_acidosis() -> None:
    labs = NORMAL_LABS.replace("Glucose 101", "Glucose 480").replace(
        "Bicarbonate 25", "Bicarbonate 9"
    )
    assert predict_diagnosis(note(labs=labs)) == "diabetic_ketoacidosis"


def test_tachycardia_with_normal_labs_is_atrial_fibrillation() -> None:
    vitals = NORMAL_VITALS.replace("HR 84", "HR 138")
    assert predict_diagnosis(note(vitals=vitals)) == "atrial_fibrillation"


@pytest.mark.parametrize(
    ("vitals", "present", "diagnosis"),
    [
        ({"temp_c": 38.9, "sbp": 88, "spo2": 95}, set(), "sepsis"),
        ({"temp_c": 38.9, "sbp": 128, "spo2": 90}, set(), "pneumonia"),
        ({"spo2": 88, "sbp": 150}, set(), "heart_failure"),
        ({"spo2": 88, "sbp": 118}, set(), "copd_exacerbation"),
        ({"heart_rate": 130, "resp_rate": 28}, set(), "diabetic_ketoacidosis"),
        ({"heart_rate": 130, "resp_rate": 18}, set(), "atrial_fibrillation"),
        ({}, {"chest_pain"}, "myocardial_infarction"),
        ({}, {"low_urine"}, "acute_kidney_injury"),
    ],
)
def test_without_labs_vitals_and_findings_decide(
    vitals: dict[str, float], present: set[str], diagnosis: str
) -> None:
    assert diagnose(RecordReading(vitals=vitals, present=present)) == diagnosis
