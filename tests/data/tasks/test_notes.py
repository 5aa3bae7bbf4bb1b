"""Golden renderings of the text tasks on a hand-written record."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.data.schema import Note, PatientRecord
from llm.data.tasks import RenderContext, Skip
from llm.data.tasks.base import Example
from llm.data.tasks.notes import DiagnosisTask, ReadmissionTask, SummaryTask
from tests.data.tasks.records import make_record

LABS = (
    "LABS: Creatinine 0.9 mg/dL; Lactate 3.1 mmol/L [H]; Sodium 131 mmol/L [L]; WBC 14.2 K/uL [H]"
)
VITALS = "VITALS: HR 112/min; BP 92/58 mmHg; RR 24/min; Temp 38.6 C; SpO2 91%"
DEMOGRAPHICS = {
    "sex": "female",
    "age": "72",
    "age_band": "65-79",
    "race_ethnicity": "Black",
    "payer": "Medicare",
    "language": "English",
}


@pytest.fixture
def ctx(tmp_path: Path) -> RenderContext:
    return RenderContext(
        records_dir=tmp_path,
        out_dir=tmp_path / "out",
        answers={
            "diagnosis": ("heart_failure", "pneumonia", "sepsis"),
            "readmission": ("no", "yes"),
        },
    )


def _render(task: object, record: PatientRecord, ctx: RenderContext) -> Example:
    result = task.render(record, ctx)  # type: ignore[attr-defined]
    assert isinstance(result, Example), result
    return result


def test_diagnosis_golden(ctx: RenderContext) -> None:
    example = _render(DiagnosisTask(), make_record(), ctx)
    assert example.id == "diagnosis:P000001:E2"
    assert example.messages == [
        {
            "role": "system",
            "content": "You are a clinical assistant working on de-identified hospital records. "
            "Task: from the admission note, labs and vitals of a hospital admission, name the "
            "primary diagnosis. Answer with exactly one of: heart_failure, pneumonia, sepsis. "
            "Reply with the answer only.",
        },
        {
            "role": "user",
            "content": "CHIEF COMPLAINT: Shortness of breath and fever.\n\n"
            "HISTORY OF PRESENT ILLNESS:\n"
            "Three days of productive cough, fever and worsening dyspnea.\nNo chest pain.\n\n"
            "PAST MEDICAL HISTORY:\n- Hypertension\n- Type 2 diabetes\n\n"
            "PHYSICAL EXAM: Crackles at the right base. Dullness to percussion.\n\n"
            f"{LABS}\n{VITALS}",
        },
        {"role": "assistant", "content": "pneumonia"},
    ]
    assert (example.answer, example.label) == ("pneumonia", "pneumonia")
    assert example.demographics == DEMOGRAPHICS
    assert example.images == []


def test_diagnosis_input_never_holds_the_answer_sources(ctx: RenderContext) -> None:
    user = _render(DiagnosisTask(), make_record(), ctx).messages[1]["content"]
    for leak in ("ASSESSMENT AND PLAN", "DISCHARGE", "J18.9", "neumonia", "SOCIAL HISTORY"):
        assert leak not in user
    for phi in ("Cedar Grove", "MRN", "Signed", "Dr. John Doe"):  # letterhead and sign-off
        assert phi not in user


def test_readmission_golden(ctx: RenderContext) -> None:
    example = _render(ReadmissionTask(), make_record(readmission="yes"), ctx)
    assert example.id == "readmission:P000001:E2"
    assert example.messages[0]["content"] == (
        "You are a clinical assistant working on de-identified hospital records. Task: from the "
        "discharge summary, discharge labs and prior encounters of a hospital admission, predict "
        "whether the patient is readmitted within 30 days of discharge. Answer with exactly one "
        "of: no, yes. Reply with the answer only."
    )
    assert example.messages[1]["content"] == (
        "ADMISSION DATE: 2131-04-02\n\nDISCHARGE DATE: 2131-04-06\n\n"
        "CHIEF COMPLAINT: Shortness of breath and fever.\n\n"
        "HISTORY OF PRESENT ILLNESS: Three days of productive cough and fever.\n\n"
        "BRIEF HOSPITAL COURSE:\n"
        "Treated with IV ceftriaxone and azithromycin; afebrile by day 2.\n"
        "Switched to oral antibiotics on day 3.\n\n"
        "DISCHARGE DIAGNOSIS: Community-acquired pneumonia.\n\n"
        "DISCHARGE CONDITION: Stable.\n\nDISCHARGE DISPOSITION: Home with services.\n\n"
        "FOLLOW-UP: Dr. Jones, primary care, in 1 week.\n\n"
        f"{LABS}\n"
        "PRIOR ENCOUNTERS: 1 (outpatient 1)\n"
        "PRIOR DIAGNOSES: I10 Essential hypertension"
    )
    assert example.messages[2] == {"role": "assistant", "content": "yes"}
    assert (example.answer, example.label) == ("yes", "yes")


def test_summary_golden(ctx: RenderContext) -> None:
    example = _render(SummaryTask(), make_record(), ctx)
    assert example.id == "summary:P000001:E2"
    assert example.messages[0]["content"] == (
        "You are a clinical assistant working on de-identified hospital records. Task: from the "
        "admission note, labs and vitals of a hospital admission, write the BRIEF HOSPITAL COURSE "
        "section of its discharge summary. Reply with the section text only."
    )
    assert example.messages[1]["content"] == (
        "CHIEF COMPLAINT: Shortness of breath and fever.\n\n"
        "HISTORY OF PRESENT ILLNESS:\n"
        "Three days of productive cough, fever and worsening dyspnea.\nNo chest pain.\n\n"
        "PAST MEDICAL HISTORY:\n- Hypertension\n- Type 2 diabetes\n\n"
        "SOCIAL HISTORY: Lives alone. Former smoker.\n\n"
        "PHYSICAL EXAM: Crackles at the right base. Dullness to percussion.\n\n"
        "ASSESSMENT AND PLAN: Lower respiratory infection suspected; start IV antibiotics.\n\n"
        f"{LABS}\n{VITALS}"
    )
    course = (
        "Treated with IV ceftriaxone and azithromycin; afebrile by day 2.\n"
        "Switched to oral antibiotics on day 3."
    )
    assert example.messages[2] == {"role": "assistant", "content": course}
    assert (example.answer, example.label) == (course, None)


def _without_notes(record: PatientRecord, note_type: str) -> PatientRecord:
    record.encounters[-1].notes = [n for n in record.encounters[-1].notes if n.type != note_type]
    return record


def _replace_note(record: PatientRecord, note_type: str, text: str) -> PatientRecord:
    _without_notes(record, note_type).encounters[-1].notes.append(
        Note(note_id="X", type=note_type, text=text)
    )
    return record


@pytest.mark.parametrize(
    ("task", "record", "reason"),
    [
        (DiagnosisTask(), make_record(diagnosis=None), "no_label"),
        (DiagnosisTask(), make_record().model_copy(update={"encounters": []}), "no_encounters"),
        (DiagnosisTask(), _without_notes(make_record(), "progress_note"), "no_progress_note"),
        (
            DiagnosisTask(),
            _replace_note(make_record(), "progress_note", "Patient seen. Plan: admit."),
            "no_section:history_and_exam",
        ),
        (ReadmissionTask(), make_record(readmission=None), "no_label"),
        (
            ReadmissionTask(),
            _without_notes(make_record(), "discharge_summary"),
            "no_discharge_summary",
        ),
        (SummaryTask(), _without_notes(make_record(), "progress_note"), "no_progress_note"),
        (SummaryTask(), _without_notes(make_record(), "discharge_summary"), "no_discharge_summary"),
        (
            SummaryTask(),
            _replace_note(make_record(), "discharge_summary", "DISCHARGE DIAGNOSIS: x\n"),
            "no_section:brief_hospital_course",
        ),
    ],
)
def test_skip_reasons(task: object, record: PatientRecord, reason: str, ctx: RenderContext) -> None:
    assert task.render(record, ctx) == Skip(reason)  # type: ignore[attr-defined]


def test_answer_space_is_what_the_records_hold_sorted() -> None:
    diagnoses = ["sepsis", None, "copd_exacerbation", "sepsis"]
    records = [make_record(f"P{i}", diagnosis=dx) for i, dx in enumerate(diagnoses)]
    assert DiagnosisTask().answer_space(records) == ("copd_exacerbation", "sepsis")
    assert ReadmissionTask().answer_space(records) == ("no", "yes")
    assert SummaryTask().answer_space(records) == ()


def test_single_encounter_has_no_prior_history(ctx: RenderContext) -> None:
    record = make_record()
    record.encounters = record.encounters[-1:]
    user = _render(ReadmissionTask(), record, ctx).messages[1]["content"]
    assert user.endswith("PRIOR ENCOUNTERS: 0\nPRIOR DIAGNOSES: none recorded")


def test_readmission_and_summary_inputs_drop_letterhead_and_sign_offs(ctx: RenderContext) -> None:
    record = make_record()
    for task in (ReadmissionTask(), SummaryTask()):
        user = _render(task, record, ctx).messages[1]["content"]
        for phi in ("Cedar Grove", "MRN", "Signed", "Dr. John Doe", "pager", "Dr. Frank Doe"):
            assert phi not in user, (task.name, phi)
