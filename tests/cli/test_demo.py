"""``clinical-llm demo`` chains every stage, from synthesis to evaluation, on real outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.report.model import GateResult
from llm.cli import main
from llm.cli.demo import (
    DEMO_RECIPE,
    DEMO_SUITE,
    GATE_FAILED,
    PLANTED_BIAS_SPEC,
    REAL_BASE_EVAL_TASKS,
    REAL_BASES,
    DemoLayout,
    FailedGate,
    caught_planted_bias,
    control_lines,
    demo_steps,
    failed_gates,
    run_demo,
    serve_command,
)
from llm.errors import BadInputError, CheckFailedError

VERBS = ["synth", "validate", "deid", "build", "init", "train", "export", "run"]


def _verb(argv: list[str]) -> str:
    return argv[0] if argv[0] in {"train", "export"} else argv[1]


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _sets(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    return dict(p.split("=", 1) for p in pairs)


def test_steps_chain_their_outputs(tmp_path: Path) -> None:
    synth, validate, deid, build, init, train, export, evaluate = (
        s.argv for s in demo_steps(tmp_path, patients=20, seed=3)
    )
    at = DemoLayout(tmp_path)
    assert validate[-1] == f"{_value(synth, '--out')}/records.jsonl"
    assert deid[2] == validate[-1]
    assert _value(build, "--records") == deid[3] == _value(init, "--records")
    # the base model never pretrains on the notes of the patients it is evaluated on
    assert _value(init, "--exclude-eval-patients-of") == _value(build, "--out")
    assert train[1] == str(DEMO_RECIPE)
    overrides = _sets(train)
    assert overrides["model.base"] == _value(init, "--out") == str(at.model)
    assert overrides["data.dataset_dir"] == _value(build, "--out")
    assert overrides["training.output_dir"] == export[1] == str(at.run)
    assert "training.max_steps" not in overrides  # the recipe's own default
    assert "--merge" in export
    assert evaluate[2] == str(DEMO_SUITE)
    assert _value(evaluate, "--model") == _value(export, "--out")
    assert _sets(evaluate)["dataset_dir"] == _value(build, "--out")


def test_steps_and_init_steps_reach_train_and_model_init(tmp_path: Path) -> None:
    plan = demo_steps(tmp_path, patients=20, seed=3, steps=4, init_steps=5)
    assert [_verb(s.argv) for s in plan] == VERBS
    init, train = plan[4].argv, plan[5].argv
    assert _value(init, "--steps") == "5"
    assert _sets(train)["training.max_steps"] == "4"


def test_a_real_base_is_imported_evaluated_zero_shot_and_compared(tmp_path: Path) -> None:
    plan = [s.argv for s in demo_steps(tmp_path, patients=20, seed=3, base="smollm2")]
    at = DemoLayout(tmp_path)
    model, train, export = plan[4], plan[5], plan[6]
    base_eval, tuned_eval, *compares = plan[7:]
    assert model == ["model", "import", "smollm2", "--out", str(at.model)]
    assert train[1] == str(REAL_BASES["smollm2"])
    assert _sets(train)["model.base"] == str(at.model)
    assert (_value(base_eval, "--model"), _value(base_eval, "--out")) == (
        str(at.model),
        str(at.eval_base),
    )
    assert (_value(tuned_eval, "--model"), _value(tuned_eval, "--out")) == (
        _value(export, "--out"),
        str(at.eval),
    )
    assert _sets(base_eval)["tasks"] == _sets(tuned_eval)["tasks"]
    assert _sets(tuned_eval)["tasks"] == f"[{', '.join(REAL_BASE_EVAL_TASKS)}]"
    assert [c[:2] for c in compares] == [["eval", "compare"]] * len(REAL_BASE_EVAL_TASKS)
    for task, compare in zip(REAL_BASE_EVAL_TASKS, compares, strict=True):
        assert compare[2:4] == [str(at.eval_base / task), str(at.eval / task)]
    with pytest.raises(BadInputError, match="unknown base 'llama'"):
        demo_steps(tmp_path, patients=20, seed=3, base="llama")


def test_only_the_eval_step_may_end_with_a_failed_gate(tmp_path: Path) -> None:
    plan = demo_steps(tmp_path, patients=20, seed=3)
    assert [s.accepted_codes for s in plan[:-1]] == [(0,)] * (len(plan) - 1)
    assert plan[-1].accepted_codes == (0, GATE_FAILED)


def test_a_failing_step_stops_the_demo(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str]) -> int:
        seen.append(argv)
        return 2 if argv[1] == "validate" else 0

    with pytest.raises(CheckFailedError, match="demo step 2 failed with exit code 2"):
        run_demo(tmp_path, 20, 3, run)
    assert [argv[1] for argv in seen] == ["synth", "validate"]


def test_a_failed_gate_lets_the_demo_finish_but_a_crashed_eval_does_not(tmp_path: Path) -> None:
    codes = run_demo(
        tmp_path, 20, 3, lambda argv: GATE_FAILED if argv[:2] == ["eval", "run"] else 0
    )
    assert codes[1][-1] == GATE_FAILED
    with pytest.raises(CheckFailedError, match="demo step 8 failed with exit code 2"):
        run_demo(tmp_path, 20, 3, lambda argv: 2 if argv[:2] == ["eval", "run"] else 0)


def test_a_rerun_replaces_only_its_own_previous_run(tmp_path: Path) -> None:
    at = DemoLayout(tmp_path)
    (at.run / "checkpoint-2").mkdir(parents=True)
    (at.run / "manifest.json").write_text("{}")
    run_demo(tmp_path, 20, 3, lambda argv: 0)
    assert not at.run.exists()  # the fake `train` wrote nothing; the old run is gone
    (at.run / "foreign").mkdir(parents=True)
    with pytest.raises(BadInputError, match="not a finished demo run"):
        run_demo(tmp_path, 20, 3, lambda argv: 0)
    assert (at.run / "foreign").is_dir()


def test_failed_gates_are_read_from_every_task_report(tmp_path: Path) -> None:
    gate = {"name": "accuracy gap between groups", "attribute": "race_ethnicity",
            "metric": "accuracy", "rule": "max_difference", "threshold": 0.1}  # fmt: skip
    for task, passed in (("diagnosis", False), ("readmission", True)):
        (tmp_path / task).mkdir()
        gates = [{**gate, "observed": 0.3, "passed": passed}]
        report = {"metrics": ["accuracy"], "n": 10, "overall": {}, "by_attribute": {},
                  "gates": gates, "passed": passed}  # fmt: skip
        (tmp_path / task / "report.json").write_text(json.dumps(report))
    assert [(g.task, g.gate.attribute) for g in failed_gates(tmp_path)] == [
        ("diagnosis", "race_ethnicity")
    ]
    assert failed_gates(tmp_path)[0].worst_group is None  # the report has no such disparity
    assert (
        serve_command(DemoLayout(tmp_path)) == f"clinical-llm serve --model demo={tmp_path}/export"
    )


@pytest.mark.parametrize(
    ("attribute", "worst", "caught"),
    [("race_ethnicity", "Black", True), ("sex*race_ethnicity", "female*Black", True),
     ("race_ethnicity", "Hispanic", False), ("payer", "Black", False)],
)  # fmt: skip
def test_only_a_gate_naming_the_planted_group_counts_as_catching_the_bias(
    attribute: str, worst: str, caught: bool
) -> None:
    gate = GateResult(name="gap", attribute=attribute, metric="accuracy", rule="max_difference",
                      threshold=0.1, observed=0.3, passed=False)  # fmt: skip
    failed = FailedGate(task="diagnosis", gate=gate, worst_group=worst)
    assert caught_planted_bias([failed]) is caught
    assert caught_planted_bias([]) is False


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--patients", "60", "--seed", "11"]
    assert main([*argv, "--steps", "2", "--init-steps", "2"]) == 0
    printed = capsys.readouterr()
    assert "demo finished" in printed.out
    assert "clinical-llm serve --model demo=" in printed.err
    at = DemoLayout(out)
    evaluation = json.loads((at.deid / "deid_eval.json").read_text())
    assert evaluation["overall"]["recall"] >= 0.98
    manifest = json.loads((at.datasets / "manifest.json").read_text())
    assert (manifest["read"], manifest["used"], manifest["rejected"]) == (60, 60, 0)
    base = json.loads((at.model / "manifest.json").read_text())
    held_out = manifest["patients"]["validation"] + manifest["patients"]["test"]
    assert base["counts"]["excluded_eval_patients"] == held_out > 0
    run = json.loads((at.run / "manifest.json").read_text())
    assert run["config"]["model"]["base"] == str(at.model.resolve())
    assert (at.run / "final" / "adapter_config.json").is_file()
    assert list(at.run.glob("runs/**/events.out.tfevents.*"))
    assert (at.run / "mlruns").is_dir()
    assert list(at.export.glob("*.safetensors"))
    assert not (at.export / "adapter_config.json").exists()  # merged: loads without peft
    for task in ("diagnosis", "readmission_loglik"):
        report = json.loads((at.eval / task / "report.json").read_text())
        assert report["n"] > 0
        assert "race_ethnicity" in report["by_attribute"]
    # the key that made the surrogates and date offsets never lands beside the data
    assert not any(p.name.endswith(".key") for p in at.deid.rglob("*"))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 4-5 minutes alone; 12 on a 2-core machine busy with other runs
def test_real_base_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo-smollm2"
    argv = ["demo", "--base", "smollm2", "--out", str(out), "--patients", "40", "--seed", "11"]
    assert main([*argv, "--steps", "2"]) == 0
    printed = capsys.readouterr()
    assert "demo finished" in printed.out
    assert "smollm2 before and after fine-tuning" in printed.err
    at = DemoLayout(out)
    imported = json.loads((at.model / "manifest.json").read_text())
    assert imported["kind"] == "model-import" and imported["source"]["kind"] == "gguf"
    run = json.loads((at.run / "manifest.json").read_text())
    assert run["config"]["model"]["base"] == str(at.model.resolve())
    for task in REAL_BASE_EVAL_TASKS:
        for folder in (at.eval_base, at.eval):
            report = json.loads((folder / task / "report.json").read_text())
            assert report["n"] > 0 and "accuracy" in report["overall"]
        comparison = json.loads((at.compare / task / "compare.json").read_text())
        scopes = {change["scope"] for change in comparison["changes"]}
        assert {"overall", "group"} <= scopes  # per-subgroup changes, not only overall
        assert f"{task}: accuracy zero-shot" in printed.err
    # intervals are printed as text, not eaten as console markup
    assert "zero-shot 0." in printed.err and "] -> fine-tuned" in printed.err
    assert f"tasks=[{', '.join(REAL_BASE_EVAL_TASKS)}]" in printed.err


def test_the_control_reruns_data_and_evaluation_without_the_bias(tmp_path: Path) -> None:
    plan = [s.argv for s in demo_steps(tmp_path, patients=20, seed=3, control=True)]
    main_plan = [s.argv for s in demo_steps(tmp_path, patients=20, seed=3)]
    assert plan[: len(main_plan)] == main_plan
    synth, deid, build, evaluate = plan[len(main_plan) :]
    at, ctl = DemoLayout(tmp_path), DemoLayout(tmp_path).control
    biased_synth, biased_build, biased_eval = main_plan[0], main_plan[3], main_plan[-1]
    # the same cohort, bias off: same size and seed, nothing else
    assert "--bias" in biased_synth and "--bias" not in synth
    assert [a for a in biased_synth if a not in ("--bias", PLANTED_BIAS_SPEC)] == [
        a if a != str(ctl.cohort) else str(at.cohort) for a in synth
    ]
    assert deid[2:4] == [f"{ctl.cohort}/records.jsonl", f"{ctl.deid}/records.jsonl"]
    assert _value(deid, "--key-file") == str(at.key)  # same surrogates and date shifts
    for flag in ("--split", "--seed"):
        assert _value(build, flag) == _value(biased_build, flag)  # same patients in test
    assert _value(build, "--tasks") == "diagnosis,readmission"  # what the eval tasks read
    # the same model, suite, gates and thresholds, on the control's datasets
    assert _value(evaluate, "--model") == _value(biased_eval, "--model") == str(at.export)
    assert _sets(evaluate) == {**_sets(biased_eval), "dataset_dir": str(ctl.datasets)}
    assert _value(evaluate, "--out") == str(ctl.eval)
    assert demo_steps(tmp_path, patients=20, seed=3, control=True)[-1].accepted_codes == (
        0,
        GATE_FAILED,
    )


def _gate_report(folder: Path, attribute: str, worst: str, passed: bool) -> None:
    folder.mkdir(parents=True)
    gap = {"difference": 0.3, "ratio": 0.6, "worst_group": worst, "best_group": "White",
           "difference_ci": None, "ratio_ci": None}  # fmt: skip
    gate = {"name": "gap", "attribute": attribute, "metric": "accuracy",
            "rule": "max_difference", "threshold": 0.1, "observed": 0.3,
            "passed": passed}  # fmt: skip
    report = {"metrics": ["accuracy"], "n": 10, "overall": {},
              "by_attribute": {attribute: {"groups": {}, "disparity": {"accuracy": gap}}},
              "gates": [gate], "passed": passed}  # fmt: skip
    (folder / "report.json").write_text(json.dumps(report))


def test_control_lines_say_whether_the_catch_is_the_bias(tmp_path: Path) -> None:
    at = DemoLayout(tmp_path)
    _gate_report(at.eval / "diagnosis", "race_ethnicity", "Black", passed=False)
    _gate_report(at.control.eval / "diagnosis", "race_ethnicity", "Black", passed=True)
    lines = control_lines(at)
    assert "diagnosis: race_ethnicity 0.300 (Black)" in lines[0]
    assert lines[1].endswith("none") and "the catch is the bias" in lines[2]
    _gate_report(at.control.eval / "readmission", "race_ethnicity", "Black", passed=False)
    assert "names the planted group too" in control_lines(at)[2]
