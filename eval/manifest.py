"""The run manifest of an eval output folder (docs/architecture.md, "Run manifest")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import llm
from eval.report.model import EvalManifest
from llm.data.io import ReadStats
from llm.errors import BadInputError
from llm.files import read_json_object
from llm.manifest import file_sha256, git_commit
from llm.manifest import library_versions as versions_of

MANIFEST = "manifest.json"
MANIFEST_KIND = "eval-subgroups"
# the libraries whose versions can change the numbers of a report
LIBRARIES = ("numpy", "scipy", "pydantic", "PyYAML")


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries the report's numbers depend on."""
    return versions_of(LIBRARIES)


def find_model_manifest(predictions: Path, explicit: Path | None) -> Path | None:
    """The manifest of the evaluated model: ``explicit``, else ``manifest.json`` beside the file.

    Raises:
        BadInputError: ``explicit`` does not exist.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise BadInputError(f"--model-manifest {explicit}: file not found")
        return explicit
    beside = predictions.parent / MANIFEST
    return beside if beside.is_file() else None


def read_model_manifest(path: Path) -> dict[str, Any]:
    """``{"path", "contents"}`` of a model manifest.

    Raises:
        BadInputError: not a JSON object.
    """
    contents = read_json_object(path, what="model manifest")
    return {"path": str(path), "contents": contents}


def eval_manifest(
    *,
    args: dict[str, Any],
    predictions: Path,
    stats: ReadStats,
    seed: int,
    started: datetime,
    finished: datetime,
    model_manifest: Path | None,
) -> EvalManifest:
    """The manifest of one ``eval subgroups`` run.

    Args:
        args: the resolved command arguments.
        predictions: the predictions file read.
        stats: its read counts.
        seed: the resampling seed.
        started / finished: wall-clock times of the run (UTC).
        model_manifest: the evaluated model's manifest, if known.
    """
    manifest: dict[str, Any] = {
        "kind": MANIFEST_KIND,
        "package_version": llm.__version__,
        "git_commit": git_commit(),
        "args": args,
        "predictions": {"path": str(predictions), "sha256": file_sha256(predictions)},
        "counts": {"read": stats.read, "used": stats.used, "rejected": stats.rejected},
        "seed": seed,
        "libraries": library_versions(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
    }
    if model_manifest is not None:
        manifest["model_manifest"] = read_model_manifest(model_manifest)
    return EvalManifest.model_validate(manifest)
