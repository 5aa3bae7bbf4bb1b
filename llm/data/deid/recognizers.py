"""Clinical PHI recognizers for Presidio.

Each recognizer is a Presidio :class:`~presidio_analyzer.LocalRecognizer` that
reports one or more of the entity types of :data:`llm.data.phi.PHI_ENTITIES`
(``NAME``, ``MRN``, ``DATE``, ``AGE``, ``PHONE``, ``FAX``, ``EMAIL``,
``ADDRESS``, ``SSN``, ``HOSPITAL``). Context (``MRN:``, ``Dr.``, ``fax``,
``Electronically signed by``) is written into the patterns themselves, and the
reported span is the ``phi`` group of the pattern, so that a title or a label
stays in the text: ``Dr. [NAME]``, ``MRN: [MRN]``.

Names that appear without a title or label are found by the spaCy entity
ruler built in :mod:`llm.data.deid.nlp` (common first names and surnames in
:mod:`llm.data.deid.lexicon`), and by propagation over a patient's notes in
:mod:`llm.data.deid.engine`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from llm.data.deid.dates import find_dates


@cache
def load_lexicon(name: str) -> tuple[str, ...]:
    """Read one word list shipped in :mod:`llm.data.deid.lexicon` (``first_names``, ``surnames``).

    Args:
        name: file stem.

    Returns:
        The words, in file order, comments and blank lines left out.
    """
    text = resources.files("llm.data.deid.lexicon").joinpath(f"{name}.txt").read_text("utf-8")
    return tuple(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


# Capitalised words that follow titles and labels but are not names.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NOT_NAME_WORDS = _words(
    """a an and or the to of in on at for with by from is was has had he she his her they their
    patient pt today yesterday tomorrow md do rn np pa pa-c phd mbbs attending resident fellow
    intern cardiology medicine service team department dept clinic hospital center office note
    please thank thanks follow call see admitted discharged hospitalist internal emergency family
    primary care physician provider nurse signed date time unknown none not no yes mr mrs ms dr
    on-call covering consult consulted who which that this these those all any per re cc
    """
)

_NAME_TOKEN = r"(?:[A-Z]['’])?(?:Mc|Mac)?[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*"
_INITIAL = r"[A-Z]\."
FULL_NAME = rf"{_NAME_TOKEN}(?:[ \t]+(?:{_INITIAL}|{_NAME_TOKEN})){{0,2}}"
_UPPER_NAME = r"[A-Z][A-Z'’\-]+(?:,?[ \t]+[A-Z][A-Z'’\-]+){1,2}"
_TITLE = r"(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Doctor)\.?"


@dataclass(frozen=True)
class SpanPattern:
    """A regular expression whose ``phi`` group (or whole match) is the PHI span."""

    regex: re.Pattern[str]
    score: float = 0.85


def _patterns(*specs: str, score: float = 0.85, flags: int = 0) -> list[SpanPattern]:
    return [SpanPattern(re.compile(s, flags), score) for s in specs]


class RegexRecognizer(LocalRecognizer):
    """A recognizer made of :class:`SpanPattern` s, with a hook to reclassify or drop a hit.

    Args:
        entity: entity type reported (subclasses may report others, see ``entities``).
        patterns: the patterns to run.
        name: recognizer name shown in Presidio's explanations.
        entities: every entity type this recognizer can report (default ``[entity]``).
    """

    def __init__(
        self,
        entity: str,
        patterns: Sequence[SpanPattern],
        name: str,
        entities: Sequence[str] | None = None,
    ) -> None:
        self.entity = entity
        self.patterns = list(patterns)
        super().__init__(
            supported_entities=list(entities or [entity]), name=name, supported_language="en"
        )

    def load(self) -> None:
        """Nothing to load: patterns are compiled in the constructor."""

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        """Entity type and (possibly trimmed) span of one hit, or ``None`` to drop it."""
        return self.entity, start, end

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Run every pattern over ``text``.

        Args:
            text: the note text.
            entities: entity types asked for (hits of other types are dropped).
            nlp_artifacts: unused; context is part of the patterns.

        Returns:
            One result per kept hit.
        """
        results: list[RecognizerResult] = []
        for pattern in self.patterns:
            has_group = "phi" in pattern.regex.groupindex
            for m in pattern.regex.finditer(text):
                start, end = m.span("phi") if has_group else m.span()
                if start < 0 or start == end:
                    continue
                hit = self.classify(text, start, end)
                if hit is None or (entities and hit[0] not in entities):
                    continue
                results.append(RecognizerResult(hit[0], hit[1], hit[2], pattern.score))
        return results


