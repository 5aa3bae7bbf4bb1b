"""``clinical-llm eval run`` end to end through ``llm.cli.main``: outputs, contracts, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.run import RUN_MANIFEST_KIND, prepare_out, sensitive_files, without_text
from eval.subgroups.predictions import read_predictions
from eval.tasks import load_task
from llm.cli import main
from llm.errors import BadInputError
from tests.eval.openai_double import serve
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401 (fixture)
from tests.serving.conftest import live_gateway  # noqa: F401 (fixture)

LIMIT = 3


def _suite(tmp_path: Path, assets: EvalAssets | None, tasks: str, extra: str = "") -> Path:
    dataset_dir = assets.datasets if assets is not None else tmp_path / "datasets"
    path = tmp_path / "suite.yaml"
    path.write_text(
        f"suite: test\ndataset_dir: {dataset_dir}\ntasks: [{tasks}]\n"
        f"attributes: [sex, age_band]\nbootstrap: 50\nmin_group_size: 1\n{extra}",
        encoding="utf-8",
    )
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _dataset_rows(assets: EvalAssets, task: str) -> list[dict[str, Any]]:
    return _lines(assets.datasets / task / "test.jsonl")[:LIMIT]


def test_no_prediction_text_keeps_ids_labels_scores_and_correctness(tmp_path: Path) -> None:
    demographics = {"sex": "female"}
    row = {"id": "d1", "task": "diagnosis", "prediction": "sepsis", "reference": "sepsis",
           "demographics": demographics, "invalid": False,
           "completion": "Mrs Doe has sepsis"}  # fmt: skip
    # labels come from the task's closed answer space: kept; the raw completion is not
    assert without_text(load_task("diagnosis"), row) == {
        "id": "d1", "task": "diagnosis", "prediction": "sepsis", "reference": "sepsis",
        "demographics": demographics, "invalid": False, "correct": True}  # fmt: skip
    scored = {"id": 2, "task": "readmission_loglik", "prediction": "yes", "reference": "no",
              "score": 0.7, "demographics": demographics, "invalid": False}  # fmt: skip
    assert without_text(load_task("readmission_loglik"), scored) == {
        **scored, "correct": False}  # fmt: skip
    text = {"id": "s1", "task": "summary", "prediction": "Sepsis, treated with antibiotics.",
            "reference": "sepsis treated with antibiotics",
            "demographics": demographics}  # fmt: skip
    kept = without_text(load_task("summary"), text)
    assert set(kept) == {"id", "task", "demographics", "exact_match", "rouge_l"}
    assert kept["exact_match"] is False and kept["rouge_l"] == 1.0  # same tokens, punctuation
    assert "Sepsis" not in json.dumps(kept) and "sepsis" not in json.dumps(kept)
    entry = sensitive_files(tmp_path, ["diagnosis"], prediction_text=False)
    assert entry["files"] == [str(tmp_path / "diagnosis" / "predictions.jsonl")]
    assert entry["prediction_text"] is False and "no model output" in entry["why"]


# --- fast: bad input stops before any model is loaded ------------------------------------------


def test_unknown_task_is_exit_2_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = _suite(tmp_path, None, "summry")
    code = main(["eval", "run", str(suite), "--model", "nowhere", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "did you mean 'summary'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_model_and_bad_flags_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "datasets" / "summary").mkdir(parents=True)
    (tmp_path / "datasets" / "summary" / "test.jsonl").write_text("")
    suite = _suite(tmp_path, None, "summary")
    out = str(tmp_path / "o")
    assert main(["eval", "run", str(suite), "--model", str(tmp_path / "m"), "--out", out]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["eval", "run", str(suite), "--out", out]) == 2
    assert "exactly one of --model PATH or --endpoint URL" in capsys.readouterr().err
    assert (
        main(["eval", "run", str(suite), "--model", "m", "--set", "bootstrap", "--out", out]) == 2
    )
    assert "expected key.sub=value" in capsys.readouterr().err


def test_out_must_be_new_empty_or_an_earlier_run(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not an earlier `eval run` output"):
        prepare_out(foreign)
    assert (foreign / "notes.txt").exists()
    earlier = tmp_path / "earlier"
    (earlier / "diagnosis").mkdir(parents=True)
    (earlier / "diagnosis" / "predictions.jsonl").write_text("{}\n")
    (earlier / "manifest.json").write_text(json.dumps({"kind": RUN_MANIFEST_KIND}))
    prepare_out(earlier)
    assert earlier.is_dir() and not any(earlier.iterdir())


# --- slow: real models -------------------------------------------------------------------------


@pytest.mark.slow
def test_local_run_writes_predictions_reports_summary_and_manifest(
    eval_assets: EvalAssets,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # summary is left out for time: the barely trained model writes all 256 tokens it may
    tasks = "diagnosis, readmission_loglik, radiology_impression, ecg_rhythm"
    suite = _suite(tmp_path, eval_assets, tasks)
    out = tmp_path / "run"
    argv = ["eval", "run", str(suite), "--model", str(eval_assets.tiny), "--limit", str(LIMIT)]
    assert main([*argv, "--batch-size", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "3 task(s) run, 1 skipped" in captured.out
    read_line = f"{eval_assets.datasets / 'radiology_impression' / 'test.jsonl'}: read 3 = used 3"
    assert read_line + " + rejected 0" in captured.err

    summary = json.loads((out / "summary.json").read_text())
    statuses = {t["task"]: t["status"] for t in summary["tasks"]}
    assert statuses == {
        "diagnosis": "ok",
        "readmission_loglik": "ok",
        "radiology_impression": "ok",
        "ecg_rhythm": "skipped",
    }
    ecg = summary["tasks"][-1]
    assert "needs image input" in ecg["reason"] and not (out / "ecg_rhythm").exists()
    radiology = summary["tasks"][2]
    assert radiology["prompt"].startswith("text fallback, images dropped")

    for entry in summary["tasks"][:3]:
        task, dataset_task = entry["task"], entry["task"].removesuffix("_loglik")
        predictions = _lines(out / task / "predictions.jsonl")
        rows = _dataset_rows(eval_assets, dataset_task)
        assert [p["id"] for p in predictions] == [r["id"] for r in rows]
        assert [p["reference"] for p in predictions] == [r["answer"] for r in rows]
        assert all(p["task"] == task and p["demographics"] for p in predictions)
        # the predictions file is valid input of `eval subgroups` (the contract)
        assert len(read_predictions(out / task / "predictions.jsonl")) == LIMIT
        report = json.loads((out / task / "report.json").read_text())
        assert report["n"] == LIMIT == entry["n"]
        assert set(report["by_attribute"]) == {"sex", "age_band"}
        assert entry["metrics"] == report["overall"]
        assert (out / task / "report.md").is_file()

    scored = _lines(out / "readmission_loglik" / "predictions.jsonl")
    assert all(0.0 <= p["score"] <= 1.0 and p["prediction"] in ("no", "yes") for p in scored)
    assert all(p["invalid"] is False for p in scored)
    diagnosis = _lines(out / "diagnosis" / "predictions.jsonl")
    invalid = sum(p["invalid"] for p in diagnosis)
    assert summary["tasks"][0]["invalid"] == invalid
    assert all((p["prediction"] == "invalid") == p["invalid"] for p in diagnosis)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == RUN_MANIFEST_KIND
    # prediction files hold model output and reference text: the manifest says so
    assert manifest["sensitive"]["prediction_text"] is True
    assert manifest["sensitive"]["files"] == [
        str(out / t["task"] / "predictions.jsonl") for t in summary["tasks"][:3]
    ]
    assert manifest["model_manifest"]["path"] == str(eval_assets.tiny / "manifest.json")
    assert manifest["runner"]["runner"] == "local"
    assert manifest["tasks"]["diagnosis"]["dataset"]["sha256"]
    task_manifest = json.loads((out / "radiology_impression" / "manifest.json").read_text())
    assert task_manifest["model_manifest"]["path"] == str(eval_assets.tiny / "manifest.json")


@pytest.mark.slow
def test_failed_gate_is_exit_1_after_writing_the_reports(
    eval_assets: EvalAssets,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text("- {name: strict, metric: accuracy, rule: min_value, threshold: 1.01}\n")
    suite = _suite(tmp_path, eval_assets, "readmission", f"gates: {gates}\n")
    out = tmp_path / "run"
    argv = ["eval", "run", str(suite), "--model", str(eval_assets.tiny), "--limit", str(LIMIT)]
    assert main([*argv, "--out", str(out)]) == 1
    assert "gate(s) failed in readmission (1)" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False
    assert summary["tasks"][0]["gates"] == {"total": 1, "failed": ["strict"], "passed": False}
    report = json.loads((out / "readmission" / "report.json").read_text())
    assert report["gates"][0]["passed"] is False


@pytest.mark.slow
def test_endpoint_run_matches_the_local_run(
    eval_assets: EvalAssets,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    suite = _suite(tmp_path, eval_assets, "diagnosis, readmission, readmission_loglik")
    local_out, http_out = tmp_path / "local", tmp_path / "http"
    common = ["eval", "run", str(suite), "--limit", str(LIMIT)]
    model = str(eval_assets.random)
    assert main([*common, "--model", model, "--out", str(local_out)]) == 0
    with serve(eval_assets.random) as (url, state):
        code = main([*common, "--endpoint", url, "--concurrency", "2", "--out", str(http_out)])
    assert code == 0, capsys.readouterr().err
    assert state.requests == 2 * LIMIT
    for task in ("diagnosis", "readmission"):
        local = _lines(local_out / task / "predictions.jsonl")
        http = _lines(http_out / task / "predictions.jsonl")
        assert [(p["id"], p["completion"], p["prediction"]) for p in http] == [
            (p["id"], p["completion"], p["prediction"]) for p in local
        ]
    summary = json.loads((http_out / "summary.json").read_text())
    assert summary["tasks"][2]["status"] == "skipped"
    assert "cannot score" in summary["tasks"][2]["reason"]
    assert summary["model"]["endpoint"] == url and "model_manifest" not in json.loads(
        (http_out / "manifest.json").read_text()
    )


@pytest.mark.slow
def test_endpoint_run_through_the_real_gateway_matches_the_local_run(
    eval_assets: EvalAssets,  # noqa: F811
    live_gateway: Any,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`eval run --endpoint` against `clinical-llm serve`'s app on the transformers backend."""
    from serving.backends.base import BackendSettings

    suite = _suite(tmp_path, eval_assets, "diagnosis, readmission")
    local_out, http_out = tmp_path / "local", tmp_path / "gateway"
    common = ["eval", "run", str(suite), "--limit", str(LIMIT)]
    assert main([*common, "--model", str(eval_assets.random), "--out", str(local_out)]) == 0
    settings = BackendSettings(model_name="random", model_path=str(eval_assets.random))
    url = live_gateway("transformers", settings)
    argv = [*common, "--endpoint", url.v1, "--model-name", "random", "--concurrency", "3"]
    assert main([*argv, "--out", str(http_out)]) == 0, capsys.readouterr().err
    for task in ("diagnosis", "readmission"):
        local = _lines(local_out / task / "predictions.jsonl")
        http = _lines(http_out / task / "predictions.jsonl")
        assert [(p["id"], p["completion"], p["prediction"]) for p in http] == [
            (p["id"], p["completion"], p["prediction"]) for p in local
        ]
        assert all(p["demographics"] for p in http)
    audit = url.audit_lines()
    assert len(audit) == 2 * LIMIT and {line["status"] for line in audit} == {200}
