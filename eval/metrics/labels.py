"""Labels as metrics compare them: canonical strings.

Ends are stripped; ``1``, ``1.0`` and ``"1"`` are the same label; booleans are
``true``/``false``. The predictions reader and the ``evaluate`` modules both
canonicalise with :func:`canonical_label`, so a label means the same everywhere.
"""

from __future__ import annotations

import math

from llm.files import json_type


def canonical_label(value: object) -> str:
    """The string a label is compared as.

    Raises:
        ValueError: ``value`` is not a string, number or boolean.
    """
    if type(value) is str:  # the common case first: this runs for every field of every line
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"label must be finite, got {value}")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"expected a string or number, got {json_type(value)}")
