"""Radiology and ECG reports, written from the same findings the image and waveform show."""

from __future__ import annotations

from datetime import datetime

from llm.data.phi import PhiSpan
from llm.data.synth.cxr import LOBE_OF_ZONE, ChestFindings
from llm.data.synth.ecg import EcgSpec
from llm.data.synth.notes import NoteWriter
from llm.data.synth.text import NoteBuilder, Phi, pick

RHYTHM_TEXT = {
    "sinus": "Normal sinus rhythm",
    "sinus_tachycardia": "Sinus tachycardia",
    "sinus_bradycardia": "Sinus bradycardia",
    "atrial_fibrillation": "Atrial fibrillation",
}
ST_FINDINGS = {
    None: ("No ST elevation or depression.", "ST segments are isoelectric."),
    "inferior_stemi": (
        "ST elevation of 2-3 mm in leads II, III and aVF with reciprocal ST depression in aVL.",
    ),
    "anterior_stemi": ("ST elevation of 2-3 mm in leads V1 through V4.",),
    "st_depression": ("Horizontal ST depression of 1 mm in leads I, aVL, V5 and V6.",),
    "nonspecific_st": ("Minor nonspecific ST-T wave flattening.",),
}
ST_INTERPRETATION = {
    None: "",
    "inferior_stemi": " Inferior ST-elevation myocardial infarction, acute.",
    "anterior_stemi": " Anterior ST-elevation myocardial infarction, acute.",
    "st_depression": " Lateral ST depression, consider subendocardial ischemia.",
    "nonspecific_st": " Nonspecific ST-T wave abnormality.",
}


def chest_findings_text(w: NoteWriter, c: ChestFindings) -> tuple[list[str], list[str]]:
    """Sentences of FINDINGS and IMPRESSION for ``c`` (positive findings first)."""
    rng = w.rng
    findings: list[str] = []
    impression: list[str] = []
    if c.low_volumes:
        findings.append("Low lung volumes limit evaluation of the lung bases.")
        impression.append("Limited study. No definite acute cardiopulmonary abnormality.")
    if c.consolidation:
        lobe = LOBE_OF_ZONE[c.consolidation]
        findings.append(
            pick(
                rng,
                (
                    f"Dense airspace consolidation in the {lobe}.",
                    f"Focal consolidation is present in the {lobe}.",
                    f"Lobar opacity with air bronchograms in the {lobe}, consistent with "
                    "consolidation.",
                ),
            )
        )
        impression.append(
            f"{lobe.capitalize()} consolidation, compatible with pneumonia in the appropriate "
            "clinical setting."
        )
    if c.hyperinflation:
        findings.append("The lungs are hyperinflated with flattening of the hemidiaphragms.")
        impression.append("Hyperinflation without focal consolidation.")
    if c.edema:
        findings.append(
            "Perihilar haziness and pulmonary vascular congestion, consistent with interstitial "
            "edema."
        )
        impression.append("Pulmonary vascular congestion and interstitial edema.")
    if len(c.effusion) == 2:
        findings.append("Bilateral pleural effusions blunting both costophrenic angles.")
        impression.append("Bilateral pleural effusions.")
    elif c.effusion:
        side = c.effusion[0]
        findings.append(f"Small {side} pleural effusion blunting the {side} costophrenic angle.")
        impression.append(f"Small {side} pleural effusion.")
    if c.cardiomegaly:
        findings.append(pick(rng, ("The cardiac silhouette is enlarged.", "Cardiomegaly.")))
        impression.append("Cardiomegaly.")
    elif not c.low_volumes:
        findings.append(pick(rng, ("Heart size is normal.", "Normal cardiac silhouette.")))
    if not c.consolidation and not c.low_volumes and not c.edema:
        findings.append(pick(rng, ("The lungs are clear.", "No focal consolidation.")))
    if not c.effusion:
        findings.append(
            pick(
                rng,
                ("No pleural effusion or pneumothorax.", "No pleural effusion. No pneumothorax."),
            )
        )
    if c.normal and not c.low_volumes:
        impression.append(
            pick(rng, ("No acute cardiopulmonary process.", "Normal chest radiograph."))
        )
    return findings, impression


