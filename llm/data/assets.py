"""Render record assets to PNG for multimodal task datasets.

* Chest X-rays (DICOM) are read with pydicom, passed through the modality LUT
  (rescale slope/intercept), windowed with the file's first window
  centre/width (DICOM PS3.3 C.11.2.1.2 linear function) or stretched between
  the image's min and max when it has none, inverted for MONOCHROME1, and
  written as 8-bit grayscale PNG at the original size.
* ECGs (``.npy``, leads x samples, millivolts) are drawn as a standard 12-lead
  sheet: 3 rows x 4 columns of 2.5 s (I aVR V1 V4 / II aVL V2 V5 /
  III aVF V3 V6), a 10 s lead II rhythm strip below, on ECG paper at 25 mm/s
  and 10 mm/mV (1 mm minor and 5 mm major grid) with a 1 mV calibration pulse.

Rendering is deterministic: the same input gives the same PNG bytes (no
timestamps or metadata are written). Unreadable input raises
:class:`AssetError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from llm.errors import BadInputError
from llm.files import atomic_path

ECG_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
ECG_RHYTHM_LEAD = "II"
ECG_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

PX_PER_MM = 4  # 1 mm of ECG paper; 250 mm (10 s) are 1000 px wide
MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30  # height of one lead row
LEFT_MM = 10  # room for the calibration pulse
TOP_MM = 5
SECONDS_PER_COLUMN = 2.5
SHEET_SECONDS = 10.0

# The sheet is a 4-colour palette image: small, fast to encode, and it reads as RGB.
PAPER, MINOR_GRID, MAJOR_GRID, TRACE = 0, 1, 2, 3
ECG_PALETTE = ((255, 255, 255), (252, 215, 215), (240, 150, 150), (0, 0, 0))


class AssetError(BadInputError):
    """An image or waveform file that cannot be rendered.

    Args:
        path: the file.
        reason: stable, PHI-free key counted by the dataset builder
            (``unreadable_image``, ``unreadable_waveform``).
        message: what is wrong.
    """

    def __init__(self, path: Path, reason: str, message: str) -> None:
        self.path = path
        self.reason = reason
        self.message = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self) -> tuple[type[AssetError], tuple[Path, str, str]]:
        # raised in a worker process or a Ray actor, raised again by the parent
        return (type(self), (self.path, self.reason, self.message))


def _save_png(image: Image.Image, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        image.save(tmp, format="PNG", optimize=False)


def _first(value: object) -> float:
    """First value of a possibly multi-valued DICOM number (WindowCenter may hold several)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = next(iter(value))  # type: ignore[call-overload]
    return float(value)  # type: ignore[arg-type]


def window_to_uint8(
    pixels: np.ndarray, *, center: float | None, width: float | None, invert: bool = False
) -> np.ndarray:
    """Map raw intensities to 0..255.

    Args:
        pixels: intensities after the modality LUT.
        center: window centre, or ``None`` to stretch min..max.
        width: window width (> 1), or ``None`` to stretch min..max.
        invert: MONOCHROME1 (white is low).

    Returns:
        ``uint8`` array of the same shape.
    """
    x = pixels.astype(np.float64)
    if center is not None and width is not None and width > 1:
        scaled = (x - (center - 0.5)) / (width - 1) + 0.5
    else:
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    out = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return 255 - out if invert else out


