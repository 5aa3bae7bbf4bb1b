"""Realistic fake values that replace PHI, the same for the same value within a patient.

Every surrogate is derived from an HMAC of ``(patient_id, kind, value)`` with
the run's secret key, so it is reproducible with the same key, different
between patients, and cannot be turned back into the real value without the
key. Names are replaced word by word (``John Smith`` → ``Paul Baker`` and later
``Mr. Smith`` → ``Mr. Baker``), numbers digit by digit (the format stays:
``(617) 555-0142`` → ``(382) 904-7710``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection

from llm.data.deid.recognizers import load_lexicon

_HOSPITALS = (
    "Riverside General Hospital",
    "Northgate Medical Center",
    "Lakeview Community Hospital",
    "Cedar Valley Clinic",
    "Harbor Point Medical Center",
    "Maplewood Regional Hospital",
    "Pinecrest Health Center",
    "Stonebridge Hospital",
    "Willow Creek Clinic",
    "Summit Ridge Medical Center",
    "Bayside Community Hospital",
    "Fairhaven Health Center",
)
_PLACE_WORDS = (
    "Oak", "Maple", "Cedar", "Elm", "Pine", "Birch", "Willow", "Chestnut", "Walnut", "Spruce",
    "Hillside", "Lakeview", "Meadow", "Ridge", "Sunset", "Highland", "Fairview", "Riverton",
    "Lakewood", "Greenville", "Ashland", "Milton", "Oakdale", "Brookfield", "Kingston", "Bristol",
)  # fmt: skip
# Words of an address kept as they are: street types, unit words, state names and abbreviations.
_ADDRESS_KEEP = re.compile(
    r"^(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace"
    r"|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Pike|Row|Plaza|Loop|Apt|Apartment"
    r"|Unit|Suite|Ste|[NSEW]|[A-Z]{2}|North|South|East|West|New|Carolina|Dakota|Island|Virginia"
    r"|Hampshire|Jersey|Mexico|York)\.?,?$"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")


def _like(original: str, new: str) -> str:
    """Give ``new`` the letter case of ``original`` (UPPER, lower or Title)."""
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original.islower():
        return new.lower()
    return new


class SurrogateFactory:
    """Deterministic surrogates for one run, keyed by a secret.

    Args:
        key: the run's secret (bytes); never written to the output.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._first = load_lexicon("first_names")
        self._last = load_lexicon("surnames")
        self._first_set = {n.lower() for n in self._first}

    def number(self, *parts: str) -> int:
        """A large non-negative integer derived from ``parts`` and the key."""
        digest = hmac.new(self._key, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).digest()
        return int.from_bytes(digest, "big")

    def _pick(self, options: tuple[str, ...], avoid: Collection[str], *parts: str) -> str:
        n = self.number(*parts)
        for i in range(len(options)):
            choice = options[(n + i) % len(options)]
            if choice.lower() not in avoid:
                return choice
        return options[n % len(options)]

    def name(self, patient_id: str, text: str, avoid: Collection[str] = ()) -> str:
        """Replace every word of a name; initials become other initials.

        Args:
            patient_id: whose note this is (surrogates are per patient).
            text: the name as written (``Smith, John A.``, ``Dr. Mary Jones``).
            avoid: lower-case words never to use as a surrogate (the patient's
                real names: ``Smith`` must not become ``Jones`` when a real
                Jones is in the same notes).

        Returns:
            The name with each word replaced consistently, punctuation kept.
        """

        def word(m: re.Match[str]) -> str:
            w = m.group()
            if len(w) == 1:
                letter = "ABCDEFGHIJKLMNOPRSTW"[self.number(patient_id, "initial", w.upper()) % 20]
                return _like(w, letter)
            options = self._first if w.lower() in self._first_set else self._last
            never = {w.lower(), *avoid}
            return _like(w, self._pick(options, never, patient_id, "name", w.lower()))

        return _WORD.sub(word, text)

    def digits(
        self, patient_id: str, kind: str, text: str, *, first_digit: str | None = None
    ) -> str:
        """Replace every digit (and letter) of an identifier, keeping its layout.

        Args:
            patient_id: whose value this is.
            kind: what the value is (``MRN``, ``PHONE``...), so equal numbers of
                different kinds get different surrogates.
            text: the value as written.
            first_digit: force the first digit (``9`` makes a never-issued SSN).

        Returns:
            A value of the same length and punctuation that differs from ``text``.
        """
        n = self.number(patient_id, kind, text)
        out: list[str] = []
        for i, ch in enumerate(text):
            n, r = divmod(n, 26) if ch.isalpha() else divmod(n, 10)
            if ch.isdigit():
                out.append(str(r))
            elif ch.isalpha():
                out.append(_like(ch, chr(ord("A") + r)))
            else:
                out.append(ch)
            if n == 0:
                n = self.number(patient_id, kind, text, str(i))
        if first_digit is not None:
            idx = next((i for i, c in enumerate(out) if c.isdigit()), None)
            if idx is not None:
                out[idx] = first_digit
        result = "".join(out)
        if result == text:  # vanishingly rare; nudge one digit so nothing real survives
            result = re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10), result, count=1)
        return result

    def email(self, patient_id: str, text: str) -> str:
        """A fake address at the reserved ``example.org`` domain."""
        first = self._pick(self._first, (), patient_id, "email", text.lower()).lower()
        return (
            f"{first}.{self.number(patient_id, 'email-n', text.lower()) % 9000 + 1000}@example.org"
        )

    def url(self, patient_id: str, text: str) -> str:
        """A fake web address at the reserved ``example.org`` domain, scheme kept."""
        scheme = re.match(r"(?i)[a-z]+://", text)
        n = self.number(patient_id, "url", text.lower()) % 90000 + 10000
        return f"{scheme.group() if scheme else ''}www.example.org/{n}"

    def ip_address(self, patient_id: str, text: str) -> str:
        """An address of the same family from the documentation ranges (RFC 5737, RFC 3849)."""
        n = self.number(patient_id, "ip", text.lower())
        if ":" in text:
            return f"2001:db8::{n % 0xFFFF:x}:{(n >> 16) % 0xFFFF:x}"
        return f"192.0.2.{n % 254 + 1}"

    def hospital(self, patient_id: str, text: str, avoid: Collection[str] = ()) -> str:
        """A fictional hospital name, none of ``avoid`` (lower case) or ``text``."""
        never = {text.lower(), *avoid}
        return self._pick(_HOSPITALS, never, patient_id, "hospital", text.lower())

    def address(self, patient_id: str, text: str) -> str:
        """Replace house numbers, ZIPs, street and city words; keep street types and states."""
        text = re.sub(r"\d+", lambda m: self.digits(patient_id, "ADDRESS", m.group()), text)

        def word(m: re.Match[str]) -> str:
            w = m.group()
            if _ADDRESS_KEEP.match(w):
                return w
            return _like(w, self._pick(_PLACE_WORDS, {w.lower()}, patient_id, "place", w.lower()))

        return _WORD.sub(word, text)
