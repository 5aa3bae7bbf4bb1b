"""The run manifest of a model folder: what made it, from what, where, when.

The shared pieces (hashes, git commit, hardware, writing) are in :mod:`llm.manifest`.
"""

from __future__ import annotations

from pathlib import Path

from llm.errors import BadInputError
from llm.manifest import (
    earlier_manifest,
    file_sha256,
    git_commit,
    hardware,
    now_utc,
    write_manifest,
)
from llm.manifest import library_versions as versions_of

__all__ = [
    "file_sha256",
    "git_commit",
    "hardware",
    "library_versions",
    "now_iso",
    "prepare_model_folder",
    "write_manifest",
]

LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "numpy", "gguf")


def library_versions() -> dict[str, str | None]:
    """Installed versions of Python and the libraries that shape the model files."""
    return versions_of(LIBRARIES)


def now_iso() -> str:
    """Current UTC time, ISO-8601, seconds precision."""
    return now_utc().isoformat(timespec="seconds")


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
        earlier = earlier_manifest(folder)
        if earlier is None or earlier.get("kind") != kind:
            raise BadInputError(
                f"{folder}: folder is not empty and was not written by this command; "
                "choose a new --out or empty it"
            )
        for shard in folder.glob("*.safetensors"):
            shard.unlink()
        (folder / "model.safetensors.index.json").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
