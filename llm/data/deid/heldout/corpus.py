"""The held-out evaluation corpus: notes that the recognizers were not built from.

:func:`build_corpus` writes ``n_notes`` notes in five styles (nursing notes,
discharge summaries, radiology reports, patient portal messages, referral
letters) from the templates of :mod:`llm.data.deid.heldout.templates`, with
PHI of every HIPAA Safe Harbor type in headers, tables, lists, signature lines
and sentences, and clinical terms (drugs, eponyms, units, abbreviations) that
must be kept. Every span is recorded as it is written, so its offsets are
exact. Names come only from ``names.tsv`` (held out of every recognizer
lexicon by ``scripts/build_name_lexicon.py``), with their country and region of
origin; patients are drawn from the regions in turn and clinicians likewise,
so every region gets about the same number of name mentions. The same
``(n_notes, seed)`` gives the same corpus.

Kept apart from tuning: this package imports nothing the recognizers use
(no ``recognizers``, ``nlp``, ``engine`` or lexicon), and nothing that detects
PHI reads this folder (a test checks it). Its own templates, city names and
drug lists live here and nowhere else.
"""

from __future__ import annotations

import csv
import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from llm.data.deid.evaluate import GoldNote
from llm.data.deid.heldout import templates as tpl
from llm.data.io import record_to_json
from llm.data.phi import PHI_ENTITIES, KeepSpan, NameOrigin, NotePhi, PhiSpan
from llm.data.schema import Encounter, Note, PatientRecord

NAMES_FILE = Path(__file__).with_name("names.tsv")
STYLES: tuple[str, ...] = tuple(tpl.TEMPLATES)

# The Safe Harbor identifier kinds planted, each with the PHI entity types it may be
# filed as in phi_spans.jsonl: the first one llm.data.phi defines (record and account
# numbers of every kind are MRN there).
SAFE_HARBOR_KINDS: dict[str, tuple[str, ...]] = {
    "NAME": ("NAME",),
    "STREET": ("ADDRESS",),
    "CITY": ("ADDRESS",),
    "ZIP": ("ADDRESS",),
    "DATE": ("DATE",),
    "AGE": ("AGE",),
    "PHONE": ("PHONE",),
    "FAX": ("FAX",),
    "EMAIL": ("EMAIL",),
    "SSN": ("SSN",),
    "MRN": ("MRN",),
    "HEALTH_PLAN": ("MRN",),
    "ACCOUNT": ("MRN",),
    "LICENSE": ("MRN",),
    "VEHICLE": ("VEHICLE_ID", "MRN"),
    "DEVICE": ("DEVICE_ID", "MRN"),
    "URL": ("URL", "MRN"),
    "IP": ("IP_ADDRESS", "MRN"),
    "ID": ("MRN",),
}
TERM_KINDS = ("drug", "eponym", "unit", "abbreviation")
_SLOT = re.compile(r"\{(\w+)\}|\[\[([^|\]]+)\|(\w+)\]\]")


def entity_for(kind: str) -> str:
    """The PHI entity type (of :data:`llm.data.phi.PHI_ENTITIES`) a Safe Harbor kind is filed as."""
    return next(e for e in SAFE_HARBOR_KINDS[kind] if e in PHI_ENTITIES)


@dataclass(frozen=True)
class HeldoutName:
    """One line of ``names.tsv``."""

    name: str
    kind: str  # "first" or "last"
    country: str
    region: str
    gender: str  # "M", "F" or "" (unknown)


def read_heldout_names(path: Path = NAMES_FILE) -> list[HeldoutName]:
    """Read ``names.tsv`` (comment lines start with ``#``)."""
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return [
            HeldoutName(r["name"], r["kind"], r["country"], r["region"], r["gender"]) for r in rows
        ]


@dataclass(frozen=True)
class PlantedSpan:
    """A span written into a note: PHI (a Safe Harbor kind) or a clinical term to keep."""

    start: int
    end: int
    kind: str
    country: str | None = None  # names only
    region: str | None = None


