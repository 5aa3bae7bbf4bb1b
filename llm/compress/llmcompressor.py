"""GPTQ-calibrated W8A8 and W4A16 with llm-compressor: ``compress make --method llmcompressor-*``.

The quantisation is llm-compressor's ``oneshot`` (:mod:`llm.compress.llmcompressor_oneshot`)
run with the interpreter of the llm-compressor venv (:mod:`llm.compress.llmcompressor_env`),
because llm-compressor cannot share the project's environment. The folder is written in
compressed-tensors format, which vLLM reads (``quant_method: compressed-tensors`` in
``config.json``), with the source's tokenizer files and ``manifest.json`` (kind
``model-compress``; ``format: compressed-tensors``).

* ``llmcompressor-w8a8``: SmoothQuant, then GPTQ int8 weights per output channel; int8
  activations per token at run time (vLLM on CPU: ``CPUInt8ScaledMMLinearKernel``).
* ``llmcompressor-w4a16``: GPTQ int4 weights, one scale per ``group_size`` inputs.

Unlike the other methods these are calibrated: GPTQ fits each layer's rounding to the
activations of ``calibration_samples`` conversations from the TRAIN split of the task
datasets (``<datasets>/<task>/train.jsonl``; never validation or test), taken in turn from
each task, tokenised with the source's chat template and cut to ``max_seq_length`` tokens.
Rows with image parts are skipped (the text model never sees them). The manifest records
which rows were used and the calibration tokens' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm.compress.folder import (
    REWRITTEN,
    check_out,
    check_source,
    copy_side_files,
    folder_size,
    write_compressed_folder,
)
from llm.compress.llmcompressor_env import (
    LLMCOMPRESSOR_VERSION,
    default_venv,
    missing_reason,
    venv_python,
    wanted_stamp,
)
from llm.errors import BadInputError
from llm.manifest import now_utc
from llm.models.loading import check_model_folder

LLMCOMPRESSOR_METHODS = ("llmcompressor-w8a8", "llmcompressor-w4a16")
ONESHOT_SCRIPT = Path(__file__).with_name("llmcompressor_oneshot.py")
ONESHOT_TIMEOUT_S = 3600
CALIBRATION_SPLIT = "train"
# files llm-compressor writes itself; the source's other non-weight files are copied over
_WRITTEN = (*REWRITTEN, "recipe.yaml")


class LLMCompressorSpec(BaseModel):
    """One llm-compressor quantisation: the scheme and its calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["llmcompressor-w8a8", "llmcompressor-w4a16"] = Field(
        description="llmcompressor-w8a8 | llmcompressor-w4a16 (see llm.compress.llmcompressor)."
    )
    group_size: int = Field(
        default=64,
        ge=16,
        description="Weights sharing one scale along the input dimension (llmcompressor-w4a16).",
    )
    calibration_samples: int = Field(
        default=64, ge=1, description="Train-split conversations GPTQ is calibrated on."
    )
    max_seq_length: int = Field(
        default=512, ge=16, description="Tokens kept of each calibration conversation."
    )

    @property
    def scheme(self) -> str:
        """The oneshot script's ``--scheme``: ``w8a8`` or ``w4a16``."""
        return self.method.removeprefix("llmcompressor-")

    @property
    def name(self) -> str:
        """A short name for folders and report rows, e.g. ``llmcompressor-w4a16-g64``."""
        if self.method == "llmcompressor-w4a16":
            return f"{self.method}-g{self.group_size}"
        return self.method


def is_llmcompressor_method(method: str) -> bool:
    """Whether ``method`` names an llm-compressor quantisation."""
    return method in LLMCOMPRESSOR_METHODS


def _text_only(messages: list[dict[str, Any]]) -> bool:
    return all(
        isinstance(m.get("content"), str)
        or all(part.get("type") == "text" for part in m.get("content", []))
        for m in messages
    )


def train_files(datasets: Path) -> list[Path]:
    """The ``train.jsonl`` files under ``datasets``: a task folder or a folder of task folders.

    Raises:
        BadInputError: there is none.
    """
    own = datasets / f"{CALIBRATION_SPLIT}.jsonl"
    files = [own] if own.is_file() else sorted(datasets.glob(f"*/{CALIBRATION_SPLIT}.jsonl"))
    if not files:
        raise BadInputError(
            f"{datasets}: no {CALIBRATION_SPLIT}.jsonl in it or its task folders; calibration "
            "reads the train split of the task datasets (e.g. build/<run>/datasets)"
        )
    return files


