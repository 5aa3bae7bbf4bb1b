"""FHIR R4 resources (validated ``fhir.resources.R4B`` models) to record parts.

Each function maps one resource and raises :class:`FieldError` naming the
field of the resource that is wrong; :mod:`llm.data.importers.fhir` turns that
into a located error. References between resources are resolved there, not
here. The mapping tables are documented in ``docs/importers.md``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from llm.data.importers.common import iso_time
from llm.data.schema import Diagnosis, Encounter, Lab, Note, Vital

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
HISPANIC_OR_LATINO = "2135-2"  # CDC Race & Ethnicity code of the OMB "Hispanic or Latino" category

#: Encounter.class (v3 ActCode) to Encounter.kind.
ENCOUNTER_KINDS = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "EMER": "emergency",
    "AMB": "outpatient",
    "OBSENC": "observation",
    "HH": "home_health",
    "VR": "virtual",
    "PRENC": "outpatient",
    "SS": "outpatient",
}

#: LOINC document type (DocumentReference.type, DiagnosticReport.code) to Note.type.
NOTE_TYPES_BY_LOINC = {
    "18842-5": "discharge_summary",
    "11506-3": "progress_note",
    "34117-2": "progress_note",  # history and physical note: the admission H&P
    "18748-4": "radiology_report",
    "11524-6": "ecg_report",
    "34746-8": "nursing_note",
}

#: Vital-sign LOINC code to (Vital.name, unit written).
VITALS_BY_LOINC = {
    "8867-4": ("heart_rate", "/min"),
    "8480-6": ("sbp", "mmHg"),
    "8462-4": ("dbp", "mmHg"),
    "9279-1": ("resp_rate", "/min"),
    "8310-5": ("temp_c", "Cel"),
    "59408-5": ("spo2", "%"),
    "2708-6": ("spo2", "%"),
    "29463-7": ("weight_kg", "kg"),
    "8302-2": ("height_cm", "cm"),
    "39156-5": ("bmi", "kg/m2"),
}
BP_PANEL = "85354-9"

# Units the source may use for a vital whose name fixes the unit: value -> value in that unit.
_CONVERSIONS = {
    ("temp_c", "[degF]"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("temp_c", "degF"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("weight_kg", "[lb_av]"): lambda v: v * 0.45359237,
    ("weight_kg", "g"): lambda v: v / 1000.0,
    ("height_cm", "[in_i]"): lambda v: v * 2.54,
    ("height_cm", "m"): lambda v: v * 100.0,
}
_SAME_UNIT = {
    "Cel",
    "cel",
    "C",
    "mmHg",
    "mm[Hg]",
    "/min",
    "{beats}/min",
    "{breaths}/min",
    "%",
    "kg",
    "cm",
    "kg/m2",
}


class FieldError(ValueError):
    """A problem with one field of the resource being mapped."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def pick_coding(concept: Any, system: str | None = None) -> tuple[str | None, str | None]:
    """``(code, display)`` of the coding in ``system`` (else the first coding) of a concept."""
    if concept is None:
        return None, None
    codings = list(concept.coding or [])
    chosen = next((c for c in codings if system and c.system == system), None)
    if chosen is None and codings:
        chosen = codings[0]
    display = (chosen.display if chosen else None) or concept.text
    return (chosen.code if chosen else None), display


def concept_codes(concepts: Any) -> set[str]:
    """Every code in a list of CodeableConcepts (categories)."""
    return {c.code for cc in concepts or [] for c in cc.coding or [] if c.code}


def _time(value: Any, field: str) -> str | None:
    try:
        return iso_time(value)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def map_encounter(res: Any) -> Encounter:
    """Encounter → :class:`Encounter` (no items yet)."""
    if res.period is None or res.period.start is None:
        raise FieldError("period.start", "missing: an encounter needs a start time")
    start = _time(res.period.start, "period.start")
    assert start is not None
    code = res.class_fhir.code if res.class_fhir is not None else None
    kind = ENCOUNTER_KINDS.get(code or "") or (
        (res.class_fhir.display or code or "").lower() or None if res.class_fhir else None
    )
    return Encounter(
        encounter_id=res.id,
        time=start,
        end_time=_time(res.period.end, "period.end"),
        kind=kind,
    )


