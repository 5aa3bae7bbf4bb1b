"""Black out PHI text burned into DICOM pixels: OCR with tesseract, PHI found by Presidio.

The method of Presidio's ``DicomImageRedactorEngine`` (presidio-image-redactor),
built from the pieces that fit this project (why not the package itself:
docs/deidentification.md, "Text burned into pixels"):

1. each frame becomes an 8-bit greyscale image (colour to luma, more than 8
   bits scaled to 0-255, ``MONOCHROME1`` inverted);
2. tesseract reads its words and their boxes (``pytesseract.image_to_data``);
3. a word is PHI when the Presidio analyzer flags it in the frame's text, when
   it matches an identifying value of the original header (patient and other
   person names, ids, institution, station, dates: Presidio's ``use_metadata``;
   a word cut short at the image's edge, ``CLEVELAN..``, still matches), or
   when it holds a run of 5 or more digits (an id the header does not carry);
4. the PHI words' boxes, widened by a margin, are filled with the frame's
   background (its darkest value; the brightest for ``MONOCHROME1``) in every
   sample, and the pixel data is written back uncompressed.

Nothing is done without tesseract: :func:`ocr_unavailable` says why, and the
caller reports how many images went unchecked.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

TESSERACT = "tesseract"
INSTALL_HINT = (
    "install tesseract-ocr (Debian/Ubuntu: apt-get install tesseract-ocr) and "
    "pip install 'clinical-llm[deid-images]'"
)
# Header elements whose values, seen again in the pixels, identify someone. Person names
# (every PN element) and dates (every DA/DT) are added by value representation.
IDENTIFYING = (
    "PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "PatientAddress", "PatientTelephoneNumbers", "IssuerOfPatientID", "MedicalRecordLocator",
    "AdmissionID", "RequestedProcedureID", "PerformedProcedureStepID",
)  # fmt: skip
MIN_TERM = 3  # shorter header tokens (initials, "M") would blank ordinary labels
MIN_PARTIAL = 4  # a word cut short matches a header token when it has this many characters
ID_DIGITS = re.compile(r"\d{5,}")
MARGIN = 2  # pixels added around each box: tesseract's boxes hug the glyphs

PhiSpans = Callable[[str], Iterable[tuple[int, int]]]
"""Character spans of PHI in a text (Presidio's analyzer, via the project's Deidentifier)."""


def ocr_unavailable() -> str | None:
    """Why burned-in text cannot be checked on this machine, or ``None`` when it can."""
    if shutil.which(TESSERACT) is None:
        return "tesseract not installed"
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return "pytesseract not installed"
    return None


@dataclass
class BurnedInCounts:
    """What the burned-in text check did over a run (counts only, never text)."""

    checked: int = 0
    """DICOM images read by OCR."""
    redacted_images: int = 0
    """Checked images where PHI text was found and blacked out."""
    redacted_words: int = 0
    """Words blacked out, over all frames."""
    unchecked: int = 0
    """DICOM images not checked (see ``skip_reason``, or pixel data that could not be decoded)."""
    undecodable: int = 0
    """Of ``unchecked``: images whose pixel data this installation cannot decode."""
    skip_reason: str | None = None
    """Why no image was checked (``tesseract not installed``), else ``None``."""

    def add(self, other: BurnedInCounts) -> None:
        """Add another's counts to these (the skip reason is the run's, kept as is)."""
        self.checked += other.checked
        self.redacted_images += other.redacted_images
        self.redacted_words += other.redacted_words
        self.unchecked += other.unchecked
        self.undecodable += other.undecodable

    def to_dict(self) -> dict[str, Any]:
        """The counts as a JSON object."""
        return asdict(self)


def skip_message(counts: BurnedInCounts) -> str | None:
    """The one warning a run gives when images went unchecked, or ``None`` when none did."""
    if not counts.unchecked:
        return None
    parts = []
    not_run = counts.unchecked - counts.undecodable
    if not_run:
        parts.append(
            f"{not_run} DICOM image(s) not checked for burned-in text "
            f"({counts.skip_reason}; headers were de-identified, pixels copied as they are): "
            f"{INSTALL_HINT}"
        )
    if counts.undecodable:
        parts.append(
            f"{counts.undecodable} DICOM image(s) not checked for burned-in text: "
            "their pixel data could not be decoded here (compressed transfer syntax); "
            "pixels copied as they are"
        )
    return "; ".join(parts)


def _tokens(value: str) -> list[str]:
    return [t for t in (_norm(w) for w in re.split(r"[\^\s,;/]+", value)) if len(t) >= MIN_TERM]


def _norm(word: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", word.upper())


def _date_forms(value: str) -> list[str]:
    m = re.match(r"(\d{4})(\d{2})(\d{2})", value)
    if not m:
        return []
    y, mo, d = m.groups()
    forms = {f"{y}{mo}{d}", f"{mo}{d}{y}", f"{int(mo)}{int(d)}{y}", f"{d}{mo}{y}"}
    return sorted(forms)


def header_phi_terms(ds: Dataset) -> frozenset[str]:
    """Identifying values of ``ds``'s header as normalised tokens (upper case, letters and digits).

    Call it before the header is scrubbed.

    Args:
        ds: the original dataset.

    Returns:
        Tokens of person names, ids, institution and station names, and dates in the
        forms they are printed in (``20170302``, ``03022017``...).
    """
    terms: set[str] = set()
    with warnings.catch_warnings():  # values of the original that break VR limits still count
        warnings.simplefilter("ignore", UserWarning)
        elements = list(ds.iterall())
    for elem in elements:
        if elem.keyword == "PixelData" or elem.value is None or elem.value == "":
            continue
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        if elem.VR in ("DA", "DT"):
            for v in values:
                terms.update(_date_forms(str(v)))
        elif elem.VR == "PN" or elem.keyword in IDENTIFYING:
            for v in values:
                terms.update(_tokens(str(v)))
    return frozenset(terms)


@dataclass(frozen=True)
class OcrWord:
    """One word tesseract read, with its box in frame pixels."""

    text: str
    left: int
    top: int
    width: int
    height: int
    line: tuple[int, int, int]


def ocr_image(frame: np.ndarray, photometric: str) -> np.ndarray:
    """One frame as the 8-bit greyscale image tesseract reads.

    Args:
        frame: ``(rows, cols)`` or ``(rows, cols, 3)`` stored values.
        photometric: the dataset's ``PhotometricInterpretation``.

    Returns:
        ``(rows, cols)`` uint8, bright meaning bright on screen.
    """
    img = frame.astype(np.float64)
    if img.ndim == 3:  # RGB (pydicom decodes YBR JPEG to RGB)
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if frame.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
    if photometric == "MONOCHROME1":
        img = 255.0 - img
    return np.clip(img, 0, 255).astype(np.uint8)


def ocr_words(image: np.ndarray) -> list[OcrWord]:
    """The words tesseract reads in an 8-bit greyscale image.

    Args:
        image: ``(rows, cols)`` uint8.

    Returns:
        Non-empty words with their boxes and (block, paragraph, line) numbers.
    """
    import pytesseract
    from PIL import Image

    data = pytesseract.image_to_data(Image.fromarray(image), output_type=pytesseract.Output.DICT)
    words = []
    for i, text in enumerate(data["text"]):
        if not str(text).strip():
            continue
        line = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        words.append(
            OcrWord(
                str(text).strip(),
                int(data["left"][i]),
                int(data["top"][i]),
                int(data["width"][i]),
                int(data["height"][i]),
                line,
            )
        )
    return words


def _matches_header(word: str, terms: frozenset[str]) -> bool:
    norm = _norm(word)
    if len(norm) < MIN_TERM:
        return False
    if norm in terms:
        return True
    for term in terms:
        if len(term) >= MIN_PARTIAL and term in norm:  # "ZZZDOWNTIME,MARY" holds "MARY"
            return True
        if len(norm) >= MIN_PARTIAL and term.startswith(norm):  # cut short: "CLEVELAN.."
            return True
    return False


def phi_words(
    words: list[OcrWord], terms: frozenset[str], phi_spans: PhiSpans | None
) -> list[OcrWord]:
    """The words of one frame that are PHI (header values, analyzer hits, long digit runs).

    Args:
        words: what OCR read in the frame.
        terms: :func:`header_phi_terms` of the original header.
        phi_spans: PHI spans of a text, or ``None`` to use header values and digits only.

    Returns:
        The words to black out, in reading order.
    """
    text_parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos, last_line = 0, None
    for w in words:
        if text_parts:
            sep = " " if w.line == last_line else "\n"
            text_parts.append(sep)
            pos += 1
        offsets.append((pos, pos + len(w.text)))
        text_parts.append(w.text)
        pos += len(w.text)
        last_line = w.line
    spans = list(phi_spans("".join(text_parts))) if phi_spans is not None and words else []
    found = []
    for w, (start, end) in zip(words, offsets, strict=True):
        flagged = any(s < end and start < e for s, e in spans)
        if flagged or _matches_header(w.text, terms) or ID_DIGITS.search(w.text):
            found.append(w)
    return found


def _fill_value(frame: np.ndarray, photometric: str) -> Any:
    return frame.max() if photometric == "MONOCHROME1" else frame.min()


class BurnedInRedactor:
    """Finds PHI text in DICOM pixels and blacks it out.

    Args:
        phi_spans: PHI spans of a text (the run's Presidio analyzer); ``None`` relies on
            header values and digit runs alone.
    """

    def __init__(self, phi_spans: PhiSpans | None = None) -> None:
        self._phi_spans = phi_spans

    def redact_dataset(self, ds: Dataset, terms: frozenset[str]) -> BurnedInCounts:
        """Black out PHI words in every frame of ``ds`` (in place).

        Pixel data is rewritten only when something was blacked out; it is then stored
        uncompressed (Explicit VR Little Endian), colour as ``RGB``.

        Args:
            ds: a dataset with pixel data (its header may already be scrubbed).
            terms: :func:`header_phi_terms` of the original header.

        Returns:
            Counts for this image: checked or undecodable, words blacked out.
        """
        counts = BurnedInCounts()
        if "PixelData" not in ds:
            return counts
        try:
            pixels = ds.pixel_array
        except Exception:  # no decoder here for this transfer syntax (JPEG-LS, JPEG 2000, ...)
            counts.unchecked = counts.undecodable = 1
            return counts
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        samples = int(ds.get("SamplesPerPixel", 1))
        frames_n = int(ds.get("NumberOfFrames", 1) or 1)
        frames = pixels if frames_n > 1 else pixels[np.newaxis]
        frames = frames.copy()
        words_out = 0
        for frame in frames:
            words = ocr_words(ocr_image(frame, photometric))
            fill = _fill_value(frame, photometric)
            for w in phi_words(words, terms, self._phi_spans):
                top, left = max(w.top - MARGIN, 0), max(w.left - MARGIN, 0)
                frame[top : w.top + w.height + MARGIN, left : w.left + w.width + MARGIN] = fill
                words_out += 1
        counts.checked = 1
        if words_out:
            counts.redacted_images = 1
            counts.redacted_words = words_out
            out = frames if frames_n > 1 else frames[0]
            if samples == 3 and photometric != "RGB":
                photometric = "RGB"  # pydicom decoded YBR to RGB; the new pixels are RGB
            ds.set_pixel_data(
                out,
                photometric_interpretation=photometric,
                bits_stored=int(ds.get("BitsStored", out.dtype.itemsize * 8)),
                generate_instance_uid=False,
            )
        return counts