def dicom_to_png(src: Path, dst: Path) -> tuple[int, int]:
    """Write a DICOM image as an 8-bit grayscale PNG.

    Args:
        src: the DICOM file.
        dst: the PNG to write (folders are created).

    Returns:
        ``(width, height)`` of the PNG.

    Raises:
        AssetError: the file is not readable DICOM or holds no usable pixels.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(src)
        pixels = np.asarray(apply_modality_lut(ds.pixel_array, ds))
    except Exception as exc:  # pydicom raises many types for broken or compressed files
        raise AssetError(src, "unreadable_image", f"cannot read DICOM pixels: {exc}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise AssetError(src, "unreadable_image", f"expected a grayscale image, got {photometric}")
    if pixels.ndim == 3:  # multi-frame: the first frame is the image
        pixels = pixels[0]
    if pixels.ndim != 2 or pixels.size == 0:
        raise AssetError(src, "unreadable_image", f"expected a 2-D image, got shape {pixels.shape}")
    center = _first(ds.WindowCenter) if "WindowCenter" in ds else None
    width = _first(ds.WindowWidth) if "WindowWidth" in ds else None
    gray = window_to_uint8(pixels, center=center, width=width, invert=photometric == "MONOCHROME1")
    image = Image.fromarray(gray, mode="L")
    _save_png(image, dst)
    return image.size


def image_to_png(src: Path, dst: Path) -> tuple[int, int]:
    """Re-encode a PNG (or other PIL-readable) image as 8-bit grayscale PNG.

    Raises:
        AssetError: PIL cannot read the file.
    """
    try:
        with Image.open(src) as im:
            image = im.convert("L")
    except Exception as exc:  # PIL raises several types for unreadable files
        raise AssetError(src, "unreadable_image", f"cannot read image: {exc}") from None
    _save_png(image, dst)
    return image.size


def check_ecg_file(src: Path, leads: Sequence[str]) -> None:
    """Check an ECG ``.npy`` from its header alone: a NumPy array file, numeric, and
    ``(len(leads), n_samples)`` with ``n_samples > 0``. The samples are not read.

    Raises:
        AssetError: naming the file and what is wrong (``unreadable_waveform``).
    """
    try:
        with src.open("rb") as fh:
            if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                raise AssetError(
                    src,
                    "unreadable_waveform",
                    "not a NumPy .npy file (it does not start with the .npy magic bytes)",
                )
            fh.seek(0)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:  # 2.0; 3.0 differs only in allowing UTF-8 field names
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except AssetError:
        raise
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError for bad headers
        raise AssetError(
            src, "unreadable_waveform", f"cannot read the .npy header ({type(exc).__name__})"
        ) from None
    _check_ecg_array(src, tuple(shape), np.dtype(dtype), leads)


_NPY_MAGIC = b"\x93NUMPY"


def _check_ecg_array(
    src: Path, shape: tuple[int, ...], dtype: np.dtype, leads: Sequence[str]
) -> None:
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise AssetError(
            src, "unreadable_waveform", f"expected real numbers (int or float), got dtype {dtype}"
        )
    if len(shape) != 2 or shape[0] != len(leads) or shape[1] == 0:
        raise AssetError(
            src,
            "unreadable_waveform",
            f"expected shape ({len(leads)}, n_samples) for leads {list(leads)}, got {shape}",
        )


def load_ecg(src: Path, leads: Sequence[str]) -> np.ndarray:
    """Load an ECG ``.npy`` (leads x samples, millivolts) as float32.

    Raises:
        AssetError: not a ``.npy`` file, not real numbers, or a shape that does
            not match ``leads`` (see :func:`check_ecg_file`).
    """
    check_ecg_file(src, leads)
    try:
        signal = np.load(src, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError for bad files
        raise AssetError(src, "unreadable_waveform", f"cannot read ECG array: {exc}") from None
    _check_ecg_array(src, signal.shape, signal.dtype, leads)
    return np.nan_to_num(signal.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _mm(value: float) -> int:
    return round(value * PX_PER_MM)


def _draw_grid(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    for major in (False, True):  # major lines last so they stay on top
        step = _mm(5 if major else 1)
        color = MAJOR_GRID if major else MINOR_GRID
        for x in range(0, width, step):
            if major or x % _mm(5):
                draw.line([(x, 0), (x, height - 1)], fill=color)
        for y in range(0, height, step):
            if major or y % _mm(5):
                draw.line([(0, y), (width - 1, y)], fill=color)


def _draw_trace(
    draw: ImageDraw.ImageDraw,
    samples: np.ndarray,
    *,
    x0: float,
    baseline: float,
    sampling_hz: float,
    height: int,
) -> None:
    if samples.size < 2:
        return
    xs = x0 + np.arange(samples.size) / sampling_hz * MM_PER_S * PX_PER_MM
    ys = np.clip(baseline - samples * MM_PER_MV * PX_PER_MM, 0, height - 1)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=TRACE, width=2)


def _draw_calibration(draw: ImageDraw.ImageDraw, baseline: float) -> None:
    """The 1 mV x 0.2 s calibration pulse every ECG sheet starts each row with."""
    x0, x1, x2, x3 = _mm(2), _mm(3), _mm(8), _mm(9)
    top = baseline - _mm(MM_PER_MV)
    draw.line(
        [(x0, baseline), (x1, baseline), (x1, top), (x2, top), (x2, baseline), (x3, baseline)],
        fill=TRACE,
        width=2,
    )


def render_ecg_sheet(signal: np.ndarray, leads: Sequence[str], sampling_hz: float) -> Image.Image:
    """Draw a 12-lead ECG sheet (3x4 layout + lead II rhythm strip) on ECG paper.

    Args:
        signal: ``(len(leads), n_samples)`` millivolts.
        leads: lead names in row order; must include the 12 standard leads
            (case-insensitive names).
        sampling_hz: samples per second.

    Returns:
        A palette image (colours :data:`ECG_PALETTE`), 1060 x 520 px (4 px per mm).
        Seconds beyond 10 are not drawn.

    Raises:
        ValueError: a standard lead is missing.
    """
    by_name = {name.upper(): i for i, name in enumerate(leads)}
    missing = [lead for lead in ECG_LEADS if lead.upper() not in by_name]
    if missing:
        raise ValueError(f"ECG lacks lead(s) {', '.join(missing)}")
    width = _mm(LEFT_MM + SHEET_SECONDS * MM_PER_S) + _mm(5)
    height = _mm(TOP_MM * 2 + ROW_MM * (len(ECG_LAYOUT) + 1))
    image = Image.new("P", (width, height), PAPER)
    image.putpalette([channel for colour in ECG_PALETTE for channel in colour])
    draw = ImageDraw.Draw(image)
    _draw_grid(draw, width, height)
    font = ImageFont.load_default()
    per_column = round(SECONDS_PER_COLUMN * sampling_hz)
    for row, names in enumerate((*ECG_LAYOUT, (ECG_RHYTHM_LEAD,))):
        baseline = _mm(TOP_MM + ROW_MM * row + ROW_MM * 0.6)
        _draw_calibration(draw, baseline)
        columns = len(names)
        span = per_column * (4 // columns)  # the rhythm strip spans all four columns
        for col, name in enumerate(names):
            start = col * span
            x0 = _mm(LEFT_MM + col * SECONDS_PER_COLUMN * MM_PER_S)
            samples = signal[by_name[name.upper()], start : start + span]
            _draw_trace(
                draw, samples, x0=x0, baseline=baseline, sampling_hz=sampling_hz, height=height
            )
            draw.text((x0 + _mm(1), _mm(TOP_MM + ROW_MM * row + 1)), name, fill=TRACE, font=font)
            if col:  # lead-change marker between columns
                draw.line([(x0, baseline - _mm(2)), (x0, baseline + _mm(2))], fill=TRACE, width=2)
    return image


def ecg_to_png(src: Path, dst: Path, leads: Sequence[str], sampling_hz: float) -> tuple[int, int]:
    """Render an ECG ``.npy`` as a 12-lead sheet PNG (see :func:`render_ecg_sheet`).

    Returns:
        ``(width, height)`` of the PNG.

    Raises:
        AssetError: unreadable array, wrong shape, or missing standard leads.
    """
    signal = load_ecg(src, leads)
    try:
        image = render_ecg_sheet(signal, leads, sampling_hz)
    except ValueError as exc:
        raise AssetError(src, "ecg_missing_leads", str(exc)) from None
    _save_png(image, dst)
    return image.size