def encounter_primary_conditions(res: Any) -> list[tuple[int, str, bool]]:
    """``(index, Condition reference, primary)`` for each Encounter.diagnosis.

    Primary is ``rank == 1``; when no diagnosis of the encounter has a rank, the
    first one whose ``use`` is ``DD`` (discharge diagnosis) or ``billing`` is primary.
    """
    diags = list(res.diagnosis or [])
    out = [(i, d.condition.reference or "", d.rank == 1) for i, d in enumerate(diags)]
    if diags and all(d.rank is None for d in diags):
        for i, d in enumerate(diags):
            if concept_codes([d.use] if d.use else []) & {"DD", "billing"}:
                out[i] = (i, out[i][1], True)
                break
    return out


def observation_time(res: Any) -> str | None:
    """Observation effective[x] start, else issued."""
    if res.effectiveDateTime is not None:
        return _time(res.effectiveDateTime, "effectiveDateTime")
    if res.effectiveInstant is not None:
        return _time(res.effectiveInstant, "effectiveInstant")
    if res.effectivePeriod is not None and res.effectivePeriod.start is not None:
        return _time(res.effectivePeriod.start, "effectivePeriod.start")
    return _time(res.issued, "issued")


def _value(holder: Any, prefix: str) -> tuple[float | str, str | None] | None:
    """``(value, unit)`` of an Observation or component value[x], or None when absent."""
    q = holder.valueQuantity
    if q is not None:
        if q.value is None:
            raise FieldError(f"{prefix}valueQuantity.value", "missing")
        return float(q.value), q.unit or q.code
    if holder.valueInteger is not None:
        return float(holder.valueInteger), None
    if holder.valueString is not None:
        return str(holder.valueString), None
    if holder.valueBoolean is not None:
        return ("true" if holder.valueBoolean else "false"), None
    if holder.valueCodeableConcept is not None:
        code, display = pick_coding(holder.valueCodeableConcept, SNOMED)
        text = display or code
        if not text:
            raise FieldError(f"{prefix}valueCodeableConcept", "has neither coding nor text")
        return text, None
    return None


def _code(concept: Any, field: str) -> tuple[str, str]:
    code, display = pick_coding(concept, LOINC)
    if not code:
        raise FieldError(f"{field}.coding", "no code")
    return code, display or code


def _range(res: Any) -> tuple[float | None, float | None]:
    ranges = list(res.referenceRange or [])
    if not ranges:
        return None, None
    r = ranges[0]
    low = float(r.low.value) if r.low is not None and r.low.value is not None else None
    high = float(r.high.value) if r.high is not None and r.high.value is not None else None
    return low, high


def map_labs(res: Any) -> list[Lab]:
    """A laboratory Observation → one :class:`Lab`, or one per component when it has no value.

    Returns an empty list for an Observation with no value whose
    ``dataAbsentReason`` says why (the caller counts it as skipped).

    Raises:
        FieldError: no code, or no value and no reason.
    """
    time = observation_time(res)
    code, name = _code(res.code, "code")
    low, high = _range(res)
    value = _value(res, "")
    if value is not None:
        return [
            Lab(
                code=code,
                name=name,
                value=value[0],
                unit=value[1],
                time=time,
                ref_low=low,
                ref_high=high,
            )
        ]
    labs = []
    for i, comp in enumerate(res.component or []):
        c_code, c_name = _code(comp.code, f"component[{i}].code")
        c_value = _value(comp, f"component[{i}].")
        if c_value is None:
            raise FieldError(f"component[{i}].value[x]", "missing")
        c_low, c_high = _range(comp)
        labs.append(
            Lab(
                code=c_code,
                name=c_name,
                value=c_value[0],
                unit=c_value[1],
                time=time,
                ref_low=c_low,
                ref_high=c_high,
            )
        )
    if labs or res.dataAbsentReason is not None:
        return labs
    raise FieldError("value[x]", "missing (and no component or dataAbsentReason)")


