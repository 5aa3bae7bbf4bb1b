"""PHI entity types and the span file that records where PHI sits in notes.

The synthetic cohort writes ``phi_spans.jsonl`` beside ``records.jsonl``: one
line per note that holds PHI::

    {"patient_id": "P000001", "note_id": "P000001-E1-N1",
     "spans": [{"start": 10, "end": 22, "entity_type": "NAME"}, ...]}

Offsets are character offsets into ``Note.text`` (Python string indices, end
exclusive). The span text is not repeated: it is ``text[start:end]``. The
de-identification evaluator scores its detections against these spans.

Two optional parts, written by the held-out evaluation corpus
(:mod:`llm.data.deid.heldout.corpus`) and absent from older files: a name span's
``origin`` (``{"country": "NG", "region": "Sub-Saharan Africa"}``), for recall
by origin, and a note's ``keep`` list, clinical terms (``Parkinson's disease``,
``mg/dL``) that de-identification must leave intact.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

# The entity types of the HIPAA Safe Harbor identifiers that clinical notes carry.
PHI_ENTITIES: tuple[str, ...] = (
    "NAME",  # patient, relative and clinician names
    "MRN",  # record, account, health plan, licence/certificate and other identifying numbers
    "DATE",  # dates (not years alone) and date-times
    "AGE",  # ages over 89
    "PHONE",
    "FAX",
    "EMAIL",
    "ADDRESS",  # street address, city, ZIP
    "SSN",
    "HOSPITAL",  # names of hospitals and clinics
    "URL",  # web addresses
    "IP_ADDRESS",  # IPv4 and IPv6 addresses
    "DEVICE_ID",  # device identifiers and serial numbers (pacemakers, pumps, implants)
    "VEHICLE_ID",  # licence plates and vehicle identification numbers (VIN)
)

PhiEntity = Literal[
    "NAME",
    "MRN",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "ADDRESS",
    "SSN",
    "HOSPITAL",
    "URL",
    "IP_ADDRESS",
    "DEVICE_ID",
    "VEHICLE_ID",
]


class NameOrigin(BaseModel):
    """Where a name comes from (country and region it ranks best in)."""

    model_config = ConfigDict(extra="forbid")

    country: str = Field(description="ISO 3166 alpha-2 code, e.g. NG.")
    region: str = Field(description="World region, e.g. Sub-Saharan Africa.")


class PhiSpan(BaseModel):
    """One PHI occurrence in a note."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, description="Offset of the first character.")
    end: int = Field(gt=0, description="Offset one past the last character.")
    entity_type: PhiEntity = Field(description="One of PHI_ENTITIES.")
    origin: NameOrigin | None = Field(
        default=None, description="For names: the origin of the name (optional)."
    )

    @model_serializer(mode="wrap")
    def _without_empty_origin(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # files without origins are written exactly as before the field existed
        out: dict[str, Any] = handler(self)
        if out.get("origin") is None:
            out.pop("origin", None)
        return out


class KeepSpan(BaseModel):
    """A clinical term that de-identification must leave intact."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, description="Offset of the first character.")
    end: int = Field(gt=0, description="Offset one past the last character.")
    kind: str = Field(description="drug, eponym, unit or abbreviation.")


class NotePhi(BaseModel):
    """The PHI spans of one note (one line of ``phi_spans.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str
    note_id: str
    spans: list[PhiSpan]
    keep: list[KeepSpan] = Field(
        default_factory=list, description="Clinical terms to keep (optional)."
    )

    @model_serializer(mode="wrap")
    def _without_empty_keep(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not out.get("keep"):
            out.pop("keep", None)
        return out
