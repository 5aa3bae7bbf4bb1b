from __future__ import annotations

from llm.data.sections import get_section, split_sections

NOTE = """Admission note, Ward 4
CHIEF COMPLAINT: cough and fever
HISTORY OF PRESENT ILLNESS:
Three days of productive cough.
Temperature 38.9 at home.
PAST MEDICAL HISTORY: COPD, HTN
WBC: 14.2 on arrival
"""


def test_sections_in_order_with_preamble() -> None:
    sections = split_sections(NOTE)
    assert list(sections) == [
        "",
        "CHIEF COMPLAINT",
        "HISTORY OF PRESENT ILLNESS",
        "PAST MEDICAL HISTORY",
        "WBC",
    ]
    assert sections[""] == "Admission note, Ward 4"
    assert (
        sections["HISTORY OF PRESENT ILLNESS"]
        == "Three days of productive cough.\nTemperature 38.9 at home."
    )


def test_lowercase_and_midline_colons_are_not_headers() -> None:
    sections = split_sections(
        "FINDINGS: Opacity in the right lower lobe: likely consolidation.\nImpression: none"
    )
    assert sections == {
        "FINDINGS": "Opacity in the right lower lobe: likely consolidation.\nImpression: none"
    }


def test_repeated_header_keeps_both_bodies() -> None:
    assert split_sections("NOTE: a\nNOTE: b") == {"NOTE": "a\n\nb"}


def test_get_section_falls_back_in_order() -> None:
    assert get_section(NOTE, "IMPRESSION", "CHIEF COMPLAINT") == "cough and fever"
    assert get_section(NOTE, "IMPRESSION") is None
    assert split_sections("") == {}
