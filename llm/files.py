"""Reading JSON files and JSONL lines, with errors that name the file, line and problem.

Every part of the project reads small JSON files it did not write itself in this
process (manifests, model configs, DeepSpeed configs, reports) and JSONL files a
line at a time (records, predictions, task datasets). These two functions are
the one place that turns a missing file, an unreadable one, broken JSON or the
wrong JSON type into a :class:`~llm.errors.BadInputError` or
:class:`~llm.errors.RecordError` a user can act on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm.errors import BadInputError, RecordError


def json_type(value: object) -> str:
    """A parsed value's type: ``object``, ``array``, ``null``, else Python's name (``str``)."""
    names = {dict: "object", list: "array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_json_object(path: Path, *, what: str, hint: str = "") -> dict[str, Any]:
    """Read a file that must hold one JSON object.

    Args:
        path: the file.
        what: what the file is, for messages ("model config", "DeepSpeed config").
        hint: appended to the not-found message: how to make the file.

    Returns:
        The parsed object.

    Raises:
        BadInputError: the file is missing or unreadable, is not valid JSON
            (with the line), or holds something other than an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: {what} not found{'; ' + hint if hint else ''}") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a {what} must be a JSON object, got {json_type(data)}")
    return data


def parse_json_line(text: str, *, path: str, line: int) -> dict[str, Any]:
    """Parse one JSONL line that must hold a JSON object.

    Raises:
        RecordError: naming ``path``, ``line`` and the problem (field ``<line>``).
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            path, line, "<line>", f"not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    if not isinstance(obj, dict):
        raise RecordError(path, line, "<line>", f"expected a JSON object, got {json_type(obj)}")
    return obj
