"""Reading a predictions file: the input of ``clinical-llm eval subgroups``.

One JSON object a line (see docs/architecture.md, "Predictions")::

    {"id": "ex-1", "prediction": "yes", "reference": "no", "score": 0.31,
     "demographics": {"sex": "female", "age_band": "65-79", "other": {"site": "A"}}}

Labels are strings or numbers; they are compared as canonical strings (ends
stripped; ``1``, ``1.0`` and ``"1"`` are the same label; ``true``/``false`` for
booleans). Missing, null or empty demographic values become the explicit group
``unknown``. A bad line raises :class:`~llm.errors.RecordError` naming file,
line and field, or, with a rejects file, is written there and counted:
``read = used + rejected`` always holds. Keys beyond the contract (a runner's
``prompt`` or ``task``) are allowed and ignored.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from eval.metrics.functional import MetricInputs
from eval.metrics.labels import canonical_label
from eval.subgroups.intersections import joins_groups
from llm.data.io import ReadStats, format_loc
from llm.errors import BadInputError, RecordError
from llm.files import json_type, parse_json_line

UNKNOWN = "unknown"
REQUIRED = ("id", "prediction", "reference", "demographics")

LineProgress = Callable[[Iterable[str]], Iterable[str]]


def canonical_group(value: object) -> str:
    """The group name of one demographic value (``unknown`` when missing).

    Raises:
        ValueError: not a scalar, or contains ``*`` (which joins intersection groups).
    """
    if value is None:
        return UNKNOWN
    group = canonical_label(value)
    if not group:
        return UNKNOWN
    if joins_groups(group):
        raise ValueError(f"group value {group!r} contains '*', which joins intersection groups")
    return group


@dataclass(frozen=True)
class Prediction:
    """One valid line, canonicalised: labels and groups as strings, demographics flattened."""

    id: str
    prediction: str
    reference: str
    score: float | None
    demographics: dict[str, str]


Problems = list[tuple[tuple[int | str, ...], str]]


def _check_id(value: object, problems: Problems) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append((("id",), f"expected a string or integer, got {json_type(value)}"))
        return ""
    if isinstance(value, str) and not value.strip():
        problems.append((("id",), "is empty"))
    return str(value)


def _check_label(key: str, value: object, problems: Problems) -> str:
    if value is None:
        return ""  # reported as missing or null already
    try:
        return canonical_label(value)
    except ValueError as exc:
        problems.append(((key,), str(exc)))
        return ""


def _check_score(value: object, problems: Problems) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append((("score",), f"expected a number, got {json_type(value)}"))
        return None
    if not math.isfinite(value):
        problems.append((("score",), f"must be finite, got {value}"))
        return None
    return float(value)


def _check_demographics(value: object, problems: Problems) -> dict[str, str]:
    """Groups of every attribute; ``other`` (site-specific attributes) flattened beside."""
    if not isinstance(value, dict):
        problems.append((("demographics",), f"expected an object, got {json_type(value)}"))
        return {}
    flat: dict[str, str] = {}
    items: list[tuple[tuple[int | str, ...], object]] = []
    for key, item in value.items():
        if type(item) is str and not joins_groups(item) and (group := item.strip()):
            flat[key] = group  # the common case, checked inline for speed
        elif key == "other" and isinstance(item, dict):
            items += [(("demographics", "other", k), v) for k, v in item.items()]
        else:
            items.append((("demographics", key), item))
    for loc, item in items:
        try:
            flat[str(loc[-1])] = canonical_group(item)
        except ValueError as exc:
            problems.append((loc, str(exc)))
    return flat


def parse_prediction_line(text: str, *, path: str, line: int) -> Prediction:
    """Parse and validate one JSONL line.

    Raises:
        RecordError: the first problem on the line; all of them in its ``all``.
    """
    return parse_prediction(parse_json_line(text, path=path, line=line), path=path, line=line)


def parse_prediction(obj: object, *, path: str, line: int) -> Prediction:
    """Validate one parsed line (or a row about to be written as that line).

    Raises:
        RecordError: the first problem on the line; all of them in its ``all``.
    """
    if not isinstance(obj, dict):
        raise RecordError(path, line, "<line>", f"expected a JSON object, got {json_type(obj)}")
    problems: Problems = [
        ((key,), "field required" if key not in obj else "must not be null")
        for key in REQUIRED
        if obj.get(key) is None
    ]
    row = Prediction(
        id=_check_id(obj["id"], problems) if obj.get("id") is not None else "",
        prediction=_check_label("prediction", obj.get("prediction"), problems),
        reference=_check_label("reference", obj.get("reference"), problems),
        score=_check_score(obj.get("score"), problems),
        demographics=_check_demographics(obj["demographics"], problems)
        if obj.get("demographics") is not None
        else {},
    )
    if problems:
        errors = [RecordError(path, line, format_loc(loc), message) for loc, message in problems]
        errors[0].all = errors
        if len(errors) > 1:
            errors[0].args = (f"{errors[0]} (and {len(errors) - 1} more problem(s) on this line)",)
        raise errors[0]
    return row


@dataclass(frozen=True)
class PredictionSet:
    """The valid lines of a predictions file, as parallel columns.

    Attributes:
        path: the file read.
        ids: example ids, unique.
        lines: 1-based line number of each example (for error messages).
        predictions / references: canonical label strings (object arrays).
        scores: float array with NaN where a line has no score; ``None`` when no
            line has one.
        demographics: flattened demographic groups of each example.
    """

    path: Path
    ids: list[str]
    lines: np.ndarray
    predictions: np.ndarray
    references: np.ndarray
    scores: np.ndarray | None
    demographics: list[dict[str, str]]

    def __len__(self) -> int:
        return len(self.ids)

    def attribute_names(self) -> list[str]:
        """Every demographic attribute that occurs on some line, sorted."""
        return sorted({key for demo in self.demographics for key in demo})

    def groups(self, attribute: str) -> np.ndarray:
        """The group of every example for one attribute (``unknown`` where missing).

        Raises:
            BadInputError: no line has this attribute (a typo, most likely).
        """
        values = [demo.get(attribute) for demo in self.demographics]
        if all(v is None for v in values):
            known = self.attribute_names()
            close = difflib.get_close_matches(attribute, known, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise BadInputError(
                f"{self.path}: attribute {attribute!r} occurs in no line's demographics{hint} "
                f"(present: {', '.join(known) or 'none'})"
            )
        return np.array([UNKNOWN if v is None else v for v in values], dtype=object)

    def metric_inputs(self, positive_label: str | None) -> MetricInputs:
        """The columns metrics read."""
        return MetricInputs(
            predictions=self.predictions,
            references=self.references,
            scores=self.scores,
            positive_label=positive_label,
        )


def _check_score_rule(
    score: float | None, path: str, line: int, require: str | None, unit: str | None
) -> None:
    if score is None and require:
        raise RecordError(path, line, "score", f"missing; metric {require!r} needs a score")
    if score is not None and unit and not 0.0 <= score <= 1.0:
        raise RecordError(
            path,
            line,
            "score",
            f"{score} is outside [0, 1]; metric {unit!r} reads it as the positive label's "
            "probability",
        )


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.rstrip("\n")
            if text.strip():  # blank lines are layout, not examples
                yield lineno, text


def read_predictions(
    path: str | Path,
    *,
    stats: ReadStats | None = None,
    rejects: IO[str] | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    require_score: str | None = None,
    unit_score: str | None = None,
) -> PredictionSet:
    """Read and validate a predictions file.

    Args:
        path: predictions file (JSONL).
        stats: filled in as lines are read (``read = used + rejected``); pass
            one to see the counts even when reading stops at a bad line.
        rejects: when given, bad lines are written here (JSONL: ``file``,
            ``line``, ``field``, ``error``, ``raw``) and reading goes on;
            otherwise the first bad line raises.
        progress: wraps the line loop (a progress bar).
        require_score: name of a metric that needs a score on every line; a
            line without one is a bad line.
        unit_score: name of a metric that needs scores in [0, 1].

    Returns:
        The valid examples as columns.

    Raises:
        BadInputError: the file does not exist or holds no valid example.
        RecordError: a bad line (invalid JSON or field, repeated id), without ``rejects``.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: predictions file not found")
    lines = ((lineno, text, text) for lineno, text in _iter_lines(p))
    return _collect(
        lines,
        p,
        stats=stats,
        rejects=rejects,
        progress=progress,
        require_score=require_score,
        unit_score=unit_score,
    )


