"""OpenVINO IR with fp32, INT8 or INT4 weights: ``compress make --method openvino-*``.

The export is ``optimum-cli export openvino`` (optimum-intel, weight compression by ``nncf``)
run with the interpreter of the OpenVINO export venv (:mod:`llm.compress.openvino_env`,
built on first use), because optimum-intel cannot share the project's environment. The
compressed folder holds:

* ``openvino_model.xml`` / ``.bin``: the model (stateful, with its KV cache inside);
* ``openvino_tokenizer.xml`` / ``openvino_detokenizer.xml`` (+ ``.bin``): the tokenizer as
  OpenVINO models (``openvino-tokenizers``), with the chat template in their runtime info, so
  ``openvino-genai`` serves the folder without transformers;
* the source's config, generation config and tokenizer files, and ``manifest.json`` (kind
  ``model-compress``, like every ``compress`` output; its ``format`` is ``openvino-ir``).

Weight compression is data-free (nothing is calibrated, no dataset is read):

* ``openvino-int8``: every weight, embeddings and output head included, int8 with one
  asymmetric scale per output channel (nncf ``INT8_ASYM``);
* ``openvino-int4``: the decoder's weights int4 (``INT4_ASYM``) with one scale per
  ``group_size`` inputs; the embeddings and output head int8 (nncf's backup precision);
* ``openvino-fp32``: no compression; the IR only (the reference for the other two).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm.compress.folder import check_out, check_source, write_compressed_folder
from llm.compress.openvino_env import OPENVINO_VERSION, ensure_openvino_venv, wanted_stamp
from llm.errors import BadInputError
from llm.manifest import now_utc
from llm.models.loading import check_model_folder
from llm.models.openvino_ir import IR_FILES

OPENVINO_METHODS = ("openvino-fp32", "openvino-int8", "openvino-int4")
TOKENIZER_FILES = (
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
    "openvino_detokenizer.bin",
)
EXPORT_TIMEOUT_S = 1800
_WEIGHT_FORMAT = {"openvino-fp32": "fp32", "openvino-int8": "int8", "openvino-int4": "int4"}


class OpenVINOSpec(BaseModel):
    """One OpenVINO export: the weight format and, for INT4, its grouping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["openvino-fp32", "openvino-int8", "openvino-int4"] = Field(
        description="openvino-fp32 | openvino-int8 | openvino-int4 (see llm.compress.openvino)."
    )
    group_size: int = Field(
        default=64,
        ge=-1,
        description="Weights sharing one scale along the input dimension (openvino-int4; "
        "-1: one per output channel).",
    )

    @property
    def name(self) -> str:
        """A short name for folders and report rows, e.g. ``openvino-int4-g64``."""
        if self.method == "openvino-int4":
            return f"{self.method}-g{self.group_size}"
        return self.method


def is_openvino_method(method: str) -> bool:
    """Whether ``method`` names an OpenVINO export."""
    return method in OPENVINO_METHODS


def export_command(python: Path, source: Path, out: Path, spec: OpenVINOSpec) -> list[str]:
    """The ``optimum-cli export openvino`` call that writes ``spec``'s IR of ``source``."""
    cli = python.parent / "optimum-cli"
    command = [
        str(cli),
        "export",
        "openvino",
        "--model",
        str(source),
        "--task",
        "text-generation-with-past",
        "--library",
        "transformers",
        "--weight-format",
        _WEIGHT_FORMAT[spec.method],
    ]
    if spec.method == "openvino-int4":
        command += ["--group-size", str(spec.group_size), "--ratio", "1.0"]
    return [*command, str(out)]


def _export_env() -> dict[str, str]:
    # a local folder in, nothing fetched from a model hub; OpenVINO's and nncf's telemetry
    # (openvino-telemetry) is opt-in through a consent file, so it stays off unasked
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
    }


def _run_export(python: Path, source: Path, stage: Path, spec: OpenVINOSpec) -> str:
    command = export_command(python, source, stage, spec)
    try:
        done = subprocess.run(
            command,
            env=_export_env(),
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BadInputError(f"{source}: OpenVINO export ran past {EXPORT_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BadInputError(f"{source}: OpenVINO export failed ({' '.join(command[:4])}):\n{tail}")
    missing = [name for name in (*IR_FILES, *TOKENIZER_FILES) if not (stage / name).is_file()]
    if missing:
        raise BadInputError(
            f"{source}: the OpenVINO export wrote no {', '.join(missing)} "
            "(the tokenizer needs openvino-tokenizers in the export venv; "
            "rebuild it: python scripts/openvino_env.py)"
        )
    return done.stderr


def _ir_size(folder: Path) -> dict[str, int]:
    files = [p for p in folder.iterdir() if p.is_file()]
    return {
        "weights_bytes": sum(p.stat().st_size for p in files if p.name in IR_FILES),
        "total_bytes": sum(p.stat().st_size for p in files),
    }


@dataclass(frozen=True)
class OpenVINOModel:
    """What :func:`export_openvino` wrote."""

    out: Path
    manifest: dict[str, Any]


def export_openvino(
    source: str | Path, out: str | Path, spec: OpenVINOSpec, *, venv: Path | None = None
) -> OpenVINOModel:
    """Export the model folder ``source`` to OpenVINO IR in ``out``, weights as ``spec`` says.

    Args:
        source: model folder (config, safetensors weights, tokenizer with chat template).
        out: folder to write; new, empty, or an earlier ``compress`` output (replaced).
        spec: weight format and INT4 group size.
        venv: the export venv (default ``build/openvino-venv``; built when missing).

    Returns:
        The folder and its manifest (method, parameters, source and written file SHA-256s,
        size on disk of both, the export venv's pinned requirements, seconds).

    Raises:
        BadInputError: ``source`` is not a loadable model folder or is already quantised;
            ``out`` holds something else; the export failed (its last lines attached).
    """
    started = now_utc()
    source_dir = check_model_folder(source)
    out_dir = Path(out)
    check_out(out_dir)
    check_source(source_dir)
    try:
        python = ensure_openvino_venv(venv)
    except subprocess.CalledProcessError as exc:
        raise BadInputError(
            f"cannot build the OpenVINO export venv ({exc}); "
            "build it by hand to see why: python scripts/openvino_env.py"
        ) from exc

    def fill(stage: Path) -> dict[str, Any]:
        _run_export(python, source_dir.resolve(), stage, spec)
        return {
            "format": "openvino-ir",
            "compression": {"name": spec.name, **spec.model_dump(mode="json")},
            "size": _ir_size(stage),
            "libraries": {"openvino": OPENVINO_VERSION},
            "export_environment": wanted_stamp()["requirements"],
        }

    manifest = write_compressed_folder(source_dir, out_dir, started, fill)
    return OpenVINOModel(out=out_dir, manifest=manifest)
