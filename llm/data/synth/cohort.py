"""The clinical facts of one synthetic patient, before any text is written.

Order matters and is the point: the primary diagnosis is drawn first, then the
demographics that go with it, then the evidence the diagnosis produces
(symptoms, exam, vitals, labs, chest film, ECG), then the hospital course and
the social facts the readmission rule uses. Notes, images and waveforms are
all rendered from these facts, so they agree with each other and with the
labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from llm.data.synth.cxr import ChestFindings
from llm.data.synth.demographics import choose, sample_demographics
from llm.data.synth.ecg import EcgSpec, make_ecg_spec
from llm.data.synth.findings import (
    COMMON_COMPLAINTS,
    SEPSIS_SOURCE_SIGNS,
    SEPSIS_SOURCE_SYMPTOMS,
    SYMPTOMS,
    VAGUE_COMPLAINT_CHANCE,
)
from llm.data.synth.labels import rhythm_rule
from llm.data.synth.labs import (
    ADMISSION_PANEL,
    EMERGENCY_PANEL,
    NORMAL_LAB_RANGES,
    NORMAL_VITAL_RANGES,
)
from llm.data.synth.profiles import (
    COMORBIDITIES,
    DIAGNOSES,
    EXCLUDED_COMORBIDITIES,
    PROFILES,
    VAGUE_COMPLAINTS,
    VAGUE_COURSE,
    VAGUE_EXAM,
    VAGUE_PLAN,
    VAGUE_SYMPTOMS,
    Comorbidity,
    Profile,
)

FIRST_ADMISSION = datetime(2019, 1, 1)
# The admission tests a degraded record still has: none tells a diagnosis apart.
DEGRADED_WORKUP = ("hemoglobin", "platelets", "sodium", "chloride")
ADMISSION_SPAN_DAYS = 6 * 365
PRIOR_REASONS = {
    "inpatient": (
        ("N39.0", "Urinary tract infection, site not specified", "a urinary tract infection"),
        ("L03.115", "Cellulitis of right lower limb", "cellulitis of the right leg"),
        ("R55", "Syncope and collapse", "syncope"),
        ("K92.2", "Gastrointestinal hemorrhage, unspecified", "a gastrointestinal bleed"),
        ("A09", "Infectious gastroenteritis and colitis, unspecified", "gastroenteritis"),
        ("E86.0", "Dehydration", "dehydration"),
    ),
    "emergency": (
        ("R07.9", "Chest pain, unspecified", "chest pain"),
        ("W19.XXXA", "Unspecified fall, initial encounter", "a fall at home"),
        ("R10.9", "Unspecified abdominal pain", "abdominal pain"),
        ("R51.9", "Headache, unspecified", "a headache"),
    ),
    "outpatient": (
        (
            "Z00.00",
            "Encounter for general adult medical examination without abnormal findings",
            "an annual physical",
        ),
        (
            "Z09",
            "Encounter for follow-up examination after completed treatment",
            "a follow-up visit",
        ),
        ("R53.83", "Other fatigue", "fatigue"),
    ),
}


@dataclass
class PriorEncounter:
    """An earlier visit or admission."""

    kind: str  # inpatient, emergency, outpatient
    start: datetime
    end: datetime
    reason: tuple[str, str, str]  # ICD-10 code, description, words
    vitals: dict[str, float]
    labs: dict[str, float]


@dataclass
class PatientFacts:
    """Everything true about one patient; notes and assets are written from it."""

    index: int
    patient_id: str
    demographics: dict[str, str | int]
    primary: str
    primary_code: tuple[str, str]
    comorbidities: list[Comorbidity]
    sepsis_source: str | None
    chief_complaint: str  # plain words (a symptom's plain form, or vague words)
    symptoms: list[str]  # keys of findings.SYMPTOMS the patient has
    exam: list[str]  # keys of findings.SIGNS the examination finds
    plan: list[str]
    course: list[str]
    priors: list[PriorEncounter]
    admit: datetime
    discharge: datetime
    vitals_admit: dict[str, float]
    vitals_discharge: dict[str, float]
    labs_admit: dict[str, float]
    labs_discharge: dict[str, float]
    disposition: str
    lives_alone: bool
    household: str  # who the patient lives with, when not alone
    chest: ChestFindings
    ecg: EcgSpec
    degraded_by: list[bool] = field(default_factory=list)  # one flag per bias spec
    vague_symptoms: list[str] = field(default_factory=list)  # what a degraded note says instead
    vague_exam: list[str] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        return PROFILES[self.primary]

    @property
    def degraded(self) -> bool:
        return any(self.degraded_by)

    @property
    def diagnosis_codes(self) -> list[str]:
        return [self.primary_code[0]] + [c.code for c in self.comorbidities]

    @property
    def length_of_stay_days(self) -> int:
        return (self.discharge.date() - self.admit.date()).days

    @property
    def prior_admissions_year(self) -> int:
        return sum(
            1 for p in self.priors if p.kind == "inpatient" and (self.admit - p.start).days <= 365
        )


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _clear_of_thresholds(hr: int) -> int:
    """Keep heart rates 3 bpm away from the rhythm-rule cut-offs (60 and 100 bpm)."""
    if 97 < hr < 103:
        return 97 if hr < 100 else 103
    if 57 < hr < 63:
        return 57 if hr < 60 else 63
    return hr


def sample_vitals(
    rng: np.random.Generator, profile: Profile, bradycardic: bool
) -> dict[str, float]:
    """Admission vital signs: normal ranges overridden by the diagnosis' abnormal ones."""
    ranges = {**NORMAL_VITAL_RANGES, **profile.vitals}
    hr = round(_uniform(rng, (44.0, 56.0) if bradycardic else ranges["heart_rate"]))
    sbp = round(_uniform(rng, ranges["sbp"]))
    dbp = min(round(_uniform(rng, ranges["dbp"])), sbp - 25)
    temp = _uniform(rng, ranges["temp_c"])
    if profile.key == "sepsis" and rng.random() < 0.15:
        temp = _uniform(rng, (35.0, 35.9))  # hypothermic sepsis
    return {
        "heart_rate": float(_clear_of_thresholds(hr)),
        "sbp": float(sbp),
        "dbp": float(dbp),
        "resp_rate": float(round(_uniform(rng, ranges["resp_rate"]))),
        "temp_c": round(temp, 1),
        "spo2": float(round(_uniform(rng, ranges["spo2"]))),
        "weight_kg": round(_uniform(rng, (48.0, 128.0)), 1),
    }


