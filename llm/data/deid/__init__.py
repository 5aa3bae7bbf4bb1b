"""PHI de-identification of clinical records, offline, with Presidio.

* :mod:`~llm.data.deid.nlp`: the spaCy pipeline built in code (no model download).
* :mod:`~llm.data.deid.recognizers`: clinical recognizers (MRN, dates, ages over 89,
  phone, fax, e-mail, SSN, addresses, names, hospitals).
* :mod:`~llm.data.deid.engine`: :class:`Deidentifier` (analyze, then tag or surrogate).
* :mod:`~llm.data.deid.records`: whole records files, structured times and assets.
* :mod:`~llm.data.deid.dicom`: DICOM header scrubbing.
* :mod:`~llm.data.deid.evaluate`: scores against ``phi_spans.jsonl``.
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
