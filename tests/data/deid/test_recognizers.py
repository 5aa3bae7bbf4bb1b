"""Each recognizer on hand-written sentences: PHI is found, near misses are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.data.deid.engine import Deidentifier

from .conftest import KEY, found


@pytest.mark.parametrize(
    ("text", "phi", "entity"),
    [
        ("MRN: 00482913 on file", "00482913", "MRN"),
        ("Medical record number 55102938.", "55102938", "MRN"),
        ("Acct #: 7719-2284", "7719-2284", "MRN"),
        ("seen 01/02/2131 in clinic", "01/02/2131", "DATE"),
        ("admitted 2131-01-02 for cough", "2131-01-02", "DATE"),
        ("on Jan 2, 2131 she fell", "Jan 2, 2131", "DATE"),
        ("since the 2nd of January she has", "2nd of January", "DATE"),
        ("drawn at 2131-01-02T08:15:00 today", "2131-01-02T08:15:00", "DATE"),
        ("signed 12/9/23 by", "12/9/23", "DATE"),
        ("Date of birth: 08-Sep-1966", "08-Sep-1966", "DATE"),
        ("He is a 92-year-old man", "92", "AGE"),
        ("Age 93. Lives alone", "93", "AGE"),
        ("a 95 yo woman", "95", "AGE"),
        ("call 617-555-0142 with results", "617-555-0142", "PHONE"),
        ("phone (617) 555-0142", "(617) 555-0142", "PHONE"),
        ("cell 373.555.0182", "373.555.0182", "PHONE"),
        ("Fax: (617) 555-0199", "(617) 555-0199", "FAX"),
        ("e-mail jane.doe@example.net please", "jane.doe@example.net", "EMAIL"),
        ("SSN 123-45-6789", "123-45-6789", "SSN"),
        (
            "lives at 12 Oak Street, Boston, MA 02115 with",
            "12 Oak Street, Boston, MA 02115",
            "ADDRESS",
        ),
        ("moved to Dayton, OH 45402 last year", "Dayton, OH 45402", "ADDRESS"),
        ("Transferred from St. Mary's Hospital today", "St. Mary's Hospital", "HOSPITAL"),
        ("seen at Lakeside Medical Center ED", "Lakeside Medical Center", "HOSPITAL"),
        ("follow up at Salem Primary Care Associates", "Salem Primary Care Associates", "HOSPITAL"),
        (
            "Memorial Regional Medical Center\nAdmission Note",
            "Memorial Regional Medical Center",
            "HOSPITAL",
        ),
        ("seen by Dr. Amy Castillo today", "Amy Castillo", "NAME"),
        ("Mrs. Whitfield reports", "Whitfield", "NAME"),
        ("Patient: Eleanor Whitfield  MRN", "Eleanor Whitfield", "NAME"),
        ("Name: WHITFIELD, ELEANOR", "WHITFIELD, ELEANOR", "NAME"),
        ("Electronically signed by Priya Raman, MD", "Priya Raman", "NAME"),
        ("her daughter Grace agrees", "Grace", "NAME"),
        ("Linda Okonkwo is a retired teacher", "Linda Okonkwo", "NAME"),
        ("Tobias Nguyen presented with", "Tobias Nguyen", "NAME"),
    ],
)
def test_recognizes_phi(tagger: Deidentifier, text: str, phi: str, entity: str) -> None:
    assert (phi, entity) in found(tagger, text)


@pytest.mark.parametrize(
    "text",
    [
        "WBC 12.1, Hgb 9.8, Cr 1.42 mg/dL.",
        "Principal diagnosis ICD J18.9; also I50.9 and E11.65.",
        "BP 130/80, HR 88, RR 16, SpO2 96% on 2 L.",
        "Pain 5/10. Take 1/2 tablet twice daily. Strength 4/5 in the left leg.",
        "Murmur 2/6 at the apex. Ejection fraction 35-40%.",
        "A 67-year-old man; age 45 sister; 89 yo neighbour.",  # ages under 90 are not PHI
        "Follow up in Cardiology Clinic and the Heart Failure Clinic.",
        "Troponin 0.04 at 10:30; lactate 2.1 at 11:45.",
        "Smith, MD reviewed the chart.",
        "Dose 500 mg every 12 hours for 7 days; 3 may be needed.",
        "Chest X-ray PA and lateral; no effusion. QTc 452 ms, PR 168 ms.",
    ],
)
def test_near_misses_are_not_phi(tagger: Deidentifier, text: str) -> None:
    hits = [(t, e) for t, e in found(tagger, text) if e != "NAME" or t != "Smith"]
    assert hits == []


def test_fax_needs_fax_context(tagger: Deidentifier) -> None:
    text = "Phone 617-555-0142, fax 617-555-0199."
    assert found(tagger, text) == [("617-555-0142", "PHONE"), ("617-555-0199", "FAX")]


def test_names_found_in_one_note_are_found_in_the_others(
    tagger: Deidentifier, spacy_cache: Path
) -> None:
    notes = ["Patient: Eleanor Whitfield", "Whitfield tolerated diet. Eleanor walked."]
    second = tagger.analyze_patient(notes)[1]
    assert [notes[1][d.start : d.end] for d in second] == ["Whitfield", "Eleanor"]
    rules = Deidentifier(strategy="tag", key=KEY, cache_dir=spacy_cache, ner="rules")
    assert rules.analyze_patient([notes[1]])[0] == []  # alone, no rule marks them as names
