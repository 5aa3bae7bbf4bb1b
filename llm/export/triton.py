"""A standard Triton model repository for a trained model: ``export RUN --triton --out REPO``.

Layout (what any Triton server loads with ``--model-repository REPO``)::

    REPO/manifest.json                  kind "export", format "triton", every file hashed
    REPO/<name>/config.pbtxt            Python backend, decoupled (streams tokens)
    REPO/<name>/1/model.py              llm/export/triton_model.py, copied verbatim
    REPO/<name>/1/hf_model/...          safetensors weights, tokenizer, chat template,
                                        and the export manifest of the weights

The weights come from a training run (an adapter run is merged first: the
Python backend serves one plain model) or from a plain model folder (an
earlier merged/full export, or any local transformers checkpoint with a chat
template), so the repository is self-contained: copy it to the production
Triton host as is. Vision-language models are refused: the model code is
text-only.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.export.exporter import NAME_RE, export_run
from llm.export.folder import EXPORT_KIND, staged_folder
from llm.export.source import FINAL, open_run
from llm.manifest import MANIFEST, base_manifest, file_sha256, library_versions, write_manifest

Progress = Callable[[str], None]

MODEL_FILE = Path(__file__).with_name("triton_model.py")
MODEL_FOLDER = "hf_model"  # triton_model.MODEL_FOLDER: model.py finds the weights there
VERSION = "1"
DEFAULT_CONTEXT = 2048

# (name, Triton type, dims, optional)
INPUTS: tuple[tuple[str, str, str, bool], ...] = (
    ("prompt", "TYPE_STRING", "[ 1 ]", True),
    ("messages", "TYPE_STRING", "[ 1 ]", True),
    ("max_tokens", "TYPE_INT32", "[ 1 ]", False),
    ("temperature", "TYPE_FP32", "[ 1 ]", True),
    ("top_p", "TYPE_FP32", "[ 1 ]", True),
    ("seed", "TYPE_INT64", "[ 1 ]", True),
    ("stop", "TYPE_STRING", "[ -1 ]", True),
)
OUTPUTS: tuple[tuple[str, str], ...] = (
    ("text", "TYPE_STRING"),
    ("finish_reason", "TYPE_STRING"),
    ("token_count", "TYPE_INT32"),
    ("prompt_tokens", "TYPE_INT32"),
)


@dataclass(frozen=True)
class TritonExportResult:
    """What :func:`export_triton` wrote.

    Attributes:
        out: the repository folder.
        name: the Triton model name (``out/name``).
        source: the run or model folder it came from.
        decoupled: whether the model streams (decoupled transaction policy).
        max_model_len: the context length recorded in ``config.pbtxt``.
        files: repository-relative path -> ``{"bytes", "sha256"}``.
        seconds: wall time of the export.
    """

    out: Path
    name: str
    source: Path
    decoupled: bool
    max_model_len: int
    files: dict[str, dict[str, Any]]
    seconds: float

    @property
    def total_bytes(self) -> int:
        """Size of the written files."""
        return sum(int(f["bytes"]) for f in self.files.values())


def model_config_text(name: str, *, max_model_len: int, decoupled: bool = True) -> str:
    """The ``config.pbtxt`` of the exported model (protobuf text format of ``ModelConfig``).

    Args:
        name: the model name (the folder's name; Triton requires them equal).
        max_model_len: the context length, published as parameter ``max_model_len``.
        decoupled: stream responses (decoupled transaction policy).
    """
    inputs = ",\n".join(
        f'  {{ name: "{n}" data_type: {t} dims: {d}{" optional: true" if opt else ""} }}'
        for n, t, d, opt in INPUTS
    )
    outputs = ",\n".join(f'  {{ name: "{n}" data_type: {t} dims: [ 1 ] }}' for n, t in OUTPUTS)
    return (
        f'name: "{name}"\n'
        'backend: "python"\n'
        "max_batch_size: 0\n"
        f"model_transaction_policy {{ decoupled: {'true' if decoupled else 'false'} }}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        # one CPU instance; for GPUs set kind: KIND_GPU (model.py then uses that device)
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
        f'parameters {{ key: "max_model_len" value: {{ string_value: "{max_model_len}" }} }}\n'
    )


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _check_text_model(folder: Path) -> int:
    """The context length of a text model folder.

    Raises:
        BadInputError: an adapter folder, a vision-language model, or no tokenizer/chat template.
    """
    if (folder / "adapter_config.json").is_file():
        raise BadInputError(
            f"{folder}: an adapter folder; export the training run with --triton (it merges "
            "the adapter), or a --merge export of it"
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "vision_config" in config:
        raise BadInputError(
            f"{folder}/config.json: a vision-language model; the Triton export serves text "
            "models only (use the transformers or vllm backend for images)"
        )
    if not (folder / "tokenizer_config.json").is_file():
        raise BadInputError(f"{folder}: no tokenizer_config.json; the model needs its tokenizer")
    text_config = config.get("text_config", config)
    return int(text_config.get("max_position_embeddings") or DEFAULT_CONTEXT)


def _copy_model_folder(folder: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        # only what a transformers load reads (and the provenance manifest): never pickles
        if path.is_file() and not path.name.endswith((".bin", ".pt", ".pth", ".pkl")):
            shutil.copyfile(path, target / path.name)


def _file_entries(stage: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(stage)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(stage.rglob("*"))
        if p.is_file() and p != stage / MANIFEST
    }


def _stage_weights(
    source: Path,
    target: Path,
    *,
    checkpoint: str,
    dtype: str | None,
    allow_deepspeed_shards: bool,
    progress: Progress,
) -> dict[str, Any]:
    """Put a plain model folder for ``source`` (a run or a model folder) at ``target``."""
    if _is_model_folder(source):
        progress("copying the model folder")
        _copy_model_folder(source, target)
        return {"model_folder": str(source.resolve())}
    run = open_run(source, checkpoint)
    if run.multimodal:
        raise BadInputError(
            f"{source}: a vision-language run; the Triton export serves text models only"
        )
    # export_run writes the merged (adapter runs) or full weights with tokenizer and manifest
    result = export_run(
        source,
        target,
        merge=run.is_adapter,
        checkpoint=checkpoint,
        dtype=dtype,
        allow_deepspeed_shards=allow_deepspeed_shards,
        progress=progress,
    )
    return {"run_dir": str(source.resolve()), "checkpoint": run.checkpoint, "format": result.format}


def export_triton(
    source: Path,
    out: Path,
    *,
    name: str | None = None,
    checkpoint: str = FINAL,
    dtype: str | None = None,
    decoupled: bool = True,
    allow_deepspeed_shards: bool = False,
    progress: Progress | None = None,
) -> TritonExportResult:
    """Write a Triton model repository serving ``source``.

    Args:
        source: a training run folder (adapter runs are merged), or a plain model
            folder (``config.json`` + safetensors + tokenizer with chat template).
        out: the repository: missing, empty, or an earlier export (replaced whole).
        name: Triton model name (default: ``source``'s folder name).
        checkpoint: for runs: ``final``, ``latest`` or ``checkpoint-N``.
        dtype: for runs: ``bf16``/``fp16``/``fp32`` of the written weights.
        decoupled: stream tokens (decoupled policy); False answers with one response.
        allow_deepspeed_shards: for runs: consolidate a ZeRO-shards-only checkpoint.
        progress: called with a short description as each stage starts.

    Returns:
        What was written.

    Raises:
        BadInputError: a bad name, a source that is neither a run nor a model
            folder, an adapter folder, a vision-language model, a model without
            tokenizer or chat template, or an ``out`` that is not empty and not an export.
    """
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    step = progress or (lambda _: None)
    served = name or source.resolve().name
    if not NAME_RE.match(served):
        raise BadInputError(
            f"--name {served!r}: use letters, digits, '.', '_' and '-' (up to 128, starting "
            "with a letter or digit); it becomes the Triton model name"
        )
    if not source.is_dir():
        raise BadInputError(f"{source}: not a folder (expected a training run or a model folder)")
    if not _is_model_folder(source) and not (source / MANIFEST).is_file():
        raise BadInputError(
            f"{source}: neither a training run (manifest.json) nor a model folder "
            "(config.json and *.safetensors)"
        )
    with staged_folder(out) as stage:
        version = stage / served / VERSION
        weights = version / MODEL_FOLDER
        version.mkdir(parents=True)
        origin = _stage_weights(
            source,
            weights,
            checkpoint=checkpoint,
            dtype=dtype,
            allow_deepspeed_shards=allow_deepspeed_shards,
            progress=step,
        )
        max_model_len = _check_text_model(weights)
        step("checking the tokenizer and chat template")
        _check_chat_template(weights)
        shutil.copyfile(MODEL_FILE, version / "model.py")
        (stage / served / "config.pbtxt").write_text(
            model_config_text(served, max_model_len=max_model_len, decoupled=decoupled),
            encoding="utf-8",
        )
        step("hashing the files")
        files = _file_entries(stage)
        manifest = base_manifest(EXPORT_KIND, started=started)
        manifest.update(
            {
                "name": served,
                "format": "triton",
                "decoupled": decoupled,
                "max_model_len": max_model_len,
                "source": origin,
                "files": files,
                "libraries": library_versions(("torch", "transformers", "safetensors")),
            }
        )
        write_manifest(stage, manifest)
    return TritonExportResult(
        out=out,
        name=served,
        source=source,
        decoupled=decoupled,
        max_model_len=max_model_len,
        files=files,
        seconds=time.perf_counter() - clock,
    )


def _check_chat_template(folder: Path) -> None:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the tokenizer: {exc}") from None
    if tokenizer.chat_template is None:
        raise BadInputError(
            f"{folder}: the tokenizer has no chat template; a served model needs one"
        )
