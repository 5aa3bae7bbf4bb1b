"""The patient record: one JSON object per line of a records file.

This is the contract of docs/architecture.md ("Patient record"). Every importer writes it,
every later stage reads it. Models are strict (``extra="forbid"``): an unknown
key is an error, not something to drop silently. Asset paths (images,
waveforms) are relative to the records file; :mod:`llm.data.io` checks that
they exist.

Times are ISO-8601 strings (``2131-04-02T08:15:00``). They are kept as text,
not parsed datetimes, so that a record round-trips byte for byte; the
validator only checks that they parse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SEXES = ("female", "male", "other", "unknown")
AGE_BANDS = ("0-17", "18-39", "40-64", "65-79", "80+")
UNKNOWN = "unknown"


def age_band_of(age: int) -> str:
    """Return the age band (one of :data:`AGE_BANDS`) that ``age`` falls in."""
    if age < 18:
        return "0-17"
    if age < 40:
        return "18-39"
    if age < 65:
        return "40-64"
    if age < 80:
        return "65-79"
    return "80+"


def _check_iso_time(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from exc
    return value


IsoTime = Annotated[str, AfterValidator(_check_iso_time)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)


class Demographics(_Strict):
    """Attributes used for subgroup evaluation. Never names or identifiers."""

    sex: Literal["female", "male", "other", "unknown"] = Field(
        default="unknown",
        description="Administrative sex, normalised to female/male/other/unknown.",
    )
    age: int | None = Field(
        default=None, ge=0, le=130, description="Age in years at the index encounter."
    )
    age_band: str = Field(
        default=UNKNOWN,
        description=f"One of {', '.join(AGE_BANDS)} or 'unknown'; derived from age when left out.",
    )
    race_ethnicity: str = Field(default=UNKNOWN, description="Race/ethnicity category as recorded.")
    payer: str = Field(
        default=UNKNOWN, description="Primary payer (Medicare, Medicaid, Private, Self-pay, ...)."
    )
    language: str = Field(default=UNKNOWN, description="Preferred language.")
    other: dict[str, str] = Field(
        default_factory=dict,
        description="Site-specific subgroup attributes (e.g. 'site', 'rurality'), string-valued.",
    )

    @model_validator(mode="after")
    def _derive_age_band(self) -> Demographics:
        if self.age_band != UNKNOWN and self.age_band not in AGE_BANDS:
            raise ValueError(
                f"age_band must be one of {AGE_BANDS} or 'unknown', got {self.age_band!r}"
            )
        if self.age is not None:
            expected = age_band_of(self.age)
            if self.age_band == UNKNOWN:
                self.age_band = expected
            elif self.age_band != expected:
                raise ValueError(
                    f"age_band {self.age_band!r} does not match age {self.age} ({expected!r})"
                )
        return self


class Note(_Strict):
    """A free-text clinical note. ``type`` is normalised (see :data:`NOTE_TYPES`)."""

    note_id: str = Field(description="Identifier unique within the record.")
    type: str = Field(
        description="discharge_summary, progress_note, radiology_report, ecg_report, "
        "nursing_note or other."
    )
    text: str = Field(description="The note text (may contain PHI until de-identified).")
    time: IsoTime | None = Field(default=None, description="When the note was written.")


NOTE_TYPES = (
    "discharge_summary",
    "progress_note",
    "radiology_report",
    "ecg_report",
    "nursing_note",
    "other",
)


class Lab(_Strict):
    """One laboratory result."""

    code: str = Field(description="LOINC code (or the source system's code).")
    name: str = Field(description="Human-readable test name, e.g. 'Creatinine'.")
    value: float | str = Field(description="Numeric result, or text for qualitative results.")
    unit: str | None = Field(default=None, description="UCUM-style unit, e.g. 'mg/dL'.")
    time: IsoTime | None = Field(default=None, description="Specimen or result time.")
    ref_low: float | None = Field(default=None, description="Lower bound of the reference range.")
    ref_high: float | None = Field(default=None, description="Upper bound of the reference range.")


class Vital(_Strict):
    """One vital sign measurement."""

    name: str = Field(description="heart_rate, sbp, dbp, resp_rate, temp_c, spo2, weight_kg, ...")
    value: float = Field(description="Measured value.")
    unit: str | None = Field(default=None, description="Unit, e.g. '/min', 'mmHg', 'Cel', '%'.")
    time: IsoTime | None = Field(default=None, description="Measurement time.")
    code: str | None = Field(default=None, description="LOINC code when known.")


class Diagnosis(_Strict):
    """A coded diagnosis."""

    system: Literal["ICD-10", "ICD-9", "SNOMED"] = Field(
        default="ICD-10", description="Code system."
    )
    code: str = Field(description="Code in that system, e.g. 'J18.9'.")
    description: str | None = Field(default=None, description="Display text.")
    primary: bool = Field(
        default=False, description="True for the principal diagnosis of the encounter."
    )


class Image(_Strict):
    """A medical image stored beside the records file."""

    path: str = Field(description="Path relative to the records file.")
    modality: str = Field(description="DICOM modality: CR, DX, CT, MR, US, ...")
    format: Literal["dicom", "png"] = Field(description="File format.")
    image_id: str | None = Field(default=None, description="Identifier unique within the record.")
    view: str | None = Field(default=None, description="View position, e.g. 'PA', 'AP', 'LATERAL'.")
    time: IsoTime | None = Field(default=None, description="Acquisition time.")


class Waveform(_Strict):
    """A physiological waveform (ECG) stored beside the records file.

    ``format="npy"`` files hold a floating-point array (float16 or float32) of
    shape ``(len(leads), n_samples)`` in millivolts, readable with
    ``numpy.load(path, allow_pickle=False)``.
    """

    path: str = Field(description="Path relative to the records file.")
    kind: Literal["ecg"] = Field(description="Waveform kind.")
    sampling_hz: float = Field(gt=0, description="Samples per second per lead.")
    leads: list[str] = Field(min_length=1, description="Lead names in array row order.")
    format: Literal["npy", "wfdb"] = Field(default="npy", description="File format.")
    waveform_id: str | None = Field(
        default=None, description="Identifier unique within the record."
    )
    time: IsoTime | None = Field(default=None, description="Acquisition time.")


class Encounter(_Strict):
    """One visit or admission with everything recorded during it."""

    encounter_id: str = Field(description="Identifier unique within the record.")
    time: IsoTime = Field(description="Start (admission) time.")
    end_time: IsoTime | None = Field(default=None, description="Discharge time.")
    kind: str | None = Field(default=None, description="inpatient, emergency, outpatient, ...")
    notes: list[Note] = Field(default_factory=list)
    labs: list[Lab] = Field(default_factory=list)
    vitals: list[Vital] = Field(default_factory=list)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    waveforms: list[Waveform] = Field(default_factory=list)


class Labels(_Strict):
    """Ground-truth targets. Every field is optional: importers fill what the source has."""

    primary_diagnosis: str | None = Field(
        default=None, description="Name of the principal diagnosis category, e.g. 'pneumonia'."
    )
    readmission_30d: Literal["yes", "no"] | None = Field(
        default=None, description="Readmitted within 30 days of discharge."
    )
    triage_level: int | None = Field(
        default=None, ge=1, le=5, description="ESI triage level, 1 (most urgent) to 5."
    )
    rhythm: str | None = Field(
        default=None,
        description="ECG rhythm: sinus, atrial_fibrillation, sinus_tachycardia, sinus_bradycardia.",
    )
    other: dict[str, str | int | float] = Field(
        default_factory=dict, description="Further site-specific labels."
    )


class PatientRecord(_Strict):
    """One patient: demographics, encounters and labels."""

    patient_id: str = Field(min_length=1, description="Pseudonymous patient identifier.")
    demographics: Demographics = Field(default_factory=Demographics)
    encounters: list[Encounter] = Field(default_factory=list)
    labels: Labels = Field(default_factory=Labels)
    source: str | None = Field(
        default=None, description="Where the record came from: synthetic, fhir, mimic, jsonl."
    )

    def asset_paths(self) -> list[tuple[str, str]]:
        """Return ``(field location, relative path)`` of every image and waveform."""
        out: list[tuple[str, str]] = []
        for i, enc in enumerate(self.encounters):
            out += [
                (f"encounters[{i}].images[{j}].path", im.path) for j, im in enumerate(enc.images)
            ]
            out += [
                (f"encounters[{i}].waveforms[{j}].path", w.path)
                for j, w in enumerate(enc.waveforms)
            ]
        return out

    def all_notes(self) -> list[Note]:
        """Notes of every encounter, in order."""
        return [n for enc in self.encounters for n in enc.notes]
