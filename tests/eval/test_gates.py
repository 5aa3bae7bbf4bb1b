"""Gates files: validation errors name file, line and entry; rules pass and fail as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eval.gates import check_gates, evaluate_gates, load_gates
from eval.report.model import ReportValue, SubgroupReport, read_report
from eval.subgroups.analysis import analyze_subgroups, make_config
from llm.errors import BadInputError, RecordError
from tests.eval.synthetic import write_predictions


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _report() -> SubgroupReport:
    def group(n: int, small: bool, value: float, ci: list[float]) -> dict[str, Any]:
        rates = {"value": 0.5, "ci": [0.4, 0.6]}  # what equalized odds is made of
        return {"n": n, "small": small, "accuracy": {"value": value, "ci": ci},
                "true_positive_rate": rates, "false_positive_rate": rates}  # fmt: skip

    return SubgroupReport.model_validate(
        {
            "metrics": ["accuracy"],
            "n": 988,
            "overall": {"accuracy": {"value": 0.9, "ci": [0.88, 0.92]}},
            "by_attribute": {
                "sex": {
                    "groups": {
                        "female": group(500, False, 0.92, [0.90, 0.94]),
                        "male": group(480, False, 0.88, [0.85, 0.91]),
                        "other": group(5, True, 0.2, [0.0, 0.6]),
                    },
                    "disparity": {
                        "accuracy": {
                            "difference": 0.04,
                            "ratio": 0.956,
                            "worst_group": "male",
                            "best_group": "female",
                            "difference_ci": [0.01, 0.07],
                            "ratio_ci": [0.92, 0.99],
                        },
                        "equalized_odds_difference": {"value": 0.03, "ci": [0.01, 0.06]},
                    },
                },
                "payer": {
                    "groups": {"Medicare": group(3, True, 0.5, [0.0, 1.0])},
                    "disparity": {
                        "accuracy": {
                            "difference": None,
                            "ratio": None,
                            "worst_group": None,
                            "best_group": None,
                            "difference_ci": None,
                            "ratio_ci": None,
                        }
                    },
                },
            },
        }
    )


def test_rules_pass_and_fail(tmp_path: Path) -> None:
    gates = load_gates(
        _write(
            tmp_path,
            """
- {attribute: sex, metric: accuracy, rule: max_difference, threshold: 0.05}
- {name: gap upper, attribute: sex, metric: accuracy, rule: max_difference, threshold: 0.05,
   use: ci_upper}
