"""``export_run``: one saved model of a training run -> a folder a server loads.

Three outputs, chosen by what the run trained and ``merge``:

* **adapter** (LoRA/QLoRA, the default): ``adapter_model.safetensors`` and
  ``adapter_config.json`` whose ``base_model_name_or_path`` is the local base
  folder the run manifest records; what a vLLM LoRA request or the gateway's
  ``--adapter NAME=DIR`` loads on top of that base.
* **merged** (LoRA/QLoRA with ``merge``): the base with the adapter folded in,
  a plain safetensors model that loads without peft.
* **full** (full fine-tunes): the run's consolidated weights, copied (or
  converted to ``dtype``); from a ZeRO checkpoint that holds only DeepSpeed
  shards they are consolidated first (``allow_deepspeed_shards``).

Every output also gets the tokenizer (or the processor of a vision-language
model) with its chat template, ``generation_config.json`` and a
``manifest.json`` of kind ``export`` that points at the run manifest and the
base model's manifest by path and SHA-256 and lists every file with its SHA-256,
and a model card ``README.md`` (:mod:`llm.export.card`; named, not hashed).
Jobs that load weights run in a separate process (:mod:`llm.export.merge_worker`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from llm.errors import BadInputError
from llm.export.card import CARD, render_card, write_card
from llm.export.folder import EXPORT_KIND, staged_folder
from llm.export.merge import TORCH_DTYPES, saved_dtype
from llm.export.merge_worker import run_worker
from llm.export.source import ADAPTER_CONFIG, ADAPTER_WEIGHTS, FINAL, RunSource, open_run
from llm.manifest import MANIFEST, base_manifest, file_sha256, library_versions, write_manifest

log = logging.getLogger(__name__)

ExportFormat = Literal["adapter", "merged", "full"]
Progress = Callable[[str], None]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GENERATION_CONFIG = "generation_config.json"
FULL_MODEL_FILES = ("config.json", GENERATION_CONFIG, "model.safetensors.index.json")
LIBRARIES = ("torch", "transformers", "tokenizers", "peft", "safetensors", "deepspeed")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes:
        out: the export folder.
        format: ``adapter``, ``merged`` or ``full``.
        name: the model name a server should expose it under.
        source: the run and saved model it came from.
        dtype: dtype of the written weights (None: an adapter copied as saved).
        files: file name -> ``{"bytes", "sha256"}`` (the manifest excluded).
        manifest_path: ``out/manifest.json``.
        seconds: wall time of the export.
    """

    out: Path
    format: ExportFormat
    name: str
    source: RunSource
    dtype: str | None
    files: dict[str, dict[str, Any]]
    manifest_path: Path
    seconds: float

    @property
    def total_bytes(self) -> int:
        """Size of the exported files."""
        return sum(int(f["bytes"]) for f in self.files.values())


def _check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadInputError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (up to 128, starting "
            "with a letter or digit); it becomes the served model name"
        )
    return name


def _check_request(source: RunSource, *, merge: bool, dtype: str | None, shards: bool) -> None:
    if dtype is not None and dtype not in TORCH_DTYPES:
        raise BadInputError(f"--dtype {dtype}: expected one of {', '.join(TORCH_DTYPES)}")
    if merge and not source.is_adapter:
        raise BadInputError(
            f"--merge: {source.run_dir} is a full fine-tune (model.method=full), there is no "
            "adapter to merge; export it without --merge"
        )
    if source.is_adapter and not source.base.exists:
        raise BadInputError(
            f"{source.run_dir / MANIFEST}: model.base {source.base.path} is not a model folder "
            "(missing, or no config.json / *.safetensors); the adapter needs the base it was "
            "trained on: restore that folder at this path and export again"
        )
    if source.layout == "zero_shards" and not shards:
        raise BadInputError(
            f"{source.folder}: holds only DeepSpeed ZeRO shards (no consolidated weights). "
            "They are pickle files this run wrote; to consolidate them (read with "
            "weights_only=True and an allowlist of DeepSpeed classes), pass "
            "--allow-deepspeed-shards, or export 'final' instead"
        )


