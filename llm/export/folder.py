"""The export folder: written whole in a staging folder, then moved into place.

An export is built in a hidden sibling folder and renamed to ``--out`` only
when every file and the manifest are written, so a failed or interrupted
export never leaves a folder that looks like a valid one. ``--out`` must be
missing, empty, or an earlier export (its ``manifest.json`` has kind
``export`` and lists every file in it); anything else is refused rather than
mixed with or deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.manifest import MANIFEST, earlier_manifest

EXPORT_KIND = "export"


def _earlier_export_files(out: Path) -> list[Path] | None:
    """Files of an earlier export in ``out`` (manifest included), or None if it is not one."""
    manifest = earlier_manifest(out)
    if manifest is None or manifest.get("kind") != EXPORT_KIND:
        return None
    files: Any = manifest.get("files")
    if not isinstance(files, dict):
        return None
    card = manifest.get("card")  # not hashed: evaluations rewrite it
    extra = [out / card] if isinstance(card, str) and "/" not in card else []
    return [out / name for name in files] + extra + [out / MANIFEST]


def check_out_folder(out: Path) -> list[Path]:
    """Check that ``out`` may receive an export.

    Args:
        out: the ``--out`` folder.

    Returns:
        The files of an earlier export there, to replace (empty for a new folder).

    Raises:
        BadInputError: ``out`` is a file, or a non-empty folder that is not an
            earlier export, or an earlier export holding files its manifest does not list.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    earlier = _earlier_export_files(out)
    if earlier is None:
        raise BadInputError(
            f"--out {out}: folder is not empty and is not an earlier export (no manifest.json "
            "with kind 'export'); choose a new --out or empty it"
        )
    present = {p for p in out.rglob("*") if p.is_file()}
    unknown = sorted(str(p.relative_to(out)) for p in present - set(earlier))
    if unknown:
        raise BadInputError(
            f"--out {out}: an earlier export, but it also holds files its manifest does not "
            f"list ({', '.join(unknown[:5])}); move them away or choose a new --out"
        )
    return [p for p in earlier if p.is_file()]


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``out``; on success it replaces ``out``.

    Raises:
        BadInputError: as :func:`check_out_folder` (checked before anything is written).
    """
    earlier = check_out_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for path in earlier:
        path.unlink()
    if out.is_dir():
        # only empty subfolders of the earlier export are left (checked above)
        for sub in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
            sub.rmdir()
        out.rmdir()
    staging.rename(out)