- {attribute: sex, metric: accuracy, rule: min_ratio, threshold: 0.95}
- {metric: accuracy, rule: min_value, threshold: 0.89, use: ci_lower}
- {attribute: sex, metric: accuracy, rule: min_value, threshold: 0.87}
- {attribute: sex, metric: accuracy, rule: max_value, threshold: 0.9}
- {attribute: sex, metric: equalized_odds_difference, rule: max_difference, threshold: 0.05}
""",
        )
    )
    results = evaluate_gates(gates, _report())
    observed = [(r.observed, r.passed) for r in results]
    assert observed == [
        (0.04, True),
        (0.07, False),
        (0.956, True),
        (0.88, False),
        (0.88, True),  # the small group (0.2) is left out
        (0.92, False),
        (0.03, True),
    ]
    assert results[1].name == "gap upper"
    assert results[4].group == "male" and results[5].group == "female"
    assert results[3].attribute is None
    assert set(results[0].model_dump(mode="json")) >= {
        "name",
        "attribute",
        "metric",
        "rule",
        "threshold",
        "observed",
    }


def test_star_expands_and_undefined_fails(tmp_path: Path) -> None:
    gates = load_gates(
        _write(
            tmp_path, "- {attribute: '*', metric: accuracy, rule: max_difference, threshold: 1}\n"
        )
    )
    results = evaluate_gates(gates, _report())
    assert [(r.attribute, r.passed) for r in results] == [("sex", True), ("payer", False)]
    assert results[1].observed is None and "gate fails" in (results[1].note or "")


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "- {metric: accuracy, rule: max_difference, threshold: 0.1, attribute: sex}\n"
            "- {metric: accuracy, rule: maximum, threshold: 0.1}\n",
            2,
            "[1].rule",
            "Input should be",
        ),
        (
            "- {metric: accuracy, rule: min_value, threshold: 0.1, treshold: 2}\n",
            1,
            "[0].treshold",
            "Extra inputs are not permitted",
        ),
        ("- {metric: accuracy, rule: min_ratio, threshold: 0.8}\n", 1, "[0]", "set attribute"),
        (
            "- {attribute: sex, metric: accuracy, rule: min_value}\n",
            1,
            "[0].threshold",
            "Field required",
        ),
        ("- 3\n", 1, "[0]", "expected a mapping"),
    ],
)
def test_bad_entries_name_file_line_and_entry(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RecordError) as info:
        load_gates(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)
    assert message in info.value.message


def test_not_a_list_and_references_outside_the_run(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="expected a YAML list"):
        load_gates(_write(tmp_path, "metric: accuracy\n"))
    path = _write(
        tmp_path, "- {attribute: race, metric: f1, rule: max_difference, threshold: 0.1}\n"
    )
    gates = load_gates(path)
    kwargs: dict[str, Any] = {"path": path, "bootstrap": True, "binary": True}
    with pytest.raises(BadInputError, match=r"gate \[0\].*metric 'f1' is not computed"):
        check_gates(gates, metrics=["accuracy"], attributes=["race"], **kwargs)
    with pytest.raises(BadInputError, match="attribute 'race' is not analysed"):
        check_gates(gates, metrics=["f1"], attributes=["sex"], **kwargs)
    path = _write(tmp_path, "- {metric: f1, rule: min_value, threshold: 0.1, use: ci_lower}\n")
    with pytest.raises(BadInputError, match="needs --bootstrap"):
        check_gates(
            load_gates(path), metrics=["f1"], attributes=[], path=path, bootstrap=False, binary=True
        )


def test_groups_without_a_value_are_named_in_a_note(tmp_path: Path) -> None:
    report = _report()
    report.by_attribute["sex"].groups["male"].metrics["accuracy"] = ReportValue(value=None)
    gates = load_gates(
        _write(tmp_path, "- {attribute: sex, metric: accuracy, rule: min_value, threshold: 0.5}\n")
    )
    (result,) = evaluate_gates(gates, report)
    assert result.observed == 0.92
    assert result.note is not None
    assert result.note.startswith("groups without a value, not checked: male")
    # male holds half the examples: the gate cannot vouch for them
    assert not result.passed and result.insufficient_data
    assert [(e.group, e.n, e.reason) for e in result.excluded] == [
        ("male", 480, "no value of accuracy"),
        ("other", 5, "small"),
    ]


def _intersection_report() -> SubgroupReport:
    """The demo's sex*race_ethnicity accuracy: only the two White groups are not small."""
    sizes = {"female*White": (46, 0.478, [0.321, 0.637]), "male*White": (31, 0.419, [0.233, 0.586]),
             "female*Black": (7, 0.143, [0.0, 0.5]), "male*Black": (8, 0.25, [0.0, 0.571]),
             "female*Asian": (3, 0.667, [0.0, 1.0])}  # fmt: skip
    groups = {
        g: {"n": n, "small": n < 10, "accuracy": {"value": v, "ci": ci}}
        for g, (n, v, ci) in sizes.items()
    }
    gap = {"difference": 0.059, "ratio": 0.877, "worst_group": "male*White",
           "best_group": "female*White", "difference_ci": [0.005, 0.296],
           "ratio_ci": [0.48, 0.99]}  # fmt: skip
    return SubgroupReport.model_validate(
        {
            "metrics": ["accuracy"],
            "n": 95,
            "overall": {"accuracy": {"value": 0.41, "ci": [0.32, 0.51]}},
            "by_attribute": {
                "sex*race_ethnicity": {"groups": groups, "disparity": {"accuracy": gap}}
            },
            "manifest": {"args": {"min_group_size": 10, "confidence": 0.95}},
        }
    )


GAP = "- {attribute: '*', metric: accuracy, rule: max_difference, threshold: 0.1"


def test_a_gate_that_left_out_a_material_share_says_insufficient_data(tmp_path: Path) -> None:
    report = _intersection_report()
    (strict,) = evaluate_gates(load_gates(_write(tmp_path, GAP + "}\n")), report)
    # the gap it saw (0.059) is under the threshold, but 18 of 95 examples were not seen
    assert strict.observed == 0.059 and strict.insufficient_data and not strict.passed
    assert strict.status == "insufficient data"
    assert strict.excluded_share == pytest.approx(18 / 95)
    assert {e.group: e.reason for e in strict.excluded} == {
        "female*Black": "small (n < 10)", "male*Black": "small (n < 10)",
        "female*Asian": "small (n < 10)"}  # fmt: skip
    assert "19% of the examples" in (strict.note or "")
    (allowed,) = evaluate_gates(
        load_gates(_write(tmp_path, GAP + ", allow_insufficient_data: true}\n")), report
    )
    assert allowed.passed and allowed.insufficient_data and "allowed" in (allowed.note or "")
    (wide,) = evaluate_gates(
        load_gates(_write(tmp_path, GAP + ", max_excluded_share: 0.2}\n")), report
    )
    assert wide.passed and not wide.insufficient_data and wide.excluded  # still listed
    assert "insufficient_data" not in wide.model_dump(mode="json")
    # a gap past the threshold among the groups it did see fails whatever it did not see
    text = "- {attribute: '*', metric: accuracy, rule: max_difference, threshold: 0.05}\n"
    (seen,) = evaluate_gates(load_gates(_write(tmp_path, text)), report)
    assert seen.status == "failed" and not seen.insufficient_data and seen.excluded
    assert "fails on the compared groups; also groups left out hold 19%" in (seen.note or "")


