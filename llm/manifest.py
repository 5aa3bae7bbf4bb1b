"""The run manifest (docs/architecture.md, "Run manifest").

Every training, export, eval and dataset output folder holds a
``manifest.json``: package version, git commit, the resolved config, input
content hashes and counts, seed, library versions, hardware, start and end
time. The pieces are here so that every stage writes them the same way; each
stage adds the fields that only it knows.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import llm

MANIFEST = "manifest.json"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, when it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(llm.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def library_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Python's version and each named distribution's (``None`` when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def hardware() -> dict[str, Any]:
    """Where the run happened: platform, CPU count and, when torch is loaded, its device."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # never import torch just to describe the machine
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    return info


def now_utc() -> datetime:
    """The current time in UTC (manifests never use local time)."""
    return datetime.now(timezone.utc)


def base_manifest(
    kind: str, *, started: datetime, finished: datetime | None = None
) -> dict[str, Any]:
    """The fields every manifest starts with.

    Args:
        kind: what wrote the folder, e.g. ``"data-build"``, ``"model-init"``, ``"eval-subgroups"``.
        started: when the run began (UTC).
        finished: when it ended; ``now`` when left out.
    """
    return {
        "kind": kind,
        "package_version": llm.__version__,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": (finished or now_utc()).isoformat(timespec="seconds"),
    }


def earlier_manifest(folder: Path) -> dict[str, Any] | None:
    """The ``manifest.json`` an earlier run left in ``folder``, or None (missing, unreadable, not
    an object): how a command tells its own earlier output, which it may replace, from files
    it must not touch."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json`` (indented, keys in insertion order). Returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
