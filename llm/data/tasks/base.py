"""What every task renderer shares: the task protocol, examples, skips, render context.

A task turns one :class:`~llm.data.schema.PatientRecord` into one chat
:class:`Example` (system / user / assistant) or a :class:`Skip` that names why
the record cannot serve the task (no label, no such note, no image). Skips are
counted by reason; nothing is dropped silently.

Tasks describe the record's INDEX encounter: the last one in ``encounters``
(the admission the labels are about); earlier encounters are history.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from llm.data.schema import UNKNOWN, Encounter, Note, PatientRecord
from llm.data.sections import split_sections

# Skip reasons shared by several tasks (tasks add ``no_section:<name>`` ones).
NO_ENCOUNTERS = "no_encounters"
NO_LABEL = "no_label"
NO_PROGRESS_NOTE = "no_progress_note"
NO_DISCHARGE_SUMMARY = "no_discharge_summary"
NO_RADIOLOGY_REPORT = "no_radiology_report"
NO_IMAGE = "no_image"
UNREADABLE_IMAGE = "unreadable_image"
NO_WAVEFORM = "no_waveform"
UNSUPPORTED_WAVEFORM = "unsupported_waveform_format"
MISSING_LEADS = "ecg_missing_leads"
UNREADABLE_WAVEFORM = "unreadable_waveform"

DEMOGRAPHIC_FIELDS = ("sex", "age", "age_band", "race_ethnicity", "payer", "language")


def no_section(name: str) -> str:
    """Skip reason for a note that lacks section ``name`` (``no_section:brief_hospital_course``)."""
    return "no_section:" + "_".join(name.lower().replace("-", " ").split())


@dataclass(frozen=True)
class Skip:
    """A record that cannot serve a task, and why (a stable, PHI-free reason key)."""

    reason: str


@dataclass(frozen=True)
class Example:
    """One chat example of a task.

    ``messages`` holds system, user and assistant turns. Text tasks give each
    turn's ``content`` as a string; multimodal tasks give a list of parts, each
    ``{"type": "image"|"text", "text": str|None, "image": str|None}`` (one
    struct for every part, so Arrow stores the column), with image paths
    relative to the output folder and also listed in ``images``.
    """

    id: str
    task: str
    patient_id: str
    encounter_id: str
    messages: list[dict[str, Any]]
    answer: str
    label: str | None
    demographics: dict[str, str]
    images: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        """The example as a dataset row (plain JSON types, fixed key order)."""
        return {
            "id": self.id,
            "task": self.task,
            "patient_id": self.patient_id,
            "encounter_id": self.encounter_id,
            "messages": self.messages,
            "answer": self.answer,
            "label": self.label,
            "images": list(self.images),
            "demographics": dict(self.demographics),
        }


@dataclass
class RenderContext:
    """What a task needs beyond the record.

    Args:
        records_dir: folder the records file lies in (asset paths are relative to it).
        out_dir: output folder; rendered PNGs go under ``out_dir/assets``.
        answers: allowed answers of each classification task, sorted (from the records).
    """

    records_dir: Path
    out_dir: Path
    answers: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Task(Protocol):
    """A task renderer. Implementations are small classes registered in :data:`TASKS`."""

    name: ClassVar[str]
    kind: ClassVar[Literal["classification", "generation"]]
    multimodal: ClassVar[bool]
    description: ClassVar[str]

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Sorted allowed answers of a classification task (empty for generation)."""
        ...

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """The example of ``record``, or why it has none."""
        ...


def index_encounter(record: PatientRecord) -> Encounter | None:
    """The encounter the labels describe: the last one, or ``None`` when there are none."""
    return record.encounters[-1] if record.encounters else None


def first_note(encounter: Encounter, note_type: str) -> Note | None:
    """The first note of ``note_type`` in ``encounter`` (the admission H&P for progress notes)."""
    return next((n for n in encounter.notes if n.type == note_type), None)


# Sign-offs that close a note ("Signed: Dr. X on <date>", "Electronically signed by ...",
# "Confirmed by ...", "Dr. X, pager ..."): they belong to no section and carry only PHI.
SIGNOFF_RE = re.compile(r"^(electronically signed|signed\b|confirmed by|dictated by|dr\.\s)", re.I)
PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")