class MrnRecognizer(RegexRecognizer):
    """Medical record, account, encounter and accession numbers after their label."""

    LABEL = (
        r"(?i:MRN|MR\s*#|MR\s+No\.?|medical\s+record(?:\s+(?:number|no\.?|#))?"
        r"|record\s+(?:number|no\.?|#)|acct\.?(?:\s*(?:#|no\.?|number))?|account(?:\s+(?:#|no\.?|number))?"
        r"|patient\s+id|pt\s+id|unit\s+(?:no\.?|number)|hospital\s+(?:no\.?|number)"
        r"|encounter\s+(?:#|no\.?|number|id)|visit\s+(?:#|no\.?|number)|accession(?:\s+(?:#|no\.?|number))?"
        r"|FIN|CSN|HAR)"
    )

    def __init__(self) -> None:
        pattern = (
            rf"\b{self.LABEL}(?:\s*[:#=]|\s+is|\s+number)?\s*#?\s*"
            r"(?P<phi>[A-Z]{0,4}-?\d[\dA-Z\-]{2,18}\d)(?![\w-])"
        )
        super().__init__("MRN", _patterns(pattern, score=0.9), name="MrnRecognizer")


class SsnRecognizer(RegexRecognizer):
    """US social security numbers.

    ``123-45-6789`` anywhere; ``123 45 6789`` and ``123.45.6789`` anywhere when the number
    could be issued (area not 000, 666 or 9xx, group not 00, serial not 0000); and nine
    digits, grouped or not, up to 40 characters after an SSN label on the same line
    (``SSN on file: 123456789``).
    """

    LABEL = (
        r"(?i:\bSSN|\bSS\s*#|\bSS\s+no\.?|\bsocial\s+security|\bsoc\.?\s*sec\.?"
        r"|\bSSA\s+(?:number|no|#))"
    )

    def __init__(self) -> None:
        super().__init__(
            "SSN",
            _patterns(r"(?<![\w-])(?P<phi>\d{3}-\d{2}-\d{4})(?![\w-])", score=0.85)
            + _patterns(r"(?<![\w\-.])(?P<phi>\d{3}([ .])\d{2}\2\d{4})(?![\w\-]|[ .]\d)", score=0.7)
            + _patterns(
                rf"{self.LABEL}[^\n\d]{{0,40}}?(?<!\d)"
                r"(?P<phi>\d{3}[- .]?\d{2}[- .]?\d{4})(?![\d\-])",
                score=0.95,
            ),
            name="SsnRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        digits = re.sub(r"\D", "", text[start:end])
        labelled = re.search(self.LABEL, text[max(0, start - 48) : start])
        issuable = digits[:3] not in ("000", "666") and digits[0] != "9"
        issuable = issuable and digits[3:5] != "00" and digits[5:] != "0000"
        if (
            not labelled
            and not issuable
            and not re.fullmatch(r"\d{3}-\d{2}-\d{4}", text[start:end])
        ):
            return None
        return self.entity, start, end


class PhoneFaxRecognizer(RegexRecognizer):
    """Telephone and fax numbers; a number is a FAX when the nearest label before it says fax."""

    _LABEL = re.compile(
        r"(?i)\b(fax|facsimile|phone|tel|telephone|cell|mobile|pager|ph|call|contact)\b"
    )

    def __init__(self) -> None:
        number = (
            r"(?<![\w\-/.])(?P<phi>(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}"
            r"(?:[ \t]*(?:x|ext\.?)[ \t]*\d{1,5})?)(?![\w\-/])"
        )
        local = r"(?i:phone|tel|cell|pager|fax|ph|call)\b[^\n\d]{0,12}(?P<phi>\d{3}-\d{4})(?![\d-])"
        super().__init__(
            "PHONE",
            _patterns(number, score=0.8) + _patterns(local, score=0.7),
            name="PhoneFaxRecognizer",
            entities=["PHONE", "FAX"],
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        before = text[max(0, start - 30) : start]
        labels = self._LABEL.findall(before)
        is_fax = bool(labels) and labels[-1].lower() in ("fax", "facsimile")
        return ("FAX" if is_fax else "PHONE"), start, end


class EmailRecognizer(RegexRecognizer):
    """E-mail addresses."""

    def __init__(self) -> None:
        super().__init__(
            "EMAIL",
            _patterns(
                r"(?<![\w.+-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                score=0.95,
            ),
            name="EmailRecognizer",
        )


class AgeOver89Recognizer(RegexRecognizer):
    """Ages of 90 and over (HIPAA Safe Harbor leaves younger ages alone).

    The age is taken with an age word next to it (``92-year-old``, ``93 yo F``, ``a 91 y/o``,
    ``98M``, ``aged 93``, ``at the age of 94``, ``95th birthday``), in a sex-and-age shorthand
    (``(M, 98)``, ``(98 F)``, ``92/F``, ``Age/Sex: 96/M``), or after a person and a verb
    (``She is 90 now``, ``he turned 101``) when no unit follows it.
    """

    def __init__(self) -> None:
        n = r"(?<![\d.])(?P<phi>9\d|1[0-2]\d)"
        # a number with a unit or a fraction after it is a measurement, not an age
        not_measure = (
            r"(?![\d.,/:%]\d|[\d%/]|[ \t]*(?i:mg|mcg|kg|lbs?|pounds|g\b|ml|cm|mm|in\b|inches"
            r"|percent|%|mmhg|bpm|beats|breaths|degrees|°|f\b|min|minutes|sec|seconds|hours?"
            r"|days?|weeks?|months?|units|on\s+(?:room|ra|\d)|over|/))"
        )
        person = (
            r"(?i:\b(?:he|she|they|patient|pt|who|mother|father|mom|dad|wife|husband|grandmother"
            r"|grandfather|grandma|grandpa|aunt|uncle|resident|client|i)\s+(?:is|was|will\s+be|has"
            r"\s+turned|just\s+turned|turned|turns|turning|'s|is\s+now|was\s+now)"
            r"(?:\s+(?:now|almost|nearly|about|only|already|just))?\s+)"
        )
        super().__init__(
            "AGE",
            _patterns(
                rf"{n}(?:[ \t]*|-)(?i:years?|yrs?|y)(?:[ \t]*|-)(?i:old|of\s+age)",
                rf"{n}[ \t]*-?[ \t]*(?i:y/o|y\.o\.?|yo|yr?s?)(?:[MF]\b|(?![A-Za-z]))",
                rf"{n}(?:M|F)\b",
                r"(?i:\bage[d:]?|\baged|\bage\s+of|\bage/(?:sex|gender))[ \t:]*"
                r"(?P<phi>9\d|1[0-2]\d)(?!\d|\.\d)",
                rf"{n}(?i:st|nd|rd|th)[ \t]+(?i:birthday)",
                rf"\([ \t]*(?:[MF]|(?i:male|female))[ \t]*[,/][ \t]*{n}[ \t]*\)",
                rf"\({n}[ \t]*[,/]?[ \t]*(?:[MF]|(?i:male|female))[ \t]*\)",
                rf"(?<![\w/]){n}/(?:[MF])\b(?!/)",
                rf"(?<![\w/])[MF]/{n}(?![\d/.])",
                rf"{person}{n}{not_measure}",
                score=0.85,
            ),
            name="AgeOver89Recognizer",
        )

    _TEMPERATURE = re.compile(r"(?i)\b(?:temp\w*|t|tmax|tm|febrile|afebrile|fever)\b[^\n]{0,12}$")

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        # "T 98F", "Tmax 99 F (37.2 C)": a temperature in Fahrenheit, not a 98-year-old woman
        if re.match(r"[ \t]*(?:°|F\b|deg)", text[end : end + 5]) and self._TEMPERATURE.search(
            text[max(0, start - 20) : start]
        ):
            return None
        return self.entity, start, end


class DateRecognizer(LocalRecognizer):
    """Dates in many formats, with a time when one is written next to them.

    The formats are those of :mod:`llm.data.deid.dates`.
    """

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["DATE"], name="DateRecognizer", supported_language="en"
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Report every valid date in ``text`` (the engine merges overlapping hits)."""
        return [
            RecognizerResult("DATE", d.match.start(), d.match.end(), 0.85) for d in find_dates(text)
        ]


_STATES = sorted(
    _words(
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
        "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
    )
)
_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii"
    "|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan"
    "|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico"
    "|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island"
    "|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia"
    "|Wisconsin|Wyoming"
)
# State abbreviations that are also credentials or words ("Smith, MD"): only taken with a ZIP.
_AMBIGUOUS_STATES = {"MD", "PA", "ME", "IN", "OR", "OK", "HI", "DE", "CO", "MA", "ID", "NP", "DO"}
_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace"
    r"|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Pike|Row|Plaza|Loop)"
)
_CITY = r"[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+){0,2}"
_STATE_ANY = rf"(?:{'|'.join(_STATES)}|{_STATE_NAMES})"
_STATE_SAFE = rf"(?:{'|'.join(s for s in _STATES if s not in _AMBIGUOUS_STATES)}|{_STATE_NAMES})"
_ZIP = r"\d{5}(?:-\d{4})?"


class AddressRecognizer(RegexRecognizer):
    """Street addresses (with unit, city, state and ZIP when they follow) and city, state ZIP."""

    def __init__(self) -> None:
        street = (
            r"(?<![\w\-])\d{1,6}[ \t]+(?:[NSEW]\.?[ \t]+)?"
            rf"(?:(?:\d+(?:st|nd|rd|th)|{_NAME_TOKEN})[ \t]+){{1,3}}"
            rf"{_SUFFIX}\.?(?![A-Za-z])"
            r"(?:,?[ \t]+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?[ \t]*#?[A-Za-z0-9\-]+)?"
        )
        city_state = rf"{_CITY},[ \t]*(?:{_STATE_ANY}\.?[ \t]+{_ZIP}|{_STATE_SAFE}\b)"
        super().__init__(
            "ADDRESS",
            _patterns(
                rf"{street}(?:,?[ \t]+{city_state})?",
                rf"(?<![\w])(?P<phi>{city_state})",
                r"(?i:zip(?:\s*code)?|postal\s+code|post\s*code)(?:[ \t]+(?:is|of))?[ \t:#]*"
                r"(?P<phi>\d{5}(?:-\d{4})?)(?!\d)",
                # a ZIP after a state, with or without the city and comma: "OH 45402"
                rf"(?<![\w])(?:{_STATE_ANY})\.?,?[ \t]+(?P<phi>{_ZIP})(?![\d\-])",
                score=0.85,
            ),
            name="AddressRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        words = text[start:end].split()
        # "Smith, MD" style hits stop at the comma: a lone ambiguous city+state is not taken
        if words and words[0].rstrip(",").lower() in NOT_NAME_WORDS:
            return None
        return self.entity, start, end


_HOSPITAL_SUFFIX = (
    r"(?:Medical\s+Cent(?:er|re)|Health\s+(?:Center|System)|Health\s*[Cc]are|Hospital|Clinic|Infirmary"
    r"|Rehabilitation\s+(?:Center|Hospital)|Nursing\s+(?:Home|Facility|Center)|Care\s+Center|Hospice"
    r"|Surgery\s+Center|Cancer\s+Center|Heart\s+Institute|Medical\s+Group|Associates|Family\s+Practice"
    r"|Physicians|Partners)"
)
# Words that name a department, a service or a kind of place, not one place ("Cardiology Clinic").
# A hit made only of these is dropped; leading ones ("Admitted to the") are trimmed off.
_GENERIC_PLACE_WORDS = _words(
    """the a an at to from in our your his her their this admitted transferred seen discharged
    follow follow-up followup patient cardiology pulmonary pulmonology heart failure primary care
    urgent
    outpatient inpatient anticoagulation diabetes wound dialysis emergency renal nephrology oncology
    endocrine endocrinology gi neurology coumadin warfarin lipid memory sleep pain rehab
    rehabilitation physical therapy skilled nursing home health medical surgical surgery internal
    medicine family clinic hospital center centre local community system healthcare facility
    hospice cancer institute group associates practice physicians partners infirmary of and &
    """
)
_LEADING_NOT_PLACE = _words(
    "the a an at to from in our your his her their this admitted transferred seen discharged "
    "follow follow-up followup patient and of"
)


class HospitalRecognizer(RegexRecognizer):
    """Named hospitals and clinics: ``St. Mary's Hospital``, ``Lakeside Medical Center``."""

    def __init__(self) -> None:
        word = r"(?:[A-Z][A-Za-z'’.\-]*|of|the|and|&)"
        pattern = (
            rf"(?<![\w])(?:(?:St\.?|Saint)[ \t]+)?{word}(?:[ \t]+{word}){{0,5}}[ \t]+"
            rf"{_HOSPITAL_SUFFIX}(?![A-Za-z])"
        )
        super().__init__("HOSPITAL", _patterns(pattern, score=0.9), name="HospitalRecognizer")

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        words = list(re.finditer(r"\S+", text[start:end]))
        first = 0
        while first < len(words) and words[first].group().lower() in _LEADING_NOT_PLACE:
            first += 1
        rest = [w.group().lower().strip(",.") for w in words[first:]]
        if all(w in _GENERIC_PLACE_WORDS for w in rest):
            return None  # "Cardiology Clinic", "the Heart Failure Clinic": a service, not a place
        return self.entity, start + words[first].start(), end


class NameRecognizer(RegexRecognizer):
    """Person names after titles, field labels, signature phrases and family-relation words."""

    LABELS = (
        r"(?i:patient(?:\s+name)?|name|pt\s+name|attending(?:\s+physician)?|physician|provider|pcp"
        r"|primary\s+care(?:\s+physician|\s+provider)?|referring(?:\s+physician|\s+provider)?|resident"
        r"|intern|fellow|nurse|surgeon|radiologist|cardiologist|consultant|emergency\s+contact|contact"
        r"|next\s+of\s+kin|health\s*care\s+proxy|hcp|cc|dictated\s+by|transcribed\s+by"
        r"|(?:electronically\s+)?signed\s+by|seen\s+(?:and\s+examined\s+)?by|examined\s+by|reviewed\s+by"
        r"|read\s+by|interpreted\s+by|attested\s+by|discussed\s+with|evaluated\s+by)"
    )
    RELATIONS = (
        r"(?i:wife|husband|spouse|partner|daughter|son|mother|father|sister|brother|niece|nephew"
        r"|granddaughter|grandson|grandmother|grandfather|friend|caregiver|neighbor|aunt|uncle|cousin"
        r"|guardian|proxy|fianc[eé]e?)"
    )

    def __init__(self) -> None:
        title = rf"\b{_TITLE}[ \t]+(?P<phi>(?:{_INITIAL}[ \t]*)?{FULL_NAME})"
        label = (
            rf"\b{self.LABELS}[ \t]*[:\-]?[ \t]*(?:{_TITLE}[ \t]+)?"
            rf"(?P<phi>{_NAME_TOKEN},[ \t]*{_NAME_TOKEN}(?:[ \t]+{_INITIAL})?"
            rf"|{FULL_NAME}|{_UPPER_NAME})"
        )
        relation = (
            rf"\b{self.RELATIONS}(?:[ \t]*[,:(][ \t]*|[ \t]+(?:named[ \t]+|is[ \t]+)?)"
            rf"(?P<phi>{FULL_NAME})"
        )
        # "Dear Ms. Achterberg," / "Dear Temperance,": a salutation opens a line
        salutation = (
            rf"(?m:^)[ \t]*(?i:dear)[ \t]+(?:{_TITLE}[ \t]+)?(?P<phi>{FULL_NAME})[ \t]*[,:]"
        )
        # "-- Marisol Quintanilla, RN": a signature line ends a note
        signature = (
            rf"(?m:^)[ \t]*(?:--?|—|/s/)[ \t]*(?P<phi>{FULL_NAME}),?[ \t]+"
            r"(?:RN|MD|DO|NP|PA(?:-C)?|LPN|CNA|PharmD|PT|OT|SW|LCSW|MSW|RD|CRNA|DPM|PhD)\b"
        )
        super().__init__(
            "NAME",
            _patterns(title, label, salutation, signature, score=0.85)
            + _patterns(relation, score=0.6),
            name="NameRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        return trim_name_span(text, start, end)


def trim_name_span(text: str, start: int, end: int) -> tuple[str, int, int] | None:
    """Cut a candidate name at the first word that is not part of a name.

    Args:
        text: the note.
        start: candidate start.
        end: candidate end.

    Returns:
        ``("NAME", start, new_end)``, or ``None`` when the first word is not a name.
    """
    new_end = start
    for w in re.finditer(r"[^\s,]+", text[start:end]):
        if w.group().lower().rstrip(".") in NOT_NAME_WORDS:
            break
        new_end = start + w.end()
    if new_end == start:
        return None
    return "NAME", start, new_end


def clinical_recognizers() -> list[LocalRecognizer]:
    """Every pattern recognizer of this module, ready for a Presidio registry."""
    return [
        MrnRecognizer(),
        SsnRecognizer(),
        PhoneFaxRecognizer(),
        EmailRecognizer(),
        AgeOver89Recognizer(),
        DateRecognizer(),
        AddressRecognizer(),
        HospitalRecognizer(),
        NameRecognizer(),
    ]