def sample_labs(rng: np.random.Generator, profile: Profile, comorbid: set[str]) -> dict[str, float]:
    """Admission labs: the basic and emergency panels, and some routine extras.

    Every patient gets the same tests (whatever the diagnosis), so which tests
    were drawn says nothing; their values do.
    """
    ranges = dict(NORMAL_LAB_RANGES)
    if "ckd" in comorbid:
        ranges.update(creatinine=(1.4, 2.2), bun=(22.0, 36.0))
    if "anemia" in comorbid:
        ranges["hemoglobin"] = (8.6, 11.4)
    if "diabetes" in comorbid:
        ranges.update(glucose=(140.0, 260.0), hba1c=(6.8, 9.6))
    if "chf" in comorbid:
        ranges["bnp"] = (180.0, 600.0)
    ranges.update(profile.labs)
    keys = [k for k in ADMISSION_PANEL if k != "chloride"] + list(EMERGENCY_PANEL)
    for extra, p in (("hba1c", 0.3), ("tsh", 0.25)):
        if rng.random() < p:
            keys.append(extra)
    labs = {k: _uniform(rng, ranges[k]) for k in keys}
    gap_range = {
        "diabetic_ketoacidosis": (20.0, 32.0),
        "sepsis": (14.0, 24.0),
        "acute_kidney_injury": (12.0, 22.0),
    }.get(profile.key, (8.0, 13.0))
    labs["sodium"] = round(labs["sodium"])
    labs["bicarbonate"] = round(labs["bicarbonate"])
    chloride = float(
        np.clip(round(labs["sodium"] - labs["bicarbonate"] - _uniform(rng, gap_range)), 88, 116)
    )
    labs["chloride"] = chloride
    labs["anion_gap"] = labs["sodium"] - chloride - labs["bicarbonate"]
    return labs


