"""Image tasks: radiology impression from a chest X-ray, rhythm from a 12-lead ECG.

The index encounter's assets are rendered to PNG under ``<out>/assets/``
(:mod:`llm.data.assets`); the example refers to them by path relative to the
output folder. Unreadable asset files raise :class:`~llm.data.assets.AssetError`,
which the dataset builder turns into an error or, with ``--skip-invalid``, a
counted skip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from llm.data.assets import ECG_LEADS, dicom_to_png, ecg_to_png, image_to_png
from llm.data.schema import Image, PatientRecord, Waveform
from llm.data.tasks.base import (
    MISSING_LEADS,
    NO_ENCOUNTERS,
    NO_IMAGE,
    NO_LABEL,
    NO_RADIOLOGY_REPORT,
    NO_WAVEFORM,
    UNSUPPORTED_WAVEFORM,
    Example,
    RenderContext,
    Skip,
    answer_instruction,
    first_note,
    format_sections,
    index_encounter,
    labels_in,
    multimodal_example,
    no_section,
    note_sections,
)

CHEST_XRAY_MODALITIES = ("DX", "CR")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def asset_name(text: str) -> str:
    """A file-name-safe form of an identifier (anything else becomes ``_``)."""
    return _UNSAFE.sub("_", text) or "_"


def asset_path(kind: str, patient_id: str, stem: str) -> str:
    """Output-relative PNG path: ``assets/<kind>/<patient_id>/<stem>.png``."""
    return str(PurePosixPath("assets", kind, asset_name(patient_id), asset_name(stem) + ".png"))


def chest_xray(images: Sequence[Image]) -> Image | None:
    """The first radiograph (DX or CR) among an encounter's images."""
    return next((im for im in images if im.modality.upper() in CHEST_XRAY_MODALITIES), None)


def ecg_waveform(waveforms: Sequence[Waveform]) -> Waveform | None:
    """The first ECG among an encounter's waveforms."""
    return next((w for w in waveforms if w.kind == "ecg"), None)


class RadiologyImpressionTask:
    """The report's IMPRESSION from the chest X-ray plus its INDICATION and FINDINGS."""

    name: ClassVar[str] = "radiology_impression"
    kind: ClassVar[Literal["classification", "generation"]] = "generation"
    multimodal: ClassVar[bool] = True
    description: ClassVar[str] = (
        "chest X-ray PNG + radiology report INDICATION and FINDINGS -> IMPRESSION"
    )

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Free text: no fixed answers."""
        return ()

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """See the class docstring; skips without image, report, FINDINGS or IMPRESSION.

        Raises:
            AssetError: the image file cannot be read.
        """
        encounter = index_encounter(record)
        if encounter is None:
            return Skip(NO_ENCOUNTERS)
        image = chest_xray(encounter.images)
        if image is None:
            return Skip(NO_IMAGE)
        report = first_note(encounter, "radiology_report")
        if report is None:
            return Skip(NO_RADIOLOGY_REPORT)
        sections = note_sections(report)
        for required in ("FINDINGS", "IMPRESSION"):
            if not sections.get(required):
                return Skip(no_section(required))
        rel = asset_path("images", record.patient_id, image.image_id or Path(image.path).stem)
        render = dicom_to_png if image.format == "dicom" else image_to_png
        render(ctx.records_dir / image.path, ctx.out_dir / rel)
        text = format_sections(sections, ("INDICATION", "FINDINGS"))
        system = (
            "You are a radiology assistant working on de-identified studies. Task: from the "
            "chest X-ray and the report's indication and findings, write the report's "
            "IMPRESSION. Reply with the impression text only."
        )
        return multimodal_example(
            self,
            record,
            encounter,
            system=system,
            image=rel,
            user=text,
            answer=sections["IMPRESSION"],
            label=None,
        )


class EcgRhythmTask:
    """The rhythm from a 12-lead ECG sheet image."""

    name: ClassVar[str] = "ecg_rhythm"
    kind: ClassVar[Literal["classification", "generation"]] = "classification"
    multimodal: ClassVar[bool] = True
    description: ClassVar[str] = "12-lead ECG sheet PNG -> labels.rhythm"
    question: ClassVar[str] = (
        "12-lead ECG at 25 mm/s and 10 mm/mV: rows I aVR V1 V4 / II aVL V2 V5 / "
        "III aVF V3 V6 (2.5 s each), then a 10 s lead II rhythm strip. What is the rhythm?"
    )

    def answer_space(self, records: Sequence[PatientRecord]) -> tuple[str, ...]:
        """Every rhythm label the records hold, sorted."""
        return labels_in(records, lambda r: r.labels.rhythm)

    def render(self, record: PatientRecord, ctx: RenderContext) -> Example | Skip:
        """See the class docstring; skips without label, ECG, npy format or standard leads.

        Raises:
            AssetError: the waveform file cannot be read or has the wrong shape.
        """
        label = record.labels.rhythm
        encounter = index_encounter(record)
        if label is None:
            return Skip(NO_LABEL)
        if encounter is None:
            return Skip(NO_ENCOUNTERS)
        waveform = ecg_waveform(encounter.waveforms)
        if waveform is None:
            return Skip(NO_WAVEFORM)
        if waveform.format != "npy":
            return Skip(UNSUPPORTED_WAVEFORM)
        names = {lead.upper() for lead in waveform.leads}
        if any(lead.upper() not in names for lead in ECG_LEADS):
            return Skip(MISSING_LEADS)
        rel = asset_path("ecg", record.patient_id, waveform.waveform_id or Path(waveform.path).stem)
        ecg_to_png(
            ctx.records_dir / waveform.path, ctx.out_dir / rel, waveform.leads, waveform.sampling_hz
        )
        system = (
            "You are a cardiology assistant working on de-identified ECGs. Task: name the "
            f"rhythm of the ECG. {answer_instruction(ctx.answers[self.name])}"
        )
        return multimodal_example(
            self,
            record,
            encounter,
            system=system,
            image=rel,
            user=self.question,
            answer=label,
            label=label,
        )
