"""What an export reads: a training run folder, one of its saved models, and its base.

A run folder (``training.output_dir``) holds ``manifest.json`` (written when
training finished), ``final/`` and ``checkpoint-N/`` folders. Each saved folder
is one of three layouts:

* **adapter**: ``adapter_model.safetensors`` + ``adapter_config.json`` (LoRA/QLoRA);
* **weights**: ``model*.safetensors`` + ``config.json`` (full fine-tune; under
  ZeRO-3 the Trainer gathers them when ``stage3_gather_16bit_weights_on_model_save``
  is on);
* **zero shards**: only DeepSpeed's partitioned ``global_stepN/zero_pp_rank_*``
  files (a ZeRO checkpoint saved without gathering); they are pickles, read
  only on request (see :mod:`llm.export.zero`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llm.errors import BadInputError
from llm.files import read_json_object
from llm.manifest import MANIFEST, file_sha256

Layout = Literal["adapter", "weights", "zero_shards"]

FINAL = "final"
LATEST = "latest"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_METHODS = ("lora", "qlora")


@dataclass(frozen=True)
class BaseModel:
    """The base model a run started from, as its manifest records it.

    Attributes:
        path: the local model folder (``model.base`` of the recipe).
        exists: whether that folder is still there with a config and safetensors.
        manifest_sha256: SHA-256 of ``path/manifest.json`` (None when it has none).
    """

    path: Path
    exists: bool
    manifest_sha256: str | None


@dataclass(frozen=True)
class RunSource:
    """One saved model of a training run, ready to export.

    Attributes:
        run_dir: the run folder.
        manifest: the run's ``manifest.json`` (parsed).
        manifest_sha256: SHA-256 of that file.
        checkpoint: ``final`` or ``checkpoint-N``.
        folder: ``run_dir/checkpoint``.
        layout: ``adapter``, ``weights`` or ``zero_shards``.
        method: ``lora``, ``qlora`` or ``full``.
        multimodal: a LLaVA-style vision-language model (saved with its processor).
        base: the run's base model.
    """

    run_dir: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    checkpoint: str
    folder: Path
    layout: Layout
    method: str
    multimodal: bool
    base: BaseModel

    @property
    def is_adapter(self) -> bool:
        """Whether the run trained adapters (LoRA/QLoRA) rather than every weight."""
        return self.method in ADAPTER_METHODS


def read_run_manifest(run_dir: Path) -> dict[str, Any]:
    """``run_dir/manifest.json`` of a finished training run.

    Raises:
        BadInputError: the folder, the manifest or its ``model`` fields are missing,
            or the manifest is not a training run's.
    """
    if not run_dir.is_dir():
        raise BadInputError(f"{run_dir}: run folder not found")
    path = run_dir / MANIFEST
    if not path.is_file():
        raise BadInputError(
            f"{run_dir}: no {MANIFEST}; this is not a finished training run (the manifest is "
            "written when training ends: finish an interrupted run with `clinical-llm train "
            "RECIPE --resume`)"
        )
    manifest = read_json_object(path, what="training run manifest")
    if manifest.get("kind") != "train":
        kind = manifest.get("kind")
        raise BadInputError(f"{path}: kind: expected 'train' (a training run), got {kind!r}")
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("base"), str):
        raise BadInputError(f"{path}: model.base: missing; cannot tell which base model was tuned")
    if model.get("method") not in (*ADAPTER_METHODS, "full"):
        raise BadInputError(
            f"{path}: model.method: expected lora, qlora or full, got {model.get('method')!r}"
        )
    return manifest


def available_checkpoints(run_dir: Path) -> list[str]:
    """Saved models in ``run_dir``: ``checkpoint-N`` folders by step, then ``final``."""
    steps = sorted(
        int(m.group(1))
        for p in run_dir.iterdir()
        if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))
    )
    names = [f"checkpoint-{n}" for n in steps]
    if (run_dir / FINAL).is_dir():
        names.append(FINAL)
    return names


def resolve_checkpoint(run_dir: Path, requested: str) -> str:
    """The folder name that ``--checkpoint`` names.

    Args:
        run_dir: the run folder.
        requested: ``final``, ``latest`` (the newest ``checkpoint-N``) or ``checkpoint-N``.

    Returns:
        ``final`` or ``checkpoint-N``.

    Raises:
        BadInputError: the run saved nothing, or the name is not among its saved models
            (the message lists them).
    """
    available = available_checkpoints(run_dir)
    if not available:
        raise BadInputError(
            f"{run_dir}: no final/ and no checkpoint-N/ folders; the run saved no model"
        )
    if requested == LATEST:
        steps = [name for name in available if name != FINAL]
        if not steps:
            raise BadInputError(
                f"--checkpoint latest: {run_dir} has no checkpoint-N folders; "
                f"available: {', '.join(available)}"
            )
        return steps[-1]
    if requested not in available:
        raise BadInputError(
            f"--checkpoint {requested}: not in {run_dir}; available: {', '.join(available)} "
            "(or 'latest')"
        )
    return requested


def detect_layout(folder: Path) -> Layout:
    """Which of the three saved layouts ``folder`` holds.

    Raises:
        BadInputError: none of them (named: what was expected).
    """
    if (folder / ADAPTER_WEIGHTS).is_file() and (folder / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (folder / "config.json").is_file() and any(folder.glob("model*.safetensors")):
        return "weights"
    if zero_tag_folder(folder) is not None:
        return "zero_shards"
    raise BadInputError(
        f"{folder}: holds no exportable model: expected {ADAPTER_WEIGHTS} + {ADAPTER_CONFIG} "
        "(LoRA), config.json + model*.safetensors (full fine-tune), or a DeepSpeed ZeRO "
        "checkpoint (latest + global_stepN/zero_pp_rank_*)"
    )


def zero_tag_folder(folder: Path) -> Path | None:
    """``folder/<tag>`` of a DeepSpeed ZeRO checkpoint (tag from ``latest``), or None."""
    latest = folder / "latest"
    if not latest.is_file():
        return None
    tag = latest.read_text(encoding="utf-8").strip()
    shards = folder / tag
    if tag and "/" not in tag and shards.is_dir() and any(shards.glob("zero_pp_rank_*")):
        return shards
    return None


def base_model(manifest: dict[str, Any]) -> BaseModel:
    """The base model the manifest records, checked on disk."""
    from llm.models.loading import check_model_folder

    path = Path(manifest["model"]["base"])
    try:
        check_model_folder(path)
        exists = True
    except BadInputError:
        exists = False
    base_manifest = path / MANIFEST
    digest = file_sha256(base_manifest) if base_manifest.is_file() else None
    return BaseModel(path=path, exists=exists, manifest_sha256=digest)


def open_run(run_dir: Path, checkpoint: str = FINAL) -> RunSource:
    """Read a run folder and pick the saved model to export.

    Args:
        run_dir: ``training.output_dir`` of a finished run.
        checkpoint: ``final`` (default), ``latest`` or ``checkpoint-N``.

    Returns:
        The source, with its layout and base model.

    Raises:
        BadInputError: no manifest, nothing saved, an unknown checkpoint name, a
            folder with no model in it, or an adapter folder in a full fine-tune
            (or the reverse).
    """
    manifest = read_run_manifest(run_dir)
    name = resolve_checkpoint(run_dir, checkpoint)
    folder = run_dir / name
    layout = detect_layout(folder)
    method = str(manifest["model"]["method"])
    if layout == "zero_shards" and method in ADAPTER_METHODS:
        raise BadInputError(
            f"{folder}: a {method} checkpoint with DeepSpeed shards only and no "
            f"{ADAPTER_WEIGHTS}; export final/ or a checkpoint-N that holds the adapter"
        )
    if (layout == "adapter") != (method in ADAPTER_METHODS):
        raise BadInputError(
            f"{folder}: holds {'an adapter' if layout == 'adapter' else 'full weights'} but "
            f"{run_dir / MANIFEST} says model.method={method}"
        )
    return RunSource(
        run_dir=run_dir,
        manifest=manifest,
        manifest_sha256=file_sha256(run_dir / MANIFEST),
        checkpoint=name,
        folder=folder,
        layout=layout,
        method=method,
        multimodal=bool(manifest["model"].get("multimodal", False)),
        base=base_model(manifest),
    )
