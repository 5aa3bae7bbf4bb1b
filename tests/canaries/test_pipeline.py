"""PHI canaries through de-identification, task datasets, training and evaluation.

One 16-patient synthetic cohort with the canaries planted in every note. ``data deid``
must remove them from its records and never say them; training and evaluation run on
datasets built from the *raw* canary records, so their prompts hold the canaries on
purpose (checked), and what those stages write and say (logs, TensorBoard events, the
MLflow store, manifests, reports) must still hold none: a stage that echoes its input
text would be caught here, which a run on de-identified data could not show.
Prediction files are the one output allowed to quote prompts and references
(docs/evaluation.md); they are not scanned.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from llm.cli import main
from tests.canaries.conftest import (
    CANARY_SENTENCE,
    NAME,
    assert_no_canary,
    leaking_files,
    plant_canaries,
)
from tests.serving.backends.conftest import text_model  # noqa: F401 (fixture)
from tests.train.conftest import chat_tokenizer  # noqa: F401 (fixture)
from tests.train.fixtures import check_launch, launch, training_env

pytestmark = pytest.mark.slow

TASKS = "diagnosis,readmission"


def _said(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err + caplog.text


@pytest.fixture(scope="module")
def canary_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``records.jsonl`` of 16 synthetic patients, the canaries in every note."""
    root = tmp_path_factory.mktemp("canary-cohort")
    assert main(["data", "synth", "--patients", "16", "--seed", "3", "--out", str(root)]) == 0
    records = root / "canary-records.jsonl"
    assert plant_canaries(root / "records.jsonl", records) > 16
    return records


@pytest.fixture(scope="module")
def canary_datasets(canary_records: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Task datasets built from the raw canary records: every prompt quotes the canaries."""
    out = tmp_path_factory.mktemp("canary-datasets") / "datasets"
    argv = ["data", "build", "--records", str(canary_records), "--tasks", TASKS]
    assert main([*argv, "--seed", "3", "--out", str(out)]) == 0
    for task in TASKS.split(","):
        rows = (out / task / "train.jsonl").read_text(encoding="utf-8")
        assert CANARY_SENTENCE in rows, f"the {task} prompts must carry the canaries"
    return out


def test_deid_removes_the_canaries_and_never_says_them(
    canary_records: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINICAL_LLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CLINICAL_LLM_DEID_KEY", raising=False)
    records = canary_records.parent / "with-a-bad-line.jsonl"  # beside its images
    text = canary_records.read_text(encoding="utf-8")
    # a bad line: a patient's record with an unknown key named after them, so the
    # rejection path (error message, rejects file) talks about a line full of canaries
    bad = json.loads(text.splitlines()[0])
    bad[NAME] = CANARY_SENTENCE
    records.write_text(text + json.dumps(bad) + "\n", encoding="utf-8")
    key = tmp_path / "key"
    key.write_bytes(b"canary-test-key-0123456789abcdef")
    out = tmp_path / "deid" / "records.jsonl"
    caplog.set_level(logging.DEBUG)
    code = main(["data", "deid", str(records), str(out), "--key-file", str(key), "--skip-invalid"])
    said = _said(capfd, caplog)
    assert code == 0, said
    assert "read 17 = used 16 + rejected 1" in said
    assert_no_canary(said, "data deid's stdout, stderr or logs")
    assert leaking_files(out.parent) == {}, "canaries left in the de-identified folder"

    # the failing path (no --skip-invalid) names file, line and field, not the text
    first = canary_records.parent / "bad-line-first.jsonl"  # stops at once
    first.write_text(json.dumps(bad) + "\n" + text, encoding="utf-8")
    code = main(["data", "deid", str(first), str(tmp_path / "stopped" / "records.jsonl")])
    said = _said(capfd, caplog)
    assert code == 2 and "bad-line-first.jsonl:1: <key>: Extra inputs" in said
    assert_no_canary(said, "data deid's error message")


def test_training_on_canary_prompts_logs_and_tracks_no_text(
    canary_datasets: Path,
    text_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    overrides = [
        f"model.base={text_model}",
        "model.dtype=fp32",
        f"data.dataset_dir={canary_datasets}",
        "data.max_length=512",
        f"training.output_dir={out}",
        "training.max_steps=2",
        "training.logging_steps=1",
        "training.micro_batch_size=2",
        "training.eval_every_steps=2",
        "training.save_every_steps=2",
        "training.early_stopping_patience=null",
        "training.cpu_threads=1",
        "tracking.backend=[tensorboard,mlflow]",
        "tracking.experiment_name=canary",
    ]
    env = training_env(TRANSFORMERS_VERBOSITY="debug")
    proc = launch(None, "recipes/tiny-lora-cpu.yaml", overrides, log, env=env)
    check_launch(proc, log)
    assert_no_canary(log.read_text(encoding="utf-8"), "the training log (stdout and stderr)")
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    mlflow_files = [p for p in (out / "mlruns").rglob("*") if p.is_file()]
    assert events and mlflow_files and (out / "manifest.json").is_file()
    # every file the run wrote: TensorBoard events, the MLflow file store (params, tags,
    # metrics, artifacts), manifest.json, trainer_state.json, checkpoints, the adapter
    assert leaking_files(out) == {}, "canaries in the training run folder"
    # and what TensorBoard itself reads back out of the event files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for event_dir in {e.parent for e in events}:
        acc = EventAccumulator(str(event_dir), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        tags: dict[str, Any] = acc.Tags()
        texts = [
            str(event.tensor_proto.string_val)
            for tag in tags.get("tensors", [])
            for event in acc.Tensors(tag)
        ]
        assert_no_canary(repr(tags) + "\n".join(texts), f"TensorBoard's view of {event_dir}")


def test_eval_reports_and_logs_hold_no_canary(
    canary_datasets: Path,
    text_model: Path,  # noqa: F811
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"suite: canary\ndataset_dir: {canary_datasets}\ntasks: [diagnosis]\n"
        "attributes: [sex, age_band]\nbootstrap: 20\nmin_group_size: 1\n",
        encoding="utf-8",
    )
    out = tmp_path / "eval"
    caplog.set_level(logging.DEBUG)
    argv = ["eval", "run", str(suite), "--model", str(text_model), "--limit", "2"]
    code = main([*argv, "--out", str(out)])
    said = _said(capfd, caplog)
    assert code in (0, 1), said  # 1: a gate failed, reports still written
    assert_no_canary(said, "eval run's stdout, stderr or logs")
    for task in ("diagnosis",):  # the test split holds one readmission label: no report
        for name in ("report.json", "report.md", "report.html", "manifest.json"):
            assert (out / task / name).is_file(), f"{task}/{name}"
    # predictions.jsonl quotes model output and references (sensitive by contract)
    assert leaking_files(out, skip={"predictions.jsonl"}) == {}, "canaries in eval outputs"