@dataclass
class HeldoutNote:
    """One note of the corpus with its PHI and clinical-term spans."""

    patient_id: str
    note_id: str
    style: str
    text: str
    phi: list[PlantedSpan] = field(default_factory=list)
    keep: list[PlantedSpan] = field(default_factory=list)


@dataclass
class HeldoutCorpus:
    """The notes of one ``(n_notes, seed)``, grouped by patient in order."""

    seed: int
    notes: list[HeldoutNote]

    def by_patient(self) -> dict[str, list[HeldoutNote]]:
        """Notes per patient, in order (the de-identifier analyses a patient's notes together)."""
        out: dict[str, list[HeldoutNote]] = {}
        for note in self.notes:
            out.setdefault(note.patient_id, []).append(note)
        return out

    def gold(self, *, types: Literal["kind", "entity"] = "kind") -> dict[tuple[str, str], GoldNote]:
        """True spans for :func:`llm.data.deid.evaluate.evaluate_detections`.

        Args:
            types: label spans by Safe Harbor kind (``STREET``, ``VEHICLE``...) or
                by the PHI entity type they are filed as.
        """
        out: dict[tuple[str, str], GoldNote] = {}
        for line, note in enumerate(self.notes, start=1):
            spans = [
                (s.start, s.end, s.kind if types == "kind" else entity_for(s.kind))
                for s in note.phi
            ]
            origins = {
                i: (s.country, s.region)
                for i, s in enumerate(note.phi)
                if s.country is not None and s.region is not None
            }
            keep = [(k.start, k.end, k.kind) for k in note.keep]
            out[(note.patient_id, note.note_id)] = GoldNote(line, spans, origins, keep)
        return out

    def name_mentions(self, by: Literal["region", "country"] = "region") -> Counter[str]:
        """Name spans per region (or country) of origin."""
        return Counter(
            (s.region if by == "region" else s.country) or "?"
            for n in self.notes
            for s in n.phi
            if s.kind == "NAME"
        )

    def records(self) -> list[PatientRecord]:
        """One valid record per patient holding their notes (see :func:`patient_record`)."""
        return [patient_record(pid, notes) for pid, notes in self.by_patient().items()]

    def write(self, folder: Path) -> HeldoutFiles:
        """Write ``notes.jsonl`` (ids, style, text), ``phi_spans.jsonl`` and ``records.jsonl``.

        ``records.jsonl`` holds the same notes as patient records, so that
        ``clinical-llm data deid records.jsonl OUT --evaluate`` scores them
        against ``phi_spans.jsonl`` (whose ``(patient_id, note_id)`` keys match).

        Returns:
            The three paths.
        """
        folder.mkdir(parents=True, exist_ok=True)
        files = HeldoutFiles(
            folder / "notes.jsonl", folder / "phi_spans.jsonl", folder / "records.jsonl"
        )
        with files.notes.open("w", encoding="utf-8") as nf, files.spans.open("w") as sf:
            for note in self.notes:
                row = {k: getattr(note, k) for k in ("patient_id", "note_id", "style", "text")}
                nf.write(json.dumps(row, ensure_ascii=False) + "\n")
                sf.write(phi_line(note).model_dump_json() + "\n")
        with files.records.open("w", encoding="utf-8", newline="\n") as rf:
            for record in self.records():
                rf.write(record_to_json(record) + "\n")
        return files


class HeldoutFiles(NamedTuple):
    """The files :meth:`HeldoutCorpus.write` writes."""

    notes: Path
    spans: Path
    records: Path


# The record note type of each style (llm.data.schema.NOTE_TYPES).
NOTE_TYPE_OF_STYLE = {
    "nursing_note": "nursing_note",
    "discharge_summary": "discharge_summary",
    "radiology_report": "radiology_report",
    "portal_message": "other",
    "referral_letter": "other",
}
# Records need an encounter time; the notes carry their own dates in their text. Its year
# is the year the de-identifier assumes for dates written without one.
ENCOUNTER_TIME = "2020-01-01T00:00:00"


