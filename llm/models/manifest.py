"""The run manifest of a model folder: what made it, from what, where, when."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from llm.errors import BadInputError

LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "numpy")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, when it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the model files."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware() -> dict[str, Any]:
    """Where the run happened: platform, CPU count, torch threads, GPU name."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def now_iso() -> str:
    """Current UTC time, ISO-8601, seconds precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json`` (indented, keys in insertion order). Returns its path."""
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def prepare_model_folder(folder: Path, kind: str) -> None:
    """Make ``folder`` ready to receive a model of ``kind``.

    A missing or empty folder is created; a folder written earlier by the same
    command (its ``manifest.json`` has this ``kind``) has its weight shards
    removed, so no stale shard of the old model sits beside the new one.
    Anything else is refused rather than mixed with.

    Raises:
        BadInputError: the folder holds other files.
    """
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        try:
            earlier = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            earlier = None
        if not isinstance(earlier, dict) or earlier.get("kind") != kind:
            raise BadInputError(
                f"{folder}: folder is not empty and was not written by this command; "
                "choose a new --out or empty it"
            )
        for shard in folder.glob("*.safetensors"):
            shard.unlink()
        (folder / "model.safetensors.index.json").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
