"""Checkpoints a resume can trust: a completion marker written last, checked before loading.

The HF Trainer (5.x) writes ``checkpoint-N/`` in place, file by file: the model or
adapter, the optimizer and scheduler (under DeepSpeed one optimizer file per
rank), one RNG state per rank, and ``trainer_state.json`` from rank 0, which
does not wait for the other ranks. Nothing marks the end, and
``get_last_checkpoint`` picks the newest folder by its name. A process killed
while saving (SIGKILL, an OOM kill, a preempted node, a full disk) leaves a
folder that looks like a checkpoint and is not one.

So every checkpoint gets :data:`COMPLETE_MARKER`, written by rank 0 after every
rank has written its part (a barrier), through a temporary file and a rename,
after the checkpoint's files are flushed to disk. It lists every file with its
size. :func:`checkpoint_problem` accepts a checkpoint only when the marker is
there and every listed file has that size, ``trainer_state.json`` is JSON and
each ``.safetensors`` file's header agrees with its length; otherwise it says
what is wrong. :func:`choose_resume_checkpoint` resumes from the newest
complete checkpoint, names (and logs) each newer one it skips, and fails,
naming each checkpoint and its problem, when none is complete. A checkpoint
written before markers existed counts as incomplete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.errors import BadInputError, ClinicalLLMError

log = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
MARKER_FORMAT = 1
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# where an incomplete checkpoint is moved on resume: outside the Trainer's `checkpoint-*`
# glob, so it is never loaded, rotated or overwritten
SET_ASIDE_PREFIX = "incomplete-"
TRAINER_STATE = "trainer_state.json"


class CheckpointSaveError(ClinicalLLMError):
    """Writing a checkpoint or the final model failed (full disk, unwritable folder). Exit 1."""


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A checkpoint that is not loaded, and why."""

    path: Path
    problem: str


def checkpoint_step(path: Path) -> int | None:
    """N of a ``checkpoint-N`` folder name, or None for any other name."""
    match = CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``output_dir``, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def _files(checkpoint: Path) -> dict[str, int]:
    files: dict[str, int] = {}
    for path in sorted(checkpoint.rglob("*")):
        if path.is_file() and path.name != COMPLETE_MARKER:
            files[path.relative_to(checkpoint).as_posix()] = path.stat().st_size
    return files


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_complete_marker(checkpoint: Path) -> Path:
    """Mark ``checkpoint`` complete; call once every rank has finished writing it.

    The checkpoint's files and folders are flushed to disk first, then the marker
    (every file with its size) is written to a temporary name, flushed and renamed,
    so a marker on disk always means the files it lists are there in full.

    Returns:
        The marker's path.
    """
    files = _files(checkpoint)
    for name in files:
        _fsync(checkpoint / name)
    for folder in {(checkpoint / name).parent for name in files}:
        _fsync(folder)
    marker = checkpoint / COMPLETE_MARKER
    tmp = checkpoint / f".{COMPLETE_MARKER}.partial"
    body = json.dumps({"format": MARKER_FORMAT, "files": files}, indent=1, sort_keys=True)
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(body + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, marker)
    _fsync(checkpoint)
    return marker


