"""Recognizers for the Safe Harbor identifiers beyond names, dates and record numbers.

* ``URL``: ``https://...``, ``www....`` and bare domains with a common top-level domain.
* ``IP_ADDRESS``: IPv4 (each octet checked) and IPv6 (checked with :mod:`ipaddress`).
* ``DEVICE_ID``: serial numbers, UDIs and device identifiers after their label.
* ``VEHICLE_ID``: VINs (17 letters and digits, no I/O/Q) and licence plates after a label.
* ``MRN``: health plan, beneficiary, member, policy, licence, certificate, DEA and NPI numbers,
  claim, case, reference and order numbers after their label, and the formats that are
  identifiers wherever they stand (MBI, HICN, payer ids); the type of every other identifying
  number.
* ``PHONE``/``FAX``: international numbers written with ``+``.
* ``ADDRESS``: ZIP+4 codes standing alone, and cities named without a street.

Like :mod:`llm.data.deid.recognizers`, context is written into the patterns and
the reported span is the ``phi`` group.
"""

from __future__ import annotations

import ipaddress
import re

from presidio_analyzer import LocalRecognizer

from llm.data.deid.recognizers import NOT_NAME_WORDS, RegexRecognizer, _patterns
from llm.data.deid.vocabulary import (
    CLINICAL_WORDS,
    COMMON_WORDS,
    DRUGS,
    EPONYMS,
    context_free_names,
)

_TLD = r"(?:com|org|net|edu|gov|mil|int|io|info|biz|health|care|us|uk|ca|de|fr|au|me|co)"


class UrlRecognizer(RegexRecognizer):
    """Web addresses; trailing punctuation stays in the text."""

    def __init__(self) -> None:
        super().__init__(
            "URL",
            _patterns(
                r"(?i)\b(?:https?|ftp)://[^\s<>\"'()\[\]]+",
                r"(?i)(?<![\w@.])www\.[^\s<>\"'()\[\]]+",
                rf"(?i)(?<![\w@.\-/])(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+{_TLD}"
                r"(?:/[^\s<>\"'()\[\]]*)?(?![\w@\-])",
                score=0.8,
            ),
            name="UrlRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        while end > start and text[end - 1] in ".,;:!?":
            end -= 1
        return ("URL", start, end) if end > start else None


class IpAddressRecognizer(RegexRecognizer):
    """IPv4 and IPv6 addresses, validated (times like ``08:15:00`` are not addresses)."""

    def __init__(self) -> None:
        super().__init__(
            "IP_ADDRESS",
            _patterns(
                r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)",
                r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3})"
                r"(?:%\w+)?(?![\w:])",
                score=0.85,
            ),
            name="IpAddressRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        value = text[start:end].split("%")[0]
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return None
        return "IP_ADDRESS", start, end


_ID_VALUE = r"(?P<phi>(?=[A-Z0-9\-./()]*\d)[A-Z0-9][A-Z0-9\-./()]{2,40}[A-Z0-9])(?![\w\-])"


class DeviceIdRecognizer(RegexRecognizer):
    """Device identifiers and serial numbers after their label (``S/N``, ``serial #``, ``UDI``)."""

    LABEL = (
        r"(?i:serial(?:\s+(?:number|no\.?|num\.?|#))?|s/n|sn|udi(?:-di)?|device\s+(?:id|identifier"
        r"|serial|number|no\.?|#)|(?:pacemaker|icd|defibrillator|pump|implant|generator|lead|stimulator"
        r"|monitor|cgm|sensor|catheter)\s+(?:serial(?:\s+(?:number|no\.?|#))?|id|s/n|sn|#)"
        r"|lot(?:\s+(?:number|no\.?|#))?|model\s*/\s*serial|imei|mac\s+address)"
    )

    def __init__(self) -> None:
        pattern = rf"\b{self.LABEL}(?:\s*[:#=]|\s+is)?\s*#?\s*{_ID_VALUE}"
        udi = r"(?<![\w)])(?P<phi>\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9\-]{1,20}){0,4})"
        mac = r"(?<![\w:\-])(?P<phi>[0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){5})(?![\w:\-])"
        super().__init__(
            "DEVICE_ID",
            _patterns(pattern, udi, mac, score=0.9),
            name="DeviceIdRecognizer",
        )


