"""The readmission label read from a ``readmission`` task input, by the cohort's own rule.

The input holds the whole discharge summary, which states every input of
:func:`~llm.data.synth.labels.readmission_rule` (age, prior admissions in the
year, living alone, length of stay, discharge labs flagged high or low,
secondary diagnoses, disposition, primary diagnosis code). Reading them back
and applying the rule gives the label of any unaltered synthetic record.
"""

from __future__ import annotations

import re

from llm.data.sections import split_sections
from llm.data.synth.labels import DISPOSITION_TEXT, ReadmissionInputs, readmission_rule
from llm.data.synth.profiles import PROFILES
from llm.errors import BadInputError

CATEGORY_OF_CODE = {code: key for key, p in PROFILES.items() for code, _ in p.codes}
DISPOSITION_OF_TEXT = {text: key for key, text in DISPOSITION_TEXT.items()}


def read_readmission_inputs(text: str) -> ReadmissionInputs:
    """The readmission rule's inputs as the discharge summary in ``text`` words them.

    Raises:
        BadInputError: a needed statement is missing (not a synthetic discharge summary).
    """
    sections = split_sections(text)
    hpi = sections.get("HISTORY OF PRESENT ILLNESS", "")
    course = sections.get("BRIEF HOSPITAL COURSE", "")
    diagnosis = sections.get("DISCHARGE DIAGNOSIS", "")
    disposition = sections.get("DISCHARGE DISPOSITION", "").strip()
    age = re.search(r"(\d+)-year-old", hpi)
    prior = re.search(
        r"(no|\d+) (?:hospital admissions?|times?) in the past (?:year|12 months)", hpi, re.I
    )
    los = re.search(r"Length of stay (\d+) days", course)
    primary = re.search(r"Primary: .* \(([A-Z0-9.]+)\)", diagnosis)
    discharge_labs = re.search(r"Discharge labs: (.*)", course)
    if not (age and prior and los and primary and discharge_labs):
        raise BadInputError("not a synthetic discharge summary: a readmission input is missing")
    if primary.group(1) not in CATEGORY_OF_CODE or disposition not in DISPOSITION_OF_TEXT:
        raise BadInputError("not a synthetic discharge summary: unknown code or disposition")
    return ReadmissionInputs(
        age=int(age.group(1)),
        comorbidity_count=len(re.findall(r"^- ", diagnosis, re.M)),
        prior_admissions_year=0 if prior.group(1).lower() == "no" else int(prior.group(1)),
        disposition=DISPOSITION_OF_TEXT[disposition],
        lives_alone="lives alone" in hpi,
        abnormal_discharge_labs=len(re.findall(r"\((?:low|high)\)", discharge_labs.group(1))),
        length_of_stay_days=int(los.group(1)),
        primary_diagnosis=CATEGORY_OF_CODE[primary.group(1)],
    )


def predict_readmission(text: str) -> str:
    """``"yes"`` or ``"no"``: :func:`~llm.data.synth.labels.readmission_rule` on the text's inputs.

    Raises:
        BadInputError: see :func:`read_readmission_inputs`.
    """
    return readmission_rule(read_readmission_inputs(text))