def test_a_required_group_left_out_gives_insufficient_data(tmp_path: Path) -> None:
    report = _intersection_report()
    text = GAP + ", max_excluded_share: 0.5, required_groups: ['race_ethnicity=Black']}\n"
    (result,) = evaluate_gates(load_gates(_write(tmp_path, text)), report)
    assert result.insufficient_data and not result.passed
    assert "race_ethnicity=Black left out (female*Black, male*Black)" in (result.note or "")
    text = GAP + ", max_excluded_share: 0.5, required_groups: ['race_ethnicity=Other']}\n"
    (result,) = evaluate_gates(load_gates(_write(tmp_path, text)), report)
    assert "race_ethnicity=Other has no examples" in (result.note or "")
    text = GAP + ", max_excluded_share: 0.5, required_groups: ['payer=Medicaid']}\n"
    (result,) = evaluate_gates(load_gates(_write(tmp_path, text)), report)
    assert result.passed  # no payer part in sex*race_ethnicity: nothing to require
    with pytest.raises(RecordError, match="not ATTR=VALUE"):
        load_gates(_write(tmp_path, GAP + ", required_groups: [Black]}\n"))


def _two_groups(a: tuple[int, float, list[float]], b: tuple[int, float, list[float]]) -> Any:
    groups = {name: {"n": n, "small": False, "accuracy": {"value": v, "ci": ci}}
              for name, (n, v, ci) in (("a", a), ("b", b))}  # fmt: skip
    gap = abs(a[1] - b[1])
    worst, best = ("a", "b") if a[1] < b[1] else ("b", "a")
    disparity = {"difference": gap, "ratio": min(a[1], b[1]) / max(a[1], b[1]),
                 "worst_group": worst, "best_group": best,
                 "difference_ci": [0.0, 1.0], "ratio_ci": [0.0, 1.0]}  # fmt: skip
    return SubgroupReport.model_validate(
        {
            "metrics": ["accuracy"],
            "n": a[0] + b[0],
            "overall": {"accuracy": {"value": 0.8, "ci": [0.7, 0.9]}},
            "by_attribute": {"g": {"groups": groups, "disparity": {"accuracy": disparity}}},
            "manifest": {"args": {"confidence": 0.95}},
        }
    )


def test_judge_ci_counts_a_gap_only_when_the_intervals_lie_that_far_apart(tmp_path: Path) -> None:
    gates = load_gates(_write(tmp_path, GAP + ", judge: ci}\n- " + GAP[2:] + "}\n"))
    # 0.6 [0.50, 0.70] vs 0.9 [0.85, 0.95]: the intervals are 0.15 apart
    apart = _two_groups((400, 0.6, [0.50, 0.70]), (400, 0.9, [0.85, 0.95]))
    ci, point = evaluate_gates(gates, apart)
    assert ci.judge == "ci" and ci.observed == pytest.approx(0.15) and not ci.passed
    assert ci.group == "a" and point.observed == pytest.approx(0.3) and not point.passed
    # the same point gap with wide intervals: the point gate fails, the ci gate does not
    wide = _two_groups((400, 0.6, [0.40, 0.80]), (400, 0.9, [0.75, 0.99]))
    ci, point = evaluate_gates(gates, wide)
    assert ci.observed == pytest.approx(0.4 - 0.4 + 0.75 - 0.8) and ci.passed and not point.passed
    assert ci.model_dump(mode="json")["judge"] == "ci" and "judge" not in point.model_dump()


