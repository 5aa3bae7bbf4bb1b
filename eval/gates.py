"""Release gates: YAML rules checked against a subgroup report.

A gates file is a YAML list; each entry is validated by :class:`GateSpec`::

    - name: accuracy gap                 # optional; a default name is made up
      attribute: "*"                     # every attribute; or one name; omitted: overall
      metric: accuracy
      rule: max_difference               # max_difference | min_ratio | min_value | max_value
      threshold: 0.05
      use: ci_upper                      # point | ci_upper | ci_lower

What each rule observes (non-small groups only):

* ``max_difference``: the attribute's ``difference`` (max - min); passes when
  ``observed <= threshold``. Metric ``equalized_odds_difference`` is allowed here.
* ``min_ratio``: the attribute's ``ratio`` (min / max); passes when ``observed >= threshold``.
* ``min_value``: with an attribute, the lowest group value (or CI bound) of the
  metric; without one, the overall value. Passes when ``observed >= threshold``.
* ``max_value``: the highest group value, or the overall value; passes when
  ``observed <= threshold``.

``use`` picks the point estimate or a bound of its bootstrap interval. A gate
whose observed value is undefined (no non-small groups, no interval) fails:
a release check never passes on missing evidence.

``judge: ci`` counts a violation only where the intervals show it (see
:mod:`eval.gate_evidence`): a gap only when two groups' intervals lie more than
the threshold apart, a low value only when even its interval's upper bound is
below the threshold.

A gate must not pass on what it cannot see (:mod:`eval.gate_evidence`): when the
groups it leaves out (small, or without a value) hold more than
``max_excluded_share`` of the attribute's examples, or include a group named in
``required_groups``, its result is "insufficient data", which fails unless
``allow_insufficient_data`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eval.gate_evidence import ci_observation, coverage
from eval.report.model import EQUALIZED_ODDS, GateResult, ReportValue, SubgroupReport
from llm.data.io import format_loc
from llm.errors import BadInputError, RecordError

ALL_ATTRIBUTES = "*"
DISPARITY_RULES = ("max_difference", "min_ratio")
Rule = Literal["max_difference", "min_ratio", "min_value", "max_value"]
Use = Literal["point", "ci_upper", "ci_lower"]
Judge = Literal["point", "ci"]
DEFAULT_MAX_EXCLUDED_SHARE = 0.10


class GateSpec(BaseModel):
    """One gate as written in the gates file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Name shown in the report; made up when omitted.")
    attribute: str | None = Field(
        None,
        description="Attribute the gate applies to, '*' for every attribute, omitted for the "
        "overall value (min_value/max_value only).",
    )
    metric: str = Field(description="Metric name, or equalized_odds_difference (max_difference).")
    rule: Rule = Field(description="max_difference, min_ratio, min_value or max_value.")
    threshold: float = Field(description="The limit the observed value is compared with.")
    use: Use = Field(
        "point", description="Compare the point estimate or a bound of its bootstrap interval."
    )
    judge: Judge = Field(
        "point",
        description="point: judge the value `use` picks. ci: count a violation only where the "
        "intervals show it (a gap only when two groups' intervals lie more than the threshold "
        "apart; a value only when its whole interval is past the threshold). ci needs use: point.",
    )
    max_excluded_share: float = Field(
        DEFAULT_MAX_EXCLUDED_SHARE,
        ge=0.0,
        le=1.0,
        description="Largest share of an attribute's examples the gate may leave out (small "
        "groups, groups without a value); more gives 'insufficient data'.",
    )
    required_groups: list[str] = Field(
        default_factory=list,
        description="Groups the gate must compare, as ATTR=VALUE (race_ethnicity=Black); in an "
        "intersection every group with that part. One left out gives 'insufficient data'.",
    )
    allow_insufficient_data: bool = Field(
        False,
        description="Judge an 'insufficient data' gate on the groups it did compare instead of "
        "failing it (the report still says what was left out).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GateSpec:
        if self.judge == "ci" and self.use != "point":
            raise ValueError(
                f"judge: ci reads the intervals itself; leave use at point (got use: {self.use})"
            )
        for entry in self.required_groups:
            attribute, _, value = entry.partition("=")
            if not attribute.strip() or not value.strip():
                raise ValueError(f"required_groups: {entry!r} is not ATTR=VALUE")
        if self.rule in DISPARITY_RULES and self.attribute is None:
            raise ValueError(f"rule {self.rule} compares groups: set attribute (a name or '*')")
        if self.metric == EQUALIZED_ODDS and self.rule != "max_difference":
            raise ValueError(f"metric {EQUALIZED_ODDS} takes rule max_difference")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        return self

    def display_name(self, attribute: str | None) -> str:
        """The gate's name, or one made from its fields."""
        if self.name:
            return self.name
        where = attribute or "overall"
        how = "judge ci" if self.judge == "ci" else self.use
        return f"{self.metric} {self.rule} {self.threshold:g} ({where}, {how})"


def load_gates(path: Path) -> list[GateSpec]:
    """Read and validate a gates file.

    Raises:
        BadInputError: unreadable or not a YAML list.
        RecordError: an invalid entry, naming the file, the entry's line and the field.
    """
    if not path.is_file():
        raise BadInputError(f"{path}: gates file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, list) or root is None:
        raise BadInputError(f"{path}: expected a YAML list of gates, got {type(data).__name__}")
    gates = []
    for i, entry in enumerate(data):
        line = root.value[i].start_mark.line + 1
        if not isinstance(entry, dict):
            raise RecordError(str(path), line, f"[{i}]", "expected a mapping (one gate)")
        try:
            gates.append(GateSpec.model_validate(entry))
        except ValidationError as exc:
            errors = [
                RecordError(
                    str(path),
                    line,
                    f"[{i}]" + _dotted(format_loc(tuple(e["loc"]))),
                    e["msg"].removeprefix("Value error, "),
                )
                for e in exc.errors()
            ]
            errors[0].all = errors
            raise errors[0] from None
    return gates


def _dotted(loc: str) -> str:
    return "" if loc == "<record>" else f".{loc}"


def check_gates(
    gates: Sequence[GateSpec],
    *,
    path: Path,
    metrics: Sequence[str],
    attributes: Sequence[str],
    bootstrap: bool,
    binary: bool,
) -> None:
    """Check, before any work, that every gate refers to something this run computes.

    Raises:
        BadInputError: a gate names a metric or attribute not in the run, needs
            intervals without ``--bootstrap``, or equalized odds without a positive label.
    """
    for i, gate in enumerate(gates):
        where = f"{path}: gate [{i}] ({gate.display_name(gate.attribute)})"
        if gate.metric == EQUALIZED_ODDS:
            if not binary:
                raise BadInputError(f"{where}: {EQUALIZED_ODDS} needs --positive-label")
        elif gate.metric not in metrics:
            raise BadInputError(
                f"{where}: metric {gate.metric!r} is not computed in this run "
                f"(--metrics {','.join(metrics)})"
            )
        if gate.attribute not in (None, ALL_ATTRIBUTES) and gate.attribute not in attributes:
            raise BadInputError(
                f"{where}: attribute {gate.attribute!r} is not analysed in this run "
                f"(--attributes {','.join(attributes)})"
            )
        if gate.use != "point" and not bootstrap:
            raise BadInputError(f"{where}: use {gate.use} needs --bootstrap > 0")
        if gate.judge == "ci" and not bootstrap:
            raise BadInputError(f"{where}: judge ci needs --bootstrap > 0")


def evaluate_gates(gates: Sequence[GateSpec], report: SubgroupReport) -> list[GateResult]:
    """Evaluate gates against a report.

    Returns:
        One result per gate and attribute (``'*'`` expands to every attribute):
        ``name, attribute, metric, rule, threshold, use, observed, passed`` and,
        for per-group rules (and ``judge: ci`` gaps), ``group``; ``note`` when the
        value was undefined or data insufficient; ``judge``, ``excluded``,
        ``excluded_share`` and ``insufficient_data`` as documented in
        docs/evaluation.md ("Gates").
    """
    results: list[GateResult] = []
    for gate in gates:
        if gate.attribute == ALL_ATTRIBUTES:
            targets: list[str | None] = list(report.by_attribute)
        else:
            targets = [gate.attribute]
        for attribute in targets:
            results.append(_evaluate(gate, attribute, report))
    return results


def _evaluate(gate: GateSpec, attribute: str | None, report: SubgroupReport) -> GateResult:
    seen = coverage(
        metric=gate.metric,
        judge=gate.judge,
        required_groups=gate.required_groups,
        max_excluded_share=gate.max_excluded_share,
        attribute=attribute,
        report=report,
    )
    if gate.judge == "ci":
        observed, group = ci_observation(
            metric=gate.metric, rule=gate.rule, attribute=attribute, report=report, seen=seen
        )
        skipped: list[str] = []
    else:
        observed, group, skipped = _observe(gate, attribute, report)
    judged = observed is not None and _passes(gate, observed)
    notes = []
    if observed is None:
        notes.append("undefined (no non-small group or no interval): gate fails")
    elif skipped:
        notes.append(f"groups without a value, not checked: {', '.join(skipped)}")
    # a violation among the groups it saw fails the gate whatever it did not see; only a
    # pass (or no value) rests on the groups left out, and is then "insufficient data"
    insufficient = bool(seen.insufficient) and (observed is None or judged)
    if insufficient:
        verdict = (
            "allowed: judged on the compared groups only"
            if gate.allow_insufficient_data
            else "gate fails (allow_insufficient_data: true judges the compared groups only)"
        )
        notes.append(f"insufficient data: {'; '.join(seen.insufficient)}; {verdict}")
    elif seen.insufficient:
        notes.append(f"fails on the compared groups; also {'; '.join(seen.insufficient)}")
    return GateResult(
        name=gate.display_name(attribute),
        attribute=attribute,
        metric=gate.metric,
        rule=gate.rule,
        threshold=gate.threshold,
        use=gate.use,
        judge=gate.judge,
        observed=observed,
        passed=judged and (not insufficient or gate.allow_insufficient_data),
        group=group,
        note=" ".join(notes) or None,
        insufficient_data=insufficient,
        excluded=seen.excluded,
        excluded_share=seen.excluded_share if seen.excluded else None,
    )


def _passes(gate: GateSpec, observed: float) -> bool:
    if gate.rule in ("max_difference", "max_value"):
        return observed <= gate.threshold
    return observed >= gate.threshold


def _pick(entry: ReportValue | None, use: str) -> float | None:
    if entry is None:
        return None
    if use == "point":
        return entry.value
    if entry.ci is None:
        return None
    return float(entry.ci[1] if use == "ci_upper" else entry.ci[0])


def _observe(
    gate: GateSpec, attribute: str | None, report: SubgroupReport
) -> tuple[float | None, str | None, list[str]]:
    """The value a gate compares, the group it came from, and non-small groups without a value."""
    if attribute is None:
        return _pick(report.overall.get(gate.metric), gate.use), None, []
    block = report.by_attribute[attribute]
    if gate.rule in DISPARITY_RULES:
        gap = block.disparity_value(gate.metric, ratio=gate.rule == "min_ratio")
        return _pick(gap, gate.use), None, []
    candidates: list[tuple[float, str]] = []
    skipped: list[str] = []
    for name, group in block.groups.items():
        if group.small:
            continue
        value = _pick(group.metrics.get(gate.metric), gate.use)
        if value is None:
            skipped.append(name)
        else:
            candidates.append((value, name))
    if not candidates:
        return None, None, skipped
    pick = max if gate.rule == "max_value" else min
    value, name = pick(candidates, key=lambda c: c[0])
    return value, name, skipped
