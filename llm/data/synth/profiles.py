"""What each primary diagnosis looks like: codes, who gets it, and its evidence.

The primary diagnosis is sampled first; everything in a patient's record that
points to it (symptoms, exam, vitals, labs, chest X-ray, ECG) is generated
from the profile below. ``discriminating_labs`` are the tests that separate
the diagnosis from the others; a documentation-biased record leaves them out.

Symptoms and signs are keys of :mod:`.findings`, with the chance that a
patient with this diagnosis has each; most are shared between diagnoses, so
the labs and vitals, not the words, tell the diagnoses apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DIAGNOSES = (
    "pneumonia",
    "heart_failure",
    "copd_exacerbation",
    "sepsis",
    "acute_kidney_injury",
    "atrial_fibrillation",
    "diabetic_ketoacidosis",
    "myocardial_infarction",
)


@dataclass(frozen=True)
class Profile:
    """The evidence profile of one primary diagnosis."""

    key: str
    prevalence: float  # share of index admissions (sums to 1 over DIAGNOSES)
    codes: tuple[tuple[str, str], ...]  # ICD-10 (code, description) variants
    age_mean: float
    age_sd: float
    p_female: float
    los_days: tuple[int, int]
    vitals: dict[str, tuple[float, float]]  # admission ranges that differ from normal
    labs: dict[str, tuple[float, float]]  # admission ranges that differ from normal
    discriminating_labs: tuple[str, ...]
    symptoms: dict[str, float]  # finding key (findings.SYMPTOMS) -> chance the patient has it
    signs: dict[str, float]  # finding key (findings.SIGNS) -> chance the exam finds it
    plan: tuple[str, ...]
    course: tuple[str, ...]
    p_bradycardia: float = 0.0
    sources: tuple[str, ...] = field(default_factory=tuple)


PROFILES: dict[str, Profile] = {
    p.key: p
    for p in (
        Profile(
            "pneumonia",
            0.15,
            (
                ("J18.1", "Lobar pneumonia, unspecified organism"),
                ("J18.9", "Pneumonia, unspecified organism"),
            ),
            68,
            16,
            0.5,
            (3, 7),
            {
                "temp_c": (38.2, 39.6),
                "heart_rate": (90, 128),
                "resp_rate": (20, 30),
                "spo2": (87, 95),
            },
            {
                "wbc": (12.0, 24.0),
                "procalcitonin": (0.6, 6.0),
                "lactate": (1.0, 2.4),
                "troponin": (0.0, 0.1),
                "pco2": (32.0, 50.0),
            },
            ("wbc", "procalcitonin"),
            {
                "cough": 0.9,
                "fever": 0.85,
                "dyspnea": 0.75,
                "chest_pain": 0.35,
                "wheezing": 0.15,
                "confusion": 0.1,
            },
            {
                "focal_crackles": 0.85,
                "egophony": 0.4,
                "dry_mucosa": 0.2,
                "wheezes": 0.15,
                "bibasilar_crackles": 0.1,
                "confused": 0.1,
            },
            (
                "Start ceftriaxone and azithromycin for community-acquired infection.",
                "Blood and sputum cultures sent before antibiotics.",
                "Supplemental oxygen to keep saturation above 92%.",
                "Incentive spirometry and early mobilization.",
            ),
            (
                "treated with IV ceftriaxone and azithromycin, transitioned to oral "
                "amoxicillin-clavulanate",
                "defervesced by hospital day 2 and weaned off supplemental oxygen",
                "sputum culture grew Streptococcus pneumoniae sensitive to ceftriaxone",
            ),
        ),
        Profile(
            "heart_failure",
            0.17,
            (
                ("I50.23", "Acute on chronic systolic (congestive) heart failure"),
                ("I50.33", "Acute on chronic diastolic (congestive) heart failure"),
            ),
            74,
            12,
            0.48,
            (3, 8),
            {"heart_rate": (80, 118), "sbp": (118, 176), "resp_rate": (20, 30), "spo2": (86, 95)},
            {"bnp": (700.0, 3200.0), "troponin": (0.02, 0.3), "pco2": (38.0, 54.0)},
            ("bnp",),
            {
                "dyspnea": 0.95,
                "leg_swelling": 0.8,
                "orthopnea": 0.7,
                "weight_gain": 0.5,
                "cough": 0.35,
                "wheezing": 0.25,
                "chest_pain": 0.15,
            },
            {
                "bibasilar_crackles": 0.8,
                "leg_edema": 0.8,
                "jvd": 0.75,
                "s3": 0.35,
                "wheezes": 0.25,
                "focal_crackles": 0.1,
            },
            (
                "IV furosemide 40 mg twice daily with strict intake and output and daily weights.",
                "Fluid restriction to 1.5 L and 2 g sodium diet.",
                "Continue carvedilol; hold lisinopril while diuresing.",
                "Transthoracic echocardiogram.",
            ),
            (
                "diuresed 5 liters with IV furosemide, transitioned to oral torsemide",
                "dyspnea and edema improved; discharge weight 4 kg below admission weight",
                "echocardiogram showed an ejection fraction of 30%",
            ),
        ),
        Profile(
            "copd_exacerbation",
            0.10,
            (("J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation"),),
            69,
            10,
            0.55,
            (3, 6),
            {
                "resp_rate": (22, 32),
                "spo2": (84, 93),
                "heart_rate": (90, 124),
                "temp_c": (36.6, 38.3),  # an infectious trigger now and then
            },
            {"pco2": (48.0, 66.0), "wbc": (9.0, 16.0), "troponin": (0.01, 0.08)},
            ("pco2",),
            {
                "dyspnea": 0.95,
                "wheezing": 0.85,
                "cough": 0.7,
                "chest_pain": 0.25,
                "orthopnea": 0.2,
                "leg_swelling": 0.15,
                "fever": 0.1,
            },
            {
                "wheezes": 0.9,
                "accessory_muscles": 0.6,
                "focal_crackles": 0.15,
                "leg_edema": 0.15,
                "jvd": 0.1,
            },
            (
                "Nebulized albuterol and ipratropium every 4 hours.",
                "Prednisone 40 mg daily for 5 days.",
                "Doxycycline for increased sputum purulence.",
                "Titrate oxygen to saturation 88 to 92%; BiPAP if worsening hypercapnia.",
            ),
            (
                "treated with nebulized bronchodilators, prednisone and doxycycline",
                "required BiPAP overnight on hospital day 1, then weaned to 2 L nasal cannula",
                "wheezing resolved and ambulatory saturation was 90% on room air",
            ),
        ),
        Profile(
            "sepsis",
            0.22,
            (
                ("A41.9", "Sepsis, unspecified organism"),
                ("A41.51", "Sepsis due to Escherichia coli"),
            ),
            70,
            14,
            0.52,
            (4, 10),
            {
                "temp_c": (38.4, 40.0),
                "heart_rate": (100, 136),
                "sbp": (74, 98),
                "dbp": (40, 60),
                "resp_rate": (20, 30),
                "spo2": (90, 97),
            },
            {
                "wbc": (12.0, 24.0),
                "lactate": (2.6, 6.5),
                "procalcitonin": (2.5, 30.0),
                "creatinine": (1.2, 2.0),
                "troponin": (0.01, 0.3),  # demand ischemia, below an infarct's
                "bnp": (50.0, 400.0),
            },
            ("lactate", "procalcitonin", "wbc"),
            {
                "fever": 0.85,
                "confusion": 0.5,
                "dizziness": 0.45,
                "low_urine": 0.3,
                "diaphoresis": 0.3,
                "nausea_vomiting": 0.2,
                "dyspnea": 0.2,
                "palpitations": 0.15,
                "polyuria": 0.1,
            },
            {"dry_mucosa": 0.5, "confused": 0.45, "diaphoretic": 0.2, "focal_crackles": 0.15},
            (
                "30 mL/kg crystalloid bolus; start norepinephrine if MAP stays below 65.",
                "Blood cultures times two, then vancomycin and piperacillin-tazobactam.",
                "Trend lactate every 4 hours.",
                "Source control as indicated.",
            ),
            (
                "received 30 mL/kg of crystalloid and briefly required norepinephrine",
                "blood cultures grew gram-negative rods; antibiotics narrowed to ceftriaxone",
                "lactate cleared within 24 hours and mental status returned to baseline",
            ),
            sources=("urinary", "skin", "abdominal"),
        ),
        Profile(
            "acute_kidney_injury",
            0.09,
            (("N17.9", "Acute kidney failure, unspecified"),),
            70,
            14,
            0.5,
            (3, 7),
            {"sbp": (92, 140), "heart_rate": (66, 104)},
            {
                "creatinine": (2.3, 5.6),
                "troponin": (0.02, 0.2),  # cleared less by the kidneys
                "bnp": (100.0, 600.0),
                "bun": (42.0, 105.0),
                "potassium": (5.3, 6.6),
            },
            ("creatinine", "bun", "potassium"),
            {
                "low_urine": 0.8,
                "nausea_vomiting": 0.6,
                "dizziness": 0.35,
                "leg_swelling": 0.25,
                "confusion": 0.25,
                "weight_gain": 0.2,
                "abdominal_pain": 0.15,
            },
            {"dry_mucosa": 0.7, "leg_edema": 0.3, "confused": 0.2, "jvd": 0.15},
            (
                "Hold nephrotoxins including NSAIDs and lisinopril.",
                "IV isotonic fluids and strict intake and output; bladder scan.",
                "Renal ultrasound to exclude obstruction.",
                "Calcium gluconate, insulin and dextrose for hyperkalemia; repeat potassium.",
            ),
            (
                "treated with IV fluids and withdrawal of nephrotoxic medications",
                "renal ultrasound showed no hydronephrosis",
                "urine output recovered and creatinine trended down daily",
            ),
            p_bradycardia=0.15,
        ),
        Profile(
            "atrial_fibrillation",
            0.09,
            (
                ("I48.91", "Unspecified atrial fibrillation"),
                ("I48.0", "Paroxysmal atrial fibrillation"),
            ),
            72,
            11,
            0.5,
            (2, 4),
            {"heart_rate": (106, 150), "resp_rate": (16, 26), "spo2": (92, 98)},
            {"troponin": (0.01, 0.15), "bnp": (100.0, 500.0)},
            (),
            {
                "palpitations": 0.9,
                "dizziness": 0.5,
                "dyspnea": 0.5,
                "chest_pain": 0.35,
                "diaphoresis": 0.15,
                "leg_swelling": 0.15,
                "orthopnea": 0.1,
            },
            {
                "irregular_rhythm": 1.0,
                "jvd": 0.2,
                "bibasilar_crackles": 0.15,
                "leg_edema": 0.15,
                "diaphoretic": 0.1,
            },
            (
                "Rate control with IV diltiazem, then oral metoprolol.",
                "CHA2DS2-VASc calculated; start apixaban for stroke prevention.",
                "TSH and echocardiogram.",
                "Continuous telemetry.",
            ),
            (
                "rate controlled with diltiazem and transitioned to oral metoprolol",
                "started on apixaban after shared decision making",
                "echocardiogram showed normal biventricular function without valvular disease",
            ),
        ),
        Profile(
            "diabetic_ketoacidosis",
            0.08,
            (
                ("E10.10", "Type 1 diabetes mellitus with ketoacidosis without coma"),
                ("E11.10", "Type 2 diabetes mellitus with ketoacidosis without coma"),
            ),
            38,
            15,
            0.5,
            (2, 4),
            {"heart_rate": (100, 132), "resp_rate": (22, 34), "sbp": (94, 130)},
            {
                "glucose": (360.0, 720.0),
                "wbc": (10.0, 18.0),
                "bicarbonate": (6.0, 15.0),
                "bhb": (3.2, 8.5),
                "potassium": (5.0, 6.2),
                "hba1c": (9.5, 14.0),
            },
            ("glucose", "bicarbonate", "anion_gap", "bhb"),
            {
                "polyuria": 0.85,
                "nausea_vomiting": 0.85,
                "abdominal_pain": 0.6,
                "confusion": 0.3,
                "dyspnea": 0.2,
            },
            {"dry_mucosa": 0.8, "abdominal_tenderness": 0.5, "confused": 0.3},
            (
                "Insulin infusion per protocol with hourly glucose checks.",
                "Aggressive IV fluids; add dextrose when glucose falls below 250.",
                "Replete potassium per protocol; basic metabolic panel every 4 hours.",
                "Diabetes education before discharge.",
            ),
            (
                "treated with an insulin infusion and IV fluids per protocol",
                "anion gap closed within 18 hours and the patient transitioned to subcutaneous "
                "insulin",
                "met with the diabetes educator",
            ),
        ),
        Profile(
            "myocardial_infarction",
            0.10,
            (
                ("I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
                (
                    "I21.19",
                    "ST elevation (STEMI) myocardial infarction involving other coronary artery "
                    "of inferior wall",
                ),
                (
                    "I21.09",
                    "ST elevation (STEMI) myocardial infarction involving other coronary artery "
                    "of anterior wall",
                ),
            ),
            67,
            12,
            0.38,
            (2, 5),
            {"heart_rate": (60, 110), "sbp": (96, 170), "resp_rate": (16, 24), "spo2": (91, 98)},
            {"troponin": (0.6, 28.0), "wbc": (7.0, 13.0), "bnp": (80.0, 600.0)},
            ("troponin",),
            {
                "chest_pain": 0.95,
                "dyspnea": 0.55,
                "diaphoresis": 0.55,
                "nausea_vomiting": 0.35,
                "palpitations": 0.2,
                "dizziness": 0.2,
                "orthopnea": 0.15,
                "abdominal_pain": 0.1,
                "leg_swelling": 0.1,
            },
            {
                "diaphoretic": 0.6,
                "bibasilar_crackles": 0.3,
                "s3": 0.15,
                "jvd": 0.15,
                "leg_edema": 0.1,
            },
            (
                "Aspirin 325 mg, ticagrelor load, heparin infusion and high-intensity "
                "atorvastatin.",
                "Emergent cardiac catheterization.",
                "Metoprolol tartrate as blood pressure allows.",
                "Serial troponins and ECGs.",
            ),
            (
                "underwent cardiac catheterization with drug-eluting stent placement",
                "started on dual antiplatelet therapy, high-intensity statin and beta-blocker",
                "chest pain resolved after revascularization",
            ),
            p_bradycardia=0.12,
        ),
    )
}

# Vague wording a poorly documented note uses instead of the evidence above.
VAGUE_COMPLAINTS = ("not feeling well", "weakness", "feeling tired", "general malaise")
VAGUE_SYMPTOMS = (
    "generalized weakness",
    "not feeling well for a few days",
    "fatigue",
    "decreased appetite",
    "some discomfort that was hard to characterize",
    "feeling off",
)
VAGUE_EXAM = (
    "a limited examination",
    "no acute distress on brief exam",
    "an exam limited by cooperation",
)
VAGUE_PLAN = (
    "Admit for further evaluation and management.",
    "Supportive care; labs in the morning.",
    "Monitor and reassess.",
    "Continue home medications as appropriate.",
)
VAGUE_COURSE = (
    "was managed supportively and improved",
    "was monitored on the medical floor",
    "received symptomatic treatment and felt better over several days",
)


@dataclass(frozen=True)
class Comorbidity:
    """A chronic condition with its code and how common it is."""

    key: str
    code: str
    description: str
    text: str
    prevalence: float
    min_age: int = 18


COMORBIDITIES = (
    Comorbidity("hypertension", "I10", "Essential (primary) hypertension", "hypertension", 0.55),
    Comorbidity("hyperlipidemia", "E78.5", "Hyperlipidemia, unspecified", "hyperlipidemia", 0.38),
    Comorbidity(
        "diabetes",
        "E11.9",
        "Type 2 diabetes mellitus without complications",
        "type 2 diabetes",
        0.26,
    ),
    Comorbidity(
        "cad",
        "I25.10",
        "Atherosclerotic heart disease of native coronary artery",
        "coronary artery disease",
        0.18,
        40,
    ),
    Comorbidity(
        "ckd",
        "N18.30",
        "Chronic kidney disease, stage 3 unspecified",
        "chronic kidney disease stage 3",
        0.16,
        40,
    ),
    Comorbidity(
        "copd", "J44.9", "Chronic obstructive pulmonary disease, unspecified", "COPD", 0.13, 40
    ),
    Comorbidity(
        "chf",
        "I50.22",
        "Chronic systolic (congestive) heart failure",
        "chronic systolic heart failure",
        0.10,
        45,
    ),
    Comorbidity(
        "afib",
        "I48.20",
        "Chronic atrial fibrillation, unspecified",
        "chronic atrial fibrillation",
        0.08,
        50,
    ),
    Comorbidity("obesity", "E66.9", "Obesity, unspecified", "obesity", 0.20),
    Comorbidity("hypothyroidism", "E03.9", "Hypothyroidism, unspecified", "hypothyroidism", 0.09),
    Comorbidity("depression", "F32.A", "Depression, unspecified", "depression", 0.12),
    Comorbidity("anemia", "D64.9", "Anemia, unspecified", "chronic anemia", 0.10),
    Comorbidity(
        "dementia",
        "F03.90",
        "Unspecified dementia without behavioral disturbance",
        "dementia",
        0.10,
        70,
    ),
    Comorbidity("tobacco", "F17.210", "Nicotine dependence, cigarettes", "tobacco use", 0.14),
    Comorbidity(
        "gerd", "K21.9", "Gastro-esophageal reflux disease without esophagitis", "GERD", 0.12
    ),
    Comorbidity(
        "osteoarthritis", "M19.90", "Unspecified osteoarthritis", "osteoarthritis", 0.14, 40
    ),
)

# Conditions that duplicate or contradict a primary diagnosis are not sampled with it.
EXCLUDED_COMORBIDITIES = {
    "heart_failure": ("chf",),
    "copd_exacerbation": ("copd",),
    "atrial_fibrillation": ("afib",),
    "diabetic_ketoacidosis": ("diabetes",),
}
