"""ECGs: shape and units; an R-peak detector agrees with the label, the report and the vitals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llm.data.synth.ecg import EcgSpec, simulate_ecg
from tests.data.synth.helpers import (
    admission_vitals,
    detect_r_peaks,
    index_encounter,
    load,
    reported_rate,
    section,
)


def test_rhythm_and_rate_match_label_report_and_vitals(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    seen = set()
    for r in records:
        wf = index_encounter(r).waveforms[0]
        assert wf.sampling_hz == 500 and wf.leads[:2] == ["I", "II"] and len(wf.leads) == 12
        signal = np.load(cohort_dir / wf.path, allow_pickle=False)
        assert signal.shape == (12, 5000) and signal.dtype == np.float16
        assert 0.4 < float(np.abs(signal).max()) < 5.0  # millivolts
        peaks = detect_r_peaks(signal[wf.leads.index("II")], wf.sampling_hz)
        rr = np.diff(peaks) / wf.sampling_hz
        rate = 60.0 / rr.mean()
        irregularity = rr.std() / rr.mean()
        stated = reported_rate(r)
        assert abs(rate - stated) < 2.0, (r.patient_id, rate, stated)
        assert stated == admission_vitals(r)["heart_rate"]
        rhythm = r.labels.rhythm
        seen.add(rhythm)
        interpretation = section(r, "ecg_report", "INTERPRETATION")
        if rhythm == "atrial_fibrillation":
            assert irregularity > 0.1, r.patient_id
            assert interpretation.startswith("Atrial fibrillation")
        else:
            assert irregularity < 0.06, r.patient_id
            expected = {
                "sinus": "Normal sinus rhythm",
                "sinus_tachycardia": "Sinus tachycardia",
                "sinus_bradycardia": "Sinus bradycardia",
            }[rhythm or ""]
            assert interpretation.startswith(expected)
            if rhythm == "sinus":
                assert 60 <= rate <= 100
            elif rhythm == "sinus_tachycardia":
                assert rate > 100
            else:
                assert rate < 60
    assert {"sinus", "sinus_tachycardia", "atrial_fibrillation"} <= seen


def _p_wave_power(signal: np.ndarray, peaks: np.ndarray) -> float:
    """Mean absolute lead-II deflection 120-240 ms before each R peak, around its median."""
    windows = [signal[p - 120 : p - 60].astype(np.float64) for p in peaks if p > 150]
    return float(np.mean([np.abs(w - np.median(w)).max() for w in windows]))


BASE = EcgSpec(
    rhythm="sinus",
    heart_rate=78,
    pr_ms=170,
    qrs_ms=90,
    qt_ms=385,
    qtc_ms=430,
    axis_deg=45,
    st_pattern=None,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_p_waves_in_sinus_not_in_fibrillation(seed: int) -> None:
    sinus = simulate_ecg(np.random.default_rng(seed), BASE)
    afib = simulate_ecg(
        np.random.default_rng(seed), replace(BASE, rhythm="atrial_fibrillation", pr_ms=None)
    )
    p_sinus = _p_wave_power(sinus[1], detect_r_peaks(sinus[1], 500))
    p_afib = _p_wave_power(afib[1], detect_r_peaks(afib[1], 500))
    assert p_sinus > 0.08 and p_sinus > 1.5 * p_afib


def test_st_elevation_in_the_stated_leads() -> None:
    normal = simulate_ecg(np.random.default_rng(0), BASE)
    inferior = simulate_ecg(np.random.default_rng(0), replace(BASE, st_pattern="inferior_stemi"))
    peaks = detect_r_peaks(normal[1], 500)

    # J point + 60-80 ms after the R peak: ST level in II, III, aVF rises, aVL falls
    def st(sig: np.ndarray, lead: int) -> float:
        return float(np.mean([sig[lead, p + 60 : p + 70].astype(float).mean() for p in peaks[:-1]]))

    for lead in (1, 2, 5):
        assert st(inferior, lead) - st(normal, lead) > 0.1
    assert st(inferior, 4) < st(normal, 4)
