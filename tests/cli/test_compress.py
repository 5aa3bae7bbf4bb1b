"""``clinical-llm compress make`` and ``compress report`` through the CLI, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llm.cli import compress as compress_cli
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)


def _app() -> typer.Typer:
    app = typer.Typer()
    compress_cli.register(app)

    @app.callback()
    def _root() -> None:
        """Root, so that ``compress`` stays a sub-command."""

    return app


def test_make_refuses_a_bad_spec_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "compress",
            "make",
            str(tmp_path),
            "--method",
            "prune-2:4",
            "--sparsity",
            "0.5",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code != 0
    assert "--sparsity applies to prune-unstructured only" in str(result.exception)


@pytest.mark.slow
def test_make_then_report_on_the_tiny_model(eval_assets: EvalAssets, tmp_path: Path) -> None:  # noqa: F811
    variant = tmp_path / "int8"
    made = CliRunner().invoke(
        _app(),
        [
            "compress",
            "make",
            str(eval_assets.tiny),
            "--method",
            "int8-dynamic",
            "--out",
            str(variant),
        ],
    )
    assert made.exit_code == 0, made.output
    assert "int8-dynamic: weights" in made.output
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"suite: compress-test\ndataset_dir: {eval_assets.datasets}\n"
        "tasks: [diagnosis, readmission_loglik, summary]\nattributes: [sex]\n"
        "min_group_size: 2\nlimit: 8\n"
    )
    out = tmp_path / "report"
    result = CliRunner().invoke(
        _app(),
        [
            "compress",
            "report",
            str(suite),
            "--base",
            str(eval_assets.tiny),
            "--variant",
            str(variant),
            "--new-tokens",
            "4",
            "--speed-rounds",
            "1",
            "--bootstrap",
            "100",
            "--out",
            str(out),
        ],
    )
    report = json.loads((out / "report.json").read_text())
    assert result.exit_code == (0 if report["passed"] else 1), result.output
    (entry,) = report["variants"]
    assert entry["name"] == "int8-dynamic"
    assert entry["size_ratio"] < 1.0
    assert entry["speed"]["tokens_per_s"] > 0 and report["base"]["speed"]["first_token_s"] > 0
    assert [t["task"] for t in entry["tasks"]] == ["diagnosis", "readmission_loglik"]
    for task in entry["tasks"]:
        predictions = out / "evals" / "base" / task["task"] / "predictions.jsonl"
        assert task["overall"]["n"] == len(predictions.read_text().splitlines()) <= 8
        assert set(task["by_attribute"]["sex"]) <= {"female", "male", "unknown"}
    assert "summary" in report["manifest"]["skipped_tasks"]
    for model in ("base", "int8-dynamic"):
        assert (out / "evals" / model / "diagnosis" / "predictions.jsonl").is_file()
    assert "# Compression report: suite compress-test" in (out / "report.md").read_text()
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4
