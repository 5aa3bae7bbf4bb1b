"""The model card written with every export and rewritten by ``eval run`` (issue #27 §5).

Fast tests: the card of a small in-test run (front matter checked field by
field with ``yaml.safe_load`` and read back by huggingface_hub's own parser),
and the metadata checks. Slow test: a real tiny training run (``clinical-llm
train``, one process), exported, then evaluated twice through ``eval run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.errors import BadInputError
from llm.export import export_run
from llm.export.card import CARD, EVAL_END, EVAL_START, split_card, update_card_evaluation
from llm.export.card_metadata import (
    ERR_BASE_MODEL,
    ERR_INDEX,
    ERR_LIBRARY,
    ERR_LICENSE,
    ERR_PIPELINE,
    ERR_STRINGS,
    metadata_problems,
)
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401 (fixture)
from tests.export.helpers import make_base, make_lora_run
from tests.train.conftest import chat_tokenizer  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "clinical-llm")
CONFIG = {"model": {"base": "/models/base"}, "method": {"kind": "lora", "lora": {"r": 4}}}
DATASET = {
    "dataset_dir": "/nowhere/datasets",
    "manifest_sha256": "ab" * 32,
    "records_sha256": "cd" * 32,
    "tasks": {
        "readmission": {
            "counts": {"train": 24, "validation": 4, "test": 12},
            "answers": ["no", "yes"],
        }
    },
    "train": {
        "split": "train",
        "examples": 24,
        "tokens": 9000,
        "tokenize": {"readmission": {"read": 25, "used": 24, "rejected": 1}},
    },
}


def _front_matter(card: Path) -> dict[str, Any]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text[4:].split("\n---\n", 1)[0])
    assert isinstance(meta, dict)
    return meta


@pytest.fixture
def lora_run(tmp_path: Path, chat_tokenizer: Any) -> Path:  # noqa: F811
    base = make_base(tmp_path, chat_tokenizer)
    (base / "manifest.json").write_text(
        json.dumps({"kind": "model-import", "licence": "Apache-2.0"})
    )
    run = make_lora_run(tmp_path, base, chat_tokenizer)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update({"config": CONFIG, "dataset": DATASET, "seed": 7, "world_size": 2})
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_export_writes_a_card_with_recipe_data_and_valid_metadata(
    lora_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    export_run(lora_run, out, name="readmit-v1")
    card = out / CARD
    meta = _front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert meta["base_model"] == "base"  # the base folder's name: no Hub id recorded
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["tags"] == ["clinical", "medical", "clinical-llm", "lora", "readmission"]
    assert meta["datasets"] == [] and "model-index" not in meta  # not evaluated yet
    assert metadata_problems(meta) == []
    text = card.read_text(encoding="utf-8")
    assert yaml.safe_dump(CONFIG, sort_keys=False) in text  # the recipe, verbatim
    assert "| readmission | 24 | 4 | 12 | 2 |" in text  # counts per split, label count
    assert "read 25 = used 24 + rejected 1" in text
    assert "De-identification: not recorded in the provenance" in text
    assert "Not for autonomous diagnosis" in text and "## Known limitations" in text
    assert text.count(EVAL_START) == 1 and "Not evaluated yet" in text
    # huggingface_hub parses the front matter as card metadata
    from huggingface_hub import ModelCard

    parsed = ModelCard(text).data.to_dict()
    assert parsed["license"] == "apache-2.0" and parsed["base_model"] == "base"


def _eval_dir(root: Path, accuracy: float, gate_passed: bool) -> Path:
    """An eval run folder shaped like ``eval run``'s (summary.json, <task>/report.json)."""
    out = root / f"eval-{accuracy}"
    (out / "readmission").mkdir(parents=True)
    value = {"value": accuracy, "ci": [accuracy - 0.1, accuracy + 0.05]}
    report = {
        "metrics": ["accuracy"],
        "n": 12,
        "overall": {"accuracy": value},
        "by_attribute": {
            "sex": {
                "groups": {
                    "female": {"n": 7, "small": False, "accuracy": value},
                    "male": {"n": 5, "small": True, "accuracy": {"value": 0.4, "ci": [0.0, 0.8]}},
                },
                "disparity": {
                    "accuracy": {"difference": 0.2, "worst_group": "male", "best_group": "female"}
                },
            }
        },
        "gates": [
            {"name": "gap", "attribute": "sex", "metric": "accuracy", "rule": "max_difference",
             "threshold": 0.1, "observed": 0.2, "passed": gate_passed}
        ],
        "passed": gate_passed,
    }  # fmt: skip
    (out / "readmission" / "report.json").write_text(json.dumps(report))
    summary = {
        "suite": "clinical-core",
        "tasks": [{"task": "readmission", "split": "test", "status": "ok", "n": 12}],
        "passed": gate_passed,
        "tasks_run": 1,
        "tasks_skipped": 0,
    }
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_an_evaluation_replaces_the_section_and_model_index(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_run(lora_run, out, name="readmit-v1")
    before = (out / CARD).read_text(encoding="utf-8")
    update_card_evaluation(out, _eval_dir(tmp_path, 0.75, gate_passed=False))
    first = (out / CARD).read_text(encoding="utf-8")
    assert "| female | 7 | 0.750 [0.650, 0.800] |" in first
    assert "| male (small: not gated) | 5 | 0.400 [0.000, 0.800] |" in first
    assert "| gap | sex | accuracy | max_difference | 0.100 | 0.200 | FAILED |" in first
    assert "**a release gate failed**" in first and "Not evaluated yet" not in first
    meta, _ = split_card(first, where="card")
    (result,) = meta["model-index"][0]["results"]
    assert meta["model-index"][0]["name"] == "readmit-v1"
    assert result["metrics"][0] == {
        "type": "accuracy",
        "value": 0.75,
        "name": "accuracy (0.750 [0.650, 0.800])",
    }
    second_eval = _eval_dir(tmp_path, 0.9, gate_passed=True)
    update_card_evaluation(out, second_eval)
    update_card_evaluation(out, second_eval)  # idempotent
    second = (out / CARD).read_text(encoding="utf-8")
    assert second.count(EVAL_START) == 1 and second.count(EVAL_END) == 1
    assert "0.750" not in second and "| female | 7 | 0.900 [0.800, 0.950] |" in second
    assert "| passed |" in second and "every gate passed" in second
    # everything outside the section and the model-index is as exported
    strip = before.split(EVAL_START)[0].split("\n---\n", 1)[1]
    assert second.split(EVAL_START)[0].split("\n---\n", 1)[1] == strip
    assert second.split(EVAL_END)[1] == before.split(EVAL_END)[1]
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    parsed = ModelCard(second).data.to_dict()
    name, results = model_index_to_eval_results(parsed["model-index"])
    assert name == "readmit-v1" and results[0].metric_value == 0.9
    # the re-export refuses nothing: the card is part of the earlier export
    export_run(lora_run, out, name="readmit-v1")
    assert "Not evaluated yet" in (out / CARD).read_text(encoding="utf-8")


def test_cards_without_markers_or_front_matter_are_named(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_run(lora_run, out)
    evaluation = _eval_dir(tmp_path, 0.8, gate_passed=True)
    card = out / CARD
    card.write_text(card.read_text().replace(EVAL_END, ""))
    with pytest.raises(BadInputError, match=r"evaluation markers .* missing or repeated"):
        update_card_evaluation(out, evaluation)
    card.write_text("# no front matter\n")
    with pytest.raises(BadInputError, match="no YAML front matter"):
        update_card_evaluation(out, evaluation)
    card.unlink()
    with pytest.raises(BadInputError, match="no model card; export the run again"):
        update_card_evaluation(out, evaluation)


VALID = {
    "license": "other",
    "base_model": "meta-llama/Llama-3.1-8B",
    "library_name": "transformers",
    "pipeline_tag": "text-generation",
    "tags": ["clinical"],
    "datasets": [],
}


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("license", "Apache 2.0", ERR_LICENSE),
        ("license", None, ERR_LICENSE),
        ("base_model", "", ERR_BASE_MODEL),
        ("library_name", "keras", ERR_LIBRARY),
        ("pipeline_tag", "text2text", ERR_PIPELINE),
        ("tags", "clinical", ERR_STRINGS.format(field="tags")),
        ("datasets", [""], ERR_STRINGS.format(field="datasets")),
        ("model-index", [], ERR_INDEX),
    ],
)
def test_each_metadata_field_is_checked(field: str, bad: Any, message: str) -> None:
    assert metadata_problems(VALID) == []
    assert metadata_problems({**VALID, field: bad}) == [message]


