"""Recognizers for the Safe Harbor identifiers beyond names, dates and record numbers.

* ``URL``: ``https://...``, ``www....`` and bare domains with a common top-level domain.
* ``IP_ADDRESS``: IPv4 (each octet checked) and IPv6 (checked with :mod:`ipaddress`).
* ``DEVICE_ID``: serial numbers, UDIs and device identifiers after their label.
* ``VEHICLE_ID``: VINs (17 letters and digits, no I/O/Q) and licence plates after a label.
* ``MRN``: health plan, beneficiary, member, policy, licence, certificate, DEA and NPI numbers after
  their label (the type of every other identifying number).
* ``PHONE``/``FAX``: international numbers written with ``+``.
* ``ADDRESS``: ZIP+4 codes standing alone.

Like :mod:`llm.data.deid.recognizers`, context is written into the patterns and
the reported span is the ``phi`` group.
"""

from __future__ import annotations

import ipaddress
import re

from presidio_analyzer import LocalRecognizer

from llm.data.deid.recognizers import RegexRecognizer, _patterns

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


class VehicleIdRecognizer(RegexRecognizer):
    """Vehicle identification numbers and licence plates (after a plate/tag label)."""

    def __init__(self) -> None:
        vin = (
            r"(?<![A-Za-z0-9])(?P<phi>(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])"
            r"[A-HJ-NPR-Z0-9]{17})(?![A-Za-z0-9])"
        )
        plate = (
            r"\b(?i:licen[cs]e\s+plate(?:\s+(?:number|no\.?|#))?|plate(?:\s+(?:number|no\.?|#))"
            r"|tag\s+(?:number|no\.?|#)|plate(?=\s*[:#])|registration(?:\s+(?:number|no\.?|#))?)(?:\s*[:#=]|\s+is|\s+reads)?\s*#?\s*"
            r"(?P<phi>(?=[A-Z0-9 \-]*\d)[A-Z0-9]{1,4}[ \-]?[A-Z0-9]{1,5})(?![\w\-])"
        )
        labelled_vin = r"(?i:\bVIN)(?:\s*[:#=]|\s+is)?\s*#?\s*(?P<phi>[A-Z0-9]{11,17})(?![\w\-])"
        super().__init__(
            "VEHICLE_ID",
            _patterns(vin, labelled_vin, plate, score=0.85),
            name="VehicleIdRecognizer",
        )


class OtherIdRecognizer(RegexRecognizer):
    """Health plan, beneficiary, policy, licence and certificate numbers, typed ``MRN``."""

    LABEL = (
        r"(?i:health\s+plan(?:\s+(?:id|number|no\.?|#|beneficiary(?:\s+(?:number|id|#))?))?"
        r"|beneficiary(?:\s+(?:id|number|no\.?|#))?|member(?:\s+(?:id|number|no\.?|#))|subscriber"
        r"(?:\s+(?:id|number|no\.?|#))|policy(?:\s+(?:id|number|no\.?|#))|group(?:\s+(?:number|no\.?|#))"
        r"|insurance(?:\s+(?:id|number|no\.?|#))|medicaid(?:\s+(?:id|number|no\.?|#))?"
        r"|medicare(?:\s+(?:id|number|no\.?|#))?|mbi|hicn|(?:driver'?s\s+)?licen[cs]e(?:\s+(?:number|no\.?|#))"
        r"|dl\s*#|certificate(?:\s+(?:number|no\.?|#))|cert\.?\s*#|dea(?:\s+(?:number|no\.?|#))?|npi"
        r"|claim(?:\s+(?:number|no\.?|#|id))|case(?:\s+(?:number|no\.?|#)))"
    )

    def __init__(self) -> None:
        pattern = rf"\b{self.LABEL}(?:\s*[:#=]|\s+is)?\s*#?\s*{_ID_VALUE}"
        super().__init__("MRN", _patterns(pattern, score=0.9), name="OtherIdRecognizer")


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
    ]
