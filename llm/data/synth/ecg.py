"""A 12-lead ECG simulator (numpy only).

Each beat is a sum of Gaussian waves (P, Q, R, S, T, as in McSharry et al.'s
ECGSYN), but every wave is a 3-D cardiac dipole rather than a scalar, so each
lead is the projection of the dipole on that lead's axis. Leads I and II are
projected; III, aVR, aVL and aVF follow from Einthoven's and Goldberger's
equations, and V1-V6 are projected on horizontal-plane axes. Beat times come
from the rhythm: sinus rhythms are nearly regular (respiratory sinus
arrhythmia of a few percent), atrial fibrillation has irregularly irregular
RR intervals, no P waves and a fibrillatory baseline. Baseline wander and
white noise are added per lead.

The RR intervals inside the strip are scaled so that their mean is exactly
60 / heart rate: the rate an R-peak detector measures is the rate the record
states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLING_HZ = 500
DURATION_S = 10.0
N_SAMPLES = int(SAMPLING_HZ * DURATION_S)
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# Beats are kept this far from the strip's ends so that every R peak is whole.
EDGE_S = 0.3
# Horizontal-plane angles (degrees from the patient's left towards anterior) of V1..V6.
_PRECORDIAL_ANGLES = (115.0, 95.0, 75.0, 60.0, 30.0, 0.0)
_PRECORDIAL_GAIN = 1.4


@dataclass(frozen=True)
class EcgSpec:
    """What the ECG shows; the report is written from the same values."""

    rhythm: str  # sinus, sinus_tachycardia, sinus_bradycardia, atrial_fibrillation
    heart_rate: int
    pr_ms: int | None  # None in atrial fibrillation
    qrs_ms: int
    qt_ms: int
    qtc_ms: int
    axis_deg: int
    st_pattern: str | None  # inferior_stemi, anterior_stemi, st_depression, nonspecific_st


def make_ecg_spec(
    rng: np.random.Generator, *, rhythm: str, heart_rate: int, st_pattern: str | None
) -> EcgSpec:
    """Choose intervals and axis for an ECG of the given rhythm and rate.

    QT follows Bazett's formula from a sampled QTc, so intervals and rate agree.
    """
    rr = 60.0 / heart_rate
    qtc = int(rng.integers(395, 465))
    qt = round(qtc * np.sqrt(rr))
    pr = None if rhythm == "atrial_fibrillation" else int(rng.integers(128, 200))
    return EcgSpec(
        rhythm=rhythm,
        heart_rate=heart_rate,
        pr_ms=pr,
        qrs_ms=int(rng.integers(78, 108)),
        qt_ms=qt,
        qtc_ms=qtc,
        axis_deg=int(rng.integers(-10, 80)),
        st_pattern=st_pattern,
    )


def beat_times(rng: np.random.Generator, spec: EcgSpec) -> np.ndarray:
    """R-peak times (seconds) inside the strip, with mean RR exactly 60 / rate."""
    mean_rr = 60.0 / spec.heart_rate
    t0 = EDGE_S + rng.uniform(0.0, mean_rr * 0.8)
    n_intervals = int((DURATION_S - EDGE_S - t0) / mean_rr)
    if spec.rhythm == "atrial_fibrillation":
        ratios = rng.uniform(0.6, 1.4, n_intervals)
    else:
        # respiratory sinus arrhythmia: a slow sinusoid plus a little jitter
        k = np.arange(n_intervals)
        phase = rng.uniform(0, 2 * np.pi)
        ratios = 1.0 + 0.025 * np.sin(2 * np.pi * k * mean_rr / 4.0 + phase)
        ratios += rng.normal(0.0, 0.008, n_intervals)
    ratios = ratios / ratios.mean()
    return t0 + np.concatenate([[0.0], np.cumsum(ratios * mean_rr)])


def _unit(frontal_deg: float, anterior: float = 0.0) -> np.ndarray:
    """A dipole direction: frontal-plane angle (0 = patient's left, 90 = feet) plus a z part."""
    a = np.deg2rad(frontal_deg)
    return np.array([np.cos(a), np.sin(a), anterior])


def _waves(spec: EcgSpec, rng: np.random.Generator) -> list[tuple[float, float, np.ndarray]]:
    """(offset from R in s, width in s, dipole vector in mV) of each wave of a beat."""
    rr = 60.0 / spec.heart_rate
    qrs = spec.qrs_ms / 1000.0
    axis = float(spec.axis_deg)
    waves: list[tuple[float, float, np.ndarray]] = [
        (-0.35 * qrs, 0.12 * qrs, 0.25 * _unit(axis + 150, 0.9)),  # septal q (r in V1)
        (0.0, 0.13 * qrs, rng.uniform(1.1, 1.5) * _unit(axis, -0.35)),  # R
        (0.35 * qrs, 0.14 * qrs, 0.45 * _unit(axis - 150, -0.9)),  # S
    ]
    # T wave follows the QRS axis; its peak sits at about 3/4 of the QT interval.
    t_peak = spec.qt_ms / 1000.0 * 0.72 - 0.5 * qrs
    waves.append((t_peak, 0.045 + 0.03 * np.sqrt(rr), 0.32 * _unit(axis + 10, 0.5)))
    if spec.pr_ms is not None:
        waves.append((-spec.pr_ms / 1000.0 + 0.04, 0.022, 0.16 * _unit(55.0, 0.2)))  # P
    st = {
        "inferior_stemi": 0.28 * _unit(90.0, 0.0),
        "anterior_stemi": 0.30 * np.array([0.15, 0.0, 1.0]),
        "st_depression": -0.12 * _unit(10.0, -0.4),
        "nonspecific_st": -0.05 * _unit(20.0, 0.0),
    }.get(spec.st_pattern or "")
    if st is not None:
        # an injury current: a broad hump spanning the ST segment into the T wave
        waves.append((0.5 * qrs + 0.09, 0.05, st))
    return waves


def _lead_matrix() -> np.ndarray:
    """(8, 3): projections for I, II and V1..V6 (the other limb leads are derived)."""
    rows = [_unit(0.0), _unit(60.0)]
    for angle in _PRECORDIAL_ANGLES:
        a = np.deg2rad(angle)
        rows.append(_PRECORDIAL_GAIN * np.array([np.cos(a), 0.1, np.sin(a)]))
    return np.stack(rows)


def simulate_ecg(rng: np.random.Generator, spec: EcgSpec) -> np.ndarray:
    """Simulate the 10-s, 12-lead, 500-Hz ECG of ``spec``.

    Args:
        rng: the patient's ECG stream.
        spec: rhythm, rate, intervals, axis and ST pattern.

    Returns:
        float16 array of shape (12, 5000) in millivolts, leads in :data:`LEADS` order.
    """
    t = np.arange(N_SAMPLES) / SAMPLING_HZ
    peaks = beat_times(rng, spec)
    waves = _waves(spec, rng)
    offsets = np.array([w[0] for w in waves])
    widths = np.array([w[1] for w in waves])
    vectors = np.stack([w[2] for w in waves])  # (n_waves, 3)
    dipole = np.zeros((3, N_SAMPLES))
    for r in peaks:
        centres = r + offsets
        lo = max(0, int((r - 0.35) * SAMPLING_HZ))
        hi = min(N_SAMPLES, int((r + 0.7) * SAMPLING_HZ))
        seg = t[lo:hi]
        shapes = np.exp(-0.5 * ((seg[None, :] - centres[:, None]) / widths[:, None]) ** 2)
        dipole[:, lo:hi] += vectors.T @ shapes
    if spec.rhythm == "atrial_fibrillation":
        dipole += _fibrillatory_waves(rng, t)
    projected = _lead_matrix() @ dipole  # I, II, V1..V6
    lead_i, lead_ii = projected[0], projected[1]
    limb = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,  # III (Einthoven)
            -(lead_i + lead_ii) / 2,  # aVR (Goldberger)
            lead_i - lead_ii / 2,  # aVL
            lead_ii - lead_i / 2,  # aVF
        ]
    )
    signal = np.concatenate([limb, projected[2:]])
    signal += _baseline_wander(rng, t) + rng.normal(0.0, 0.012, signal.shape)
    return signal.astype(np.float16)


def _fibrillatory_waves(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Chaotic atrial activity: 4-9 Hz waves of drifting amplitude, mostly right-anterior."""
    f = np.zeros_like(t)
    for _ in range(3):
        freq = rng.uniform(4.0, 9.0)
        drift = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        f += rng.uniform(0.02, 0.045) * drift * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
    direction = np.array([-0.3, 0.8, 0.9])
    return direction[:, None] * f[None, :]


def _baseline_wander(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Respiration and electrode-motion drift: slow sinusoids, different on every lead."""
    freqs = rng.uniform(0.1, 0.4, (len(LEADS), 2))
    amps = rng.uniform(0.02, 0.08, (len(LEADS), 2))
    phases = rng.uniform(0, 2 * np.pi, (len(LEADS), 2))
    waves = amps[:, :, None] * np.sin(2 * np.pi * freqs[:, :, None] * t + phases[:, :, None])
    return waves.sum(axis=1)
