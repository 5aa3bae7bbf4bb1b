"""What an admission note says about a presentation: findings, their wordings, and negatives.

A *finding* is a symptom the patient reports or a sign the examiner finds.
Each diagnosis makes some findings likely (``Profile.symptoms`` and
``Profile.signs`` in :mod:`.profiles`), and most findings belong to several
diagnoses: shortness of breath to pneumonia, heart failure, COPD and MI; fever
to pneumonia and sepsis; confusion to sepsis, DKA and AKI.

A note mentions a finding either as present or as a pertinent negative
("denies chest pain", "no JVD"). How often a finding is *mentioned* does not
depend on the diagnosis (:func:`negative_chance`): a finding that some
diagnosis has in 90% of patients is denied in the other notes often enough
that 90% of every note mention it. So a finding's words alone say little;
whether it is negated does, and the labs and vitals decide (see
:mod:`.diagnosis_rule`).

Wordings include the abbreviations clinicians write (SOB, CP, N/V, AMS) and a
few common misspellings, used now and then (:data:`MISSPELLING_CHANCE`).
"""

from __future__ import annotations

from dataclasses import dataclass

MISSPELLING_CHANCE = 0.06
# Share of patients whose chief complaint is vague whatever their findings (the elderly
# often come in "not feeling well").
VAGUE_COMPLAINT_CHANCE = 0.25
# What patients come in with, across diagnoses: the chief complaint is one of these
# when the patient has any (a rarer, more telling symptom only otherwise).
COMMON_COMPLAINTS = (
    "dyspnea",
    "chest_pain",
    "fever",
    "nausea_vomiting",
    "confusion",
    "dizziness",
    "abdominal_pain",
)


@dataclass(frozen=True)
class Symptom:
    """A symptom: how notes name it (plain form first) and its usual misspellings."""

    key: str
    forms: tuple[str, ...]
    misspellings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sign:
    """An examination sign and its wordings; the absent ones are listed after one ``no``.

    ``system`` is the exam line it belongs to (``Gen``, ``Heart``, ``Lungs``, ``Abd``, ``Ext``).
    Wordings may hold ``{side}`` and ``{level}`` (the lung zone of a pneumonia). A
    pertinent negative uses the same words as the finding ("no JVD, S3, or
    irregular rhythm"), so that the words themselves do not say whether the
    sign was there, nor does the number of negation words.
    """

    key: str
    system: str
    present: tuple[str, ...]


SYMPTOMS: dict[str, Symptom] = {
    s.key: s
    for s in (
        Symptom(
            "dyspnea",
            ("shortness of breath", "SOB", "dyspnea", "DOE", "dyspnea on exertion"),
            ("shortness of breth", "dyspnoea"),
        ),
        Symptom(
            "chest_pain",
            ("chest pain", "CP", "chest pressure", "chest tightness", "chest discomfort"),
            ("chest pian",),
        ),
        Symptom("fever", ("fever", "fevers", "subjective fevers", "fevers/chills", "chills")),
        Symptom("cough", ("cough", "productive cough", "cough with sputum"), ("cought",)),
        Symptom(
            "palpitations",
            ("palpitations", "heart racing", "irregular heartbeat"),
            ("palpitatons", "palpatations"),
        ),
        Symptom(
            "leg_swelling",
            ("leg swelling", "LE edema", "ankle swelling", "bilateral leg swelling"),
            ("leg sweling",),
        ),
        Symptom("orthopnea", ("orthopnea", "PND", "orthopnea/PND")),
        Symptom("wheezing", ("wheezing", "wheeze"), ("wheezeing",)),
        Symptom(
            "nausea_vomiting", ("N/V", "nausea and vomiting", "nausea", "emesis"), ("vomitting",)
        ),
        Symptom("abdominal_pain", ("abdominal pain", "abd pain"), ("abdominal pian",)),
        Symptom("polyuria", ("polyuria", "polydipsia", "polyuria/polydipsia", "excessive thirst")),
        Symptom("confusion", ("confusion", "AMS", "altered mental status"), ("confussion",)),
        Symptom("low_urine", ("decreased urine output", "decreased UOP", "oliguria")),
        Symptom("dizziness", ("lightheadedness", "dizziness", "presyncope"), ("dizzyness",)),
        Symptom("diaphoresis", ("diaphoresis", "sweating"), ("diaphoresus",)),
        Symptom("dysuria", ("dysuria", "burning with urination", "flank pain")),
        Symptom("leg_redness", ("leg redness", "a red, warm leg")),
        Symptom("weight_gain", ("weight gain", "wt gain")),
    )
}

SIGNS: dict[str, Sign] = {
    s.key: s
    for s in (
        Sign(
            "focal_crackles",
            "Lungs",
            ("crackles at the {side} base", "rales over the {side} {level} field"),
        ),
        Sign("bibasilar_crackles", "Lungs", ("bibasilar crackles", "crackles at both bases")),
        Sign("egophony", "Lungs", ("egophony on the {side}", "bronchial breath sounds")),
        Sign(
            "wheezes",
            "Lungs",
            ("diffuse expiratory wheezes", "wheezes with prolonged expiration"),
        ),
        Sign("accessory_muscles", "Lungs", ("accessory muscle use", "pursed-lip breathing")),
        Sign("irregular_rhythm", "Heart", ("irregular rhythm", "irregularly irregular rhythm")),
        Sign("jvd", "Heart", ("JVD", "JVD to the jaw")),
        Sign("s3", "Heart", ("S3 gallop", "S3")),
        Sign("abdominal_tenderness", "Abd", ("diffuse abdominal tenderness", "RUQ tenderness")),
        Sign("cva_tenderness", "Abd", ("R CVA tenderness", "CVA tenderness")),
        Sign("leg_edema", "Ext", ("pitting edema to the knees", "bilateral LE edema")),
        Sign("leg_erythema", "Ext", ("erythema and warmth of the L calf", "calf erythema")),
        Sign("confused", "Gen", ("confusion", "AMS")),
        Sign("diaphoretic", "Gen", ("diaphoresis",)),
        Sign("dry_mucosa", "Gen", ("dry mucous membranes", "dry mucosa")),
    )
}
SIGN_SYSTEMS = ("Gen", "Heart", "Lungs", "Abd", "Ext")

