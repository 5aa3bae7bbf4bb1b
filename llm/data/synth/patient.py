"""One synthetic patient from (seed, index): facts, notes, image, ECG, record and labels.

Every patient has its own random streams, spawned from
``SeedSequence(seed, spawn_key=(index,))``, one per purpose (clinical facts,
identity, wording, image, ECG, bias). Patients are therefore independent of
each other and of the order or process they are generated in, and turning a
bias on changes nothing but the degraded patients' documentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from llm.data.io import record_to_json
from llm.data.phi import NotePhi, PhiSpan
from llm.data.schema import (
    Demographics,
    Diagnosis,
    Encounter,
    Image,
    Lab,
    Labels,
    Note,
    PatientRecord,
    Vital,
    Waveform,
)
from llm.data.synth.bias import BiasSpec
from llm.data.synth.cohort import PatientFacts, degrade, sample_facts
from llm.data.synth.cxr import render_chest
from llm.data.synth.dicom import DicomPatient, write_chest_dicom
from llm.data.synth.ecg import LEADS, SAMPLING_HZ, simulate_ecg
from llm.data.synth.identities import make_identity
from llm.data.synth.labels import ReadmissionInputs, readmission_rule, triage_rule
from llm.data.synth.labs import LAB_TESTS, VITAL_SIGNS, is_abnormal
from llm.data.synth.notes import NoteWriter
from llm.data.synth.reports import ecg_report, radiology_report
from llm.files import atomic_write

_STREAMS = ("clinical", "identity", "text", "image", "ecg", "bias")


@dataclass(frozen=True)
class PatientJob:
    """What a worker needs to generate patients (small and picklable)."""

    seed: int
    out_dir: Path
    bias: tuple[BiasSpec, ...]
    image_size: int


@dataclass
class PatientResult:
    """A generated patient, as the lines to append to the cohort's files."""

    record_line: str
    phi_lines: list[str]
    labels: dict[str, str | int]
    demographics: dict[str, str]
    degraded_by: list[bool]
    counts: dict[str, int] = field(default_factory=dict)
    phi_types: dict[str, int] = field(default_factory=dict)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _birth_date(rng: np.random.Generator, admit: datetime, age: int) -> date:
    """A birth date that makes the patient exactly ``age`` on the admission day."""
    last_birthday = admit.date() - timedelta(days=int(rng.integers(1, 365)))
    try:
        return last_birthday.replace(year=last_birthday.year - age)
    except ValueError:  # 29 February in a non-leap year
        return last_birthday.replace(year=last_birthday.year - age, day=28)


def _labs(values: dict[str, float], when: datetime) -> list[Lab]:
    out = []
    for key, value in values.items():
        t = LAB_TESTS[key]
        out.append(
            Lab(
                code=t.code,
                name=t.name,
                value=round(value, t.decimals),
                unit=t.unit,
                time=_iso(when),
                ref_low=t.ref_low,
                ref_high=t.ref_high,
            )
        )
    return out


def _vitals(values: dict[str, float], when: datetime) -> list[Vital]:
    return [
        Vital(name=k, value=v, unit=VITAL_SIGNS[k].unit, time=_iso(when), code=VITAL_SIGNS[k].code)
        for k, v in values.items()
    ]


def readmission_inputs(facts: PatientFacts) -> ReadmissionInputs:
    """The readmission rule's inputs, as the discharge summary states them."""
    abnormal = 0
    for key, value in facts.labs_discharge.items():
        t = LAB_TESTS[key]
        abnormal += is_abnormal(round(value, t.decimals), t.ref_low, t.ref_high)
    return ReadmissionInputs(
        age=int(facts.demographics["age"]),
        comorbidity_count=len(facts.comorbidities),
        prior_admissions_year=facts.prior_admissions_year,
        disposition=facts.disposition,
        lives_alone=facts.lives_alone,
        abnormal_discharge_labs=abnormal,
        length_of_stay_days=facts.length_of_stay_days,
        primary_diagnosis=facts.primary,
    )