def patient_record(patient_id: str, notes: list[HeldoutNote]) -> PatientRecord:
    """A patient's notes as a record: one encounter at :data:`ENCOUNTER_TIME` holding them all.

    Note ids and texts are the corpus's, so spans line up; demographics are left unknown
    (the corpus plants ages and sexes in the text only).
    """
    return PatientRecord(
        patient_id=patient_id,
        encounters=[
            Encounter(
                encounter_id=f"{patient_id}-E1",
                time=ENCOUNTER_TIME,
                notes=[
                    Note(note_id=n.note_id, type=NOTE_TYPE_OF_STYLE[n.style], text=n.text)
                    for n in notes
                ],
            )
        ],
        source="heldout",
    )


def phi_line(note: HeldoutNote) -> NotePhi:
    """The ``phi_spans.jsonl`` line of a note (origins and clinical terms included)."""
    spans = [
        PhiSpan(
            start=s.start,
            end=s.end,
            entity_type=entity_for(s.kind),
            origin=NameOrigin(country=s.country, region=s.region)
            if s.country is not None and s.region is not None
            else None,
        )
        for s in note.phi
    ]
    keep = [KeepSpan(start=k.start, end=k.end, kind=k.kind) for k in note.keep]
    return NotePhi(patient_id=note.patient_id, note_id=note.note_id, spans=spans, keep=keep)


# ------------------------------------------------------------------ values
@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    country: str
    region: str


@dataclass(frozen=True)
class _Slot:
    value: str
    kind: str | None  # a Safe Harbor kind, a term kind, or None for plain text
    person: _Person | None = None


class _NamePool:
    def __init__(self, names: list[HeldoutName]) -> None:
        self.first: dict[str, list[HeldoutName]] = {}
        self.last: dict[str, list[HeldoutName]] = {}
        self.countries: dict[str, list[str]] = {}
        for n in names:
            (self.first if n.kind == "first" else self.last).setdefault(n.country, []).append(n)
            region = self.countries.setdefault(n.region, [])
            if n.country not in region:
                region.append(n.country)
        self.regions = sorted(
            r for r, cs in self.countries.items() if any(c in self.first for c in cs)
        )
        self.surnames = sorted({n.name for n in names if n.kind == "last"})

    def person(self, rng: random.Random, region: str, sex: str) -> _Person:
        countries = [c for c in self.countries[region] if c in self.first and c in self.last]
        return self.relative(rng, rng.choice(countries), region, sex)

    def relative(
        self, rng: random.Random, country: str, region: str, sex: str, last: str | None = None
    ) -> _Person:
        firsts = [n for n in self.first[country] if n.gender in (sex, "")] or self.first[country]
        surname = last or rng.choice(self.last[country]).name
        return _Person(rng.choice(firsts).name, surname, country, region)


def _ascii(word: str) -> str:
    folded = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower()) or "pt"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int, alphabet: str = "ABCDEFGHJKLMNPRSTUVWXYZ") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _date_text(rng: random.Random, d: date) -> str:
    month, mon = d.strftime("%B"), d.strftime("%b")
    forms = (
        f"{d.month}/{d.day}/{d.year}",
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        d.isoformat(),
        f"{month} {d.day}, {d.year}",
        f"{mon} {d.day}, {d.year}",
        f"{d.day:02d}-{mon}-{d.year}",
        f"{d.day} {month} {d.year}",
        f"{d.month}/{d.day}/{d.year % 100:02d}",
        f"{month} {d.day}",
        f"{d.day}.{d.month:02d}.{d.year}",
    )
    return rng.choice(forms)


def _datetime_text(rng: random.Random, d: datetime) -> str:
    forms = (
        f"{d.month:02d}/{d.day:02d}/{d.year} {d.hour:02d}:{d.minute:02d}",
        f"{d.date().isoformat()}T{d.hour:02d}:{d.minute:02d}",
        f"{d.month}/{d.day}/{d.year} at {d.hour}:{d.minute:02d}",
        f"{d.strftime('%b')} {d.day}, {d.year} {d.hour:02d}{d.minute:02d}h",
    )
    return rng.choice(forms)


