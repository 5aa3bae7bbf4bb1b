"""Chest-X-ray-like images drawn from the findings a radiology report states.

The picture is a frontal (PA or AP) projection in display convention: the
patient's right is on the image's left, brighter means more attenuation
(MONOCHROME2). Anatomy is a few smooth shapes (thorax, two lung fields, heart,
mediastinum, spine, ribs, diaphragm) with small per-patient jitter, so that
measured properties follow the findings:

* consolidation: a dense opacity filling the stated lung zone;
* pleural effusion: the costophrenic angle and lung base of that side filled
  with fluid density (a blunted angle with a meniscus);
* cardiomegaly: a heart shadow wider than half the thorax;
* pulmonary edema: perihilar haze on both sides;
* hyperinflation: taller, darker lungs with flat, low diaphragms.

:data:`ZONES` gives the boxes (fractions of the image) the report's zones
refer to; tests measure intensities inside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (row0, row1, col0, col1) as fractions of the image; "right" is the patient's right.
ZONES: dict[str, tuple[float, float, float, float]] = {
    "right upper": (0.26, 0.40, 0.20, 0.36),
    "right lower": (0.50, 0.62, 0.19, 0.35),
    "left upper": (0.26, 0.40, 0.64, 0.80),
    "left lower": (0.50, 0.62, 0.70, 0.83),
}
# Costophrenic-angle boxes, where an effusion collects first.
COSTOPHRENIC: dict[str, tuple[float, float, float, float]] = {
    "right": (0.62, 0.68, 0.20, 0.30),
    "left": (0.62, 0.68, 0.70, 0.80),
}
LOBE_OF_ZONE = {
    "right upper": "right upper lobe",
    "right lower": "right lower lobe",
    "left upper": "left upper lobe",
    "left lower": "left lower lobe",
}
_LUNG = 0.16
_SOFT = 0.52
_BONE = 0.75
_MAX_12BIT = 4095


@dataclass(frozen=True)
class ChestFindings:
    """What the chest X-ray shows (and its report states)."""

    view: str = "PA"  # PA or AP
    consolidation: str | None = None  # a key of ZONES
    effusion: tuple[str, ...] = ()  # "right", "left"
    cardiomegaly: bool = False
    edema: bool = False
    hyperinflation: bool = False
    low_volumes: bool = False

    @property
    def normal(self) -> bool:
        """True when the lungs are clear and the heart normal."""
        return not (
            self.consolidation
            or self.effusion
            or self.cardiomegaly
            or self.edema
            or self.hyperinflation
        )


def zone_box(box: tuple[float, float, float, float], size: int) -> tuple[slice, slice]:
    """Pixel slices (rows, cols) of a fractional box in a ``size`` x ``size`` image."""
    r0, r1, c0, c1 = box
    return slice(int(r0 * size), int(r1 * size)), slice(int(c0 * size), int(c1 * size))


def _ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def _smooth(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur (edges of real anatomy are never sharp)."""
    radius = max(1, int(3 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_px) ** 2)
    k /= k.sum()
    padded = np.pad(img, radius, mode="edge")
    rows = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, rows)