def sample_discharge_labs(
    rng: np.random.Generator, primary: str, comorbid: set[str]
) -> dict[str, float]:
    """The discharge-morning panel (sodium, potassium, creatinine, hemoglobin)."""
    creat = (1.4, 2.4) if primary == "acute_kidney_injury" and rng.random() < 0.6 else (0.7, 1.25)
    if "ckd" in comorbid:
        creat = (1.4, 2.1)
    hgb = (8.6, 11.5) if "anemia" in comorbid else (12.3, 15.5)
    if "anemia" not in comorbid and rng.random() < (0.3 if primary == "sepsis" else 0.08):
        hgb = (10.0, 11.8)
    sodium = (
        (131.0, 134.0) if primary == "heart_failure" and rng.random() < 0.35 else (136.0, 143.0)
    )
    if rng.random() < 0.05:
        sodium = (131.0, 134.0)
    potassium = (3.1, 3.4) if rng.random() < 0.06 else (3.6, 4.9)
    return {
        "sodium": float(round(_uniform(rng, sodium))),
        "potassium": _uniform(rng, potassium),
        "creatinine": _uniform(rng, creat),
        "hemoglobin": _uniform(rng, hgb),
    }


def sample_chest(rng: np.random.Generator, primary: str, comorbid: set[str]) -> ChestFindings:
    """What the admission chest film shows, given the diagnosis."""
    view = "PA" if rng.random() < 0.7 else "AP"
    if primary == "pneumonia":
        zone = choose(
            rng, {"right lower": 0.45, "left lower": 0.3, "right upper": 0.15, "left upper": 0.1}
        )
        same_side = (zone.split()[0],) if rng.random() < 0.2 else ()
        return ChestFindings(view=view, consolidation=zone, effusion=same_side)
    if primary == "heart_failure":
        u = rng.random()
        effusion: tuple[str, ...] = ("right", "left") if u < 0.5 else ("right",) if u < 0.65 else ()
        return ChestFindings(
            view=view, cardiomegaly=rng.random() < 0.85, edema=rng.random() < 0.7, effusion=effusion
        )
    if primary == "copd_exacerbation":
        return ChestFindings(view=view, hyperinflation=rng.random() < 0.9)
    big_heart = ("chf" in comorbid and rng.random() < 0.6) or (
        primary == "atrial_fibrillation" and rng.random() < 0.3
    )
    edema = primary == "myocardial_infarction" and rng.random() < 0.15
    return ChestFindings(view=view, cardiomegaly=big_heart, edema=edema)


def _pick_some(rng: np.random.Generator, options: tuple[str, ...], lo: int, hi: int) -> list[str]:
    n = int(rng.integers(lo, min(hi, len(options)) + 1))
    return [options[i] for i in sorted(rng.choice(len(options), size=n, replace=False))]


def sample_findings(
    rng: np.random.Generator, odds: dict[str, float], extra: tuple[str, ...] = ()
) -> list[str]:
    """The findings a patient has: each with its chance, at least the likeliest one, plus ``extra``.

    Args:
        rng: the clinical stream.
        odds: finding key -> chance (a profile's ``symptoms`` or ``signs``).
        extra: findings the patient has for certain (a sepsis source, chronic atrial fibrillation).

    Returns:
        Finding keys, likeliest first.
    """
    ordered = sorted(odds, key=lambda k: -odds[k])
    found = [k for k in ordered if rng.random() < odds[k]]
    if not found and ordered:
        found = [ordered[0]]
    return found + [k for k in extra if k not in found]