def _vital(
    name: str,
    unit: str,
    value: tuple[float | str, str | None] | None,
    field: str,
    code: str,
    time: str | None,
) -> Vital:
    if value is None:
        raise FieldError(field, "missing")
    number, src_unit = value
    if not isinstance(number, float):
        raise FieldError(field, f"a vital sign needs a quantity, got text for {name}")
    convert = _CONVERSIONS.get((name, src_unit or ""))
    if convert is not None:
        number = round(convert(number), 2)
    elif src_unit and src_unit not in _SAME_UNIT:
        raise FieldError(f"{field}.unit", f"unit {src_unit!r} not understood for {name}")
    return Vital(name=name, value=number, unit=unit, time=time, code=code)


def map_vitals(res: Any) -> list[Vital]:
    """A vital-signs Observation → :class:`Vital` items (a BP panel gives sbp and dbp).

    Returns an empty list for a code not in :data:`VITALS_BY_LOINC` (counted as
    skipped by the caller) or a value absent with a ``dataAbsentReason``.
    """
    time = observation_time(res)
    code, _ = pick_coding(res.code, LOINC)
    if code == BP_PANEL:
        vitals = []
        for i, comp in enumerate(res.component or []):
            c_code, _ = pick_coding(comp.code, LOINC)
            if c_code in ("8480-6", "8462-4"):
                name, unit = VITALS_BY_LOINC[c_code]
                value = _value(comp, f"component[{i}].")
                field = f"component[{i}].valueQuantity"
                vitals.append(_vital(name, unit, value, field, c_code, time))
        if not vitals and res.dataAbsentReason is None:
            raise FieldError("component", "blood-pressure panel without systolic/diastolic")
        return vitals
    if code not in VITALS_BY_LOINC:
        return []
    value = _value(res, "")
    if value is None and res.dataAbsentReason is not None:
        return []
    name, unit = VITALS_BY_LOINC[code]
    return [_vital(name, unit, value, "valueQuantity", code, time)]


def map_condition(res: Any, primary: bool) -> Diagnosis:
    """Condition → :class:`Diagnosis` (ICD-10 preferred over ICD-9 over SNOMED)."""
    if res.code is None:
        raise FieldError("code", "missing")
    ranked: list[tuple[int, str, Any]] = []
    for c in res.code.coding or []:
        system = (c.system or "").lower()
        if "icd-10" in system or "icd10" in system:
            ranked.append((0, "ICD-10", c))
        elif "icd-9" in system or "icd9" in system:
            ranked.append((1, "ICD-9", c))
        elif system == SNOMED:
            ranked.append((2, "SNOMED", c))
    ranked = [r for r in ranked if r[2].code]
    if not ranked:
        systems = sorted({c.system or "<none>" for c in res.code.coding or []})
        raise FieldError("code.coding", f"no ICD-10, ICD-9 or SNOMED code (systems: {systems})")
    _, system_name, coding = min(ranked, key=lambda r: r[0])
    return Diagnosis(
        system=system_name,
        code=coding.code,
        description=coding.display or res.code.text,
        primary=primary,
    )


def condition_time(res: Any) -> str | None:
    """Onset, else recorded date."""
    if res.onsetDateTime is not None:
        return _time(res.onsetDateTime, "onsetDateTime")
    if res.onsetPeriod is not None and res.onsetPeriod.start is not None:
        return _time(res.onsetPeriod.start, "onsetPeriod.start")
    return _time(res.recordedDate, "recordedDate")


def note_type(concepts: Any, default: str) -> str:
    """Note type from the LOINC codes of ``concepts`` (:data:`NOTE_TYPES_BY_LOINC`)."""
    for code in sorted(concept_codes(concepts)):
        if code in NOTE_TYPES_BY_LOINC:
            return NOTE_TYPES_BY_LOINC[code]
    return default