def render_chest(rng: np.random.Generator, findings: ChestFindings, size: int) -> np.ndarray:
    """Draw a frontal chest radiograph showing ``findings``.

    Args:
        rng: the patient's image stream.
        findings: what the image must show.
        size: rows and columns (square image).

    Returns:
        uint16 array (``size`` x ``size``) with 12-bit values, MONOCHROME2.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    jitter = rng.normal(0.0, 0.006, 4)
    img = np.full((size, size), 0.04)
    img[_ellipse(yy, xx, 0.58, 0.5, 0.52, 0.47) <= 1] = _SOFT * 0.8  # thorax and shoulders
    lung_ry = 0.30 * (1.12 if findings.hyperinflation else 0.86 if findings.low_volumes else 1.0)
    lung_cy = 0.43 + (lung_ry - 0.30) * 0.6
    lungs = np.zeros((size, size), dtype=bool)
    for cx, rx in ((0.285 + jitter[0], 0.145), (0.715 + jitter[1], 0.14)):
        lungs |= _ellipse(yy, xx, lung_cy + jitter[2], cx, lung_ry, rx) <= 1
    lungs &= yy > 0.14  # the apices stop under the clavicles
    img[lungs] = _LUNG * (0.8 if findings.hyperinflation else 1.0)
    # ribs: faint posterior arcs across both lungs
    ribs = 0.5 + 0.5 * np.cos(2 * np.pi * (yy - 0.12 * np.abs(xx - 0.5)) * 11.0)
    img[lungs] += 0.05 * ribs[lungs] ** 4
    # diaphragm: below the domes is abdomen; the heart sits on it
    dome = lung_cy + lung_ry * (0.97 if findings.hyperinflation else 0.9)
    dome_curve = dome - (0.0 if findings.hyperinflation else 0.05) * np.cos(
        np.pi * (xx - 0.5) * 2.2
    )
    img[(yy > dome_curve) & (_ellipse(yy, xx, 0.58, 0.5, 0.52, 0.47) <= 1)] = _SOFT + 0.03
    # mediastinum (widening at the aortic knob), heart, then the spine through them
    img[(np.abs(xx - 0.5) < 0.055) & (yy > 0.08) & (yy < 0.6)] = _SOFT + 0.04
    img[_ellipse(yy, xx, 0.30, 0.555, 0.045, 0.04) <= 1] = _SOFT + 0.04
    heart_rx = 0.13 * (1.8 if findings.cardiomegaly else 1.0)
    heart_cx = 0.53 + 0.2 * (heart_rx - 0.13)
    img[_ellipse(yy, xx, 0.58 + jitter[3], heart_cx, 0.12, heart_rx) <= 1] = _SOFT + 0.06
    img[np.abs(xx - 0.5) < 0.022] += 0.06
    # clavicles
    for sign in (-1.0, 1.0):
        clavicle = np.abs(yy - (0.13 + 0.1 * np.abs(xx - 0.5))) < 0.012
        img[clavicle & (sign * (xx - 0.5) > 0.03) & (sign * (xx - 0.5) < 0.33)] = _BONE * 0.85
    if findings.edema:
        for cx in (0.36, 0.64):
            hilum = np.exp(-_ellipse(yy, xx, 0.47, cx, 0.12, 0.09))
            img[lungs] += 0.12 * hilum[lungs]
    if findings.consolidation:
        r0, r1, c0, c1 = ZONES[findings.consolidation]
        patch = (
            _ellipse(yy, xx, (r0 + r1) / 2, (c0 + c1) / 2, (r1 - r0) * 0.85, (c1 - c0) * 0.85) <= 1
        )
        img[patch & lungs] = _SOFT + 0.08
    for side in findings.effusion:
        # fluid fills the base and climbs the lateral chest wall (a meniscus)
        lateral = np.abs(xx - 0.5) / 0.4
        meniscus = 0.62 - 0.08 * np.clip(lateral, 0, 1) ** 2
        side_mask = (xx > 0.5) if side == "left" else (xx < 0.5)
        img[lungs & side_mask & (yy > meniscus)] = _SOFT + 0.02
    img = _smooth(img, max(0.6, size / 160))
    img += rng.normal(0.0, 0.012, img.shape)
    return (np.clip(img / _BONE, 0.0, 1.0) * _MAX_12BIT).astype(np.uint16)


def cardiothoracic_ratio(image: np.ndarray) -> float:
    """Widest heart shadow / widest thoracic (lung-to-lung) width, as a radiologist measures.

    A threshold measurement: on each row of the cardiac region, the run of
    bright (soft-tissue) columns around the midline is the heart and
    mediastinum; on each row of the lung region, the outermost dark (air)
    columns bound the thorax.
    """
    size = image.shape[0]
    img = image.astype(np.float64) / _MAX_12BIT * _BONE
    cut = (_LUNG + _SOFT) / 2
    # thorax: the widest span between the outermost air (lung) pixels of a row
    thorax_width, left_edge, right_edge = 0, 0, size - 1
    min_run = max(3, int(0.03 * size))  # air in a lung, not the blurred edge of the body
    for r in range(int(0.30 * size), int(0.56 * size)):
        dark = np.concatenate([[0], ((img[r] < cut) & (img[r] > 0.08)).astype(np.int8), [0]])
        starts, ends = np.nonzero(np.diff(dark) == 1)[0], np.nonzero(np.diff(dark) == -1)[0]
        runs = [(a, b) for a, b in zip(starts, ends, strict=True) if b - a >= min_run]
        if runs and runs[-1][1] - runs[0][0] > thorax_width:
            left_edge, right_edge = int(runs[0][0]), int(runs[-1][1]) - 1
            thorax_width = right_edge - left_edge + 1
    # heart: the most soft-tissue columns between the lungs, on the rows just above the diaphragm
    heart_width = 0
    for r in range(int(0.50 * size), int(0.54 * size) + 1):
        heart_width = max(heart_width, int((img[r, left_edge : right_edge + 1] > cut).sum()))
    return heart_width / thorax_width if thorax_width else float("nan")