def _write_adapter(source: RunSource, stage: Path, dtype: str | None) -> None:
    config = json.loads((source.folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    # the served adapter must point at the base it trained on, as a local folder
    config["base_model_name_or_path"] = str(source.base.path.resolve())
    config["inference_mode"] = True
    (stage / ADAPTER_CONFIG).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    weights = source.folder / ADAPTER_WEIGHTS
    if dtype is None:
        shutil.copyfile(weights, stage / ADAPTER_WEIGHTS)
        return
    from safetensors.torch import load_file, save_file

    target = TORCH_DTYPES[dtype]
    tensors = {
        k: v.to(target) if v.is_floating_point() else v for k, v in load_file(str(weights)).items()
    }
    save_file(tensors, str(stage / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def _copy_full_weights(folder: Path, stage: Path) -> None:
    names = [n for n in FULL_MODEL_FILES if (folder / n).is_file()]
    names += sorted(p.name for p in folder.glob("model*.safetensors"))
    for name in names:
        shutil.copyfile(folder / name, stage / name)


def save_processing(source: RunSource, stage: Path) -> None:
    """Write the tokenizer (or processor) with its chat template into ``stage``.

    Taken from the saved model's folder (the run saved them beside it), or the base.

    Raises:
        BadInputError: neither folder has a loadable tokenizer with a chat template.
    """
    from transformers import AutoProcessor, AutoTokenizer

    folder = source.folder if (source.folder / "tokenizer_config.json").is_file() else None
    folder = folder or source.base.path
    loader: Any = AutoProcessor if source.multimodal else AutoTokenizer
    try:
        processing = loader.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the tokenizer/processor: {exc}") from None
    tokenizer = getattr(processing, "tokenizer", processing)
    if tokenizer.chat_template is None:
        raise BadInputError(
            f"{folder}: the tokenizer has no chat template; a served model needs one"
        )
    processing.save_pretrained(str(stage))


def _copy_generation_config(source: RunSource, stage: Path) -> None:
    if (stage / GENERATION_CONFIG).is_file():
        return  # written with the model
    for folder in (source.folder, source.base.path):
        if (folder / GENERATION_CONFIG).is_file():
            shutil.copyfile(folder / GENERATION_CONFIG, stage / GENERATION_CONFIG)
            return


def _file_entries(stage: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(stage)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(stage.rglob("*"))
        # the card is not hashed: `eval run` rewrites its evaluation section later
        if p.is_file() and p.name not in (MANIFEST, CARD)
    }


def _global_step(source: RunSource) -> int | None:
    if source.checkpoint == FINAL:
        results = source.manifest.get("results")
        step = results.get("global_step") if isinstance(results, dict) else None
        return int(step) if isinstance(step, int) else None
    return int(source.checkpoint.split("-")[1])


def _manifest(
    source: RunSource,
    *,
    started: datetime,
    name: str,
    fmt: ExportFormat,
    dtype: str | None,
    files: dict[str, dict[str, Any]],
    worker: dict[str, Any] | None,
) -> dict[str, Any]:
    manifest = base_manifest(EXPORT_KIND, started=started)
    manifest.update(
        {
            "name": name,
            "format": fmt,
            "dtype": dtype,
            "source": {
                "run_dir": str(source.run_dir.resolve()),
                "run_manifest": str((source.run_dir / MANIFEST).resolve()),
                "run_manifest_sha256": source.manifest_sha256,
                "checkpoint": source.checkpoint,
                "global_step": _global_step(source),
                "layout": source.layout,
                "method": source.method,
                "multimodal": source.multimodal,
                "consolidated_from_deepspeed_shards": source.layout == "zero_shards",
            },
            "base_model": {
                "path": str(source.base.path.resolve()),
                "manifest_sha256": source.base.manifest_sha256,
                "exists": source.base.exists,
            },
            "weights": worker,
            "card": CARD,
            "files": files,
            "libraries": library_versions(LIBRARIES),
        }
    )
    return manifest


def export_run(
    run_dir: Path,
    out: Path,
    *,
    merge: bool = False,
    checkpoint: str = FINAL,
    dtype: str | None = None,
    name: str | None = None,
    allow_deepspeed_shards: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Export one saved model of a training run into a folder a server loads.

    Args:
        run_dir: ``training.output_dir`` of a finished run (with ``manifest.json``).
        out: export folder: missing, empty, or an earlier export (replaced whole).
        merge: fold a LoRA/QLoRA adapter into its base (only for adapter runs).
        checkpoint: ``final``, ``latest`` or ``checkpoint-N``.
        dtype: ``bf16``/``fp16``/``fp32`` for the written weights; None keeps them as
            saved (a merge then uses the base model's saved dtype).
        name: model name to serve it under (default: the run folder's name).
        allow_deepspeed_shards: consolidate a checkpoint that holds only DeepSpeed
            ZeRO shards (pickle files the run wrote; read weights-only).
        progress: called with a short description as each stage starts.

    Returns:
        What was written.

    Raises:
        BadInputError: a run folder without manifest or saved models, an unknown
            checkpoint (the available ones are listed), ``merge`` on a full
            fine-tune, a missing base model, shards without permission, a bad
            name or dtype, or an ``out`` folder that is not empty and not an export.
    """
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    step = progress or (lambda _: None)
    step("reading the run")
    source = open_run(run_dir, checkpoint)
    served = _check_name(name or run_dir.resolve().name)
    _check_request(source, merge=merge, dtype=dtype, shards=allow_deepspeed_shards)
    worker: dict[str, Any] | None = None
    fmt: ExportFormat
    with staged_folder(out) as stage:
        if source.is_adapter and not merge:
            fmt, written = "adapter", dtype
            step("copying the adapter")
            _write_adapter(source, stage, dtype)
        elif source.is_adapter:
            fmt = "merged"
            step("merging the adapter into the base (separate process)")
            worker = run_worker(
                {
                    "job": "merge",
                    "base": str(source.base.path),
                    "adapter": str(source.folder),
                    "out": str(stage),
                    "dtype": dtype,
                    "multimodal": source.multimodal,
                }
            )
            written = str(worker["dtype"])
        elif source.layout == "zero_shards":
            fmt = "full"
            written = dtype or saved_dtype(source.folder)
            step("consolidating the DeepSpeed ZeRO shards (separate process)")
            job = {"job": "consolidate", "checkpoint": str(source.folder), "out": str(stage)}
            worker = run_worker({**job, "dtype": written, "multimodal": source.multimodal})
        else:
            fmt = "full"
            written = dtype or saved_dtype(source.folder)
            if dtype is None or dtype == saved_dtype(source.folder):
                step("copying the weights")
                _copy_full_weights(source.folder, stage)
            else:
                step(f"converting the weights to {dtype} (separate process)")
                job = {"job": "convert", "model": str(source.folder), "out": str(stage)}
                worker = run_worker({**job, "dtype": dtype, "multimodal": source.multimodal})
        step("saving the tokenizer and chat template")
        save_processing(source, stage)
        _copy_generation_config(source, stage)
        step("writing the model card")
        write_card(stage, render_card(source, name=served, fmt=fmt, out=out))
        step("hashing the files")
        files = _file_entries(stage)
        manifest = _manifest(
            source, started=started, name=served, fmt=fmt, dtype=written, files=files, worker=worker
        )
        write_manifest(stage, manifest)
    log.info("exported %s (%s) of %s to %s", source.checkpoint, fmt, run_dir, out)
    return ExportResult(
        out=out,
        format=fmt,
        name=served,
        source=source,
        dtype=written,
        files=files,
        manifest_path=out / MANIFEST,
        seconds=time.perf_counter() - clock,
    )