def strip_signoff(text: str) -> str:
    """Drop trailing sign-off paragraphs (see :data:`SIGNOFF_RE`) from a section body.

    The first paragraph is always kept, so a section that merely starts with
    "Dr." (a follow-up instruction) survives.
    """
    paragraphs = [p.strip() for p in PARAGRAPH_BREAK_RE.split(text.strip())]
    while len(paragraphs) > 1 and SIGNOFF_RE.match(paragraphs[-1]):
        paragraphs.pop()
    return "\n\n".join(paragraphs)


def note_sections(note: Note) -> dict[str, str]:
    """The note's sections with sign-offs stripped and the letterhead preamble left out.

    A note without any section header comes back whole under ``""``.
    """
    sections = split_sections(note.text)
    if set(sections) - {""}:
        sections.pop("", None)  # letterhead: hospital, patient name, MRN, dates of service
    return {name: strip_signoff(body) for name, body in sections.items()}


def format_sections(sections: Mapping[str, str], names: Sequence[str] | None = None) -> str:
    """Sections as text blocks separated by blank lines.

    A one-line body stays on the header's line (``CHIEF COMPLAINT: Fever``); a
    longer one, or a list (``- item``, ``1. item``), starts on the next line.
    Sections missing from ``sections`` are left out.

    Args:
        sections: from :func:`note_sections`.
        names: which sections, in this order; ``None`` for all in note order.
    """
    blocks = []
    for name in names if names is not None else list(sections):
        if name not in sections:
            continue
        body = sections[name]
        if not name:
            blocks.append(body)
        elif "\n" in body or body.startswith(("- ", "1.")):  # lists start on their own line
            blocks.append(f"{name}:\n{body}")
        else:
            blocks.append(f"{name}: {body}".rstrip())
    return "\n\n".join(blocks)


def render_note(note: Note) -> str:
    """A whole note as task input: every section, no letterhead, no sign-off."""
    return format_sections(note_sections(note))


def demographics_row(record: PatientRecord) -> dict[str, str]:
    """The subgroup attributes kept on every example, all as strings."""
    demo = record.demographics
    return {
        "sex": demo.sex,
        "age": str(demo.age) if demo.age is not None else UNKNOWN,
        "age_band": demo.age_band,
        "race_ethnicity": demo.race_ethnicity,
        "payer": demo.payer,
        "language": demo.language,
    }


def labels_in(
    records: Sequence[PatientRecord], getter: Callable[[PatientRecord], Any]
) -> tuple[str, ...]:
    """Sorted distinct non-null label values that ``getter`` reads from ``records``."""
    return tuple(sorted({str(v) for v in map(getter, records) if v is not None}))


def answer_instruction(answers: Sequence[str]) -> str:
    """The closing sentence of a classification system prompt."""
    return f"Answer with exactly one of: {', '.join(answers)}. Reply with the answer only."


def text_example(
    task: Task,
    record: PatientRecord,
    encounter: Encounter,
    *,
    system: str,
    user: str,
    answer: str,
    label: str | None,
) -> Example:
    """A text-only example: every turn's content is a plain string."""
    return Example(
        id=f"{task.name}:{record.patient_id}:{encounter.encounter_id}",
        task=task.name,
        patient_id=record.patient_id,
        encounter_id=encounter.encounter_id,
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        answer=answer,
        label=label,
        demographics=demographics_row(record),
    )


def text_part(text: str) -> dict[str, str | None]:
    """A text part of a multimodal message."""
    return {"type": "text", "text": text, "image": None}


def image_part(path: str) -> dict[str, str | None]:
    """An image part of a multimodal message (path relative to the output folder)."""
    return {"type": "image", "text": None, "image": path}


def multimodal_example(
    task: Task,
    record: PatientRecord,
    encounter: Encounter,
    *,
    system: str,
    image: str,
    user: str,
    answer: str,
    label: str | None,
) -> Example:
    """An example whose user turn is one image then text; every content is a list of parts."""
    return Example(
        id=f"{task.name}:{record.patient_id}:{encounter.encounter_id}",
        task=task.name,
        patient_id=record.patient_id,
        encounter_id=encounter.encounter_id,
        messages=[
            {"role": "system", "content": [text_part(system)]},
            {"role": "user", "content": [image_part(image), text_part(user)]},
            {"role": "assistant", "content": [text_part(answer)]},
        ],
        answer=answer,
        label=label,
        demographics=demographics_row(record),
        images=[image],
    )
