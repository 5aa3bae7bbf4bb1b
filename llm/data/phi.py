"""PHI entity types and the span file that records where PHI sits in notes.

The synthetic cohort writes ``phi_spans.jsonl`` beside ``records.jsonl``: one
line per note that holds PHI::

    {"patient_id": "P000001", "note_id": "P000001-E1-N1",
     "spans": [{"start": 10, "end": 22, "entity_type": "NAME"}, ...]}

Offsets are character offsets into ``Note.text`` (Python string indices, end
exclusive). The span text is not repeated: it is ``text[start:end]``. The
de-identification evaluator scores its detections against these spans.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PhiSpan(BaseModel):
    """One PHI occurrence in a note."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, description="Offset of the first character.")
    end: int = Field(gt=0, description="Offset one past the last character.")
    entity_type: PhiEntity = Field(description="One of PHI_ENTITIES.")


class NotePhi(BaseModel):
    """The PHI spans of one note (one line of ``phi_spans.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str
    note_id: str
    spans: list[PhiSpan]
