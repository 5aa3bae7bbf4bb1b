from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llm.cli import main
from tests.conftest import minimal_record


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "clinical-llm" in capsys.readouterr().out
    assert main(["data", "--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_unknown_command_is_usage_error() -> None:
    assert main(["data", "no-such-verb"]) == 2


def test_validate_ok(write_jsonl, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    src = write_jsonl([minimal_record("A"), minimal_record("B")])
    assert main(["data", "validate", str(src)]) == 0
    captured = capsys.readouterr()
    assert "read 2 = used 2 + rejected 0" in captured.err
    assert "all 2 records valid" in captured.out


def test_validate_bad_line_exits_2_naming_file_line_field(
    write_jsonl,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    bad = minimal_record("B")
    bad["encounters"][0]["vitals"][0]["value"] = "fast"
    src = write_jsonl([minimal_record("A"), bad])
    assert main(["data", "validate", str(src)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # undo rich's line wrapping
    assert f"{src}:2: encounters[0].vitals[0].value" in err


def test_validate_with_rejects_exits_1(tmp_path: Path, write_jsonl) -> None:  # type: ignore[no-untyped-def]
    src = write_jsonl([minimal_record("A"), "nonsense"])
    rejects = tmp_path / "rejects.jsonl"
    assert main(["data", "validate", str(src), "--rejects", str(rejects)]) == 1
    assert json.loads(rejects.read_text())["line"] == 2


def test_cli_forces_telemetry_off(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    main(["data", "validate", str(write_jsonl([minimal_record()]))])
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