def _phone(rng: random.Random) -> str:
    a, b = (f"{rng.randint(2, 9)}{_digits(rng, 2)}" for _ in range(2))
    c = _digits(rng, 4)
    forms = (f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"{a} {b} {c}")
    return rng.choice(forms)


def _medicare_number(rng: random.Random) -> str:
    # the 11-character Medicare beneficiary identifier: 1EG4-TE5-MK72
    d, a = (lambda: str(rng.randint(1, 9))), (lambda: _letters(rng, 2))
    return f"{d()}{a()}{d()}-{a()}{d()}-{a()}{_digits(rng, 2)}"


def _identifiers(rng: random.Random) -> dict[str, str]:
    vin_chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    area = rng.choice([n for n in range(1, 900) if n != 666])
    ssn = (f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}")
    return {
        "mrn": rng.choice(
            (
                _digits(rng, 8),
                f"{_letters(rng, 1)}{_digits(rng, 7)}",
                f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 2)}",
            )
        ),
        "ssn": rng.choice(("-".join(ssn), " ".join(ssn), "".join(ssn))),
        "plan": rng.choice(
            (
                f"{_letters(rng, 3)}{_digits(rng, 9)}",
                f"W{_digits(rng, 9)}",
                _medicare_number(rng),
                f"{_digits(rng, 8)}A",
            )
        ),
        "acct": rng.choice(
            (
                f"000{_digits(rng, 9)}",
                f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}",
                f"A-{_digits(rng, 8)}",
            )
        ),
        "license": rng.choice(
            (
                f"{_letters(rng, 1)}{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
                f"MD.{_digits(rng, 7)}",
                f"{_letters(rng, 2)}{_digits(rng, 7)}",
                f"{_letters(rng, 1)}{_digits(rng, 3)} {_digits(rng, 4)} {_digits(rng, 4)}",
            )
        ),
        "other_id": rng.choice(
            (
                f"WC-{rng.randint(2015, 2024)}-{_digits(rng, 6)}",
                f"{_letters(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
                f"R{_digits(rng, 2)}-{_digits(rng, 7)}",
            )
        ),
        "plate": rng.choice(
            (
                f"{rng.randint(1, 9)}{_letters(rng, 3)}{_digits(rng, 3)}",
                f"{_letters(rng, 3)}-{_digits(rng, 4)}",
                f"{rng.randint(1, 9)}{_letters(rng, 3)} {_digits(rng, 3)}",
            )
        ),
        "vin": "".join(rng.choice(vin_chars) for _ in range(17)),
        "device": rng.choice(
            (
                f"{_letters(rng, 3)}{_digits(rng, 6)}{_letters(rng, 1)}",
                f"SN-{_digits(rng, 4)}-{_letters(rng, 3)}-{_digits(rng, 4)}",
                f"(01)00{_digits(rng, 12)}(21){_letters(rng, 1)}{_digits(rng, 7)}",
                f"G{_digits(rng, 1)}{_letters(rng, 1)}{_digits(rng, 2)}-{_digits(rng, 4)}",
            )
        ),
        "ip": rng.choice(
            (
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"2001:db8:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}",
            )
        ),
    }


def _street(rng: random.Random, pool: _NamePool) -> str:
    street = f"{rng.randint(2, 9899)} {rng.choice(pool.surnames)} {rng.choice(tpl.STREET_TYPES)}"
    unit = (f", Apt {rng.randint(1, 40)}{rng.choice('ABCD')}", f" #{rng.randint(100, 999)}")
    return street + rng.choice(("", "", *unit))


def _zip(rng: random.Random) -> str:
    return _digits(rng, 5) + rng.choice(("", "", f"-{_digits(rng, 4)}"))


@dataclass
class _Cast:
    """Who appears in one patient's notes."""

    patient: _Person
    relative: _Person
    sex: str
    age: int
    doctors: tuple[_Person, _Person, _Person]
    nurses: tuple[_Person, _Person]


