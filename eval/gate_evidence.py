"""What a gate can see, and what the intervals show: coverage and ``judge: ci``.

**Coverage.** Disparities and per-group rules compare only the *compared*
groups of an attribute: not small, with a value of the gated metric (for
equalized odds, of both rates) and, with ``judge: ci``, an interval. Every
other group is *left out*, with its reason. A gate cannot vouch for what it
left out, so its data is **insufficient** when

* the groups left out hold more than ``max_excluded_share`` of the attribute's
  examples (default 0.10; the share is the left-out groups' ``n`` over the sum
  of every group's ``n``), or
* a group the gate names in ``required_groups`` (``ATTR=VALUE``) is left out or
  has no examples. In an intersection ``ATTR*OTHER`` every group whose ``ATTR``
  part is ``VALUE`` must be compared (``female*Black`` and ``male*Black``); the
  entry does not apply to attributes without an ``ATTR`` part.

**``judge: ci``** counts a violation only where the intervals show it, each
group's interval being its bootstrap percentile interval, widened to the Wilson
score interval at the report's confidence for proportions, on their ``trials``
(accuracy: the group's examples; true positive rate: its positives). The
percentile bootstrap collapses to a point for a proportion at 0 or 1: 11 of 11
correct gives [1, 1], and a group with 2 positives, both missed, a true
positive rate of [0, 0]:

* ``max_difference``: ``observed = max_g lower_g - min_g upper_g`` over the
  compared groups: how far apart the intervals of the two groups furthest apart
  are (negative when they overlap). It fails when observed > threshold, i.e.
  some two groups differ by more than the threshold whichever values inside
  their intervals are true. Equalized odds: the larger of the TPR and FPR
  separations.
* ``min_ratio``: ``observed = min(1, min_g upper_g / max_g lower_g)`` (1 when
  every lower bound is 0): the most favourable ratio the intervals allow for
  the pair furthest apart.
* ``min_value``: the lowest upper bound (fails only when a whole interval is
  below the threshold); ``max_value``: the highest lower bound. Overall: the
  overall interval's upper (``min_value``) or lower (``max_value``) bound.

The group reported is the worst one of the binding pair (by the metric's
direction). Why not the lower bound of the gap's own interval (``use:
ci_lower``)? The bootstrap interval of ``max - min`` is biased upwards; with
groups of 10 to 30 examples its lower bound exceeds a 0.10 threshold for
groups that are truly alike (docs/evaluation.md, "Caveat").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

from eval.registry import METRICS
from eval.report.model import EQUALIZED_ODDS, ExcludedGroup, ReportValue, SubgroupReport
from llm.intervals import wilson_interval

# metrics whose value is a share of the group's examples: n and the value give the counts
SHARE_METRICS = ("accuracy", "exact_match")
# the intersection syntax (eval.subgroups.intersections, which imports the gates: not imported)
INTERSECTION = "*"
DISPARITY_RULES = ("max_difference", "min_ratio")


@dataclass
class Coverage:
    """The groups a gate compares and the ones it leaves out (see the module docstring)."""

    compared: list[str] = field(default_factory=list)
    excluded: list[ExcludedGroup] = field(default_factory=list)
    excluded_share: float = 0.0
    insufficient: list[str] = field(default_factory=list)  # why the data is insufficient


def components(metric: str) -> tuple[str, ...]:
    """The group metrics a gated metric reads (equalized odds: both rates)."""
    if metric == EQUALIZED_ODDS:
        return ("true_positive_rate", "false_positive_rate")
    return (metric,)


def coverage(
    *,
    metric: str,
    judge: str,
    required_groups: Sequence[str],
    max_excluded_share: float,
    attribute: str | None,
    report: SubgroupReport,
) -> Coverage:
    """Which groups of ``attribute`` a gate compares, which it leaves out, and is that enough.

    Args:
        metric: the gated metric.
        judge: ``point`` or ``ci`` (``ci`` also leaves out groups without an interval).
        required_groups: ``ATTR=VALUE`` entries that must be compared.
        max_excluded_share: the largest share of examples that may be left out.
        attribute: the attribute, or ``None`` for an overall gate (nothing left out).
        report: the report the gate reads.
    """
    seen = Coverage()
    if attribute is None:
        return seen
    block = report.by_attribute[attribute]
    min_size = report.manifest.args.min_group_size
    for name, group in block.groups.items():
        reason: str | None = f"small (n < {min_size})" if min_size is not None else "small"
        if not group.small:
            reason = _unusable(group.metrics, metric, judge)
        if reason is None:
            seen.compared.append(name)
        else:
            seen.excluded.append(ExcludedGroup(group=name, n=group.n, reason=reason))
    total = sum(group.n for group in block.groups.values())
    if total:
        seen.excluded_share = sum(e.n for e in seen.excluded) / total
    if seen.excluded_share > max_excluded_share:
        seen.insufficient.append(
            f"groups left out hold {seen.excluded_share:.0%} of the examples "
            f"(more than max_excluded_share {max_excluded_share:g})"
        )
    parts = attribute.split(INTERSECTION)
    for entry in required_groups:
        required, _, value = (s.strip() for s in entry.partition("="))
        if required not in parts:
            continue
        at = parts.index(required)
        members = [g for g in block.groups if g.split(INTERSECTION)[at] == value]
        left_out = [g for g in members if g not in seen.compared]
        if not members:
            seen.insufficient.append(f"required group {required}={value} has no examples")
        elif left_out:
            seen.insufficient.append(
                f"required group {required}={value} left out ({', '.join(left_out)})"
            )
    return seen


def _unusable(metrics: dict[str, ReportValue], metric: str, judge: str) -> str | None:
    for name in components(metric):
        entry = metrics.get(name)
        if entry is None or entry.value is None:
            why = f": {entry.note}" if entry is not None and entry.note else ""
            return f"no value of {name}{why}"
        if judge == "ci" and entry.ci is None:
            return f"no interval of {name}"
    return None


def interval(entry: ReportValue, metric: str, n: int | None, z: float) -> tuple[float, float]:
    """The interval ``judge: ci`` reads: the bootstrap one, widened to Wilson's for proportions.

    A proportion's trials are its ``trials`` (the group's positives for the true
    positive rate); a report written before ``trials`` existed gives them only for
    shares of the group's examples (``accuracy``, ``exact_match``: the group's ``n``).
    """
    if entry.ci is None:
        raise ValueError("interval of a value without one")
    low, high = entry.ci
    trials = entry.trials
    if trials is None and metric in SHARE_METRICS:
        trials = n
    if trials and entry.value is not None:
        wilson = wilson_interval(round(entry.value * trials), trials, z)
        if wilson is not None:
            low, high = min(low, wilson[0]), max(high, wilson[1])
    return float(low), float(high)


def ci_observation(
    *, metric: str, rule: str, attribute: str | None, report: SubgroupReport, seen: Coverage
) -> tuple[float | None, str | None]:
    """The value a ``judge: ci`` gate compares with its threshold, and the group it points at.

    ``(None, None)`` when undefined: no interval overall, or fewer compared
    groups than the rule needs (two for gaps, one for values).
    """
    confidence = report.manifest.args.confidence or 0.95
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    if attribute is None:
        entry = report.overall.get(metric)
        if entry is None or entry.ci is None:
            return None, None
        low, high = interval(entry, metric, report.n, z)
        return (high if rule == "min_value" else low), None
    groups = report.by_attribute[attribute].groups
    if rule not in DISPARITY_RULES:
        values = [
            (interval(groups[g].metrics[metric], metric, groups[g].n, z), g) for g in seen.compared
        ]
        if not values:
            return None, None
        if rule == "min_value":
            (_, high), group = min(values, key=lambda b: b[0][1])
            return high, group
        (low, _), group = max(values, key=lambda b: b[0][0])
        return low, group
    if len(seen.compared) < 2:
        return None, None
    best: tuple[float, str] | None = None
    for name in components(metric):
        bounds = {g: interval(groups[g].metrics[name], name, groups[g].n, z) for g in seen.compared}
        top = max(bounds, key=lambda g: bounds[g][0])  # highest lower bound
        bottom = min(bounds, key=lambda g: bounds[g][1])  # lowest upper bound
        low_top, high_bottom = bounds[top][0], bounds[bottom][1]
        if rule == "max_difference":
            value = low_top - high_bottom
        else:
            value = 1.0 if low_top <= 0 else min(1.0, high_bottom / low_top)
        worst = bottom if METRICS.get(name).higher_is_better else top
        if best is None or (value > best[0] if rule == "max_difference" else value < best[0]):
            best = (value, worst)
    assert best is not None
    return best