def _priors(rng: np.random.Generator, admit: datetime, high_risk: bool) -> list[PriorEncounter]:
    weights = [0.30, 0.38, 0.32] if high_risk else [0.45, 0.33, 0.22]
    n = int(rng.choice(3, p=weights))
    priors = []
    for _ in range(n):
        kind = choose(rng, {"inpatient": 0.5, "emergency": 0.3, "outpatient": 0.2})
        days = int(rng.integers(14, 361)) if rng.random() < 0.65 else int(rng.integers(370, 1100))
        start = (admit - timedelta(days=days)).replace(
            hour=int(rng.integers(7, 20)), minute=int(rng.integers(0, 60))
        )
        length = {
            "inpatient": timedelta(days=int(rng.integers(2, 7))),
            "emergency": timedelta(hours=int(rng.integers(3, 10))),
            "outpatient": timedelta(minutes=30),
        }[kind]
        reasons = PRIOR_REASONS[kind]
        vitals = {
            k: float(round(_uniform(rng, r)))
            for k, r in NORMAL_VITAL_RANGES.items()
            if k != "temp_c"
        }
        vitals["temp_c"] = round(_uniform(rng, NORMAL_VITAL_RANGES["temp_c"]), 1)
        labs = {
            k: _uniform(rng, NORMAL_LAB_RANGES[k])
            for k in ("wbc", "hemoglobin", "sodium", "creatinine")
        }
        priors.append(
            PriorEncounter(
                kind, start, start + length, reasons[int(rng.integers(len(reasons)))], vitals, labs
            )
        )
    return sorted(priors, key=lambda p: p.start)


def sample_facts(rng: np.random.Generator, index: int) -> PatientFacts:
    """Draw every clinical fact of patient ``index`` from its clinical stream ``rng``."""
    primary = DIAGNOSES[
        int(rng.choice(len(DIAGNOSES), p=[PROFILES[d].prevalence for d in DIAGNOSES]))
    ]
    profile = PROFILES[primary]
    demographics = sample_demographics(rng, profile)
    age = int(demographics["age"])
    code = profile.codes[int(rng.integers(len(profile.codes)))]
    excluded = EXCLUDED_COMORBIDITIES.get(primary, ())
    age_factor = 0.6 if age < 45 else 1.0 if age < 70 else 1.3
    comorbidities = [
        c
        for c in COMORBIDITIES
        if c.key not in excluded
        and age >= c.min_age
        and rng.random() < min(0.9, c.prevalence * age_factor)
    ]
    comorbid = {c.key for c in comorbidities}
    no_brady = primary in (
        "sepsis",
        "diabetic_ketoacidosis",
        "atrial_fibrillation",
        "copd_exacerbation",
        "pneumonia",
    )
    brady = not no_brady and rng.random() < max(profile.p_bradycardia, 0.04)
    vitals = sample_vitals(rng, profile, brady)
    labs = sample_labs(rng, profile, comorbid)
    chest = sample_chest(rng, primary, comorbid)
    st_pattern = None
    if primary == "myocardial_infarction":
        st_pattern = {
            "I21.4": "st_depression",
            "I21.19": "inferior_stemi",
            "I21.09": "anterior_stemi",
        }[code[0]]
    hr = int(vitals["heart_rate"])
    codes = [code[0]] + [c.code for c in comorbidities]
    ecg = make_ecg_spec(rng, rhythm=rhythm_rule(codes, hr), heart_rate=hr, st_pattern=st_pattern)
    sepsis_source = (
        profile.sources[int(rng.integers(len(profile.sources)))] if profile.sources else None
    )
    symptoms = sample_findings(
        rng,
        profile.symptoms,
        (SEPSIS_SOURCE_SYMPTOMS[sepsis_source],) if sepsis_source else (),
    )
    certain_signs: tuple[str, ...] = (SEPSIS_SOURCE_SIGNS[sepsis_source],) if sepsis_source else ()
    if "afib" in comorbid:  # chronic atrial fibrillation is heard on exam too
        certain_signs += ("irregular_rhythm",)
    exam = sample_findings(rng, profile.signs, certain_signs)
    common = [k for k in symptoms if k in COMMON_COMPLAINTS] or symptoms[:1]
    complaint = SYMPTOMS[common[int(rng.integers(len(common)))]].forms[0]
    if rng.random() < VAGUE_COMPLAINT_CHANCE:
        complaint = VAGUE_COMPLAINTS[int(rng.integers(len(VAGUE_COMPLAINTS)))]
    admit = FIRST_ADMISSION + timedelta(
        days=int(rng.integers(ADMISSION_SPAN_DAYS)),
        hours=int(rng.integers(24)),
        minutes=int(rng.integers(60)),
    )
    los = int(rng.integers(profile.los_days[0], profile.los_days[1] + 1))
    discharge = (admit + timedelta(days=los)).replace(
        hour=int(rng.integers(10, 17)), minute=int(rng.integers(60))
    )
    band = "young" if age < 65 else "old" if age < 80 else "oldest"
    disposition = choose(
        rng,
        {
            "young": {
                "home": 0.75,
                "home_with_services": 0.13,
                "skilled_nursing_facility": 0.05,
                "against_medical_advice": 0.07,
            },
            "old": {
                "home": 0.6,
                "home_with_services": 0.22,
                "skilled_nursing_facility": 0.15,
                "against_medical_advice": 0.03,
            },
            "oldest": {
                "home": 0.35,
                "home_with_services": 0.3,
                "skilled_nursing_facility": 0.33,
                "against_medical_advice": 0.02,
            },
        }[band],
    )
    lives_alone = bool(rng.random() < (0.35 if age >= 65 else 0.25))
    spouse = "husband" if demographics["sex"] == "female" else "wife"
    household = choose(
        rng,
        {
            f"with {spouse}": 0.5,
            "with family": 0.25,
            "with a roommate": 0.1,
            "with daughter and her family": 0.15,
        },
    )
    vitals_discharge = {k: float(round(_uniform(rng, r))) for k, r in NORMAL_VITAL_RANGES.items()}
    vitals_discharge["temp_c"] = round(_uniform(rng, NORMAL_VITAL_RANGES["temp_c"]), 1)
    vitals_discharge["weight_kg"] = round(
        vitals["weight_kg"] - (_uniform(rng, (2.0, 5.0)) if primary == "heart_failure" else 0.0), 1
    )
    return PatientFacts(
        index=index,
        patient_id=f"P{index + 1:06d}",
        demographics=demographics,
        primary=primary,
        primary_code=code,
        comorbidities=comorbidities,
        sepsis_source=sepsis_source,
        chief_complaint=complaint,
        symptoms=symptoms,
        exam=exam,
        plan=_pick_some(rng, profile.plan, 2, 4),
        course=_pick_some(rng, profile.course, 2, 3),
        priors=_priors(rng, admit, high_risk=len(comorbidities) >= 3 or age >= 75),
        admit=admit,
        discharge=discharge,
        vitals_admit=vitals,
        vitals_discharge=vitals_discharge,
        labs_admit=labs,
        labs_discharge=sample_discharge_labs(rng, primary, comorbid),
        disposition=disposition,
        lives_alone=lives_alone,
        household=household,
        chest=chest,
        ecg=ecg,
    )


