"""Patient (+ Coverage) → :class:`~llm.data.schema.Demographics`.

* sex: ``Patient.gender`` (male, female, other, unknown).
* age: whole years from ``birthDate`` to the start of the patient's latest
  encounter (the index encounter); unknown when either is missing.
* race_ethnicity: ``Hispanic`` when the US Core ethnicity extension's
  ombCategory is 2135-2 (Hispanic or Latino); otherwise the display of the US
  Core race ombCategory (its ``text`` sub-extension when there are several
  categories); unknown when neither extension is present.
* language: the preferred ``communication.language`` (else the first), as text.
* payer: the first active Coverage's ``type`` (text, else coding display),
  else its first ``payor`` display.
"""

from __future__ import annotations

from typing import Any

from llm.data.importers.fhir_mapping import (
    HISPANIC_OR_LATINO,
    US_CORE_ETHNICITY,
    US_CORE_RACE,
    age_at,
    pick_coding,
)
from llm.data.schema import UNKNOWN, Demographics, Encounter

_SEXES = {"male", "female", "other", "unknown"}


def _sub(ext: Any, url: str) -> list[Any]:
    return [e for e in ext.extension or [] if e.url == url]


def race_ethnicity_of(patient: Any) -> str:
    """The race/ethnicity category from the US Core extensions (rules in the module doc)."""
    race = None
    for ext in patient.extension or []:
        if ext.url == US_CORE_ETHNICITY:
            codes = {e.valueCoding.code for e in _sub(ext, "ombCategory") if e.valueCoding}
            if HISPANIC_OR_LATINO in codes:
                return "Hispanic"
        elif ext.url == US_CORE_RACE:
            cats = [e.valueCoding for e in _sub(ext, "ombCategory") if e.valueCoding]
            texts = [e.valueString for e in _sub(ext, "text") if e.valueString]
            if len(cats) == 1:
                race = cats[0].display or cats[0].code
            elif cats:
                race = texts[0] if texts else "Multiracial"
            elif texts:
                race = texts[0]
    return race or UNKNOWN


def language_of(patient: Any) -> str:
    """Preferred communication language as text (display, else code)."""
    comms = list(patient.communication or [])
    if not comms:
        return UNKNOWN
    chosen = next((c for c in comms if c.preferred), comms[0])
    code, display = pick_coding(chosen.language)
    return display or code or UNKNOWN


def payer_of(coverages: list[Any]) -> str:
    """Payer from the first active (else first) Coverage (``FhirEntry`` list)."""
    resources = [e.resource for e in coverages if e.resource is not None]
    if not resources:
        return UNKNOWN
    chosen = next((c for c in resources if c.status == "active"), resources[0])
    if chosen.type is not None:
        code, display = pick_coding(chosen.type)
        if display or code:
            return str(display or code)
    payors = [p.display for p in chosen.payor or [] if p.display]
    return payors[0] if payors else UNKNOWN


def demographics_of(
    patient: Any, coverages: list[Any], encounters: list[Encounter]
) -> Demographics:
    """Demographics of one patient (see the module doc for each field).

    Args:
        patient: the validated Patient resource.
        coverages: the patient's Coverage entries.
        encounters: the patient's encounters in time order (the last is the index).

    Raises:
        FieldError: ``birthDate`` is after the latest encounter.
    """
    age = None
    if patient.birthDate is not None and encounters:
        age = age_at(patient.birthDate, encounters[-1].time)
    sex = patient.gender if patient.gender in _SEXES else UNKNOWN
    return Demographics(
        sex=sex,
        age=age,
        race_ethnicity=race_ethnicity_of(patient),
        payer=payer_of(coverages),
        language=language_of(patient),
    )
