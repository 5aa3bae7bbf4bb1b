"""Text tasks read from the index encounter's notes: diagnosis, readmission, summary.

Leak rules: the ``diagnosis`` input never holds the discharge summary, the
coded diagnoses of the index encounter or the progress note's ASSESSMENT AND
PLAN (each names the answer). The ``readmission`` input keeps the discharge
summary whole, DISCHARGE DIAGNOSIS included: the diagnosis is known at
discharge and is a legitimate predictor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Literal

from llm.data.schema import Encounter, PatientRecord
from llm.data.tasks.base import (
    NO_DISCHARGE_SUMMARY,
    NO_ENCOUNTERS,
    NO_LABEL,
    NO_PROGRESS_NOTE,
    Example,
    RenderContext,
    Skip,
    answer_instruction,
    first_note,
    format_sections,
    index_encounter,
    labels_in,
    no_section,
    note_sections,
    render_note,
    text_example,
)
from llm.data.tasks.serialize import format_diagnoses, format_labs, format_vitals

SYSTEM_PREFIX = "You are a clinical assistant working on de-identified hospital records."
DIAGNOSIS_SECTIONS = (
    "CHIEF COMPLAINT",
    "HISTORY OF PRESENT ILLNESS",
    "PAST MEDICAL HISTORY",
    "PHYSICAL EXAM",
)
HOSPITAL_COURSE = "BRIEF HOSPITAL COURSE"
READMISSION_ANSWERS = ("no", "yes")


def structured_block(encounter: Encounter) -> str:
    """The LABS and VITALS lines of an encounter in the compact format."""
    return f"{format_labs(encounter.labs)}\n{format_vitals(encounter.vitals)}"


def prior_encounters_line(prior: Sequence[Encounter]) -> str:
    """``PRIOR ENCOUNTERS: 3 (inpatient 2, outpatient 1)``: the count, then by kind."""
    kinds = Counter(enc.kind or "unknown" for enc in prior)
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    return f"PRIOR ENCOUNTERS: {len(prior)}" + (f" ({detail})" if detail else "")


class DiagnosisTask:
    """Primary diagnosis of the admission from the admission note, labs and vitals."""

    name: ClassVar[str] = "diagnosis"
    kind: ClassVar[Literal["classification", "generation"]] = "classification"
    multimodal: ClassVar[bool] = False
    description: ClassVar[str] = (
        "progress note (chief complaint, HPI, past history, exam) + labs + vitals "
        "-> labels.primary_diagnosis"
    )

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Every primary diagnosis the records hold, sorted."""
        return labels_in(records, lambda r: r.labels.primary_diagnosis)

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """See the class docstring; skips without label, encounter, note or note sections."""
        label = record.labels.primary_diagnosis
        encounter = index_encounter(record)
        if label is None:
            return Skip(NO_LABEL)
        if encounter is None:
            return Skip(NO_ENCOUNTERS)
        note = first_note(encounter, "progress_note")
        if note is None:
            return Skip(NO_PROGRESS_NOTE)
        history = format_sections(note_sections(note), DIAGNOSIS_SECTIONS)
        if not history:
            return Skip(no_section("history and exam"))
        system = (
            f"{SYSTEM_PREFIX} Task: from the admission note, labs and vitals of a hospital "
            f"admission, name the primary diagnosis. "
            f"{answer_instruction(ctx.answers[self.name])}"
        )
        user = f"{history}\n\n{structured_block(encounter)}"
        return text_example(
            self, record, encounter, system=system, user=user, answer=label, label=label
        )


class ReadmissionTask:
    """30-day readmission from the discharge summary, discharge labs and prior encounters."""

    name: ClassVar[str] = "readmission"
    kind: ClassVar[Literal["classification", "generation"]] = "classification"
    multimodal: ClassVar[bool] = False
    description: ClassVar[str] = (
        "discharge summary + latest labs + prior encounters and their diagnoses "
        "-> labels.readmission_30d (yes/no)"
    )

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Always ``("no", "yes")``: the label is binary whatever the records hold."""
        return READMISSION_ANSWERS

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """See the class docstring; skips without label, encounter or discharge summary."""
        label = record.labels.readmission_30d
        encounter = index_encounter(record)
        if label is None:
            return Skip(NO_LABEL)
        if encounter is None:
            return Skip(NO_ENCOUNTERS)
        note = first_note(encounter, "discharge_summary")
        if note is None:
            return Skip(NO_DISCHARGE_SUMMARY)
        prior = record.encounters[:-1]
        prior_dx = [dx for enc in prior for dx in enc.diagnoses]
        system = (
            f"{SYSTEM_PREFIX} Task: from the discharge summary, discharge labs and prior "
            f"encounters of a hospital admission, predict whether the patient is readmitted "
            f"within 30 days of discharge. {answer_instruction(READMISSION_ANSWERS)}"
        )
        user = "\n".join(
            [
                render_note(note),
                "",
                format_labs(encounter.labs),
                prior_encounters_line(prior),
                format_diagnoses(prior_dx, header="PRIOR DIAGNOSES"),
            ]
        )
        return text_example(
            self, record, encounter, system=system, user=user, answer=label, label=label
        )


class SummaryTask:
    """The discharge summary's hospital course from the admission note, labs and vitals."""

    name: ClassVar[str] = "summary"
    kind: ClassVar[Literal["classification", "generation"]] = "generation"
    multimodal: ClassVar[bool] = False
    description: ClassVar[str] = (
        "progress note + labs + vitals -> the discharge summary's BRIEF HOSPITAL COURSE"
    )

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Free text: no fixed answers."""
        return ()

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """See the class docstring; skips without either note or the course section."""
        encounter = index_encounter(record)
        if encounter is None:
            return Skip(NO_ENCOUNTERS)
        note = first_note(encounter, "progress_note")
        if note is None:
            return Skip(NO_PROGRESS_NOTE)
        discharge = first_note(encounter, "discharge_summary")
        if discharge is None:
            return Skip(NO_DISCHARGE_SUMMARY)
        course = note_sections(discharge).get(HOSPITAL_COURSE)
        if not course:
            return Skip(no_section(HOSPITAL_COURSE))
        system = (
            f"{SYSTEM_PREFIX} Task: from the admission note, labs and vitals of a hospital "
            f"admission, write the BRIEF HOSPITAL COURSE section of its discharge summary. "
            f"Reply with the section text only."
        )
        user = f"{render_note(note)}\n\n{structured_block(encounter)}"
        return text_example(
            self, record, encounter, system=system, user=user, answer=course, label=None
        )
