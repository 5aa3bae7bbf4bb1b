"""``eval subgroups`` as a library call: predictions in, report folder out.

:func:`analyze_subgroups` validates the whole configuration and the gates
before reading anything, reads the predictions (``read = used + rejected``),
computes the :class:`~eval.subgroups.frame.SubgroupFrame`, optionally tests the
worst-versus-best gaps, evaluates the gates against the report, and writes
``report.json``, ``report.md``, ``report.html`` and ``manifest.json`` into the
output folder. A caller that has just written the predictions and gates
(``eval run``) hands them over in memory instead of having them read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval.gates import GateSpec, check_gates, evaluate_gates, load_gates
from eval.manifest import MANIFEST, MANIFEST_KIND, eval_manifest, find_model_manifest
from eval.metrics.functional import Metric
from eval.registry import resolve_metrics
from eval.report.model import SubgroupReport
from eval.report.write import write_reports
from eval.subgroups.frame import SubgroupFrame
from eval.subgroups.intersections import attribute_name, attribute_parts, intersection_groups
from eval.subgroups.predictions import PredictionSet, predictions_from_rows, read_predictions
from eval.subgroups.significance import gap_significance
from eval.subgroups.to_report import build_report
from llm.data.io import ReadStats
from llm.errors import BadInputError
from llm.manifest import earlier_manifest

MAX_LABELS_SHOWN = 20
# progress(iterable, total or None, description) -> iterable, e.g. a rich progress bar
Progress = Callable[[Iterable[Any], int | None, str], Iterable[Any]]


class SubgroupConfig(BaseModel):
    """Everything one ``eval subgroups`` run needs; the descriptions are the CLI help."""

    model_config = ConfigDict(extra="forbid")

    predictions: Path = Field(
        description="Predictions file (JSONL: id, prediction, reference, score?, demographics)."
    )
    attributes: list[str] = Field(
        description="Demographic attributes to break down by, comma-separated; 'a*b' is the "
        "intersection of a and b (groups 'valueA*valueB'). Keys inside demographics.other work too."
    )
    metrics: list[str] = Field(
        default=["accuracy"],
        description="Metrics, comma-separated: accuracy, true_positive_rate, false_positive_rate, "
        "specificity, precision, f1, macro_f1, exact_match, rouge_l, auroc, "
        "expected_calibration_error.",
    )
    positive_label: str | None = Field(
        default=None,
        description="Label counted as positive by binary metrics (one-vs-rest); '1' matches 1 "
        "and 1.0. Enables equalized_odds_difference.",
    )
    min_group_size: int = Field(
        default=30,
        ge=0,
        description="Groups with fewer examples are marked small and kept out "
        "of disparities and gates.",
    )
    bootstrap: int = Field(
        default=1000, ge=0, description="Bootstrap resamples for intervals (0: point estimates)."
    )
    seed: int = Field(default=0, description="Seed of the resampling; same seed, same report.")
    confidence: float = Field(
        default=0.95, gt=0.0, lt=1.0, description="Coverage of the percentile intervals."
    )
    gates: Path | None = Field(
        default=None,
        description="Gates file (YAML list); a failing gate exits 1 after the reports are written.",
    )
    significance: bool = Field(
        default=False,
        description="Test each attribute's worst-versus-best gap (z-test or permutation test), "
        "Holm-adjusted across attributes.",
    )
    permutations: int = Field(
        default=1000, ge=1, description="Splits per permutation test (with --significance)."
    )
    model_manifest: Path | None = Field(
        default=None,
        description="Manifest of the evaluated model (default: manifest.json beside the "
        "predictions, when present).",
    )
    rejects: Path | None = Field(
        default=None,
        description="Write invalid lines here (JSONL) and go on, instead of stopping at the first.",
    )
    out: Path = Field(description="Output folder for report.json, report.md and manifest.json.")

    @field_validator("attributes", "metrics")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value or any(not v for v in value):
            raise ValueError("give a comma-separated list without empty names")
        if len(set(value)) != len(value):
            raise ValueError("a name is listed twice")
        return value


@dataclass
class SubgroupAnalysis:
    """What a run produced: the report, the read counts and the files written."""

    report: SubgroupReport
    stats: ReadStats
    files: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report.passed


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` to ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",")]


def make_config(**values: Any) -> SubgroupConfig:
    """Validate a configuration, reporting every problem at once.

    Raises:
        BadInputError: one line per invalid field.
    """
    try:
        return SubgroupConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc'][:1]).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise BadInputError(f"invalid arguments: {problems}") from None


def _attribute_parts(attributes: list[str]) -> dict[str, list[str]]:
    parts = {}
    for name in attributes:
        try:
            pieces = attribute_parts(name)
        except ValueError as exc:
            raise BadInputError(f"--attributes: {exc}") from None
        parts[attribute_name(pieces)] = pieces
    return parts


def sensitive_features(
    predictions: PredictionSet, attributes: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """Each example's group per attribute; intersections join their parts' groups with ``*``.

    Raises:
        BadInputError: an attribute that no line carries.
    """
    base = {p: predictions.groups(p) for pieces in attributes.values() for p in pieces}
    return intersection_groups(attributes, base)


def _check_positive_label(predictions: PredictionSet, label: str | None) -> None:
    if label is None:
        return
    seen = set(predictions.references) | set(predictions.predictions)
    if label not in seen:
        # list the labels only when they look like a label set: free text may hold PHI
        known = (
            f"labels seen: {', '.join(repr(s) for s in sorted(seen))}"
            if len(seen) <= MAX_LABELS_SHOWN
            else f"{len(seen)} distinct values, not shown"
        )
        raise BadInputError(
            f"--positive-label {label!r} occurs in no reference or prediction of "
            f"{predictions.path} ({known})"
        )


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    existing = out / MANIFEST
    if existing.is_file() and (earlier_manifest(out) or {}).get("kind") != MANIFEST_KIND:
        raise BadInputError(
            f"--out {out}: holds a manifest.json that is not an eval report's "
            "(a model's?); choose another folder"
        )


def analyze_subgroups(
    config: SubgroupConfig,
    *,
    stats: ReadStats | None = None,
    progress: Progress | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    gates: Sequence[GateSpec] | None = None,
) -> SubgroupAnalysis:
    """Run the subgroup analysis and write the reports.

    Args:
        config: the validated configuration.
        stats: filled with the read counts (pass one to print them even on failure).
        progress: wraps long loops (reading, bootstrap) with a progress display.
        rows: the contents of ``config.predictions``, one row a line, when the
            caller has them in memory (validated as the file's lines, not read back).
        gates: the gates of ``config.gates``, when the caller has them loaded.

    Returns:
        The report (``passed`` is false when a gate failed), counts and files.

    Raises:
        BadInputError: bad arguments, gates, predictions file or output folder.
        RecordError: a bad predictions line (without ``rejects``).
    """
    started = datetime.now(timezone.utc)
    metrics: list[Metric] = resolve_metrics(config.metrics)
    attributes = _attribute_parts(config.attributes)
    for metric in metrics:
        if metric.needs_positive_label and config.positive_label is None:
            raise BadInputError(f"--metrics {metric.name} needs --positive-label")
    specs: list[GateSpec] = list(gates) if gates is not None else []
    if config.gates is not None:
        if gates is None:
            specs = load_gates(config.gates)
        check_gates(
            specs,
            path=config.gates,
            metrics=[m.name for m in metrics],
            attributes=list(attributes),
            bootstrap=config.bootstrap > 0,
            binary=config.positive_label is not None,
        )
    model_manifest = find_model_manifest(config.predictions, config.model_manifest)
    _prepare_out(config.out)
    stats = stats if stats is not None else ReadStats(str(config.predictions))
    needs_scores = next((m.name for m in metrics if m.needs_scores), None)
    unit_scores = next((m.name for m in metrics if m.scores_in_unit_interval), None)
    predictions = _read(config, stats, progress, needs_scores, unit_scores, rows)
    _check_positive_label(predictions, config.positive_label)
    features = sensitive_features(predictions, attributes)

    def blocks(items: Iterable[Any], total: int) -> Iterable[Any]:
        return progress(items, total, "bootstrap") if progress else items

    try:
        frame = SubgroupFrame(
            metrics=metrics,
            inputs=predictions.metric_inputs(config.positive_label),
            sensitive_features=features,
            min_group_size=config.min_group_size,
            n_boot=config.bootstrap,
            confidence=config.confidence,
            random_state=config.seed,
            progress=blocks,
        )
    except ValueError as exc:
        raise BadInputError(f"{config.predictions}: {exc}") from None
    tests = None
    if config.significance:
        tests = gap_significance(
            frame, permutations=config.permutations, seed=config.seed, alpha=1 - config.confidence
        )
    report = build_report(frame, significance=tests)
    report.gates = evaluate_gates(specs, report)
    report.passed = all(g.passed for g in report.gates)
    report.manifest = eval_manifest(
        args=config.model_dump(mode="json"),
        predictions=config.predictions,
        stats=stats,
        seed=config.seed,
        started=started,
        finished=datetime.now(timezone.utc),
        model_manifest=model_manifest,
    )
    files = write_reports(report, config.out)
    manifest_path = config.out / MANIFEST
    manifest_path.write_text(
        json.dumps(report.manifest.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return SubgroupAnalysis(report=report, stats=stats, files=[*files, manifest_path])


def _read(
    config: SubgroupConfig,
    stats: ReadStats,
    progress: Progress | None,
    needs_scores: str | None,
    unit_scores: str | None,
    rows: Sequence[Mapping[str, Any]] | None,
) -> PredictionSet:
    def lines(items: Iterable[Any]) -> Iterable[Any]:
        return progress(items, None, "reading predictions") if progress else items

    kwargs: dict[str, Any] = {
        "stats": stats,
        "progress": lines,
        "require_score": needs_scores,
        "unit_score": unit_scores,
    }

    def read(**extra: Any) -> PredictionSet:
        if rows is not None:
            return predictions_from_rows(rows, config.predictions, **kwargs, **extra)
        return read_predictions(config.predictions, **kwargs, **extra)

    if config.rejects is None:
        return read()
    config.rejects.parent.mkdir(parents=True, exist_ok=True)
    with config.rejects.open("w", encoding="utf-8") as fh:
        return read(rejects=fh)