def attachment_texts(attachments: list[tuple[str, Any]]) -> list[str]:
    """UTF-8 texts of the inline ``text/plain`` attachments (``(field, attachment)`` pairs)."""
    texts = []
    for field, att in attachments:
        if not (att.contentType or "").startswith("text/plain") or att.data is None:
            continue
        try:
            texts.append(bytes(att.data).decode("utf-8"))
        except UnicodeDecodeError:
            raise FieldError(f"{field}.data", "text/plain attachment is not UTF-8 text") from None
    return texts


def notes_from(texts: list[str], note_id: str, kind: str, time: str | None) -> list[Note]:
    """One note per text; the second and later get ``-2``, ``-3`` … ids."""
    return [
        Note(note_id=note_id if i == 0 else f"{note_id}-{i + 1}", type=kind, text=text, time=time)
        for i, text in enumerate(texts)
    ]


def map_document_reference(res: Any) -> list[Note]:
    """DocumentReference → notes from its inline text/plain attachments."""
    atts = [(f"content[{i}].attachment", c.attachment) for i, c in enumerate(res.content or [])]
    time = _time(res.date, "date")
    if time is None and res.context is not None and res.context.period is not None:
        time = _time(res.context.period.start, "context.period.start")
    return notes_from(attachment_texts(atts), res.id, note_type([res.type], "other"), time)


def report_time(res: Any) -> str | None:
    """DiagnosticReport effective[x] start, else issued."""
    if res.effectiveDateTime is not None:
        return _time(res.effectiveDateTime, "effectiveDateTime")
    if res.effectivePeriod is not None and res.effectivePeriod.start is not None:
        return _time(res.effectivePeriod.start, "effectivePeriod.start")
    return _time(res.issued, "issued")


def map_report_notes(res: Any) -> list[Note]:
    """DiagnosticReport.presentedForm → notes.

    The type comes from the report's LOINC code when it is a known note type,
    else ``radiology_report`` for imaging reports (category RAD, or any report
    with media) and ``other`` for the rest (lab reports carrying text).
    """
    imaging = bool(concept_codes(res.category) & {"RAD", "LP29684-5"}) or bool(res.media)
    kind = note_type([res.code], "radiology_report" if imaging else "other")
    atts = [(f"presentedForm[{i}]", a) for i, a in enumerate(res.presentedForm or [])]
    return notes_from(attachment_texts(atts), res.id, kind, report_time(res))


@dataclass
class ImageContent:
    """Checked image bytes of a Media, with what the file says about itself."""

    format: str  # "dicom" or "png"
    data: bytes
    modality: str | None


def check_image(data: bytes, content_type: str, field: str) -> ImageContent:
    """Check that ``data`` really is the DICOM or PNG its content type claims.

    Raises:
        FieldError: not a readable DICOM file / PNG image.
    """
    if content_type == "application/dicom":
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
            raise FieldError(field, f"not a readable DICOM file ({type(exc).__name__})") from None
        modality = str(ds.get("Modality", "") or "") or None
        return ImageContent("dicom", data, modality)
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FieldError(field, f"not a readable PNG image ({type(exc).__name__})") from None
    if fmt != "PNG":
        raise FieldError(field, f"content type image/png but the data is {fmt}")
    return ImageContent("png", data, None)


IMAGE_TYPES = {"application/dicom": "dicom", "image/png": "png"}


def media_time(res: Any) -> str | None:
    """Media created[x] start, else issued."""
    if res.createdDateTime is not None:
        return _time(res.createdDateTime, "createdDateTime")
    if res.createdPeriod is not None and res.createdPeriod.start is not None:
        return _time(res.createdPeriod.start, "createdPeriod.start")
    return _time(res.issued, "issued")


def age_at(birth: Any, when: str) -> int:
    """Whole years from ``birth`` (a date or partial date) to the date of ``when``.

    Raises:
        FieldError: birthDate is after ``when``.
    """
    born = date.fromisoformat(iso_time(birth) or "")
    on = date.fromisoformat(when[:10])
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if years < 0:
        raise FieldError("birthDate", "after the patient's latest encounter")
    return years
