from __future__ import annotations

from llm.data.schema import Note
from llm.data.tasks.base import format_sections, no_section, note_sections, strip_signoff


def test_strip_signoff_drops_only_trailing_sign_off_paragraphs() -> None:
    assert strip_signoff("1. Clear lungs.\n\nElectronically signed by Dr. A, 1/2/31") == (
        "1. Clear lungs."
    )
    assert strip_signoff(
        "Plan.\n\nSigned: Dr. B on 2131-01-01\n\n  \nConfirmed by Dr. C\non x"
    ) == ("Plan.")
    assert strip_signoff("Dr. Jones in clinic in 1 week.") == "Dr. Jones in clinic in 1 week."
    # a sign-off-looking paragraph in the middle is text, not a sign-off
    assert (
        strip_signoff("A.\n\nSigned consent obtained.\n\nB.")
        == "A.\n\nSigned consent obtained.\n\nB."
    )


def test_note_without_headers_is_kept_whole() -> None:
    note = Note(note_id="n", type="progress_note", text="Seen today.\n\nDictated by Dr. X\n")
    assert note_sections(note) == {"": "Seen today."}
    assert format_sections(note_sections(note)) == "Seen today."


def test_format_sections_inline_short_bodies_and_keep_empty_headers() -> None:
    sections = {"A": "one line", "B": "two\nlines", "C": ""}
    assert format_sections(sections) == "A: one line\n\nB:\ntwo\nlines\n\nC:"
    assert format_sections(sections, ["C", "X", "A"]) == "C:\n\nA: one line"
    assert format_sections({"PMH": "- Depression", "IMP": "1. Clear"}) == (
        "PMH:\n- Depression\n\nIMP:\n1. Clear"
    )


def test_skip_reason_keys() -> None:
    assert no_section("BRIEF HOSPITAL COURSE") == "no_section:brief_hospital_course"
    assert no_section("FOLLOW-UP") == "no_section:follow_up"