# What follows a label before the value: "#", ":", "number", "no.", "is", "reads"...
_NUMBER_WORD = r"(?:number|num\.?|nbr|no\.?|#|id|identifier|code)"
_LABEL_GAP = (
    r"(?:[ \t]*[:#=][ \t]*|[ \t]+(?:is|was|reads|read|of)[ \t]+|[ \t]+|[ \t]*-[ \t]*)#?[ \t]*"
)
# VIN letters: no I, O or Q; each letter's value and each position's weight (the 9th is the check)
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMNPR", (1, 2, 3, 4, 5, 7, 9), strict=True)),
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit_ok(vin: str) -> bool:
    """Whether a 17-character VIN carries a valid North American check digit (position 9)."""
    vin = vin.upper()
    if len(vin) != 17 or any(c not in _VIN_VALUES for c in vin):
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    return vin[8] == ("X" if total == 10 else str(total))


class VehicleIdRecognizer(RegexRecognizer):
    """Vehicle identification numbers and licence plates (after a plate/tag label).

    A VIN is 17 letters and digits without I, O or Q: taken anywhere (more surely with a
    valid check digit), and after a ``VIN`` label in any case. A plate is taken after
    ``plate``, ``license plate``, ``tag`` or ``registration``, words between allowed
    (``Ohio plate reads GHK 4471``).
    """

    def __init__(self) -> None:
        vin = (
            r"(?<![A-Za-z0-9])(?P<phi>(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])"
            r"[A-HJ-NPR-Z0-9]{17})(?![A-Za-z0-9])"
        )
        label = (
            r"\b(?i:(?:licen[cs]e|vehicle|car|auto|truck|motorcycle)\s+(?:plates?|tags?)"
            r"|plates?|tags?(?=\s*(?:[:#]|number|no\b|reads|is\b))|registration|reg\.?(?=\s*[:#]))"
            r"(?![A-Za-z])"
        )
        plate = (
            rf"{label}(?:[ \t]+(?i:{_NUMBER_WORD}|reading|reads|read|is|was|shows|of))*"
            r"(?:[ \t]*[:#=])?[ \t]*#?[ \t]*(?:\(?[A-Z]{2}\)?[ \t]+(?=[A-Z0-9]*\d))?"
            r"(?P<phi>(?=[A-Z0-9 \-]*\d)(?=[A-Z0-9 \-]*[A-Z])[A-Z0-9]{1,4}[ \-]?[A-Z0-9]{1,5})"
            r"(?![\w\-])"
        )
        labelled_vin = (
            r"(?i:\bV\.?I\.?N\.?|vehicle\s+identification(?:\s+number)?|vehicle\s+id)"
            rf"(?:{_LABEL_GAP}|[ \t]*(?i:{_NUMBER_WORD})[ \t]*[:#]?[ \t]*)"
            r"(?P<phi>[A-HJ-NPR-Za-hj-npr-z0-9]{11,17})(?![\w\-])"
        )
        super().__init__(
            "VEHICLE_ID",
            _patterns(vin, score=0.75) + _patterns(labelled_vin, plate, score=0.9),
            name="VehicleIdRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        value = text[start:end]
        # an unlabelled 17-character code is a VIN when its check digit holds, or when it
        # reads like one: letters and digits mixed, no run of 9 letters (a word)
        unlabelled = len(value) == 17 and not _VIN_LABEL.search(text[max(0, start - 40) : start])
        if unlabelled and not vin_check_digit_ok(value) and re.search(r"[A-Z]{9}", value):
            return None
        return self.entity, start, end


_VIN_LABEL = re.compile(r"(?i)\b(?:vin|vehicle|car|truck)\b")

# An identifier: letters and digits (a digit at least), dashes, dots and slashes inside,
# optionally a short letter prefix set off by a space ("WC 4471823").
_OTHER_ID_VALUE = (
    r"(?P<phi>(?:[A-Z]{1,4}[ ](?=[A-Z0-9\-]*\d{3}))?"
    r"(?=[A-Za-z0-9\-./]*\d)[A-Z0-9][A-Za-z0-9\-./]{2,40}[A-Za-z0-9])(?![\w\-])"
    r"(?![ \t]*(?i:mg|mcg|g|kg|ml|l|units?|iu|mmol|meq|mmhg|bpm|cc|%|hours?|days?|weeks?)\b)"
)


class OtherIdRecognizer(RegexRecognizer):
    """Licence, certificate, health plan and every other identifying number, typed ``MRN``.

    After their label (``DL#``, ``medical license``, ``DEA``, ``NPI``, ``board certificate``,
    ``member ID``, ``group``, ``policy``, ``claim``, ``case``, ``reference``, ``order``,
    ``requisition``, ``authorization``...), and, without a label, in the formats that are
    identifiers wherever they stand: Medicare beneficiary identifiers (MBI) and claim
    numbers (HICN), payer-style member ids and DEA numbers (``XK44819023``, ``AB1234563``)
    and letter-prefixed dashed numbers (``CLM-2131-004481``).
    """

    LICENCE = (
        r"(?:(?:driver'?s?|drivers|driving|medical|nursing|state|professional|pharmacy|pharmacist"
        r"|physician|rn|lpn|md|dental|board|business|marriage|fishing|hunting|commercial)\s+)*"
        r"(?:licen[cs]e(?!\s+plate)|lic\.?(?=\s*(?:[:#]|no\b|number)))"
        r"|dl(?=\s*(?:[:#]|no\b|number))|d\.l\.|(?:board\s+)?certifi(?:cate|cation)|cert\.?(?=\s*[:#])"
        r"|dea(?:\s+registration)?|npi|upin|tin|ein|tax\s+id|passport|state\s+id|id\s+card"
        r"|(?:birth|death|marriage)\s+certificate"
    )
    PLAN = (
        r"health\s+plan(?:\s+beneficiary)?|beneficiary|member(?:ship)?|subscriber|policy(?:\s+holder)?"
        r"|group|plan|insurance|insurer|payer|payor|coverage|carrier|medicaid|medicare|mbi|hicn"
        r"|bcbs|blue\s+cross(?:\s+blue\s+shield)?|aetna|cigna|humana|anthem|tricare|kaiser"
        r"|united\s*health\s*care|uhc|molina|centene|wellcare|ambetter|champva"
    )
    OTHER = (
        r"claim|case|reference|ref\.?|order|requisition|req\.?|specimen|sample|confirmation"
        r"|authori[sz]ation|auth\.?|prior\s+auth(?:ori[sz]ation)?|pre-?cert(?:ification)?"
        r"|referral|ticket|tracking|incident|report|police\s+report|control|file|docket|invoice"
        r"|bill(?:ing)?|statement|transaction|voucher|job|study|subject|participant|enrollment"
        r"|registration|employee|badge|student|certificate|appeal|grievance|complaint|lab"
        r"|accession|batch|booking|inmate|court|warrant|visa|benefit|ssi|disability|workers'?"
        r"\s+comp(?:ensation)?(?:\s+claim)?|wc\s+claim"
    )

    BARE = (
        r"claim|case|reference|requisition|accession|authori[sz]ation|ticket|confirmation"
        r"|tracking|incident|docket|invoice|voucher|transaction"
    )

    def __init__(self) -> None:
        # a licence or plan word may stand right before its value; other words need "#", ":"
        # or "number" ("order 1000 mL" is a dose, "order # 55102" an identifier)
        number = rf"(?i:[ \t]+{_NUMBER_WORD}\b\.?|[ \t]*#)"
        licence = (
            rf"\b(?i:{self.LICENCE})(?:{number})?(?:[ \t]*[:#=]|[ \t]+(?:is|was))?[ \t]*#?[ \t]*"
            r"(?:\(?[A-Z]{2}\)?[ \t]+(?=[A-Z0-9\-]*\d))?" + _OTHER_ID_VALUE
        )
        plan = (
            rf"\b(?i:{self.PLAN})(?:[ \t]*[:,]?[ \t]*(?:[A-Z][A-Za-z&]+[ \t]+){{0,3}})?"
            rf"(?:(?:{number})+)?(?:[ \t]*[:#=]|[ \t]+(?:is|was))?[ \t]*#?[ \t]*" + _OTHER_ID_VALUE
        )
        other = (
            rf"\b(?i:{self.OTHER})(?:{number})+(?:[ \t]*[:#=]|[ \t]+(?:is|was))?[ \t]*#?[ \t]*"
            + _OTHER_ID_VALUE
        )
        other_colon = rf"\b(?i:{self.OTHER})[ \t]*:[ \t]*" + _OTHER_ID_VALUE
        # a few labels are never followed by a dose or a count: their value may follow bare
        # when it holds five digits in a row ("claim WC 4471823", "case 2131-004481")
        bare = (
            rf"\b(?i:{self.BARE})[ \t]+(?=(?:[A-Z]{{1,4}}[ ])?[A-Z0-9\-./]*\d{{5}})"
            + _OTHER_ID_VALUE
        )
        generic = r"\b(?:ID|Id)(?:[ \t]*(?:#|No\.?|number))?[ \t]*[:#][ \t]*" + _OTHER_ID_VALUE
        letters = "AC-HJKMNP-RT-Y"  # MBI letters: no S, L, O, I, B, Z
        mbi = (
            rf"(?<![\w\-])(?P<phi>[1-9][{letters}][{letters}0-9]\d-?[{letters}][{letters}0-9]\d-?"
            rf"[{letters}]{{2}}\d{{2}})(?![\w\-])"
        )
        hicn = r"(?<![\w\-])(?P<phi>\d{3}-?\d{2}-?\d{4}[A-Z]\d?)(?![\w\-])"
        payer = r"(?<![\w\-/.])(?P<phi>[A-Z]{1,3}\d{7,12})(?![\w\-])"
        dashed = r"(?<![\w\-/.])(?P<phi>[A-Z]{2,5}-\d{2,6}(?:-\d{2,8})+)(?![\w\-])"
        super().__init__(
            "MRN",
            _patterns(licence, plan, other, other_colon, bare, generic, mbi, hicn, score=0.9)
            + _patterns(payer, dashed, score=0.6),
            name="OtherIdRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        value = text[start:end]
        if re.fullmatch(r"[A-Z]{2,5}-\d{2,6}(?:-\d{2,8})+", value) and (
            sum(c.isdigit() for c in value) < 6
        ):
            return None  # "COVID-19", "ICD-10-..." are not identifiers
        # dates, times, doses and small counts are not identifiers, whatever their label
        if _NOT_AN_ID.fullmatch(value):
            return None
        digits = sum(c.isdigit() for c in value)
        if digits < 3 or (digits < 5 and not any(c.isalpha() for c in value)):
            return None
        return self.entity, start, end


# dates, times and measurements: never an identifier, whatever label precedes them
_NOT_AN_ID = re.compile(
    r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2}|\d{1,2}:\d{2}(?::\d{2})?"
    r"|\d+(?:\.\d+)?(?:mg|mcg|ml|mL|g|kg|mmol|meq|units?|h|hrs?|min|days?|wks?)"
)


class InternationalPhoneRecognizer(RegexRecognizer):
    """Phone and fax numbers written with a country code (``+44 20 7946 0958``)."""

    _FAX = re.compile(r"(?i)\b(fax|facsimile)\b[^\n]{0,20}$")

    def __init__(self) -> None:
        number = r"(?<![\w+])(?P<phi>\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5})(?![\w\-])"
        super().__init__(
            "PHONE",
            _patterns(number, score=0.8),
            name="InternationalPhoneRecognizer",
            entities=["PHONE", "FAX"],
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        digits = sum(c.isdigit() for c in text[start:end])
        if not 8 <= digits <= 15:
            return None
        is_fax = bool(self._FAX.search(text[max(0, start - 30) : start]))
        return ("FAX" if is_fax else "PHONE"), start, end


class ZipPlusFourRecognizer(RegexRecognizer):
    """ZIP+4 codes anywhere (``02114-2696``): no other number in notes is written that way."""

    def __init__(self) -> None:
        super().__init__(
            "ADDRESS",
            _patterns(r"(?<![\w\-/.])\d{5}-\d{4}(?![\w\-/])", score=0.7),
            name="ZipPlusFourRecognizer",
        )


# Capitalised words after "in"/"from" that are not places, besides clinical and common words
_NOT_CITY = frozenset(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday spring summer fall autumn winter
    english spanish french german italian portuguese chinese mandarin cantonese russian arabic
    hindi urdu bengali korean japanese vietnamese tagalog polish haitian creole somali farsi
    room bed floor unit ward bay suite rehab clinic home hospice church school work jail prison
    god lord jesus christ heaven general urgent primary care dr doctor mr mrs ms miss nurse
    america usa canada mexico england europe asia africa china india
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia
    hawaii idaho illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts
    michigan minnesota mississippi missouri montana nebraska nevada ohio oklahoma oregon
    pennsylvania tennessee texas utah vermont virginia wisconsin wyoming""".split()  # noqa: SIM905
)
# clinical terms end a city; common words do only alone ("Lake Charles", "Fort Collins")
_NOT_A_PLACE = EPONYMS | DRUGS | CLINICAL_WORDS | NOT_NAME_WORDS
_CLINICAL_ENDING = re.compile(r"(?i)(?:ology|itis|osis|ectomy|otomy|scopy|emia|pathy|tion|sion)$")
_CITY_WORDS = r"[A-Z][a-z]+(?:[ \t\-](?:[A-Z][a-z]+|of|de|la|le|du)){0,3}"


class CityRecognizer(RegexRecognizer):
    """Cities named without a street or ZIP, typed ``ADDRESS``.

    A city is one to four capitalised words (``Lake Forest``, ``Winston-Salem``) after a
    word of living or moving and a preposition (``lives in``, ``moved here from``, ``born
    in``); after a bare ``in``/``from``/``near`` when punctuation or a word such as
    ``and``/``since``/``last`` follows (``visiting family in Tacoma.``); or before a state
    (``Tacoma, WA``; the credentials ``MD``, ``PA``, ``DO``, ``NP`` excepted). Words that are
    clinical terms, common words, months, languages, states or countries are not cities:
    a hit stops before the first of them and is dropped when it starts with one.
    """

    def __init__(self) -> None:
        verb = (
            r"\b(?i:lives|living|lived|live|resides|residing|resided|moved|moving|relocated|born"
            r"|raised|grew\s+up|staying|stays|stayed|visiting|visited|visit|retired|works|worked"
            r"|working|home|house|vacationing|vacation|trip|travell?ed|travell?ing|returned"
            r"|returning|drove|flew|arrived|originally|native|resident|family|daughter|son"
            r"|sister|brother|parents)"
        )
        place = r"(?:(?i:here|there|back|alone|nearby|up|down|out|over|now|currently)[ \t]+)?"
        strong = (
            rf"{verb}[ \t]+{place}(?i:in|to|from|near|outside(?:[ \t]+of)?|of)[ \t]+"
            rf"(?:the[ \t]+)?(?P<phi>{_CITY_WORDS})(?![\w\-])"
        )
        follow = (
            r"(?=[ \t]*(?:[,.;:)!?\n]|$)|[ \t]+(?:and|with|for|since|until|where|who|last|this"
            r"|next|area|today|yesterday|recently|before|after|over|during|to|on|at)\b)"
        )
        weak = rf"(?<![\w\-])(?i:in|from|near)[ \t]+(?P<phi>{_CITY_WORDS}){follow}"
        states = (
            "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MA|MI|MN|MS|MO|MT|NE|NV"
            "|NH|NJ|NM|NY|NC|ND|OH|OK|OR|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
        )
        before_state = rf"(?<![\w\-])(?P<phi>{_CITY_WORDS}),[ \t]*(?:{states})(?![\w\-])"
        super().__init__(
            "ADDRESS",
            _patterns(strong, before_state, score=0.9) + _patterns(weak, score=0.6),
            name="CityRecognizer",
        )

    def classify(self, text: str, start: int, end: int) -> tuple[str, int, int] | None:
        words = [w for w in re.finditer(r"[^\W\d_]+", text[start:end]) if w.group()[0].isupper()]
        kept: list[str] = []
        kept_end = start
        for w in words:
            word = w.group()
            lower = word.lower()
            if lower in _NOT_A_PLACE or lower in _NOT_CITY or _CLINICAL_ENDING.search(word):
                break
            kept.append(word)
            kept_end = start + w.end()
        if not kept:
            return None
        if len(kept) == 1 and (
            kept[0].lower() in COMMON_WORDS or kept[0] in context_free_names("first")
        ):
            return None  # "in Hope", "a call from Maria": a word or a first name alone
        return self.entity, start, kept_end


def identifier_recognizers() -> list[LocalRecognizer]:
    """Every recognizer of this module, ready for a Presidio registry."""
    return [
        UrlRecognizer(),
        IpAddressRecognizer(),
        DeviceIdRecognizer(),
        VehicleIdRecognizer(),
        OtherIdRecognizer(),
        InternationalPhoneRecognizer(),
        ZipPlusFourRecognizer(),
        CityRecognizer(),
    ]