def test_model_index_results_need_task_dataset_and_numeric_metrics() -> None:
    result = {
        "task": {"type": "text-generation"},
        "dataset": {"type": "clinical-llm/readmission", "name": "readmission"},
        "metrics": [{"type": "accuracy", "value": 0.9}],
    }
    index = [{"name": "m", "results": [result]}]
    assert metadata_problems({**VALID, "model-index": index}) == []
    broken = {
        **result,
        "dataset": {"type": "x"},
        "metrics": [{"type": "accuracy", "value": "high"}],
    }
    problems = metadata_problems({**VALID, "model-index": [{"name": "m", "results": [broken]}]})
    assert problems == [
        "model-index results[0]: dataset.type and dataset.name: expected",
        "model-index results[0]: metrics[0].value: expected a number",
    ]
    assert metadata_problems({**VALID, "extra": 1})[0].startswith("unknown field(s) extra")


# ---------------------------------------------------------------- a real run, evaluated twice


def _cli(args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    with log.open("w") as fh:
        return subprocess.run(
            [CLI, *args], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=600
        )


@pytest.mark.slow
def test_real_run_export_then_eval_run_twice_rewrites_the_card(
    eval_assets: EvalAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    run, out = tmp_path / "run", tmp_path / "export"
    train = ["train", "recipes/tiny-lora-cpu.yaml", "--set", f"model.base={eval_assets.tiny}",
             "--set", f"data.dataset_dir={eval_assets.datasets}",
             "--set", f"training.output_dir={run}", "--set", "training.max_steps=2",
             "--set", "data.max_length=256", "--set", "data.max_train_examples=8",
             "--set", "training.eval_every_steps=null", "--set", "training.save_every_steps=null",
             "--set", "training.early_stopping_patience=null", "--set", "deepspeed=null",
             "--set", "launch.accelerate_config=null", "--set", "tracking.backend=none",
             "--set", "training.cpu_threads=1"]  # fmt: skip
    proc = _cli(train, tmp_path / "train.log")
    assert proc.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert (
        _cli(["export", str(run), "--out", str(out), "--merge"], tmp_path / "x.log").returncode == 0
    )
    text = (out / CARD).read_text(encoding="utf-8")
    run_manifest = json.loads((run / "manifest.json").read_text())
    assert yaml.safe_dump(run_manifest["config"], sort_keys=False, width=100) in text
    assert "| diagnosis |" in text and "| readmission |" in text
    # no note text: no line of a training prompt reaches the card
    rows = [json.loads(x) for x in (eval_assets.datasets / "readmission" / "train.jsonl").open()]
    contents = [str(m["content"]) for r in rows[:5] for m in r["messages"]]
    note_lines = {line for c in contents for line in c.splitlines() if len(line) > 30}
    assert note_lines and not any(line in text for line in note_lines)

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"suite: card-test\ndataset_dir: {eval_assets.datasets}\ntasks: [readmission_loglik]\n"
        f"attributes: [sex]\nbootstrap: 20\nmin_group_size: 1\ngates: {tmp_path / 'gates.yaml'}\n"
    )
    # the second evaluation's gate cannot pass: eval run exits 1 and still rewrites the card
    for run_name, threshold, code, result in (
        ("first", 0.0, 0, "passed"),
        ("second", 1.01, 1, "FAILED"),
    ):
        (tmp_path / "gates.yaml").write_text(
            f"- {{name: floor, metric: accuracy, rule: min_value, threshold: {threshold}}}\n"
        )
        argv = ["eval", "run", str(suite), "--model", str(out), "--limit", "4",
                "--out", str(tmp_path / run_name)]  # fmt: skip
        log = tmp_path / f"{run_name}.log"
        assert _cli(argv, log).returncode == code, log.read_text()[-3000:]
        # rich wraps the line at the console width
        updated = "".join(log.read_text().split())
        assert f"modelcardevaluationsectionupdated:{out / CARD}" in updated
        card = (out / CARD).read_text(encoding="utf-8")
        assert card.count(EVAL_START) == 1 and card.count("### readmission_loglik") == 1
        summary = json.loads((tmp_path / run_name / "summary.json").read_text())
        assert f"n = {summary['tasks'][0]['n']};" in card
        assert f"| floor | overall | accuracy | min_value | {threshold:.3f} |" in card
        assert card.count("| floor |") == 1 and f"| {result} |" in card
        assert "By `sex`:" in card and str(tmp_path / run_name) in card
    assert str(tmp_path / "first") not in card and "every gate passed" not in card
    assert "**a release gate failed**" in card
    meta, _ = split_card(card, where="card")
    assert meta["model-index"][0]["results"][0]["dataset"]["split"] == "test"