def radiology_report(
    w: NoteWriter, findings: ChestFindings, taken: datetime, read: datetime
) -> tuple[str, list[PhiSpan]]:
    """The chest X-ray report (EXAM, INDICATION, FINDINGS, IMPRESSION)."""
    b, rng, f = NoteBuilder(), w.rng, w.facts
    w.header(
        b,
        pick(rng, ("Department of Radiology", "Radiology Report", "Diagnostic Imaging Report")),
        taken,
    )
    b.line(
        "Accession {acc}    Ordering provider: Dr. {dr}",
        acc=Phi(w.who.accession, "MRN"),
        dr=w.name(w.who.attending),
    )
    view = "PA" if findings.view == "PA" else "portable AP"
    b.section(
        "EXAM",
        pick(
            rng, (f"Chest radiograph, single frontal {view} view.", f"XR chest, 1 view ({view}).")
        ),
    )
    b.section(
        "INDICATION",
        "{cc}. Evaluate for acute cardiopulmonary process.",
        cc=f.chief_complaint.capitalize(),
    )
    lines, impression = chest_findings_text(w, findings)
    b.section("FINDINGS", " ".join(lines))
    b.section("IMPRESSION")
    for i, item in enumerate(impression, start=1):
        b.line(f"{i}. {item}")
    w.signature(b, w.who.radiologist, read)
    return b.text(), b.spans


def ecg_report(
    w: NoteWriter, spec: EcgSpec, taken: datetime, read: datetime
) -> tuple[str, list[PhiSpan]]:
    """The 12-lead ECG report: FINDINGS (rate, intervals), INTERPRETATION (names the rhythm)."""
    b, rng = NoteBuilder(), w.rng
    w.header(
        b, pick(rng, ("12-Lead Electrocardiogram", "Cardiology: ECG Report", "Resting ECG")), taken
    )
    b.line("Acquired {when}", when=w.date_time(taken, int(rng.integers(6))))
    rate = pick(rng, ("Ventricular rate {hr} bpm.", "Heart rate {hr} bpm.", "Rate {hr} bpm."))
    parts = [rate.format(hr=spec.heart_rate)]
    if spec.pr_ms is None:
        parts.append(
            "Irregularly irregular rhythm without discernible P waves; fibrillatory baseline. PR "
            "interval not measurable."
        )
    else:
        parts.append(
            pick(
                rng,
                (
                    "Regular rhythm with an upright P wave before every QRS complex.",
                    "P waves present and upright in II, each followed by a QRS complex.",
                ),
            )
        )
        parts.append(f"PR interval {spec.pr_ms} ms.")
    parts.append(
        f"QRS duration {spec.qrs_ms} ms. QT/QTc {spec.qt_ms}/{spec.qtc_ms} ms. QRS axis "
        f"{spec.axis_deg} degrees."
    )
    parts.append(pick(rng, ST_FINDINGS[spec.st_pattern]))
    b.section("FINDINGS", " ".join(parts))
    rhythm = RHYTHM_TEXT[spec.rhythm]
    if spec.rhythm == "atrial_fibrillation" and spec.heart_rate > 100:
        rhythm += " with rapid ventricular response"
    normal = spec.rhythm == "sinus" and spec.st_pattern is None
    b.section(
        "INTERPRETATION",
        rhythm
        + "."
        + ST_INTERPRETATION[spec.st_pattern]
        + (" Normal ECG." if normal else " Abnormal ECG."),
    )
    b.add("\n")
    b.line(
        "Confirmed by Dr. {dr} ({ph})",
        dr=w.name(w.who.cardiologist),
        ph=Phi(w.who.clinic_phone, "PHONE"),
    )
    b.line("on {when}", when=w.date_time(read, int(rng.integers(6))))
    return b.text(), b.spans