def predictions_from_rows(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    stats: ReadStats | None = None,
    rejects: IO[str] | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    require_score: str | None = None,
    unit_score: str | None = None,
) -> PredictionSet:
    """Validate predictions held in memory, exactly as :func:`read_predictions` would the file.

    For a caller that has just written ``rows`` to ``path``, one row a line
    (``eval run``): the rows are checked as that file's lines (row ``i`` is
    line ``i + 1`` in errors) without reading it back.

    Args:
        rows: the prediction objects, in file order.
        path: the file they were written to (named in errors and the result).
        stats / rejects / progress / require_score / unit_score: as for
            :func:`read_predictions`.

    Raises:
        BadInputError: no valid example.
        RecordError: a bad row, without ``rejects``.
    """
    lines = ((lineno, row, _Raw(row)) for lineno, row in enumerate(rows, start=1))
    return _collect(
        lines,
        Path(path),
        stats=stats,
        rejects=rejects,
        progress=progress,
        require_score=require_score,
        unit_score=unit_score,
    )


@dataclass(frozen=True)
class _Raw:
    """A row's line text, made only when a rejects file needs it."""

    row: Mapping[str, Any]

    def __str__(self) -> str:
        return json.dumps(self.row, ensure_ascii=False)


def _collect(
    source: Iterable[tuple[int, str | Mapping[str, Any], str | _Raw]],
    p: Path,
    *,
    stats: ReadStats | None,
    rejects: IO[str] | None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None,
    require_score: str | None,
    unit_score: str | None,
) -> PredictionSet:
    """Validate ``(line number, text or object, raw line)`` items into columns."""
    stats = stats if stats is not None else ReadStats(str(p))
    first_line_of: dict[str, int] = {}
    lines: list[int] = []
    preds: list[str] = []
    refs: list[str] = []
    scores: list[float] = []
    demographics: list[dict[str, str]] = []
    for lineno, item, raw in progress(source) if progress else source:
        stats.read += 1
        try:
            if isinstance(item, str):
                row = parse_prediction_line(item, path=str(p), line=lineno)
            else:
                row = parse_prediction(item, path=str(p), line=lineno)
            if row.id in first_line_of:
                raise RecordError(
                    str(p), lineno, "id", f"repeats id {row.id!r} of line {first_line_of[row.id]}"
                )
            _check_score_rule(row.score, str(p), lineno, require_score, unit_score)
        except RecordError as err:
            stats.rejected += 1
            stats.errors.append(err)
            if rejects is None:
                raise
            for e in err.all:
                rejects.write(
                    json.dumps({**e.to_dict(), "raw": str(raw)}, ensure_ascii=False) + "\n"
                )
            continue
        stats.used += 1
        first_line_of[row.id] = lineno
        lines.append(lineno)
        preds.append(row.prediction)
        refs.append(row.reference)
        scores.append(math.nan if row.score is None else row.score)
        demographics.append(row.demographics)
    stats.check()
    if not lines:
        raise BadInputError(f"{p}: no valid predictions ({stats.summary()})")
    score_array = np.array(scores, dtype=np.float64)
    return PredictionSet(
        path=p,
        ids=list(first_line_of),
        lines=np.array(lines, dtype=np.int64),
        predictions=np.array(preds, dtype=object),
        references=np.array(refs, dtype=object),
        scores=None if np.isnan(score_array).all() else score_array,
        demographics=demographics,
    )