def calibration_rows(datasets: Path, samples: int) -> list[tuple[str, dict[str, Any]]]:
    """``samples`` text-only train conversations, taken in turn from each task.

    Returns:
        ``(where, row)`` pairs; ``where`` is ``<task>/train.jsonl:<line>``.

    Raises:
        BadInputError: no train file; a line is not JSON with ``messages``; fewer text-only
            rows than ``samples``.
    """
    per_task: list[list[tuple[str, dict[str, Any]]]] = []
    for path in train_files(datasets):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.parent.name}/{path.name}:{number}"
            try:
                row = json.loads(line)
                messages = row["messages"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BadInputError(f"{where}: not a JSON row with messages ({exc})") from None
            if _text_only(messages):
                rows.append((where, row))
        if rows:
            per_task.append(rows)
    longest = max(map(len, per_task), default=0)
    chosen = [rows[i] for i in range(longest) for rows in per_task if i < len(rows)][:samples]
    if len(chosen) < samples:
        raise BadInputError(
            f"{datasets}: {len(chosen)} text-only train rows, fewer than "
            f"--calibration-samples {samples}"
        )
    return chosen


def write_calibration(
    source: Path, datasets: Path, spec: LLMCompressorSpec, path: Path
) -> dict[str, Any]:
    """Tokenise the calibration rows with ``source``'s chat template into JSON lines at ``path``.

    Returns:
        The manifest's ``calibration`` field: split, rows, tokens and their SHA-256.
    """
    from llm.models.chat_tokenize import tokenize_chat
    from llm.models.loading import load_tokenizer

    tokenizer = load_tokenizer(source)
    digest = hashlib.sha256()
    tokens = 0
    rows = calibration_rows(datasets, spec.calibration_samples)
    with path.open("w", encoding="utf-8") as out:
        for where, row in rows:
            chat = tokenize_chat(
                row["messages"], tokenizer, max_length=spec.max_seq_length, where=where
            )
            line = json.dumps({"input_ids": chat["input_ids"]})
            digest.update(line.encode())
            tokens += len(chat["input_ids"])
            out.write(line + "\n")
    return {
        "datasets": str(datasets.resolve()),
        "split": CALIBRATION_SPLIT,
        "samples": len(rows),
        "rows": [where for where, _ in rows],
        "tokens": tokens,
        "tokens_sha256": digest.hexdigest(),
    }


def oneshot_command(
    python: Path, source: Path, out: Path, calibration: Path, spec: LLMCompressorSpec
) -> list[str]:
    """The oneshot script's call that writes ``spec``'s quantisation of ``source`` to ``out``.

    ``-I`` (isolated): the script's folder is not put on ``sys.path``, where this module
    (``llmcompressor.py``) would shadow the ``llmcompressor`` package.
    """
    return [
        str(python),
        "-I",
        str(ONESHOT_SCRIPT),
        "--model",
        str(source),
        "--out",
        str(out),
        "--scheme",
        spec.scheme,
        "--calibration",
        str(calibration),
        "--max-seq-length",
        str(spec.max_seq_length),
        "--group-size",
        str(spec.group_size),
    ]


def _oneshot_env() -> dict[str, str]:
    # a local folder in, nothing fetched from a model hub
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _run_oneshot(command: list[str], source: Path) -> dict[str, Any]:
    try:
        done = subprocess.run(
            command,
            env=_oneshot_env(),
            capture_output=True,
            text=True,
            timeout=ONESHOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BadInputError(f"{source}: llm-compressor ran past {ONESHOT_TIMEOUT_S} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BadInputError(f"{source}: llm-compressor oneshot failed:\n{tail}")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


@dataclass(frozen=True)
class LLMCompressorModel:
    """What :func:`quantize_llmcompressor` wrote."""

    out: Path
    manifest: dict[str, Any]


def quantize_llmcompressor(
    source: str | Path,
    out: str | Path,
    spec: LLMCompressorSpec,
    *,
    datasets: str | Path,
    venv: Path | None = None,
) -> LLMCompressorModel:
    """Quantise the model folder ``source`` into ``out`` with llm-compressor, as ``spec`` says.

    Args:
        source: model folder (config, safetensors weights, tokenizer with chat template).
        out: folder to write; new, empty, or an earlier ``compress`` output (replaced).
        spec: scheme, W4A16 group size and calibration size.
        datasets: task datasets (``<task>/train.jsonl``); only the train split is read.
        venv: the llm-compressor venv (default ``build/llmcompressor-venv``).

    Returns:
        The folder and its manifest (method, parameters, calibration rows, sizes, source and
        written file SHA-256s, the venv's pinned requirements, seconds).

    Raises:
        BadInputError: the venv is missing (the message says how to build it); ``source`` is
            not a loadable model folder or is already quantised; ``out`` holds something
            else; too few train rows; the oneshot failed (its last lines attached).
    """
    started = now_utc()
    venv = venv or default_venv()
    missing = missing_reason(venv)
    if missing:
        raise BadInputError(missing)
    source_dir = check_model_folder(source).resolve()
    out_dir = Path(out)
    check_out(out_dir)
    check_source(source_dir)
    datasets_dir = Path(datasets)
    train_files(datasets_dir)

    def fill(stage: Path) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
            calibration_file = Path(tmp) / "calibration.jsonl"
            calibration = write_calibration(source_dir, datasets_dir, spec, calibration_file)
            command = oneshot_command(venv_python(venv), source_dir, stage, calibration_file, spec)
            summary = _run_oneshot(command, source_dir)
        copy_side_files(source_dir, stage, _WRITTEN)
        return {
            "format": "compressed-tensors",
            "compression": {"name": spec.name, **spec.model_dump(mode="json")},
            "calibration": calibration,
            "oneshot": summary,
            "size": folder_size(stage),
            "libraries": {"llmcompressor": LLMCOMPRESSOR_VERSION},
            "export_environment": wanted_stamp()["requirements"],
        }

    manifest = write_compressed_folder(source_dir, out_dir, started, fill)
    return LLMCompressorModel(out=out_dir, manifest=manifest)
