"""``clinical-llm model init`` through typer: read line, progress, summary, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llm.cli import model as model_cli
from llm.errors import BadInputError, RecordError
from tests.conftest import minimal_record
from tests.models.conftest import note_records  # noqa: F401  (fixture)


def _app() -> typer.Typer:
    app = typer.Typer()
    model_cli.register(app)

    @app.callback()
    def _root() -> None:
        """Root, so that ``model`` stays a sub-command."""

    return app


FAST = ["--steps", "4", "--block-size", "32", "--batch-size", "2"]


@pytest.mark.slow
def test_init_prints_counts_and_where_the_model_is(note_records: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "models" / "tiny-clinical"
    result = CliRunner().invoke(
        _app(),
        ["model", "init", "--records", str(note_records), "--out", str(out), *FAST, "--multimodal"],
    )
    assert result.exit_code == 0, result.output
    assert f"{note_records}: read 8 = used 8 + rejected 0" in result.output
    assert "held-out perplexity" in result.output
    assert "evaluation patients: left out" in result.output  # the default, said out loud
    vl = out.parent / "tiny-clinical-vl"
    assert result.output.strip().splitlines()[-1] == (
        f"model init: tiny model written to {out} and {vl}"
    )
    vl_manifest = json.loads((vl / "manifest.json").read_text(encoding="utf-8"))
    assert vl_manifest["kind"] == "vision_language_model"
    assert vl_manifest["text_model"] == str(out)
    assert (vl / "processor_config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["args"]["steps"] == 4 and manifest["args"]["threads"] is None  # every core
    # no note text leaks into what the command prints
    assert "CHIEF COMPLAINT" not in result.output


def test_unknown_size_and_bad_record_are_bad_input(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    bad = minimal_record("P2")
    del bad["patient_id"]
    records.write_text(json.dumps(minimal_record()) + "\n" + json.dumps(bad) + "\n")
    args = ["model", "init", "--records", str(records), "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(_app(), [*args, "--size", "huge"])
    assert isinstance(result.exception, BadInputError)
    assert "unknown size 'huge'" in str(result.exception)
    result = CliRunner().invoke(_app(), args)
    assert isinstance(result.exception, RecordError)
    assert (result.exception.line, result.exception.field) == (2, "patient_id")
    assert not (tmp_path / "m").exists()


def test_every_option_has_help() -> None:
    result = CliRunner().invoke(_app(), ["model", "init", "--help"])
    assert result.exit_code == 0
    for option in ("--records", "--out", "--size", "--seed", "--steps", "--multimodal"):
        assert option in result.output
    command = typer.main.get_command(_app())
    init = command.commands["model"].commands["init"]  # type: ignore[attr-defined]
    assert all(param.help for param in init.params)