def generate_patient(job: PatientJob, index: int) -> PatientResult:
    """Generate patient ``index`` of the cohort, writing its DICOM and ECG files.

    Args:
        job: seed, output folder, biases and image size.
        index: 0-based patient number (the patient id is ``P{index + 1:06d}``).

    Returns:
        The record and PHI-span lines and the tallies the manifest needs.
    """
    seq = np.random.SeedSequence(job.seed, spawn_key=(index,))
    rngs = dict(
        zip(_STREAMS, (np.random.default_rng(s) for s in seq.spawn(len(_STREAMS))), strict=True)
    )
    facts = sample_facts(rngs["clinical"], index)
    # one draw per bias spec whether or not it applies, so streams never shift
    draws = [float(rngs["bias"].random()) for _ in job.bias]
    facts.degraded_by = [
        spec.matches(facts.demographics) and u < spec.strength
        for spec, u in zip(job.bias, draws, strict=True)
    ]
    if facts.degraded:
        degrade(facts, rngs["bias"])
    pid = facts.patient_id
    age = int(facts.demographics["age"])
    who = make_identity(
        rngs["identity"],
        sex=str(facts.demographics["sex"]),
        birth_date=_birth_date(rngs["identity"], facts.admit, age),
    )
    writer = NoteWriter(facts, who, rngs["text"])
    notes: list[tuple[Note, list[PhiSpan]]] = []
    encounters: list[Encounter] = []

    for k, prior in enumerate(facts.priors, start=1):
        text, spans = writer.visit_note(prior)
        note = Note(note_id=f"{pid}-E{k}-N1", type="progress_note", text=text, time=_iso(prior.end))
        notes.append((note, spans))
        encounters.append(
            Encounter(
                encounter_id=f"{pid}-E{k}",
                time=_iso(prior.start),
                end_time=_iso(prior.end),
                kind=prior.kind,
                notes=[note],
                labs=_labs(prior.labs, prior.start + timedelta(minutes=40))
                if prior.kind != "outpatient"
                else [],
                vitals=_vitals(prior.vitals, prior.start + timedelta(minutes=5)),
                diagnoses=[
                    Diagnosis(code=prior.reason[0], description=prior.reason[1], primary=True)
                ],
            )
        )

    k = len(facts.priors) + 1
    eid = f"{pid}-E{k}"
    ecg_time = facts.admit + timedelta(minutes=20)
    cxr_time = facts.admit + timedelta(minutes=55)
    image_id, waveform_id = f"{eid}-CXR1", f"{eid}-ECG1"
    image_rel, waveform_rel = f"images/{pid}/{image_id}.dcm", f"waveforms/{pid}/{waveform_id}.npy"

    pixels = render_chest(rngs["image"], facts.chest, job.image_size)
    write_chest_dicom(
        job.out_dir / image_rel,
        pixels,
        DicomPatient(
            name=f"{who.patient.last}^{who.patient.first}",
            mrn=who.mrn,
            sex={"female": "F", "male": "M"}.get(str(facts.demographics["sex"]), "O"),
            age_years=age,
            birth_date=who.birth_date,
            study_time=cxr_time,
            accession=who.accession,
            institution=who.hospital,
            referring_physician=f"{who.attending.last}^{who.attending.first}",
            view=facts.chest.view,
        ),
        uid_key=f"{job.seed}/{pid}/{image_id}",
    )
    signal = simulate_ecg(rngs["ecg"], facts.ecg)
    with atomic_write(job.out_dir / waveform_rel, binary=True) as fh:
        np.save(fh, signal, allow_pickle=False)

    index_notes = [
        ("progress_note", writer.admission_hp(), facts.admit + timedelta(hours=3)),
        (
            "radiology_report",
            radiology_report(writer, facts.chest, cxr_time, cxr_time + timedelta(hours=1)),
            cxr_time + timedelta(hours=1),
        ),
        (
            "ecg_report",
            ecg_report(writer, facts.ecg, ecg_time, ecg_time + timedelta(hours=2)),
            ecg_time + timedelta(hours=2),
        ),
        ("discharge_summary", writer.discharge_summary(), facts.discharge),
    ]
    enc_notes = []
    for j, (kind, (text, spans), when) in enumerate(index_notes, start=1):
        note = Note(note_id=f"{eid}-N{j}", type=kind, text=text, time=_iso(when))
        notes.append((note, spans))
        enc_notes.append(note)
    lab_discharge_time = facts.discharge.replace(hour=5, minute=30)
    encounters.append(
        Encounter(
            encounter_id=eid,
            time=_iso(facts.admit),
            end_time=_iso(facts.discharge),
            kind="inpatient",
            notes=enc_notes,
            labs=_labs(facts.labs_admit, facts.admit + timedelta(minutes=40))
            + _labs(facts.labs_discharge, lab_discharge_time),
            vitals=_vitals(facts.vitals_admit, facts.admit + timedelta(minutes=5))
            + _vitals(facts.vitals_discharge, facts.discharge - timedelta(hours=2)),
            diagnoses=[
                Diagnosis(
                    code=facts.primary_code[0], description=facts.primary_code[1], primary=True
                )
            ]
            + [Diagnosis(code=c.code, description=c.description) for c in facts.comorbidities],
            images=[
                Image(
                    path=image_rel,
                    modality="DX",
                    format="dicom",
                    image_id=image_id,
                    view=facts.chest.view,
                    time=_iso(cxr_time),
                )
            ],
            waveforms=[
                Waveform(
                    path=waveform_rel,
                    kind="ecg",
                    sampling_hz=float(SAMPLING_HZ),
                    leads=list(LEADS),
                    format="npy",
                    waveform_id=waveform_id,
                    time=_iso(ecg_time),
                )
            ],
        )
    )
    v = facts.vitals_admit
    triage = triage_rule(
        heart_rate=v["heart_rate"],
        sbp=v["sbp"],
        resp_rate=v["resp_rate"],
        spo2=v["spo2"],
        temp_c=v["temp_c"],
    )
    readmission = readmission_rule(readmission_inputs(facts))
    labels: dict[str, str | int] = {
        "primary_diagnosis": facts.primary,
        "readmission_30d": readmission,
        "triage_level": triage,
        "rhythm": facts.ecg.rhythm,
    }
    record = PatientRecord(
        patient_id=pid,
        demographics=Demographics.model_validate(facts.demographics),
        encounters=encounters,
        labels=Labels(
            primary_diagnosis=facts.primary,
            readmission_30d="yes" if readmission == "yes" else "no",
            triage_level=triage,
            rhythm=facts.ecg.rhythm,
        ),
        source="synthetic",
    )
    phi_lines = []
    phi_types: dict[str, int] = {}
    for note, spans in notes:
        if spans:
            phi_lines.append(
                json.dumps(
                    NotePhi(patient_id=pid, note_id=note.note_id, spans=spans).model_dump(),
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
            )
        for s in spans:
            phi_types[s.entity_type] = phi_types.get(s.entity_type, 0) + 1
    return PatientResult(
        record_line=record_to_json(record),
        phi_lines=phi_lines,
        labels=labels,
        demographics={k: str(v) for k, v in facts.demographics.items() if k != "age"},
        degraded_by=facts.degraded_by,
        counts={
            "encounters": len(encounters),
            "notes": len(notes),
            "labs": sum(len(e.labs) for e in encounters),
            "vitals": sum(len(e.vitals) for e in encounters),
            "images": 1,
            "waveforms": 1,
            "phi_spans": sum(len(s) for _, s in notes),
        },
        phi_types=phi_types,
    )
