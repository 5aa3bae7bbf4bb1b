"""``compress make --method openvino-*``: the spec, the exporter call, and real exports.

The real exports run ``optimum-cli export openvino`` in the export venv (built on first use,
``tests/compress/openvino_fixtures.py``) on the serving tests' tiny random Llama.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from llm.cli import compress as compress_cli
from llm.compress.openvino import (
    IR_FILES,
    TOKENIZER_FILES,
    OpenVINOSpec,
    export_command,
    export_openvino,
)
from tests.compress.openvino_fixtures import ensure_export_venv, tiny_openvino_ir  # noqa: F401
from tests.serving.backends.conftest import text_model  # noqa: F401
from tests.train.conftest import chat_tokenizer  # noqa: F401
from tests.train.fixtures import session_dir


def test_spec_names_and_defaults() -> None:
    assert OpenVINOSpec(method="openvino-int4").name == "openvino-int4-g64"
    assert OpenVINOSpec(method="openvino-int8").name == "openvino-int8"
    with pytest.raises(ValidationError):
        OpenVINOSpec.model_validate({"method": "openvino-int3"})


def test_export_command_asks_for_the_weight_format_and_int4_grouping(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    int8 = export_command(
        python, tmp_path / "src", tmp_path / "out", OpenVINOSpec(method="openvino-int8")
    )
    assert int8[0] == str(tmp_path / "venv" / "bin" / "optimum-cli")
    assert int8[int8.index("--weight-format") + 1] == "int8"
    assert "--trust-remote-code" not in int8 and "--group-size" not in int8
    int4 = export_command(
        python,
        tmp_path / "src",
        tmp_path / "out",
        OpenVINOSpec(method="openvino-int4", group_size=16),
    )
    assert int4[int4.index("--group-size") + 1] == "16"
    assert int4[int4.index("--ratio") + 1] == "1.0"


def _app() -> typer.Typer:
    app = typer.Typer()
    compress_cli.register(app)

    @app.callback()
    def _root() -> None:
        """Root, so that ``compress`` stays a sub-command."""

    return app


def test_make_refuses_sparsity_for_an_openvino_method(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "compress",
            "make",
            str(tmp_path),
            "--method",
            "openvino-int8",
            "--sparsity",
            "0.5",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code != 0
    assert "--sparsity does not apply to openvino-int8" in str(result.exception)


@pytest.mark.slow
def test_int8_export_writes_the_ir_the_openvino_tokenizer_and_a_manifest(
    tiny_openvino_ir: Path,  # noqa: F811
    text_model: Path,  # noqa: F811
) -> None:
    for name in (*IR_FILES, *TOKENIZER_FILES, "config.json", "manifest.json"):
        assert (tiny_openvino_ir / name).is_file(), name
    manifest = json.loads((tiny_openvino_ir / "manifest.json").read_text())
    assert manifest["kind"] == "model-compress" and manifest["format"] == "openvino-ir"
    assert manifest["compression"]["method"] == "openvino-int8"
    # the export is shared by the session's modules, each with its own copy of text_model
    assert Path(manifest["source"]["path"]).name == text_model.name
    assert set(manifest["source"]["files"]) >= {"config.json", "model.safetensors"}
    assert set(manifest["files"]) >= {*IR_FILES, *TOKENIZER_FILES}
    assert 0 < manifest["size"]["weights_bytes"] < manifest["source"]["size"]["weights_bytes"]
    assert any(r.startswith("optimum-intel") for r in manifest["export_environment"])
    # nncf's int8 weights are really in the IR
    assert 'element_type="u8"' in (tiny_openvino_ir / "openvino_model.xml").read_text()


@pytest.mark.slow
def test_int4_export_is_smaller_than_int8_and_replaces_an_earlier_output(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_openvino_ir: Path,  # noqa: F811
    text_model: Path,  # noqa: F811
) -> None:
    ensure_export_venv(tmp_path_factory)
    out = session_dir(tmp_path_factory) / "openvino-ir-int4" / "tiny"
    spec = OpenVINOSpec(method="openvino-int4", group_size=16)
    export_openvino(text_model, out, spec)
    result = export_openvino(text_model, out, spec)  # an earlier compress output is replaced
    int8 = json.loads((tiny_openvino_ir / "manifest.json").read_text())
    assert result.manifest["size"]["weights_bytes"] < int8["size"]["weights_bytes"]
    assert 'element_type="u4"' in (out / "openvino_model.xml").read_text()
    assert not list(out.parent.glob(".*partial*"))
