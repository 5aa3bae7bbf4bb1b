"""A reproducible synthetic multimodal patient cohort.

Notes with exact PHI spans, labs, vitals, ICD-10 codes, chest X-ray DICOMs,
12-lead ECGs and rule-based labels, with optional documentation bias against
one subgroup. See docs/synthetic-cohort.md.

Modules, by responsibility: :mod:`.profiles` (what each diagnosis looks like),
:mod:`.demographics`, :mod:`.cohort` (a patient's clinical facts),
:mod:`.labels` (label rules), :mod:`.identities` (fake PHI), :mod:`.text`
(span tracking), :mod:`.notes` and :mod:`.reports` (note writing), :mod:`.cxr`
and :mod:`.dicom` (chest images), :mod:`.ecg` (ECG simulator), :mod:`.bias`,
:mod:`.patient` (one patient end to end), :mod:`.generate` (the cohort).
"""

from llm.data.synth.bias import BIAS_FORM, BiasSpec, parse_bias
from llm.data.synth.generate import CohortSummary, generate_cohort

__all__ = ["BIAS_FORM", "BiasSpec", "CohortSummary", "generate_cohort", "parse_bias"]
