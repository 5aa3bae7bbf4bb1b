"""PHI canaries: distinctive made-up identifiers planted in records, and the scan for them.

The canaries are values no synthetic or real record would hold by chance (a name
like "Zorblax Quenndt", an MRN, SSN, phone, e-mail and street address), so finding any
of them, or a distinctive part of one, anywhere a stage writes or says is a leak.
``plant_canaries`` puts them into every note of a records file where the task
renderers read (the header's patient line and the HISTORY OF PRESENT ILLNESS), so
de-identification, task datasets, training prompts and eval prompts all see them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

NAME = "Zorblax Quenndt"
MRN = "73920481"
SSN = "219-09-9999"
PHONE = "617-555-0143"
EMAIL = "zorblax.quenndt@example.org"
STREET = "4417 Quillfeather Lane"
ADDRESS = f"{STREET}, Brattleboro, VT 05301"

CANARY_SENTENCE = (
    f"{NAME} (MRN {MRN}, SSN {SSN}) can be reached at {PHONE} or {EMAIL}; home {ADDRESS}."
)

# what a scan looks for: each whole value and each distinctive part of one, in the
# spellings a log or encoder might turn them into (case folded, digits without dashes)
NEEDLES: tuple[str, ...] = (
    NAME,
    "Zorblax",
    "Quenndt",
    MRN,
    SSN,
    SSN.replace("-", ""),
    PHONE,
    PHONE.replace("-", ""),
    EMAIL,
    STREET,
    "Quillfeather",
)

_PATIENT_LINE = re.compile(r"Patient: [^\n]*?(\s+)MRN \d+")
_HPI = "HISTORY OF PRESENT ILLNESS:\n"


def plant_canaries(source: Path, out: Path) -> int:
    """Copy a records file to ``out`` with the canaries in every note; returns notes changed.

    The patient line of each note header names the canary patient and MRN; the
    HISTORY OF PRESENT ILLNESS (which the diagnosis and readmission prompts quote)
    opens with :data:`CANARY_SENTENCE`.
    """
    changed = 0
    with source.open(encoding="utf-8") as fh, out.open("w", encoding="utf-8") as dst:
        for line in fh:
            record = json.loads(line)
            for encounter in record["encounters"]:
                for note in encounter["notes"]:
                    text = _PATIENT_LINE.sub(rf"Patient: {NAME}\g<1>MRN {MRN}", note["text"])
                    text = text.replace(_HPI, _HPI + CANARY_SENTENCE + "\n")
                    changed += text != note["text"]
                    note["text"] = text
            dst.write(json.dumps(record) + "\n")
    return changed


def canaries_in(data: str | bytes) -> list[str]:
    """The needles found in ``data`` (text, or bytes read as UTF-8 and as UTF-16)."""
    if isinstance(data, bytes):
        texts = [data.decode("utf-8", "replace"), data.decode("utf-16-le", "replace")]
    else:
        texts = [data]
    folded = [t.casefold() for t in texts]
    return [n for n in NEEDLES if any(n.casefold() in t for t in folded)]


def assert_no_canary(data: str | bytes, where: str) -> None:
    """Fail naming ``where`` and the canaries found, with the context of the first one."""
    found = canaries_in(data)
    if found:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        at = text.casefold().find(found[0].casefold())
        context = text[max(0, at - 120) : at + 120] if at >= 0 else "(UTF-16)"
        raise AssertionError(f"PHI canary {found} leaked into {where}: ...{context}...")


def leaking_files(root: Path, skip: Iterable[str] = ()) -> dict[str, list[str]]:
    """``relative path -> canaries`` for every file under ``root`` (read as bytes) that holds one.

    ``skip`` names files (relative paths, or bare names matched anywhere) that may
    legitimately hold the text, such as an input dataset.
    """
    skipped = set(skip)
    leaks: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        if rel in skipped or path.name in skipped:
            continue
        found = canaries_in(path.read_bytes())
        if found:
            leaks[rel] = found
    return leaks