def _safetensors_problem(path: Path, size: int) -> str | None:
    """Why a ``.safetensors`` file's header disagrees with its length, or None."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{path.name}: {size} bytes, too short for a safetensors header"
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            return f"{path.name}: header of {header_len} bytes runs past the file's {size}"
        try:
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"{path.name}: the safetensors header is not JSON"
    if not isinstance(header, dict):
        return f"{path.name}: the safetensors header is not a JSON object"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    expected = 8 + header_len + max(ends, default=0)
    if expected != size:
        return f"{path.name}: {size} bytes, its header describes {expected}"
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What makes ``checkpoint`` unsafe to resume from, or None when it is complete.

    Checked: the completion marker is there and readable; every file it lists is
    there with the recorded size; ``trainer_state.json`` is among them and is a
    JSON object; every ``.safetensors`` file's header matches its length.
    """
    marker = checkpoint / COMPLETE_MARKER
    if not marker.is_file():
        return (
            f"no {COMPLETE_MARKER}: its writing never finished (a process killed or a "
            "disk full while saving), or it was written before completion markers existed"
        )
    try:
        data: Any = json.loads(marker.read_text(encoding="utf-8"))
        files = {str(k): int(v) for k, v in data["files"].items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{COMPLETE_MARKER} is unreadable: {exc}"
    if TRAINER_STATE not in files:
        return f"{COMPLETE_MARKER} lists no {TRAINER_STATE}"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"{name} is {actual} bytes, {size} when the checkpoint was written"
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(path, size)
            if problem is not None:
                return problem
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{TRAINER_STATE} is not valid JSON: {exc}"
    if not isinstance(state, dict):
        return f"{TRAINER_STATE} is not a JSON object"
    return None


def choose_resume_checkpoint(
    output_dir: Path, *, log_skipped: bool = True
) -> tuple[Path, list[SkippedCheckpoint]]:
    """The newest complete checkpoint in ``output_dir``, and the newer ones skipped.

    Args:
        output_dir: the run folder.
        log_skipped: log a warning naming each skipped checkpoint and its problem
            (one process of a multi-process run is enough).

    Raises:
        BadInputError: no ``checkpoint-N`` folder at all, or none is complete (each
            named with its problem).
    """
    checkpoints = list_checkpoints(output_dir)
    if not checkpoints:
        raise BadInputError(
            f"--resume: no checkpoint-N folder in {output_dir}; run without --resume to "
            "start, or set training.output_dir to the interrupted run's folder"
        )
    skipped: list[SkippedCheckpoint] = []
    for checkpoint in reversed(checkpoints):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            for skip in skipped if log_skipped else []:
                log.warning(
                    "%s is incomplete and is not loaded (%s); resuming from %s instead",
                    skip.path,
                    skip.problem,
                    checkpoint.name,
                )
            return checkpoint, skipped
        skipped.append(SkippedCheckpoint(checkpoint, problem))
    named = "; ".join(f"{s.path.name}: {s.problem}" for s in reversed(skipped))
    raise BadInputError(
        f"--resume: no complete checkpoint in {output_dir}, so none is loaded ({named}). "
        "Start afresh in a new training.output_dir"
    )


def set_aside(checkpoint: Path) -> Path:
    """Rename an incomplete checkpoint to ``incomplete-checkpoint-N`` (a free name) and log it.

    The resumed run then writes ``checkpoint-N`` afresh, never into the leftovers,
    and the Trainer's rotation never counts or deletes it. Nothing is deleted.

    Returns:
        Its new path.
    """
    target = checkpoint.with_name(SET_ASIDE_PREFIX + checkpoint.name)
    n = 1
    while target.exists():
        n += 1
        target = checkpoint.with_name(f"{SET_ASIDE_PREFIX}{checkpoint.name}.{n}")
    os.replace(checkpoint, target)
    log.warning("incomplete %s moved to %s (not loaded; delete it when done)", checkpoint, target)
    return target


def save_failure(
    target: Path, exc: BaseException, last_complete: Path | None
) -> CheckpointSaveError:
    """The error for a failed save of ``target``: the cause, the free space, what is intact.

    torch.save reports a full disk as a RuntimeError ("file write failed"), not an
    OSError, so any exception is named with the free space left on that file system.
    """
    text = str(exc).strip()
    cause = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    if isinstance(exc, OSError) and exc.strerror:
        cause = f"{exc.strerror} ({type(exc).__name__}, errno {exc.errno})"
    try:
        free = f"{shutil.disk_usage(target.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    kept = (
        f"the last complete checkpoint, {last_complete}, is intact"
        if last_complete is not None
        else "no earlier checkpoint exists"
    )
    return CheckpointSaveError(
        f"{target}: saving failed: {cause}; {free}. What was written there is incomplete "
        f"(no {COMPLETE_MARKER}) and is never loaded; {kept}. Free space or fix the folder, "
        "then rerun with --resume"
    )


def last_complete_checkpoint(output_dir: Path, *, below: int | None = None) -> Path | None:
    """The newest complete checkpoint in ``output_dir`` (with a step below ``below``), or None."""
    for checkpoint in reversed(list_checkpoints(output_dir)):
        step = checkpoint_step(checkpoint) or 0
        if below is not None and step >= below:
            continue
        if checkpoint_problem(checkpoint) is None:
            return checkpoint
    return None
