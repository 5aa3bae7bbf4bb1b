"""Notes: contract sections, exact PHI spans of every identifier type, no diagnosis in the H&P."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pydicom

from llm.data.phi import PHI_ENTITIES, NotePhi
from llm.data.sections import split_sections
from tests.data.synth.helpers import index_encounter, load, note_of

SECTIONS = {
    "progress_note": [
        "CHIEF COMPLAINT",
        "HISTORY OF PRESENT ILLNESS",
        "PAST MEDICAL HISTORY",
        "SOCIAL HISTORY",
        "PHYSICAL EXAM",
        "ASSESSMENT AND PLAN",
    ],
    "discharge_summary": [
        "ADMISSION DATE",
        "DISCHARGE DATE",
        "CHIEF COMPLAINT",
        "HISTORY OF PRESENT ILLNESS",
        "BRIEF HOSPITAL COURSE",
        "DISCHARGE DIAGNOSIS",
        "DISCHARGE CONDITION",
        "DISCHARGE DISPOSITION",
        "FOLLOW-UP",
    ],
    "radiology_report": ["EXAM", "INDICATION", "FINDINGS", "IMPRESSION"],
    "ecg_report": ["FINDINGS", "INTERPRETATION"],
}
# words that name each category in the admission H&P
CATEGORY_WORDS = {
    "pneumonia": r"pneumonia|\bPNA\b|\bCAP\b",
    "heart_failure": r"heart failure|\bCHF\b|\bADHF\b",
    "copd_exacerbation": r"\bCOPD\b|chronic obstructive|\bAECOPD\b",
    "sepsis": r"sepsis|septic",
    "acute_kidney_injury": r"kidney injury|\bAKI\b|renal failure",
    "atrial_fibrillation": r"atrial fibrillation|\bafib\b|\bAF\b",
    "diabetic_ketoacidosis": r"ketoacidosis|\bDKA\b",
    "myocardial_infarction": r"myocardial infarction|\bN?STEMI\b|heart attack|\bMI\b|\bACS\b",
}
SENTENCE_END = re.compile(r"(?<=\.) |\n")


def categories_named(sentence: str) -> set[str]:
    return {k for k, words in CATEGORY_WORDS.items() if re.search(words, sentence, re.I)}


SHAPES = {
    "PHONE": r"(\(\d{3}\) |\d{3}[-.])555[-.]01\d\d",
    "FAX": r"(\(\d{3}\) |\d{3}[-.])555[-.]01\d\d",
    "SSN": r"9\d\d-\d\d-\d{4}",
    "EMAIL": r"[a-z']+\d+@[a-z]+\.example",
    "MRN": r"\d{8}|ACC\d{8}",
    "AGE": r"(9\d|1\d\d)",
}
DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%B %d, %Y", "%d-%b-%Y", "%m/%d/%y", "%b %d, %Y")


def _is_date(text: str) -> bool:
    text = text.split(" ")[0] if re.match(r"[\d/-]+ \d\d:\d\d$", text) else text
    text = re.sub(r" \d\d:\d\d$", "", text)
    for fmt in DATE_FORMATS:
        try:
            datetime.strptime(text, fmt)
            return True
        except ValueError:
            continue
    return False


def test_index_notes_have_the_contract_sections(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for r in records:
        for kind, expected in SECTIONS.items():
            sections = split_sections(note_of(r, kind).text)
            assert [k for k in sections if k] == expected, (r.patient_id, kind)
            assert all(sections[k] for k in expected), (r.patient_id, kind)


def test_admission_note_names_the_diagnosis_only_among_others(cohort_dir: Path) -> None:
    """The true category is named only in a differential with others, or as family history."""
    records, _ = load(cohort_dir)
    differentials = 0
    for r in records:
        label = r.labels.primary_diagnosis or ""
        for sentence in SENTENCE_END.split(note_of(r, "progress_note").text):
            named = categories_named(sentence)
            if label not in named or sentence.startswith("- FHx: "):
                continue
            assert len(named) >= 3, (r.patient_id, sentence)  # the true one and two others
            differentials += 1
    assert differentials >= len(records) // 10


def test_notes_vary(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for kind in SECTIONS:
        texts = [re.sub(r"\d", "#", note_of(r, kind).text) for r in records]
        assert len(set(texts)) == len(texts)
    openings = {
        split_sections(note_of(r, "progress_note").text)["HISTORY OF PRESENT ILLNESS"][:40]
        for r in records
    }
    assert len(openings) > len(records) // 2


def test_phi_spans_are_exact_and_typed(cohort_dir: Path) -> None:
    records, spans = load(cohort_dir)
    notes = {n.note_id: (r, n) for r in records for n in r.all_notes()}
    seen: set[str] = set()
    for note_id, row in spans.items():
        phi = NotePhi.model_validate(row)
        record, note = notes[note_id]
        assert phi.patient_id == record.patient_id
        previous_end = 0
        for span in sorted(phi.spans, key=lambda s: s.start):
            value = note.text[span.start : span.end]
            assert span.start >= previous_end and value == value.strip() and value, (note_id, span)
            previous_end = span.end
            seen.add(span.entity_type)
            if span.entity_type in SHAPES:
                assert re.fullmatch(SHAPES[span.entity_type], value), (span.entity_type, value)
            elif span.entity_type == "DATE":
                assert _is_date(value), value
            elif span.entity_type == "NAME":
                assert re.fullmatch(r"[A-Z][A-Za-z' ]+", value), value
    # the templates write no URLs, IP addresses, device serials or vehicle identifiers
    written = set(PHI_ENTITIES) - {"URL", "IP_ADDRESS", "DEVICE_ID", "VEHICLE_ID"}
    assert seen == written, written - seen


def test_identifiers_appear_only_inside_spans(cohort_dir: Path) -> None:
    """Mask every span: the patient's name, MRN, and age over 89 must then be gone."""
    records, spans = load(cohort_dir)
    for r in records:
        ds = pydicom.dcmread(cohort_dir / index_encounter(r).images[0].path)
        last, first = str(ds.PatientName).split("^")
        for note in r.all_notes():
            masked = list(note.text)
            for s in spans[note.note_id]["spans"]:
                masked[s["start"] : s["end"]] = "\0" * (s["end"] - s["start"])
            rest = "".join(masked)
            assert ds.PatientID not in rest
            assert not re.search(rf"\b{re.escape(last)}\b", rest), (note.note_id, last)
            assert not re.search(rf"\b{re.escape(first)} ", rest), (note.note_id, first)
            if (r.demographics.age or 0) > 89:
                assert not re.search(rf"\b{r.demographics.age}-year-old", rest)


def test_oldest_patients_ages_are_phi(cohort_dir: Path) -> None:
    records, spans = load(cohort_dir)
    oldest = [r for r in records if (r.demographics.age or 0) > 89]
    assert oldest, "the test cohort should include a patient over 89"
    for r in oldest:
        hp = note_of(r, "progress_note")
        ages = [
            hp.text[s["start"] : s["end"]]
            for s in spans[hp.note_id]["spans"]
            if s["entity_type"] == "AGE"
        ]
        assert ages and set(ages) == {str(r.demographics.age)}
