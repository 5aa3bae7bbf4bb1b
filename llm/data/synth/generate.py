"""Generating a whole cohort: worker processes, the output folder, the manifest.

Patients are generated independently (see :mod:`llm.data.synth.patient`), in
worker processes when ``workers > 1``, and written in patient order, so the
output is byte-identical for a given seed whatever the number of workers. The
manifest holds no times, paths or worker counts for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

from llm import __version__
from llm.data.synth.bias import BiasSpec
from llm.data.synth.patient import PatientJob, PatientResult, generate_patient
from llm.errors import BadInputError
from llm.files import atomic_write, check_writable_dir
from llm.manifest import earlier_manifest

GENERATOR_VERSION = "1"
MANIFEST_NAME = "manifest.json"
RECORDS_NAME = "records.jsonl"
PHI_NAME = "phi_spans.jsonl"
# what a previous run leaves in its output folder (and a new run may replace)
_OUTPUTS = (RECORDS_NAME, PHI_NAME, MANIFEST_NAME, "images", "waveforms")
MAX_PATIENTS = 999_999  # patient ids have six digits
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 64, 1024


@dataclass
class CohortSummary:
    """What :func:`generate_cohort` wrote."""

    out_dir: Path
    records_path: Path
    phi_path: Path
    manifest_path: Path
    n_patients: int
    counts: dict[str, int]
    labels: dict[str, dict[str, int]]
    degraded: list[int] = field(default_factory=list)  # per bias spec, in the order given


def _prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``, or clear a previous cohort from it; refuse a folder of other files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: --out must be a folder, and this is a file")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        previous = earlier_manifest(out_dir) or {}
        if previous.get("generator") != "clinical-llm data synth":
            raise BadInputError(
                f"{out_dir}: folder is not empty and holds no synthetic cohort; choose an empty "
                "or new folder"
            )
        for name in _OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    check_writable_dir(out_dir, what="cohort folder")
    out_dir.mkdir(parents=True, exist_ok=True)


def _results(job: PatientJob, n_patients: int, workers: int) -> Iterator[PatientResult]:
    """Patients in index order, from a process pool when ``workers > 1``."""
    if workers <= 1 or n_patients < 4:
        for i in range(n_patients):
            yield generate_patient(job, i)
        return
    chunk = max(1, min(32, n_patients // (workers * 8)))
    with _spawn_pool(workers) as pool:
        yield from pool.imap(partial(generate_patient, job), range(n_patients), chunksize=chunk)


def _spawn_pool(workers: int) -> Pool:
    """A pool of freshly spawned workers.

    Spawn, not fork: the caller may hold threads (a progress bar) that fork
    would copy mid-lock. Spawned workers re-import the caller's ``__main__``;
    for the CLI that is cheap because every command imports its heavy
    libraries only when it runs.
    """
    return multiprocessing.get_context("spawn").Pool(processes=workers)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sorted_counts(counter: Counter[Any]) -> dict[str, int]:
    return {str(k): counter[k] for k in sorted(counter, key=str)}


def generate_cohort(
    *,
    n_patients: int,
    seed: int,
    out_dir: Path,
    bias: Sequence[BiasSpec] = (),
    image_size: int = 128,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CohortSummary:
    """Generate a synthetic multimodal cohort into ``out_dir``.

    Writes ``records.jsonl`` (one :class:`~llm.data.schema.PatientRecord` a
    line), ``phi_spans.jsonl`` (see :mod:`llm.data.phi`), one chest DICOM per
    patient under ``images/``, one 12-lead ECG ``.npy`` per patient under
    ``waveforms/`` and ``manifest.json``. The same arguments (workers aside)
    always give byte-identical files.

    Args:
        n_patients: number of patients (1 to 999,999).
        seed: the cohort's seed.
        out_dir: output folder; created, or a previous cohort in it replaced.
        bias: documentation biases to apply (see :mod:`llm.data.synth.bias`).
        image_size: rows and columns of the chest images (64 to 1024).
        workers: worker processes; ``None`` uses every CPU core.
        progress: called with the number of patients just finished.

    Returns:
        Counts, label distributions and where everything was written.

    Raises:
        BadInputError: bad arguments, or ``out_dir`` holds something other than a cohort.
    """
    if not 1 <= n_patients <= MAX_PATIENTS:
        raise BadInputError(f"--patients must be between 1 and {MAX_PATIENTS}, got {n_patients}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise BadInputError(
            f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}, got {image_size}"
        )
    if seed < 0:
        raise BadInputError(f"--seed must be zero or positive, got {seed}")
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    workers = workers or os.cpu_count() or 1
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    job = PatientJob(seed=seed, out_dir=out_dir, bias=tuple(bias), image_size=image_size)

    counts: Counter[str] = Counter()
    phi_types: Counter[str] = Counter()
    labels: dict[str, Counter[Any]] = {
        k: Counter() for k in ("primary_diagnosis", "readmission_30d", "triage_level", "rhythm")
    }
    demographics: dict[str, Counter[str]] = {}
    group_sizes = [0] * len(job.bias)
    degraded = [0] * len(job.bias)
    records_path, phi_path = out_dir / RECORDS_NAME, out_dir / PHI_NAME
    with atomic_write(records_path) as rec_fh, atomic_write(phi_path) as phi_fh:
        for result in _results(job, n_patients, workers):
            rec_fh.write(result.record_line + "\n")
            phi_fh.writelines(line + "\n" for line in result.phi_lines)
            counts.update(result.counts)
            phi_types.update(result.phi_types)
            for key, value in result.labels.items():
                labels[key][value] += 1
            for key, value in result.demographics.items():
                demographics.setdefault(key, Counter())[value] += 1
            for j, spec in enumerate(job.bias):
                group_sizes[j] += result.demographics.get(spec.attribute) == spec.value
                degraded[j] += result.degraded_by[j]
            counts["degraded_patients"] += any(result.degraded_by)
            if progress is not None:
                progress(1)
    counts["patients"] = n_patients
    manifest = {
        "generator": "clinical-llm data synth",
        "generator_version": GENERATOR_VERSION,
        "package_version": __version__,
        "seed": seed,
        "args": {
            "patients": n_patients,
            "image_size": image_size,
            "bias": [str(b) for b in job.bias],
        },
        "counts": _sorted_counts(counts),
        "phi_spans_by_type": _sorted_counts(phi_types),
        "labels": {k: _sorted_counts(v) for k, v in labels.items()},
        "demographics": {k: _sorted_counts(v) for k, v in sorted(demographics.items())},
        "bias": [
            {"spec": str(spec), "group_size": group_sizes[j], "degraded": degraded[j]}
            for j, spec in enumerate(job.bias)
        ],
        "files": {
            name: {"sha256": _sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in (RECORDS_NAME, PHI_NAME)
        },
    }
    manifest_path = out_dir / MANIFEST_NAME
    with atomic_write(manifest_path) as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return CohortSummary(
        out_dir=out_dir,
        records_path=records_path,
        phi_path=phi_path,
        manifest_path=manifest_path,
        n_patients=n_patients,
        counts=dict(counts),
        labels={k: _sorted_counts(v) for k, v in labels.items()},
        degraded=degraded,
    )
