"""The subgroup report as typed objects; ``report.json`` is their serialisation.

The contract (docs/evaluation.md, "Outputs") that outside tools read::

    {metrics, n, positive_label,
     overall: {metric: {value, ci, note?, undefined_resamples?}},
     by_attribute: {attr: {groups: {g: {n, small, metric: {value, ci, ...}}},
                           disparity: {metric: {difference, ratio, worst_group, best_group,
                                                difference_ci, ratio_ci, groups_compared},
                                       equalized_odds_difference?: {value, ci, ...}},
                           significance?: {metric: {test, worst_group, ...}}}},
     gates: [{name, attribute, metric, rule, threshold, use, judge?, observed, passed, group?,
              note?, insufficient_data?, excluded?: [{group, n, reason}], excluded_share?}],
     passed, manifest, notes}

Every reader (gates, Markdown, HTML, plots, compare, the CLI and the demo)
uses these attributes; :func:`read_report` loads a file and
:meth:`SubgroupReport.to_json` gives the exact JSON structure written. Two
places where the JSON is flatter than the objects: a group's metrics sit
beside its ``n`` and ``small`` (``GroupReport.metrics``), and an attribute's
equalized odds difference sits among its metric disparities
(``AttributeReport.equalized_odds``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from llm.errors import BadInputError
from llm.files import read_json_object

REPORT_JSON = "report.json"
EQUALIZED_ODDS = "equalized_odds_difference"
# keys of report.json that outside tools rely on (docs/architecture.md, "Subgroup report")
TOP_LEVEL_KEYS = (
    "metrics",
    "n",
    "positive_label",
    "overall",
    "by_attribute",
    "gates",
    "passed",
    "manifest",
)
# what makes a JSON object a subgroup report (load errors name the missing ones)
REQUIRED_KEYS = ("metrics", "overall", "by_attribute")

Interval = tuple[float, float]


def _is_none(value: object) -> bool:
    return value is None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportValue(_Model):
    """A value with its bootstrap interval, as in ``overall`` and every group.

    ``value`` is ``None`` when undefined (``note`` says why); ``ci`` is ``None``
    without bootstrap or when every resample was undefined.
    """

    value: float | None = Field(description="The point estimate (null when undefined).")
    ci: Interval | None = Field(None, description="Percentile interval [lower, upper].")
    note: str | None = Field(None, exclude_if=_is_none, description="Why the value is undefined.")
    undefined_resamples: int = Field(
        0,
        exclude_if=lambda v: not v,
        description="Resamples in which the value was undefined (left out of the interval).",
    )
    trials: int | None = Field(
        None,
        exclude_if=_is_none,
        description=(
            "For a proportion, the examples it is a share of (the group's size for accuracy, "
            "its positives for the true positive rate, its negatives for the false positive "
            "rate); absent for other metrics."
        ),
    )


class GroupReport(_Model):
    """One group of an attribute: size, whether it is small, every metric.

    In JSON the metrics sit beside ``n`` and ``small``: ``{"n", "small", metric: value}``.
    """

    n: int = Field(description="Examples in the group.")
    small: bool = Field(description="Fewer than min_group_size examples: not compared.")
    metrics: dict[str, ReportValue] = Field(default_factory=dict, description="Metric -> value.")

    @model_validator(mode="before")
    @classmethod
    def _metrics_beside(cls, data: Any) -> Any:
        if isinstance(data, dict) and "metrics" not in data:
            fixed = {"n", "small"}
            data = {
                **{k: v for k, v in data.items() if k in fixed},
                "metrics": {k: v for k, v in data.items() if k not in fixed},
            }
        return data

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        return {"n": out["n"], "small": out["small"], **out["metrics"]}


class DisparityReport(_Model):
    """How far apart an attribute's non-small groups are on one metric."""

    difference: float | None = Field(description="max - min over groups.")
    ratio: float | None = Field(description="min / max over groups.")
    worst_group: str | None = Field(description="By the metric's direction.")
    best_group: str | None = Field(description="By the metric's direction.")
    difference_ci: Interval | None = Field(None, description="Interval of the difference.")
    ratio_ci: Interval | None = Field(None, description="Interval of the ratio.")
    groups_compared: int | None = Field(
        None, exclude_if=_is_none, description="How many groups entered."
    )


