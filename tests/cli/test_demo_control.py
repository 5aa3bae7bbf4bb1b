"""The control of the demo's planted bias: the same pipeline without the bias flags no one.

The demo counts its planted bias (``race_ethnicity=Black``, documentation
degraded for every one of those patients) as caught when a failed gate names
the group. A catch only means something if the same pipeline, with the bias off,
does not name the group too. Training the demo's model takes minutes, so the
model here is a *reference predictor, fair by construction*: the diagnosis
rule the cohort's labels are read back with (``llm.data.synth.diagnosis_rule``,
which reads the rendered prompt, as a model does, and is right on every
well-documented record), with a share of its answers replaced by a random wrong
one, drawn independently of every demographic. Its only group difference is
the one the bias plants: a degraded note leaves the rule to guess from vitals.

The same cohort (seed, patients, everything but the degraded documentation),
the same task renderer, the same ``eval subgroups`` with the demo's gates,
minimum group size and bootstrap, judged as the demo judges them (``judge:
ci``) and, for contrast, on the point estimate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from eval.report.model import read_report
from llm.cli import main
from llm.cli.demo import (
    DEMO_GATES,
    DEMO_MIN_GROUP_SIZE,
    PLANTED_BIAS,
    PLANTED_BIAS_SPEC,
    FailedGate,
    caught_planted_bias,
    flagged_group,
)
from llm.data.io import read_records
from llm.data.synth import generate_cohort, parse_bias
from llm.data.synth.diagnosis_rule import predict_diagnosis
from llm.data.tasks.base import Example, RenderContext
from llm.data.tasks.notes import DiagnosisTask

PATIENTS = 600  # the size of the demo's test split: about 90 Black patients
SEED = 7
NOISE = 0.1  # share of answers replaced by a random wrong one, whatever the patient's group
ATTRIBUTES = "sex,age_band,race_ethnicity,payer,sex*race_ethnicity"
BIAS = PLANTED_BIAS_SPEC

pytestmark = pytest.mark.slow  # two 600-patient cohorts: about 80 s on a busy 2-core machine


def reference_predictions(cohort: Path, out: Path) -> Path:
    """The diagnosis task of every patient, answered by the fair reference predictor."""
    records, _ = read_records(cohort / "records.jsonl")
    task = DiagnosisTask()
    answers = task.answer_space(records)
    ctx = RenderContext(records_dir=cohort, out_dir=out, answers={task.name: answers})
    examples = [e for r in records if isinstance(e := task.render(r, ctx), Example)]
    rng = np.random.default_rng(0)  # the same draws with and without the bias
    flip, pick = rng.random(len(examples)), rng.integers(0, len(answers) - 1, len(examples))
    path = out / "predictions.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for example, u, k in zip(examples, flip, pick, strict=True):
            user = next(m["content"] for m in example.messages if m["role"] == "user")
            answer = predict_diagnosis(str(user))
            if u < NOISE:
                answer = [a for a in answers if a != answer][k]
            row = {"id": example.id, "prediction": answer, "reference": example.answer,
                   "demographics": example.demographics}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return path


def gates_file(out: Path, judge: str) -> Path:
    """The demo's gates that the diagnosis task computes, judged on ``judge``."""
    gates: list[dict[str, Any]] = [
        {**g, "judge": judge} for g in DEMO_GATES if g["metric"] == "accuracy"
    ]
    assert all(g["judge"] == "ci" for g in DEMO_GATES)  # the demo judges on the intervals
    path = out / f"gates-{judge}.yaml"
    path.write_text(yaml.safe_dump(gates, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["bias", "control"])
def predictions(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    bias = [parse_bias(BIAS)] if request.param == "bias" else []
    generate_cohort(n_patients=PATIENTS, seed=SEED, out_dir=out / "cohort", bias=bias,
                    image_size=64, workers=1)  # fmt: skip
    return reference_predictions(out / "cohort", out)


def flagged(predictions: Path, judge: str) -> list[FailedGate]:
    """The failed gates of ``eval subgroups`` on ``predictions``, with the group each names."""
    out = predictions.parent / f"report-{judge}"
    gates = gates_file(predictions.parent, judge)
    code = main(["eval", "subgroups", str(predictions), "--attributes", ATTRIBUTES,
                 "--metrics", "accuracy", "--min-group-size", str(DEMO_MIN_GROUP_SIZE),
                 "--bootstrap", "200", "--seed", "0", "--gates", str(gates),
                 "--out", str(out)])  # fmt: skip
    report = read_report(out)
    assert code == (0 if report.passed else 1)
    return [FailedGate("diagnosis", g, flagged_group(report, g)) for g in report.failed_gates]


def test_the_reference_predictor_is_fair_without_the_bias(predictions: Path) -> None:
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    planted = [r for r in rows if r["demographics"][PLANTED_BIAS[0]] == PLANTED_BIAS[1]]
    accuracy = np.mean([r["prediction"] == r["reference"] for r in planted])
    if predictions.parent.name.startswith("control"):
        assert accuracy >= 1 - NOISE - 0.06  # only the group-blind noise
    else:
        assert accuracy < 1 - NOISE - 0.1  # degraded notes: the rule guesses


def test_the_bias_is_caught_and_the_control_names_no_one(predictions: Path) -> None:
    with_bias = predictions.parent.name.startswith("bias")
    by_ci = flagged(predictions, "ci")
    # judged on the intervals, as the demo judges, the gates name the planted
    # group only when it was planted
    assert caught_planted_bias(by_ci) is with_bias
    if with_bias:
        # on the point estimate too; without the bias the point-judged gates may
        # raise false alarms on a fair predictor (docs/evaluation.md), not tested
        assert caught_planted_bias(flagged(predictions, "point"))
    else:
        # and no other group either: with the bias off the predictor is fair by construction
        assert [g for g in by_ci if not g.gate.insufficient_data] == []
