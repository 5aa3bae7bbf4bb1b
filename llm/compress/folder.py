"""Write a compressed model folder: weights, config, tokenizer files and a manifest.

The folder is a standard Hugging Face model folder, so everything that loads a model here
loads it (:func:`llm.models.loading.load_causal_lm`): quantised weights carry their torchao
``quantization_config`` in ``config.json`` and are read back by transformers from
safetensors; pruned weights are plain dense tensors. It is written to a staging folder
beside ``out`` and moved into place whole, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from llm.compress.methods import CompressionSpec, Method, decoder_linears, prune, torchao_config
from llm.errors import BadInputError
from llm.files import read_json_object
from llm.manifest import (
    base_manifest,
    earlier_manifest,
    file_sha256,
    library_versions,
    now_utc,
    write_manifest,
)
from llm.models.loading import build_meta_model, check_model_folder, load_causal_lm

MANIFEST_KIND = "model-compress"
LIBRARIES = ("torch", "torchao", "transformers", "safetensors")
# files of the source the compressed folder gets anew (weights, config) or must not carry
REWRITTEN = ("config.json", "generation_config.json", "manifest.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class CompressedModel:
    """What :func:`compress_model` wrote."""

    out: Path
    manifest: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the weight files."""
        return int(self.manifest["size"]["weights_bytes"])


def folder_size(folder: Path) -> dict[str, int]:
    """Bytes on disk of a model folder: its ``*.safetensors`` files and all its files."""
    files = [p for p in folder.iterdir() if p.is_file()]
    return {
        "weights_bytes": sum(p.stat().st_size for p in files if p.suffix == ".safetensors"),
        "total_bytes": sum(p.stat().st_size for p in files),
    }


def copy_side_files(source: Path, stage: Path, written: tuple[str, ...] = REWRITTEN) -> None:
    """Copy ``source``'s files that are neither weights nor ``written`` anew into ``stage``.

    They are the tokenizer, the chat template and the like, which every variant keeps as
    they were.
    """
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name not in written and path.suffix not in WEIGHT_SUFFIXES:
            shutil.copy2(path, stage / path.name)


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that holds anything but an earlier ``compress`` output."""
    if out.exists() and any(out.iterdir()):
        earlier = earlier_manifest(out)
        if earlier is None or earlier.get("kind") != MANIFEST_KIND:
            raise BadInputError(
                f"{out}: exists and is not an earlier `compress` output; choose a new --out"
            )


def check_source(source: Path) -> dict[str, Any]:
    """The config of an unquantised model folder; refuse an already quantised one."""
    config = read_json_object(source / "config.json", what="model config")
    if "quantization_config" in config:
        raise BadInputError(
            f"{source}: already quantised ({config['quantization_config'].get('quant_method')}); "
            "compress the unquantised model folder"
        )
    return config


def _check_group_size(source: Path, spec: CompressionSpec) -> None:
    """Refuse, before loading weights, a group size that does not divide every layer's input."""
    model = build_meta_model(source / "config.json")
    odd = sorted(
        {
            f"{name.rsplit('.', 1)[-1]} ({module.in_features})"
            for name, module in decoder_linears(model)
            if module.in_features % spec.group_size
        }
    )
    if odd:
        raise BadInputError(
            f"{source}: --group-size {spec.group_size} does not divide the input size of "
            f"{', '.join(odd)}; choose a group size that does (e.g. 16)"
        )


def _compress_into(source: Path, stage: Path, spec: CompressionSpec) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if spec.method is Method.int4_weight_only:
        _check_group_size(source, spec)
    if spec.quantizes:
        from transformers import AutoModelForCausalLM

        try:
            model: Any = AutoModelForCausalLM.from_pretrained(
                source,
                quantization_config=torchao_config(spec),
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                dtype="auto",
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise BadInputError(f"{source}: cannot quantise the model: {exc}") from exc
    else:
        model, _ = load_causal_lm(source)
        details["pruning"] = prune(model, spec)
    model.save_pretrained(stage, safe_serialization=True)
    copy_side_files(source, stage)
    return details


def compress_model(source: str | Path, out: str | Path, spec: CompressionSpec) -> CompressedModel:
    """Compress the model folder ``source`` into ``out`` as ``spec`` says.

    Args:
        source: model folder (config, safetensors weights, tokenizer; a base model or a merged
            fine-tune).
        out: folder to write; new, empty, or an earlier ``compress`` output (replaced).
        spec: method and parameters.

    Returns:
        The folder and its manifest (method, parameters, source file SHA-256s, library
        versions, size on disk).

    Raises:
        BadInputError: ``source`` is not a loadable model folder or is already quantised;
            ``out`` holds something else; torchao is missing.
    """
    started = now_utc()
    source_dir = check_model_folder(source)
    out_dir = Path(out)
    check_out(out_dir)
    check_source(source_dir)
    libraries = library_versions(LIBRARIES)

    def fill(stage: Path) -> dict[str, Any]:
        stage.mkdir()
        details = _compress_into(source_dir, stage, spec)
        return {
            "compression": {"name": spec.name, **spec.model_dump(mode="json"), **details},
            "size": folder_size(stage),
            "libraries": libraries,
        }

    manifest = write_compressed_folder(source_dir, out_dir, started, fill)
    return CompressedModel(out=out_dir, manifest=manifest)


def write_compressed_folder(
    source_dir: Path,
    out_dir: Path,
    started: datetime,
    fill: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    """Write a compressed model folder whole: staged beside ``out_dir``, then moved into place.

    Args:
        source_dir: the uncompressed model folder.
        out_dir: the folder to write (an earlier one is replaced only once the new one is done).
        started: when the command started (``now_utc()``).
        fill: writes the model into the staging folder it is given (creating it) and returns
            the method's own manifest fields (``compression``, ``size``, ``libraries``...).

    Returns:
        The manifest written: the method's fields, the source (path, kind, file SHA-256s,
        size), the written files' SHA-256s and the seconds ``fill`` took.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # one staging folder per process: two runs aimed at one --out never share it
    stage = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    try:
        clock = time.perf_counter()
        fields = fill(stage)
        seconds = time.perf_counter() - clock
        source_manifest = earlier_manifest(source_dir)
        manifest = base_manifest(MANIFEST_KIND, started=started)
        manifest.update(fields)
        manifest.update(
            {
                "source": {
                    "path": str(source_dir.resolve()),
                    "kind": source_manifest.get("kind") if source_manifest else None,
                    "files": {
                        p.name: file_sha256(p) for p in sorted(source_dir.iterdir()) if p.is_file()
                    },
                    "size": folder_size(source_dir),
                },
                "files": {p.name: file_sha256(p) for p in sorted(stage.iterdir()) if p.is_file()},
                "seconds": round(seconds, 2),
            }
        )
        write_manifest(stage, manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        stage.rename(out_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return manifest