# Findings a sepsis source adds, by source (certain when that is the source).
SEPSIS_SOURCE_SYMPTOMS = {
    "urinary": "dysuria",
    "skin": "leg_redness",
    "abdominal": "abdominal_pain",
}
SEPSIS_SOURCE_SIGNS = {
    "urinary": "cva_tenderness",
    "skin": "leg_erythema",
    "abdominal": "abdominal_tenderness",
}

# How notes name each diagnosis category (in differentials, past and family history).
DIAGNOSIS_NAMES: dict[str, tuple[str, ...]] = {
    "pneumonia": ("PNA", "pneumonia", "CAP"),
    "heart_failure": ("CHF exacerbation", "ADHF", "heart failure exacerbation"),
    "copd_exacerbation": ("COPD exacerbation", "AECOPD"),
    "sepsis": ("sepsis", "urosepsis", "sepsis"),
    "acute_kidney_injury": ("AKI", "acute kidney injury"),
    "atrial_fibrillation": ("AF with RVR", "afib with RVR", "atrial fibrillation"),
    "diabetic_ketoacidosis": ("DKA", "diabetic ketoacidosis"),
    "myocardial_infarction": ("ACS", "NSTEMI", "MI"),
}

# Past episodes of a diagnosis, as a past medical history line ({year} filled in).
# A category whose chronic form is a coded comorbidity is only mentioned for
# patients who have that comorbidity (see PAST_EPISODE_NEEDS).
PAST_EPISODES: dict[str, tuple[str, ...]] = {
    "pneumonia": ("h/o PNA {year}", "CAP requiring admission in {year}"),
    "heart_failure": ("CHF exacerbation {year}", "admitted for ADHF in {year}"),
    "copd_exacerbation": ("COPD exacerbation {year}, no intubations", "AECOPD x2, last {year}"),
    "sepsis": ("urosepsis {year}", "h/o sepsis from cellulitis {year}"),
    "acute_kidney_injury": ("AKI {year} after NSAIDs, resolved", "prior AKI ({year})"),
    "atrial_fibrillation": ("AF with RVR {year}, s/p cardioversion", "paroxysmal afib ({year})"),
    "diabetic_ketoacidosis": ("DKA {year}", "h/o DKA x2, last {year}"),
    "myocardial_infarction": ("h/o MI s/p PCI {year}", "NSTEMI {year} s/p DES to LAD"),
}
PAST_EPISODE_NEEDS = {
    "heart_failure": "chf",
    "copd_exacerbation": "copd",
    "diabetic_ketoacidosis": "diabetes",
}
FAMILY_MEMBERS = ("mother", "father", "brother", "sister")
FAMILY_HISTORY = {
    "heart_failure": "CHF",
    "myocardial_infarction": "MI at {age}",
    "atrial_fibrillation": "afib",
    "copd_exacerbation": "COPD",
    "diabetic_ketoacidosis": "type 1 diabetes and DKA",
    "acute_kidney_injury": "kidney failure on dialysis",
}

# How the past medical history writes each comorbidity (abbreviations as clinicians do).
COMORBIDITY_WORDS: dict[str, tuple[str, ...]] = {
    "hypertension": ("HTN", "hypertension", "hypertention"),
    "hyperlipidemia": ("HLD", "hyperlipidemia"),
    "diabetes": ("DM2", "type 2 diabetes", "DM2 on insulin", "type 2 diabetes on insulin"),
    "cad": ("CAD", "coronary artery disease"),
    "ckd": ("CKD 3", "CKD stage 3"),
    "copd": ("COPD", "COPD on home inhalers"),
    "chf": ("chronic systolic CHF", "CHF (EF 30%)", "heart failure with reduced EF"),
    "afib": ("chronic afib on apixaban", "permanent AF"),
    "obesity": ("obesity",),
    "hypothyroidism": ("hypothyroidism",),
    "depression": ("depression",),
    "anemia": ("chronic anemia",),
    "dementia": ("dementia",),
    "tobacco": ("tobacco use",),
    "gerd": ("GERD",),
    "osteoarthritis": ("OA", "osteoarthritis"),
}
# Diabetic ketoacidosis is a complication of known diabetes: its history line.
DKA_DIABETES_WORDS = {
    "E10.10": ("type 1 diabetes on insulin", "DM1 on insulin"),
    "E11.10": ("DM2 on insulin", "type 2 diabetes on insulin"),
}


def mention_rates(odds: list[dict[str, float]]) -> dict[str, float]:
    """For each finding, the highest chance any diagnosis has of it: how often every note names it.

    Args:
        odds: per diagnosis, finding key -> chance the patient has it.
    """
    rates: dict[str, float] = {}
    for table in odds:
        for key, p in table.items():
            rates[key] = max(rates.get(key, 0.0), p)
    return rates


def negative_chance(rate: float, p_present: float) -> float:
    """Chance a note denies a finding the patient lacks, so it is mentioned at ``rate`` overall.

    A patient has the finding with chance ``p_present`` (always mentioned); the
    others are denied with the returned chance, so that
    ``p_present + (1 - p_present) * negative_chance == rate``.
    """
    if p_present >= 1.0:
        return 0.0
    return max(0.0, (rate - p_present) / (1.0 - p_present))
