"""PHI de-identification of clinical records, offline, with Presidio.

* :mod:`~llm.data.deid.nlp`: the spaCy pipeline built in code (no model download).
* :mod:`~llm.data.deid.recognizers`: clinical recognizers (MRN, dates, ages over 89,
  phone, fax, e-mail, SSN, addresses, names, hospitals).
* :mod:`~llm.data.deid.engine`: :class:`Deidentifier` (analyze, then tag or surrogate).
* :mod:`~llm.data.deid.records`: whole records files, structured times and assets.
* :mod:`~llm.data.deid.dicom`: DICOM header scrubbing.
* :mod:`~llm.data.deid.evaluate`: scores against ``phi_spans.jsonl``.
"""

from llm.data.deid.engine import Deidentifier, Detection, load_key
from llm.data.deid.evaluate import DeidEvaluation, evaluate_detections, read_phi_spans
from llm.data.deid.records import DeidSummary, deidentify_records

__all__ = [
    "DeidEvaluation",
    "DeidSummary",
    "Deidentifier",
    "Detection",
    "deidentify_records",
    "evaluate_detections",
    "load_key",
    "read_phi_spans",
]
