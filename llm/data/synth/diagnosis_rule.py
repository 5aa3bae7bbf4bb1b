"""The primary diagnosis read from a ``diagnosis`` task input: labs, vitals, non-negated findings.

The synthetic cohort's label is determined by its record; this rule shows it.
It reads the rendered prompt text (what a model sees), never the facts behind
it: the admission labs and vitals (the note's ``Labs:`` and ``Vitals:`` lines,
else the ``LABS:`` and ``VITALS:`` lines) and the findings the note states
without negating them.

Order of the checks, most specific first (cut-offs lie between the ranges of
:mod:`.profiles`; a later check's lab may be abnormal in an earlier
diagnosis): DKA (glucose >= 300 with bicarbonate <= 18, anion gap >= 20 or
beta-hydroxybutyrate >= 3); MI (troponin I >= 0.5); AKI (creatinine >= 2.25);
sepsis (lactate >= 2.5); heart failure (BNP >= 650); pneumonia
(procalcitonin >= 0.5, or WBC >= 12 with fever and pCO2 under 47); COPD
exacerbation (pCO2 >= 47); atrial fibrillation (HR >= 105 or an irregular
rhythm, with labs drawn). A record without
those labs (a documentation-biased one) falls back on vitals and findings,
and is often wrong: that is the bias doing its work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llm.data.synth.findings import SIGNS, SYMPTOMS
from llm.data.synth.labs import LAB_TESTS

NUMBER = r"(\d+(?:\.\d+)?)"
VITAL_PATTERNS = {
    "temp_c": re.compile(rf"\b(?:T|Temp) {NUMBER} C\b"),
    "heart_rate": re.compile(rf"\bHR {NUMBER}"),
    "sbp": re.compile(rf"\bBP {NUMBER}/"),
    "resp_rate": re.compile(rf"\bRR {NUMBER}"),
    "spo2": re.compile(rf"\bSpO2 {NUMBER}%"),
}
LAB_PATTERNS = {
    key: re.compile(rf"(?<![\w-]){re.escape(test.name)} {NUMBER}")
    for key, test in LAB_TESTS.items()
}
NEGATION_CUE = re.compile(r"\b(?:no|not|denies|denied|negative for|without)\b", re.IGNORECASE)
HISTORY_CUE = re.compile(r"\b(?:last seen|h/o|history of|prior|FHx|s/p)\b", re.IGNORECASE)
CLAUSE_END = re.compile(r"[.;\n]")


def _phrase(words: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(words)}(?!\w)", re.IGNORECASE)


FINDING_PATTERNS: dict[str, list[re.Pattern[str]]] = {
    **{k: [_phrase(w) for w in s.forms + s.misspellings] for k, s in SYMPTOMS.items()},
    **{
        k: [_phrase(w.split("{")[0].strip()) for w in s.present]
        for k, s in SIGNS.items()
        if k not in SYMPTOMS
    },
}


@dataclass
class RecordReading:
    """What the rule read from one task input."""

    labs: dict[str, float] = field(default_factory=dict)
    vitals: dict[str, float] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # findings stated and not negated
    denied: set[str] = field(default_factory=set)


def first_values(text: str, patterns: dict[str, re.Pattern[str]]) -> dict[str, float]:
    """The first number each pattern captures (the admission value: the note comes first)."""
    values = {}
    for key, pattern in patterns.items():
        match = pattern.search(text)
        if match:
            values[key] = float(match.group(1))
    return values


def read_findings(text: str) -> tuple[set[str], set[str]]:
    """Findings stated in ``text``: (present, denied).

    A finding is denied when a negation cue (no, not, denies, negative for,
    without) comes before it in the same clause (clauses end at ``.``, ``;``
    and line breaks): "Denies CP, palpitations, or SOB" denies all three. A
    clause about the past or the family ("last seen for chest pain", "h/o",
    "FHx") states nothing about this admission and is skipped.
    """
    present: set[str] = set()
    denied: set[str] = set()
    start = 0
    for end_match in [*CLAUSE_END.finditer(text), None]:
        end = end_match.start() if end_match else len(text)
        clause = text[start:end]
        start = end + 1
        if HISTORY_CUE.search(clause):
            continue
        cue = NEGATION_CUE.search(clause)
        for key, patterns in FINDING_PATTERNS.items():
            for pattern in patterns:
                for match in pattern.finditer(clause):
                    negated = cue is not None and cue.start() < match.start()
                    (denied if negated else present).add(key)
    return present, denied


def read_record(text: str) -> RecordReading:
    """Labs, vitals and findings of a ``diagnosis`` task input."""
    present, denied = read_findings(text)
    return RecordReading(
        labs=first_values(text, LAB_PATTERNS),
        vitals=first_values(text, VITAL_PATTERNS),
        present=present,
        denied=denied,
    )


def diagnose(reading: RecordReading) -> str:
    """The primary diagnosis the reading points to (see the module docstring for the order)."""
    lab, vital, has = reading.labs.get, reading.vitals.get, reading.present
    febrile = (vital("temp_c") or 37.0) >= 38.0
    pco2_high = (lab("pco2") or 0) >= 47
    if (lab("glucose") or 0) >= 300 and (
        (lab("bicarbonate") or 99) <= 18 or (lab("anion_gap") or 0) >= 20 or (lab("bhb") or 0) >= 3
    ):
        return "diabetic_ketoacidosis"
    if (lab("troponin") or 0) >= 0.5:
        return "myocardial_infarction"
    if (lab("creatinine") or 0) >= 2.25:
        return "acute_kidney_injury"
    if (lab("lactate") or 0) >= 2.5:
        return "sepsis"
    if (lab("bnp") or 0) >= 650:
        return "heart_failure"
    if (lab("procalcitonin") or 0) >= 0.5 or (
        (lab("wbc") or 0) >= 12 and febrile and not pco2_high
    ):
        return "pneumonia"
    if pco2_high:
        return "copd_exacerbation"
    labs_drawn = any(k in reading.labs for k in ("troponin", "lactate", "bnp", "creatinine"))
    if labs_drawn and ((vital("heart_rate") or 0) >= 105 or "irregular_rhythm" in has):
        return "atrial_fibrillation"
    return fallback(reading, febrile)


def fallback(reading: RecordReading, febrile: bool) -> str:
    """Without the discriminating labs: vitals first, then what the note states."""
    vital, has = reading.vitals.get, reading.present
    hr, sbp = vital("heart_rate") or 80, vital("sbp") or 120
    spo2, rr = vital("spo2") or 97, vital("resp_rate") or 16
    if febrile:
        return "sepsis" if sbp < 100 or spo2 >= 95 else "pneumonia"
    if spo2 < 92 or has & {"wheezing", "wheezes", "orthopnea", "jvd"}:
        return "heart_failure" if sbp >= 132 or has & {"orthopnea", "jvd"} else "copd_exacerbation"
    if hr >= 105 or "irregular_rhythm" in has:
        return "diabetic_ketoacidosis" if rr >= 25 or "polyuria" in has else "atrial_fibrillation"
    if has & {"chest_pain", "diaphoretic"}:
        return "myocardial_infarction"
    if has & {"low_urine", "dry_mucosa"}:
        return "acute_kidney_injury"
    return "sepsis" if sbp < 100 else "myocardial_infarction"


def predict_diagnosis(text: str) -> str:
    """The primary diagnosis of a ``diagnosis`` task input (its user turn), by rule.

    Args:
        text: the rendered input: note sections, then the LABS and VITALS lines.

    Returns:
        One of :data:`llm.data.synth.profiles.DIAGNOSES`.
    """
    return diagnose(read_record(text))
