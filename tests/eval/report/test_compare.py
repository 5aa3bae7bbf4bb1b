"""compare_reports on constructed reports: directions, the interval rule, small and new groups,
undefined values, incompatible reports; load_report errors; compare.json/compare.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.report.compare import COMPARE_JSON, COMPARE_MD, Change, compare_reports, load_report
from eval.report.model import ReportValue, SubgroupReport
from eval.report.write import write_comparison
from llm.errors import BadInputError

METRICS = ["accuracy", "false_positive_rate"]


def _estimate(value: float | None, half_width: float | None = 0.02) -> dict[str, Any]:
    if value is None:
        return {"value": None, "ci": None, "note": "undefined"}
    ci = None if half_width is None else [value - half_width, value + half_width]
    return {"value": value, "ci": ci}


def make_report(
    groups: dict[str, tuple[int, float, float]],
    *,
    overall: tuple[float, float] = (0.9, 0.1),
    half_width: float | None = 0.02,
    min_group_size: int = 30,
) -> SubgroupReport:
    """A report with one attribute ``sex``: ``{group: (n, accuracy, fpr)}``."""
    entries = {
        group: {
            "n": n,
            "small": n < min_group_size,
            "accuracy": _estimate(acc, half_width),
            "false_positive_rate": _estimate(fpr, half_width),
        }
        for group, (n, acc, fpr) in groups.items()
    }
    large = {g: v for g, v in groups.items() if v[0] >= min_group_size}
    disparity: dict[str, Any] = {}
    for index, metric in enumerate(METRICS, start=1):
        values = [v[index] for v in large.values()]
        gap = max(values) - min(values)
        disparity[metric] = {
            "difference": gap,
            "ratio": min(values) / max(values),
            "worst_group": None,
            "best_group": None,
            "difference_ci": None if half_width is None else [gap - 0.01, gap + 0.01],
            "ratio_ci": None,
            "groups_compared": len(values),
        }
    return SubgroupReport.model_validate(
        {
            "metrics": list(METRICS),
            "n": sum(v[0] for v in groups.values()),
            "positive_label": "yes",
            "overall": {
                "accuracy": _estimate(overall[0], half_width),
                "false_positive_rate": _estimate(overall[1], half_width),
            },
            "by_attribute": {"sex": {"groups": entries, "disparity": disparity}},
            "gates": [],
            "passed": True,
            "manifest": {"args": {"min_group_size": min_group_size, "confidence": 0.95}},
        }
    )


BASE_GROUPS = {"female": (500, 0.90, 0.10), "male": (500, 0.90, 0.10), "other": (10, 0.90, 0.10)}


def _find(changes: list[Change], where: str, metric: str) -> Change:
    return next(c for c in changes if c.where == where and c.metric == metric)


def test_identical_reports_pass_with_nothing_changed() -> None:
    report = make_report(BASE_GROUPS)
    comparison = compare_reports(report, report.model_copy(deep=True))
    assert comparison.passed
    assert {c.status for c in comparison.changes} == {"unchanged"}
    # overall + 3 groups per metric + one gap per metric
    assert len(comparison.changes) == 2 + 3 * 2 + 2


def test_improvement_outside_the_intervals_is_no_regression() -> None:
    new = make_report({**BASE_GROUPS, "female": (500, 0.96, 0.04)})
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    accuracy = _find(comparison.changes, "sex=female", "accuracy")
    fpr = _find(comparison.changes, "sex=female", "false_positive_rate")
    assert accuracy.status == fpr.status == "improved"
    assert accuracy.change == pytest.approx(0.06) and fpr.change == pytest.approx(-0.06)
    assert accuracy.outside_ci is True and not accuracy.regression
    # the gap between female and male widened: that is worse, whichever group moved
    gap = _find(comparison.changes, "sex (gap)", "accuracy")
    assert gap.status == "worse" and gap.regression
    assert not comparison.passed


def test_regression_within_the_intervals_passes() -> None:
    # worse by 0.03 (> 0.02) but the intervals of half-width 0.02 overlap
    new = make_report(
        {**BASE_GROUPS, "female": (500, 0.87, 0.10), "male": (500, 0.87, 0.10)},
        overall=(0.87, 0.1),
    )
    comparison = compare_reports(make_report(BASE_GROUPS), new, max_regression=0.02)
    change = _find(comparison.changes, "sex=female", "accuracy")
    assert change.status == "worse" and change.worse_by == pytest.approx(0.03)
    assert change.outside_ci is False and not change.regression
    assert comparison.passed


def test_regression_outside_the_intervals_fails() -> None:
    new = make_report(
        {**BASE_GROUPS, "female": (500, 0.90, 0.16), "male": (500, 0.90, 0.16)},
        overall=(0.9, 0.16),
    )
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    fpr = _find(comparison.changes, "sex=female", "false_positive_rate")
    # false positive rate going up is worse
    assert fpr.status == "worse" and fpr.outside_ci is True and fpr.regression
    assert [c.where for c in comparison.regressions] == ["overall", "sex=female", "sex=male"]
    assert not comparison.passed


def test_max_regression_sets_how_much_worse_is_tolerated() -> None:
    new = make_report(
        {**BASE_GROUPS, "female": (500, 0.85, 0.10), "male": (500, 0.85, 0.10)},
        overall=(0.85, 0.1),
    )
    base = make_report(BASE_GROUPS)
    assert not compare_reports(base, new, max_regression=0.049).passed
    assert compare_reports(base, new, max_regression=0.051).passed


def test_small_groups_never_fail_the_gate() -> None:
    new = make_report({**BASE_GROUPS, "other": (10, 0.50, 0.60)})
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    change = _find(comparison.changes, "sex=other", "accuracy")
    assert change.small and change.status == "worse" and change.outside_ci is True
    assert not change.regression and comparison.passed


def test_a_new_group_is_listed_not_failed() -> None:
    new = make_report({**BASE_GROUPS, "unknown": (60, 0.90, 0.10)})
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    assert comparison.groups_only_in_new == {"sex": ["unknown"]}
    assert comparison.passed
    assert any("only in the new report: unknown" in note for note in comparison.notes)


def test_a_missing_group_is_noted() -> None:
    new = make_report({k: v for k, v in BASE_GROUPS.items() if k != "other"})
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    assert comparison.groups_only_in_base == {"sex": ["other"]}
    assert any("missing from the new report: other" in note for note in comparison.notes)


def test_a_value_that_became_undefined_is_a_regression() -> None:
    new = make_report(BASE_GROUPS)
    new.by_attribute["sex"].groups["male"].metrics["accuracy"] = ReportValue.model_validate(
        _estimate(None)
    )
    comparison = compare_reports(make_report(BASE_GROUPS), new)
    change = _find(comparison.changes, "sex=male", "accuracy")
    assert change.status == "became undefined" and change.regression
    assert not comparison.passed


def test_without_intervals_the_change_alone_decides() -> None:
    base = make_report(BASE_GROUPS, half_width=None)
    new = make_report({**BASE_GROUPS, "female": (500, 0.80, 0.10)}, half_width=None)
    comparison = compare_reports(base, new)
    change = _find(comparison.changes, "sex=female", "accuracy")
    assert change.outside_ci is None and change.regression
    assert any("no interval" in note for note in comparison.notes)


def test_different_metrics_are_refused_unless_chosen() -> None:
    base = make_report(BASE_GROUPS)
    new = make_report(BASE_GROUPS)
    new.metrics = ["accuracy"]
    with pytest.raises(BadInputError, match="only in base: false_positive_rate"):
        compare_reports(base, new)
    comparison = compare_reports(base, new, metrics=["accuracy"])
    assert {c.metric for c in comparison.changes} == {"accuracy"}
    with pytest.raises(BadInputError, match="false_positive_rate not in the NEW report"):
        compare_reports(base, new, metrics=["false_positive_rate"])


def test_different_attributes_or_positive_labels_are_refused() -> None:
    base = make_report(BASE_GROUPS)
    new = make_report(BASE_GROUPS)
    new.by_attribute["payer"] = new.by_attribute.pop("sex")
    with pytest.raises(BadInputError, match="only in base: sex; only in new: payer"):
        compare_reports(base, new)
    other_label = make_report(BASE_GROUPS)
    other_label.positive_label = "no"
    with pytest.raises(BadInputError, match="different positive labels"):
        compare_reports(base, other_label)
    with pytest.raises(BadInputError, match="--max-regression"):
        compare_reports(base, base, max_regression=-0.1)


def test_load_report_names_the_file_and_problem(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"BASE .*missing\.json: subgroup report not found"):
        load_report(tmp_path / "missing.json", "BASE")
    broken = tmp_path / "broken.json"
    broken.write_text('{"metrics": [\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"NEW .*broken\.json:2: not valid JSON"):
        load_report(broken, "NEW")
    other = tmp_path / "other.json"
    other.write_text('{"metrics": []}', encoding="utf-8")
    with pytest.raises(BadInputError, match="missing overall, by_attribute"):
        load_report(other, "NEW")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.json").write_text(make_report(BASE_GROUPS).to_json_text(), encoding="utf-8")
    assert load_report(folder, "BASE").n == 1010


def test_written_outputs(tmp_path: Path) -> None:
    new = make_report({**BASE_GROUPS, "female": (500, 0.80, 0.10)})
    comparison = compare_reports(make_report(BASE_GROUPS), new, base_name="b", new_name="n")
    files = write_comparison(comparison, tmp_path / "out")
    assert [f.name for f in files] == [COMPARE_JSON, COMPARE_MD]
    data = json.loads(files[0].read_text(encoding="utf-8"))
    assert data["passed"] is False and data["criterion"] == "intervals_disjoint"
    assert [(r["attribute"], r["group"], r["metric"]) for r in data["regressions"]][:2] == [
        ("sex", "female", "accuracy"),
        ("sex", None, "accuracy"),
    ]
    assert len(data["changes"]) == len(comparison.changes)
    markdown = files[1].read_text(encoding="utf-8")
    regressions = markdown.split("## Regressions")[1].split("##")[0]
    assert "sex=female (n 500→500) | accuracy | 0.900 [0.880, 0.920] | 0.800" in regressions
    assert "FAILED: 2 regression(s)" in markdown