def test_judge_ci_widens_a_collapsed_bootstrap_interval_to_wilson(tmp_path: Path) -> None:
    # 11 of 11 correct: every resample gives 1.0, the percentile interval is [1, 1]
    report = _two_groups((11, 1.0, [1.0, 1.0]), (400, 0.85, [0.81, 0.885]))
    (ci,) = evaluate_gates(load_gates(_write(tmp_path, GAP + ", judge: ci}\n")), report)
    wilson_low = 0.7411  # Wilson 95% lower bound of 11/11
    assert ci.observed == pytest.approx(0.81 - 0.885, abs=1e-9)  # best low is b's 0.81
    assert ci.passed
    gates = load_gates(
        _write(
            tmp_path,
            "- {attribute: g, metric: accuracy, rule: max_value, threshold: 0.75, judge: ci}\n",
        )
    )
    (value,) = evaluate_gates(gates, report)
    assert value.observed == pytest.approx(0.81) and value.group == "b"
    assert wilson_low < 0.75 and not value.passed  # a's 11/11 no longer claims to be above 0.75


def test_judge_ci_on_values_and_ratios(tmp_path: Path) -> None:
    report = _two_groups((400, 0.6, [0.50, 0.70]), (400, 0.9, [0.85, 0.95]))
    text = (
        "- {attribute: g, metric: accuracy, rule: min_value, threshold: 0.72, judge: ci}\n"
        "- {attribute: g, metric: accuracy, rule: min_value, threshold: 0.68, judge: ci}\n"
        "- {attribute: g, metric: accuracy, rule: min_ratio, threshold: 0.8, judge: ci}\n"
        "- {metric: accuracy, rule: min_value, threshold: 0.85, judge: ci}\n"
    )
    low, high, ratio, overall = evaluate_gates(load_gates(_write(tmp_path, text)), report)
    assert (low.observed, low.group, low.passed) == (pytest.approx(0.70), "a", False)
    assert high.passed  # the upper bound 0.70 reaches 0.68
    assert ratio.observed == pytest.approx(0.70 / 0.85) and ratio.passed
    assert overall.observed == pytest.approx(0.9, abs=0.01) and overall.passed


def test_judge_ci_needs_intervals_and_no_use(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="leave use at point"):
        load_gates(_write(tmp_path, GAP + ", judge: ci, use: ci_upper}\n"))
    path = _write(tmp_path, GAP + ", judge: ci}\n")
    with pytest.raises(BadInputError, match="judge ci needs --bootstrap"):
        check_gates(load_gates(path), path=path, metrics=["accuracy"], attributes=["g"],
                    bootstrap=False, binary=False)  # fmt: skip


def test_judge_ci_widens_a_rate_on_its_own_trials_not_the_group_size(tmp_path: Path) -> None:
    """A group with 2 positives, both missed, has TPR [0, 0] by the bootstrap: not evidence.

    Seen in the demo: a Self-pay group of 28 with about 2 readmissions failed a
    TPR floor under ``judge: ci`` in the run with the bias and in the control.
    """

    def rows(group: str, positives: int, negatives: int, found: int) -> list[dict[str, Any]]:
        out = []
        for i in range(positives + negatives):
            positive = i < positives
            prediction = "yes" if (positive and i < found) else "no"
            out.append({"id": f"{group}{i}", "prediction": prediction,
                        "reference": "yes" if positive else "no",
                        "demographics": {"payer": group}})  # fmt: skip
        return out

    # "few": 2 positives, both missed; "many": 40 positives, 30 found
    data = rows("few", 2, 26, 0) + rows("many", 40, 60, 30)
    path = write_predictions(tmp_path / "predictions.jsonl", data)
    gates = _write(
        tmp_path,
        "- {attribute: payer, metric: true_positive_rate, rule: min_value, threshold: 0.5,"
        " judge: ci}\n",
    )
    config = make_config(predictions=path, attributes=["payer"], positive_label="yes",
                         metrics=["true_positive_rate"], bootstrap=200, min_group_size=10,
                         gates=gates, out=tmp_path / "out")  # fmt: skip
    analyze_subgroups(config)
    report = read_report(tmp_path / "out")
    few = report.by_attribute["payer"].groups["few"].metrics["true_positive_rate"]
    assert few.value == 0.0 and few.trials == 2 and few.ci == (0.0, 0.0)
    (gate,) = report.gates
    wilson_high_0_of_2 = 0.6576  # Wilson 95% upper bound of 0/2
    assert gate.passed and gate.group == "few"
    assert gate.observed == pytest.approx(wilson_high_0_of_2, abs=1e-3)
    # the same miss rate on 30 positives is evidence: the gate fails
    data = rows("few", 30, 26, 0) + rows("many", 40, 60, 30)
    write_predictions(path, data)
    analyze_subgroups(config)
    (gate,) = read_report(tmp_path / "out").gates
    assert not gate.passed and gate.group == "few"