def _name_slots(role: str, p: _Person) -> dict[str, _Slot]:
    def s(value: str) -> _Slot:
        return _Slot(value, "NAME", p)

    return {
        f"{role}_full": s(f"{p.first} {p.last}"),
        f"{role}_first": s(p.first),
        f"{role}_last": s(p.last),
        f"{role}_last_first": s(f"{p.last}, {p.first}"),
        f"{role}_last_first_upper": s(f"{p.last}, {p.first}".upper()),
        f"{role}_last_upper": s(p.last.upper()),
        f"{role}_first_upper": s(p.first.upper()),
        f"{role}_first_lower": s(p.first.lower()),
        f"{role}_last_lower": s(p.last.lower()),
        f"{role}_initial": s(f"{p.first[0]}. {p.last}"),
    }


def _slots(rng: random.Random, cast: _Cast, pool: _NamePool) -> dict[str, _Slot]:
    slots: dict[str, _Slot] = {}
    roles = {"pt": cast.patient, "rel": cast.relative, "rn": cast.nurses[0], "rn2": cast.nurses[1]}
    roles.update({f"dr{i + 1}": d for i, d in enumerate(cast.doctors)})
    for role, person in roles.items():
        slots.update(_name_slots(role, person))
    day = date(2016, 1, 1) + timedelta(days=rng.randint(0, 3287))
    for i in range(1, 5):
        slots[f"date{i}"] = _Slot(_date_text(rng, day + timedelta(days=rng.randint(0, 60))), "DATE")
    for i in range(1, 4):
        moment = datetime(day.year, day.month, day.day, rng.randint(0, 23), rng.randint(0, 59))
        slots[f"datetime{i}"] = _Slot(_datetime_text(rng, moment + timedelta(hours=i * 9)), "DATE")
    dob = date(day.year - cast.age, 1, 1) + timedelta(days=rng.randint(0, 364))
    slots["dob"] = _Slot(_date_text(rng, dob), "DATE")
    slots["age"] = _Slot(str(cast.age), "AGE" if cast.age > 89 else None)
    kinds = {"mrn": "MRN", "ssn": "SSN", "plan": "HEALTH_PLAN", "acct": "ACCOUNT",
             "license": "LICENSE", "other_id": "ID", "plate": "VEHICLE", "vin": "VEHICLE",
             "device": "DEVICE", "ip": "IP"}  # fmt: skip
    slots.update({k: _Slot(v, kinds[k]) for k, v in _identifiers(rng).items()})
    slots["phone1"], slots["phone2"] = _Slot(_phone(rng), "PHONE"), _Slot(_phone(rng), "PHONE")
    slots["fax"] = _Slot(_phone(rng), "FAX")
    pt, dr = cast.patient, cast.doctors[0]
    mail = rng.choice(("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me"))
    email = f"{_ascii(pt.first)}.{_ascii(pt.last)}{rng.randint(1, 99)}@{mail}"
    slots["email_pt"] = _Slot(email, "EMAIL")
    slots["email_dr"] = _Slot(f"{_ascii(dr.first)[0]}{_ascii(dr.last)}@lakeshore-med.org", "EMAIL")
    slots["url"] = _Slot(
        rng.choice((
            f"https://portal.lakeshore-med.org/mychart/msg/{_digits(rng, 9)}",
            f"https://www.facebook.com/{_ascii(pt.first)}.{_ascii(pt.last)}.{rng.randint(1, 99)}",
            f"http://{_ascii(pt.last)}-family.net/care-notes",
            f"pacs.valley-imaging.org/viewer?study={_digits(rng, 10)}",
        )),
        "URL",
    )  # fmt: skip
    for suffix in ("", "_dr"):
        slots[f"street{suffix}"] = _Slot(_street(rng, pool), "STREET")
        slots[f"city{suffix}"] = _Slot(rng.choice(tpl.CITIES), "CITY")
        slots[f"zip{suffix}"] = _Slot(_zip(rng), "ZIP")
    slots["state"] = _Slot(rng.choice(tpl.STATES), None)
    slots["room"] = _Slot(str(rng.randint(10, 60)), None)
    slots["sex_word"] = _Slot("woman" if cast.sex == "F" else "man", None)
    slots["pt_sex_short"] = _Slot(cast.sex, None)
    for i, drug in enumerate(rng.sample(tpl.DRUGS, 3), start=1):
        slots[f"drug{i}"] = _Slot(drug, "drug")
    for i, eponym in enumerate(rng.sample(tpl.EPONYMS, 2), start=1):
        slots[f"eponym{i}"] = _Slot(eponym, "eponym")
    return slots


