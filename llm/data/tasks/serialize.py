"""The compact text format of structured data (labs, vitals, diagnoses) in task inputs.

Every task renders structured data the same way, so a model learns one format::

    LABS: Creatinine 0.9 mg/dL; Lactate 3.1 mmol/L [H]; WBC 14.2 K/uL [H]
    VITALS: HR 112/min; BP 92/58 mmHg; RR 24/min; Temp 38.6 C; SpO2 91%
    DIAGNOSES: I50.9 Heart failure, unspecified; E11.9 Type 2 diabetes mellitus

Rules (docs/tasks.md repeats them with an example):

* one line per kind, ``KIND: item; item; ...``; ``KIND: none recorded`` when empty;
* labs: the latest result per test (by time; results without a time count as
  older than timed ones, and among equals the later one in the record wins),
  ordered by test name (case-insensitive), then code; ``name value unit``, then
  ``[H]``/``[L]`` when a numeric value lies above/below the reference range;
* vitals: the latest value per vital sign; HR, BP (systolic/diastolic), RR,
  Temp, SpO2, Weight first in that order with fixed display units, any other
  vital sign after them by name with its recorded unit;
* diagnoses: primary first, then by code; duplicates (same system and code)
  once; codes of systems other than ICD-10 are prefixed with the system;
* numbers: at most 6 significant digits, no exponent, no trailing zeros
  (``14.2``, ``140``, ``0.012``); free text has newlines collapsed and ``;``
  turned into ``,`` so that ``;`` always separates items.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from llm.data.schema import Diagnosis, Lab, Vital

NONE_RECORDED = "none recorded"

# Known vital signs: record name -> (display name, display unit, order).
# The unit is part of the vital's definition (temp_c is Celsius), so it is fixed here.
_VITALS: dict[str, tuple[str, str]] = {
    "heart_rate": ("HR", "/min"),
    "resp_rate": ("RR", "/min"),
    "temp_c": ("Temp", " C"),
    "spo2": ("SpO2", "%"),
    "weight_kg": ("Weight", " kg"),
}
_VITAL_ORDER = ("heart_rate", "bp", "resp_rate", "temp_c", "spo2", "weight_kg")
_BP_PARTS = ("sbp", "dbp")


def format_number(value: float) -> str:
    """Format a measurement: at most 6 significant digits, positional, trimmed.

    Args:
        value: the number.

    Returns:
        ``14.2`` for 14.2, ``140`` for 140.0, ``0.3`` for 0.1 + 0.2.
    """
    rounded = float(f"{value:.6g}")  # drops float noise such as 0.30000000000000004
    text = np.format_float_positional(rounded, unique=True, trim="-")
    return "0" if text == "-0" else text


def clean_text(text: str) -> str:
    """Collapse whitespace and replace ``;`` so free text cannot break the item list."""
    return " ".join(text.replace(";", ",").split())


def _time_key(time: str | None) -> tuple[int, datetime]:
    """Sort key putting untimed results first (oldest) and timed ones by instant."""
    if time is None:
        return (0, datetime.min)
    parsed = datetime.fromisoformat(time)
    if parsed.tzinfo is not None:  # compare aware and naive times on one clock
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return (1, parsed)


def latest_labs(labs: Sequence[Lab]) -> list[Lab]:
    """The latest result of each test (keyed by code), in the compact format's order.

    Args:
        labs: results of one encounter, in record order.

    Returns:
        One result per code, ordered by name (case-insensitive) then code.
    """
    latest: dict[str, tuple[tuple[int, datetime, int], Lab]] = {}
    for index, lab in enumerate(labs):
        key = (*_time_key(lab.time), index)
        if lab.code not in latest or key >= latest[lab.code][0]:
            latest[lab.code] = (key, lab)
    return sorted((lab for _, lab in latest.values()), key=lambda lab: (lab.name.lower(), lab.code))


def lab_flag(lab: Lab) -> str | None:
    """``"H"`` above the reference range, ``"L"`` below it, else ``None``."""
    if isinstance(lab.value, str):
        return None
    if lab.ref_high is not None and lab.value > lab.ref_high:
        return "H"
    if lab.ref_low is not None and lab.value < lab.ref_low:
        return "L"
    return None


def format_lab(lab: Lab) -> str:
    """One lab item: ``WBC 14.2 K/uL [H]``."""
    value = clean_text(lab.value) if isinstance(lab.value, str) else format_number(lab.value)
    parts = [clean_text(lab.name), value]
    if lab.unit:
        parts.append(clean_text(lab.unit))
    flag = lab_flag(lab)
    if flag:
        parts.append(f"[{flag}]")
    return " ".join(parts)


def format_labs(labs: Sequence[Lab]) -> str:
    """The ``LABS:`` line of an encounter (latest result per test).

    Args:
        labs: results of one encounter.

    Returns:
        ``LABS: WBC 14.2 K/uL [H]; ...`` or ``LABS: none recorded``.
    """
    items = [format_lab(lab) for lab in latest_labs(labs)]
    return "LABS: " + ("; ".join(items) if items else NONE_RECORDED)


def latest_vitals(vitals: Sequence[Vital]) -> dict[str, Vital]:
    """The latest measurement of each vital sign, keyed by name (same rule as labs)."""
    latest: dict[str, tuple[tuple[int, datetime, int], Vital]] = {}
    for index, vital in enumerate(vitals):
        key = (*_time_key(vital.time), index)
        if vital.name not in latest or key >= latest[vital.name][0]:
            latest[vital.name] = (key, vital)
    return {name: vital for name, (_, vital) in latest.items()}


def format_vitals(vitals: Sequence[Vital]) -> str:
    """The ``VITALS:`` line of an encounter (latest value per vital sign).

    Args:
        vitals: measurements of one encounter.

    Returns:
        ``VITALS: HR 112/min; BP 92/58 mmHg; ...`` or ``VITALS: none recorded``.
    """
    latest = latest_vitals(vitals)
    items: list[str] = []
    for name in _VITAL_ORDER:
        if name == "bp":
            sbp, dbp = (latest.get(part) for part in _BP_PARTS)
            if sbp is not None and dbp is not None:
                items.append(f"BP {format_number(sbp.value)}/{format_number(dbp.value)} mmHg")
            elif sbp is not None:
                items.append(f"SBP {format_number(sbp.value)} mmHg")
            elif dbp is not None:
                items.append(f"DBP {format_number(dbp.value)} mmHg")
        elif name in latest:
            label, unit = _VITALS[name]
            items.append(f"{label} {format_number(latest[name].value)}{unit}")
    known = set(_VITAL_ORDER) | set(_BP_PARTS)
    for name in sorted(n for n in latest if n not in known):
        vital = latest[name]
        unit = f" {clean_text(vital.unit)}" if vital.unit else ""
        items.append(f"{clean_text(name)} {format_number(vital.value)}{unit}")
    return "VITALS: " + ("; ".join(items) if items else NONE_RECORDED)


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """One diagnosis item: ``I50.9 Heart failure, unspecified`` (``ICD-9 428.0 ...``)."""
    parts: list[str] = [] if diagnosis.system == "ICD-10" else [diagnosis.system]
    parts.append(clean_text(diagnosis.code))
    if diagnosis.description:
        parts.append(clean_text(diagnosis.description))
    return " ".join(parts)


def format_diagnoses(diagnoses: Sequence[Diagnosis], *, header: str = "DIAGNOSES") -> str:
    """A diagnoses line: primary first, then by code, each (system, code) once.

    Args:
        diagnoses: coded diagnoses (of one or several encounters).
        header: the line's label, e.g. ``PRIOR DIAGNOSES``.

    Returns:
        ``DIAGNOSES: I50.9 Heart failure, unspecified; ...`` or ``DIAGNOSES: none recorded``.
    """
    unique: dict[tuple[str, str], Diagnosis] = {}
    for dx in diagnoses:
        key = (dx.system, dx.code)
        if key not in unique or (dx.primary and not unique[key].primary):
            unique[key] = dx
    ordered = sorted(unique.values(), key=lambda dx: (not dx.primary, dx.system, dx.code))
    items = [format_diagnosis(dx) for dx in ordered]
    return f"{header}: " + ("; ".join(items) if items else NONE_RECORDED)