def degrade(facts: PatientFacts, rng: np.random.Generator) -> None:
    """Document ``facts`` poorly, in place: vague words, a limited workup, a limited film.

    The disease itself is unchanged (labels stay true); only what the record
    shows of its evidence is lost. The admission workup is cut to the same
    few tests whatever the diagnosis (:data:`DEGRADED_WORKUP`), so which tests
    are missing does not give the diagnosis away either; the discharge panel
    is drawn as usual.
    """
    facts.chief_complaint = VAGUE_COMPLAINTS[int(rng.integers(len(VAGUE_COMPLAINTS)))]
    facts.symptoms, facts.exam = [], []
    facts.vague_symptoms = _pick_some(rng, VAGUE_SYMPTOMS, 1, 2)
    facts.vague_exam = [VAGUE_EXAM[int(rng.integers(len(VAGUE_EXAM)))]]
    facts.plan = _pick_some(rng, VAGUE_PLAN, 1, 2)
    facts.course = [VAGUE_COURSE[int(rng.integers(len(VAGUE_COURSE)))]]
    facts.sepsis_source = None
    facts.labs_admit = {k: v for k, v in facts.labs_admit.items() if k in DEGRADED_WORKUP}
    facts.chest = ChestFindings(view="AP", low_volumes=True)
    if facts.ecg.st_pattern is not None:
        facts.ecg = replace(facts.ecg, st_pattern="nonspecific_st")