def _render(
    template: str, slots: dict[str, _Slot], patient_id: str, note_id: str, style: str
) -> HeldoutNote:
    parts: list[str] = []
    length = 0
    note = HeldoutNote(patient_id, note_id, style, "")
    pos = 0
    for m in _SLOT.finditer(template):
        literal = template[pos : m.start()]
        parts.append(literal)
        length += len(literal)
        pos = m.end()
        slot = slots[m[1]] if m[1] else _Slot(m[2], m[3])
        start, length = length, length + len(slot.value)
        parts.append(slot.value)
        if slot.kind in TERM_KINDS:
            note.keep.append(PlantedSpan(start, length, slot.kind))
        elif slot.kind is not None:
            person = slot.person
            note.phi.append(
                PlantedSpan(
                    start,
                    length,
                    slot.kind,
                    person.country if person else None,
                    person.region if person else None,
                )
            )
    parts.append(template[pos:])
    note.text = "".join(parts)
    return note


def is_latin_script(name: str) -> bool:
    """Whether every letter of ``name`` is a Latin letter (accents allowed)."""
    return all(not c.isalpha() or "LATIN" in unicodedata.name(c, "") for c in name)


def build_corpus(
    n_notes: int,
    seed: int,
    *,
    names: list[HeldoutName] | None = None,
    latin_only: bool = True,
) -> HeldoutCorpus:
    """Write ``n_notes`` held-out notes from ``seed``.

    Patients (one to three notes each, styles in turn) take their region of
    origin in turn, and so do their clinicians, so that name mentions are
    balanced across regions.

    Args:
        n_notes: how many notes.
        seed: the random seed; the same ``(n_notes, seed)`` gives the same corpus.
        names: the held-out names (default: ``names.tsv``).
        latin_only: leave out names written in other scripts (``names.tsv`` has
            Arabic, Cyrillic, Han... spellings too, 1,549 of 12,886): English
            records hold names romanised, so the default scores those.

    Returns:
        The corpus.
    """
    rng = random.Random(seed)
    pool_names = names if names is not None else read_heldout_names()
    if latin_only:
        pool_names = [n for n in pool_names if is_latin_script(n.name)]
    pool = _NamePool(pool_names)
    regions = pool.regions
    notes: list[HeldoutNote] = []
    patient = 0
    staff = 0
    while len(notes) < n_notes:
        region = regions[patient % len(regions)]
        sex = rng.choice("FM")
        pt = pool.person(rng, region, sex)
        shared_surname = pt.last if rng.random() < 0.7 else None
        relative = pool.relative(rng, pt.country, region, rng.choice("FM"), shared_surname)
        staff_people = []
        for _ in range(5):
            staff_people.append(pool.person(rng, regions[staff % len(regions)], rng.choice("FM")))
            staff += 1
        age = rng.randint(90, 104) if rng.random() < 0.4 else rng.randint(35, 89)
        cast = _Cast(pt, relative, sex, age, tuple(staff_people[:3]), tuple(staff_people[3:]))  # type: ignore[arg-type]
        patient_id = f"H{patient + 1:06d}"
        for k in range(min(rng.choice((1, 1, 2, 3)), n_notes - len(notes))):
            style = STYLES[len(notes) % len(STYLES)]
            template = rng.choice(tpl.TEMPLATES[style])
            note_id = f"{patient_id}-N{k + 1}"
            notes.append(_render(template, _slots(rng, cast, pool), patient_id, note_id, style))
        patient += 1
    return HeldoutCorpus(seed, notes)
