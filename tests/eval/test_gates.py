"""Gates files: validation errors name file, line and entry; rules pass and fail as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eval.gates import check_gates, evaluate_gates, load_gates
from eval.report.model import ReportValue, SubgroupReport
from llm.errors import BadInputError, RecordError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _report() -> SubgroupReport:
    def group(n: int, small: bool, value: float, ci: list[float]) -> dict[str, Any]:
        return {"n": n, "small": small, "accuracy": {"value": value, "ci": ci}}

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
    assert result.observed == 0.92 and result.passed
    assert result.note == "groups without a value, not checked: male"