class GapTestReport(_Model):
    """The test of an attribute's worst-versus-best gap on one metric (``--significance``)."""

    test: str | None = None
    worst_group: str | None = None
    best_group: str | None = None
    gap: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_value_holm: float | None = None
    significant: bool | None = None
    note: str | None = None


class AttributeReport(_Model):
    """One attribute: its groups, the disparities between them, optional gap tests.

    In JSON the equalized odds difference is one more entry of ``disparity``.
    """

    groups: dict[str, GroupReport]
    disparity: dict[str, DisparityReport] = Field(default_factory=dict)
    equalized_odds: ReportValue | None = Field(
        None, description="Larger of the TPR and FPR differences (with a positive label)."
    )
    significance: dict[str, GapTestReport] | None = None

    @model_validator(mode="before")
    @classmethod
    def _odds_among_disparities(cls, data: Any) -> Any:
        if isinstance(data, dict) and EQUALIZED_ODDS in (data.get("disparity") or {}):
            disparity = dict(data["disparity"])
            data = {**data, "disparity": disparity, "equalized_odds": disparity.pop(EQUALIZED_ODDS)}
        return data

    @model_serializer(mode="wrap")
    def _json_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        disparity = dict(out["disparity"])
        if out["equalized_odds"] is not None:
            disparity[EQUALIZED_ODDS] = out["equalized_odds"]
        shaped: dict[str, Any] = {"groups": out["groups"], "disparity": disparity}
        if out["significance"] is not None:
            shaped["significance"] = out["significance"]
        return shaped

    def disparity_value(self, metric: str, *, ratio: bool = False) -> ReportValue | None:
        """The gap a gate or plot reads, as a value with interval.

        ``equalized_odds_difference`` is its own value; for other metrics the
        ``difference`` (or, with ``ratio``, the ``ratio``) and its interval.
        ``None`` when the report has no such entry.
        """
        if metric == EQUALIZED_ODDS:
            return self.equalized_odds
        entry = self.disparity.get(metric)
        if entry is None:
            return None
        if ratio:
            return ReportValue(value=entry.ratio, ci=entry.ratio_ci)
        return ReportValue(value=entry.difference, ci=entry.difference_ci)


class ExcludedGroup(_Model):
    """A group a gate left out of its comparison, and why."""

    group: str = Field(description="The group's name.")
    n: int = Field(description="Examples in the group.")
    reason: str = Field(description="small, no value, no interval, or no examples.")


class GateResult(_Model):
    """One evaluated gate (``attribute: "*"`` gives one per attribute)."""

    name: str
    attribute: str | None
    metric: str
    rule: str
    threshold: float
    use: str = "point"
    judge: str = Field(
        "point", exclude_if=lambda v: v == "point", description="point or ci (docs: Gates)."
    )
    observed: float | None
    passed: bool
    group: str | None = Field(None, exclude_if=_is_none, description="For per-group rules.")
    note: str | None = Field(None, exclude_if=_is_none, description="Undefined or skipped values.")
    insufficient_data: bool = Field(
        False,
        exclude_if=lambda v: not v,
        description="The groups left out were too many or included a required group.",
    )
    excluded: list[ExcludedGroup] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="Groups of the attribute the gate did not compare, with the reason.",
    )
    excluded_share: float | None = Field(
        None, exclude_if=_is_none, description="Share of the attribute's examples left out."
    )

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``insufficient data`` (a failure the data cannot settle)."""
        if self.passed:
            return "passed"
        return "insufficient data" if self.insufficient_data else "failed"


class RunArgs(_Model):
    """The resolved arguments of an ``eval subgroups`` run (its configuration as JSON).

    The fields follow ``SubgroupConfig`` (a test keeps them in step); all are
    optional so hand-made reports load.
    """

    model_config = ConfigDict(extra="allow")

    predictions: str | None = None
    attributes: list[str] | None = None
    metrics: list[str] | None = None
    positive_label: str | None = None
    min_group_size: int | None = None
    bootstrap: int | None = None
    seed: int | None = None
    confidence: float | None = None
    gates: str | None = None
    significance: bool | None = None
    permutations: int | None = None
    model_manifest: str | None = None
    rejects: str | None = None
    out: str | None = None


class PredictionsFile(_Model):
    """The predictions file a report was computed from."""

    path: str
    sha256: str


class ReadCounts(_Model):
    """``read = used + rejected`` of the predictions file."""

    read: int
    used: int
    rejected: int


class ModelManifestRef(_Model):
    """The evaluated model's manifest: where it was and what it held."""

    path: str
    contents: dict[str, Any]


class EvalManifest(_Model):
    """``manifest.json`` of an eval output folder (also the report's ``manifest``)."""

    kind: str | None = None
    package_version: str | None = None
    git_commit: str | None = None
    args: RunArgs = Field(default_factory=RunArgs)
    predictions: PredictionsFile | None = None
    counts: ReadCounts | None = None
    seed: int | None = None
    libraries: dict[str, str | None] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    model_manifest: ModelManifestRef | None = Field(None, exclude_if=_is_none)

    def to_json(self) -> dict[str, Any]:
        """The JSON structure of ``manifest.json``."""
        return self.model_dump(mode="json")


class SubgroupReport(_Model):
    """A subgroup report: metrics overall and per group, gaps, gates, manifest."""

    metrics: list[str] = Field(description="The metrics computed, in order.")
    n: int | None = Field(None, description="Examples used.")
    positive_label: str | None = Field(None, description="Label counted positive, if any.")
    overall: dict[str, ReportValue] = Field(description="Metric -> value over all examples.")
    by_attribute: dict[str, AttributeReport] = Field(description="Attribute -> its report.")
    gates: list[GateResult] = Field(default_factory=list, description="Evaluated gates.")
    passed: bool = Field(True, description="Every gate passed.")
    manifest: EvalManifest = Field(default_factory=EvalManifest)
    notes: list[str] = Field(default_factory=list, description="Undefined values, thin attributes.")

    def to_json(self) -> dict[str, Any]:
        """The report.json structure (undefined numbers as ``None``)."""
        return self.model_dump(mode="json")

    def to_json_text(self) -> str:
        """The text of ``report.json``."""
        # allow_nan=False: a NaN that slipped past the cleaning is a bug, not "NaN" in the file
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    @property
    def failed_gates(self) -> list[GateResult]:
        """The gates that did not pass, in order."""
        return [g for g in self.gates if not g.passed]


def parse_report(data: object, where: str) -> SubgroupReport:
    """A report from its JSON structure.

    Args:
        data: the parsed JSON.
        where: how errors name the source (``BASE report.json``).

    Raises:
        BadInputError: not an object, a required key missing, or a malformed entry.
    """
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a report object, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise BadInputError(
            f"{where}: not a subgroup report (missing {', '.join(missing)}); "
            "give the report.json written by `clinical-llm eval subgroups`"
        )
    try:
        return SubgroupReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise BadInputError(f"{where}: not a subgroup report: {loc}: {first['msg']}") from None


def read_report(path: Path, role: str = "") -> SubgroupReport:
    """Read a report.json, or the report.json inside an ``eval subgroups`` output folder.

    Args:
        path: the file or folder.
        role: a prefix for errors (``BASE``, ``NEW``), or empty.

    Raises:
        BadInputError: missing, unreadable, not JSON, or not a subgroup report.
    """
    file = path / REPORT_JSON if path.is_dir() else path
    where = f"{role} {file}" if role else str(file)
    try:
        data = read_json_object(file, what="subgroup report")
    except BadInputError as exc:
        raise BadInputError(f"{role} {exc}" if role else str(exc)) from None
    return parse_report(data, where)
