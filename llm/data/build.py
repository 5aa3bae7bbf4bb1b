"""Build task datasets from a records file: render, split by patient, save, manifest.

Output folder layout (``clinical-llm data build --out DIR``)::

    DIR/manifest.json            what was built, from what, with which counts and hashes
    DIR/patient_splits.json      every patient id of the records, by split (for leak checks)
    DIR/<task>/                  datasets.DatasetDict (train/validation/test), save_to_disk
    DIR/<task>/<split>.jsonl     the same examples as JSON lines
    DIR/assets/images/<patient_id>/<image_id>.png     chest X-rays (multimodal tasks)
    DIR/assets/ecg/<patient_id>/<waveform_id>.png     12-lead ECG sheets
    DIR/rejects.jsonl            invalid record lines, with --skip-invalid and no --rejects

Splits are by patient and shared by every task: each patient is assigned to
one split once, stratified by ``labels.primary_diagnosis`` (patients without
it form one more stratum), seeded. Within a stratum of n patients, split s
gets floor(n * p_s) patients and the remaining ones go to the splits furthest
behind their overall target, so per-stratum and overall counts both stay
within one patient of their quotas.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import llm
from llm.data.assets import AssetError
from llm.data.io import ReadStats, read_records, write_jsonl
from llm.data.schema import PatientRecord
from llm.data.tasks import TASKS, RenderContext, Skip, Task
from llm.errors import BadInputError
from llm.files import (
    WRITE_ERRNOS,
    atomic_write,
    check_writable_dir,
    read_json_object,
    write_error,
)
from llm.manifest import earlier_manifest, file_sha256, git_commit, library_versions
from llm.ray_cluster import check_ray_address, import_ray

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_SPLIT_SEED = 0
MANIFEST_KIND = "clinical-llm task datasets"
MISSING_STRATUM = "<missing>"
PATIENT_SPLITS_FILE = "patient_splits.json"
LIBRARIES = ("datasets", "pyarrow", "numpy", "pillow", "pydicom", "pydantic")

Progress = Callable[[Iterable[PatientRecord], int], Iterable[PatientRecord]]


def parse_split(text: str) -> tuple[float, float, float]:
    """Parse ``--split`` (``"0.8,0.1,0.1"``: train, validation, test).

    Raises:
        BadInputError: not three numbers (see :func:`check_split`).
    """
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise BadInputError(
            f"--split: expected three numbers like 0.8,0.1,0.1, got {text!r}"
        ) from None
    return check_split(parts)


def check_split(parts: Sequence[float]) -> tuple[float, float, float]:
    """Check split proportions: three non-negative numbers summing to 1, train above 0.

    Raises:
        BadInputError: they are not.
    """
    if len(parts) != 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        raise BadInputError(f"--split: expected three non-negative numbers, got {list(parts)}")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise BadInputError(
            f"--split: proportions must sum to 1, got {sum(parts):g} from {list(parts)}"
        )
    if parts[0] == 0:
        raise BadInputError("--split: the train proportion must be above 0")
    return parts[0], parts[1], parts[2]


def parse_task_names(text: str) -> list[str]:
    """Parse ``--tasks`` (comma-separated) and check every name is registered.

    Raises:
        BadInputError: empty list, a name given twice, or an unknown name
            (with "did you mean").
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInputError(
            f"--tasks: no task names in {text!r}; known: {', '.join(TASKS.names())}"
        )
    for name in names:
        TASKS.check(name)
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise BadInputError(f"--tasks: {', '.join(repeated)} given more than once")
    return names


def stratum_split_sizes(n: int, proportions: Sequence[float], behind: Sequence[float]) -> list[int]:
    """How many of a stratum's ``n`` patients each split gets.

    Args:
        n: patients in the stratum.
        proportions: split shares summing to 1.
        behind: how far each split is below its overall target so far
            (ties in the leftover patients go to the split most behind).

    Returns:
        Counts per split, summing to ``n``.
    """
    quotas = [round(n * p, 9) for p in proportions]  # 9 places: drop float noise before floor
    sizes = [math.floor(q) for q in quotas]
    leftover = n - sum(sizes)
    order = sorted(
        (i for i, p in enumerate(proportions) if p > 0),
        key=lambda i: (-(behind[i] + quotas[i] - sizes[i]), i),
    )
    for i in order[:leftover]:
        sizes[i] += 1
    return sizes


def assign_splits(
    records: Sequence[PatientRecord], proportions: Sequence[float], seed: int
) -> dict[str, str]:
    """Assign every patient to one split, stratified by primary diagnosis.

    Args:
        records: the records (patient ids must be unique).
        proportions: train, validation, test shares.
        seed: the shuffle seed; the same records and seed give the same split.

    Returns:
        ``{patient_id: split name}``.
    """
    return assign_patient_splits(
        {record.patient_id: record.labels.primary_diagnosis for record in records},
        proportions,
        seed,
    )


def assign_patient_splits(
    diagnosis_of: Mapping[str, str | None], proportions: Sequence[float], seed: int
) -> dict[str, str]:
    """:func:`assign_splits` from each patient's primary diagnosis alone.

    Args:
        diagnosis_of: patient id -> ``labels.primary_diagnosis`` (None when missing),
            for every patient of the records.
        proportions: train, validation, test shares.
        seed: the shuffle seed.

    Returns:
        ``{patient_id: split name}``.
    """
    strata: dict[str, list[str]] = defaultdict(list)
    for patient_id, diagnosis in diagnosis_of.items():
        strata[diagnosis or MISSING_STRATUM].append(patient_id)
    rng = random.Random(seed)
    assigned = [0] * len(SPLITS)
    seen = 0
    out: dict[str, str] = {}
    for key in sorted(strata, key=lambda k: (k == MISSING_STRATUM, k)):
        patients = sorted(strata[key])
        rng.shuffle(patients)
        behind = [seen * p - a for p, a in zip(proportions, assigned, strict=True)]
        seen += len(patients)
        sizes = stratum_split_sizes(len(patients), proportions, behind)
        start = 0
        for i, size in enumerate(sizes):
            for pid in patients[start : start + size]:
                out[pid] = SPLITS[i]
            start += size
            assigned[i] += size
    return out


def example_features(multimodal: bool) -> Any:
    """The Arrow schema of a task's examples (explicit, so empty splits keep it)."""
    from datasets import Features, List, Value

    string = Value("string")
    part = {"type": string, "text": string, "image": string}
    content = List(part) if multimodal else string
    return Features(
        {
            "id": string,
            "task": string,
            "patient_id": string,
            "encounter_id": string,
            "messages": List({"role": string, "content": content}),
            "answer": string,
            "label": string,
            "images": List(string),
            "demographics": {
                name: string
                for name in ("sex", "age", "age_band", "race_ethnicity", "payer", "language")
            },
        }
    )


def canonical_json(row: dict[str, Any]) -> str:
    """The canonical JSON of an example (sorted keys, no spaces), used for hashing."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_sha256(rows_by_split: dict[str, list[dict[str, Any]]]) -> str:
    """sha256 over canonical JSON lines of all examples (train, validation, test order)."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for row in rows_by_split.get(split, []):
            digest.update((canonical_json(row) + "\n").encode("utf-8"))
    return digest.hexdigest()


def assets_sha256(out: Path, paths: Iterable[str]) -> str:
    """sha256 over ``path sha256`` lines of the given asset files, sorted by path."""
    digest = hashlib.sha256()
    for rel in sorted(set(paths)):
        digest.update(f"{rel} {file_sha256(out / rel)}\n".encode())
    return digest.hexdigest()


def prepare_out_dir(out: Path, records: Path, rejects: Path | None) -> None:
    """Check that ``out`` can take a build: new, empty, or an earlier build of ours.

    Nothing is removed here: the build is written to a staging folder beside
    ``out`` and only replaces an earlier build when complete (:func:`publish_build`).

    Raises:
        BadInputError: ``out`` is a file, holds something other than an earlier
            build (no manifest of ours), contains the records or rejects file,
            or its folder cannot be written.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    resolved = out.resolve()
    for label, path in (("--records", records), ("--rejects", rejects)):
        if path is not None and resolved in path.resolve().parents:
            raise BadInputError(f"{label} {path} lies inside --out {out}, which is rebuilt")
    if out.is_dir() and any(out.iterdir()):
        earlier = earlier_manifest(out)
        if earlier is None or earlier.get("kind") != MANIFEST_KIND:
            raise BadInputError(
                f"--out {out}: folder is not empty and holds no earlier build "
                f"(no {MANIFEST_KIND} manifest.json); choose an empty or new folder"
            )
    # the staging folder and the swap are made in out's parent
    check_writable_dir(out.parent if out.exists() else out, what="build folder")
    if rejects is not None:
        check_writable_dir(rejects.parent, what="rejects file")


def staging_dir(out: Path) -> Path:
    """Where a build is written before it replaces ``out``: hidden, beside it, per process."""
    return out.parent / f".{out.name}.{os.getpid()}.partial"


def publish_build(staging: Path, out: Path) -> None:
    """Put a complete build in ``out``'s place, then remove the earlier build.

    Two renames on one file system: ``out`` never holds a mix of two builds.
    Should the second rename fail, the earlier build is put back.
    """
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    had_earlier = out.exists()
    if had_earlier:
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        if had_earlier:
            os.replace(old, out)
        raise
    if had_earlier:
        shutil.rmtree(old)


@dataclass
class TaskOutcome:
    """What one task produced: examples per split and skips by reason."""

    name: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    skipped: Counter[str] = field(default_factory=Counter)
    asset_errors: list[str] = field(default_factory=list)

    @property
    def rendered(self) -> int:
        """Examples over all splits."""
        return sum(len(rows) for rows in self.rows.values())


@dataclass
class BuildResult:
    """What :func:`build_task_datasets` did."""

    out: Path
    stats: ReadStats
    manifest: dict[str, Any]
    outcomes: dict[str, TaskOutcome]


Rendered = dict[str, Any] | Skip | AssetError
"""One task's outcome for one record: a dataset row, a skip, or an unrenderable asset."""


def render_record(
    record: PatientRecord, tasks: Sequence[Task], ctx: RenderContext
) -> list[Rendered]:
    """Render one record for every task (its PNG assets are written under ``ctx.out_dir``)."""
    out: list[Rendered] = []
    for task in tasks:
        try:
            result = task.render(record, ctx)
        except AssetError as exc:  # the caller stops or counts it (skip_invalid)
            out.append(exc)
            continue
        out.append(result if isinstance(result, Skip) else result.to_row())
    return out


@dataclass(frozen=True)
class _RenderConfig:
    task_names: tuple[str, ...]
    ctx: RenderContext


def line_renderer(config: _RenderConfig) -> Callable[[str], list[Rendered]]:
    """One Ray actor's work (:mod:`llm.data.ray_map`): the task renderers built once,
    applied to each record line it is given."""
    tasks = [TASKS.get(name)() for name in config.task_names]
    return lambda line: render_record(PatientRecord.model_validate_json(line), tasks, config.ctx)


def render_tasks(
    records: Sequence[PatientRecord],
    tasks: Sequence[Task],
    ctx: RenderContext,
    splits: dict[str, str],
    *,
    skip_invalid: bool,
    progress: Progress | None = None,
    ray_address: str | None = None,
    workers: int = 1,
) -> dict[str, TaskOutcome]:
    """Render every record for every task and file the examples under their patient's split.

    Args:
        ray_address: render on Ray Data actors (``local``, ``auto``, ``ray://HOST:PORT``);
            the rows, skips and assets are those of one process, in the same order.
        workers: Ray actors (with ``ray_address``).

    Raises:
        AssetError: an asset cannot be rendered and ``skip_invalid`` is false.
    """
    outcomes = {task.name: TaskOutcome(task.name) for task in tasks}
    results: Iterable[list[Rendered]]
    if ray_address is None:
        results = (render_record(record, tasks, ctx) for record in records)
    else:
        from llm.data.io import record_to_json
        from llm.data.ray_map import map_lines_on_ray

        config = _RenderConfig(tuple(task.name for task in tasks), ctx)
        lines = [record_to_json(record) for record in records]
        results = map_lines_on_ray(
            lines, line_renderer, config, workers=workers, address=ray_address
        )
    iterable = progress(records, len(records)) if progress else records
    for record, rendered in zip(iterable, results, strict=True):
        for task, result in zip(tasks, rendered, strict=True):
            outcome = outcomes[task.name]
            if isinstance(result, AssetError):
                if not skip_invalid:
                    raise result
                outcome.asset_errors.append(str(result))
                result = Skip(result.reason)
            if isinstance(result, Skip):
                outcome.skipped[result.reason] += 1
            else:
                outcome.rows[splits[record.patient_id]].append(result)
    for outcome in outcomes.values():
        if outcome.rendered + sum(outcome.skipped.values()) != len(records):
            raise AssertionError(f"{outcome.name}: examples and skips do not add up to records")
    return outcomes


def save_task(out: Path, task: Task, outcome: TaskOutcome) -> None:
    """Save one task's DatasetDict (``save_to_disk``) and its JSONL files under ``out/<task>``."""
    from datasets import Dataset, DatasetDict, DatasetInfo, NamedSplit
    from datasets.table import InMemoryTable
    from datasets.utils import logging as ds_logging

    features = example_features(task.multimodal)
    splits = {}
    for split, rows in outcome.rows.items():
        table = InMemoryTable.from_pylist(rows, schema=features.arrow_schema)
        # Our content hash is the fingerprint: datasets would otherwise pickle-hash every row.
        fingerprint = content_sha256({split: rows})[:16]
        splits[split] = Dataset(
            table, info=DatasetInfo(features=features), split=NamedSplit(split),
            fingerprint=fingerprint,
        )  # fmt: skip
    dataset = DatasetDict(splits)
    # The CLI shows one progress bar of its own; datasets' per-shard bars would interleave.
    bars_were_on = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        # An empty split (a split proportion of 0, or a cohort too small for it)
        # would be saved with no data file, and load_from_disk then fails on the
        # whole DatasetDict; one empty shard keeps it loadable.
        empty = {split: 1 for split, rows in outcome.rows.items() if not rows}
        dataset.save_to_disk(str(out / task.name), num_shards=empty)
    finally:
        if bars_were_on:
            ds_logging.enable_progress_bar()
    for split in SPLITS:
        write_jsonl(out / task.name / f"{split}.jsonl", outcome.rows[split])


def task_manifest(
    out: Path, task: Task, outcome: TaskOutcome, answers: tuple[str, ...]
) -> dict[str, Any]:
    """The manifest entry of one task: counts, labels, skips and content hashes."""
    entry: dict[str, Any] = {
        "path": task.name,
        "kind": task.kind,
        "multimodal": task.multimodal,
        "description": task.description,
        "answers": list(answers) if task.kind == "classification" else None,
        "examples": outcome.rendered,
        "counts": {split: len(outcome.rows[split]) for split in SPLITS},
        "label_distribution": (
            {
                split: dict(sorted(Counter(str(r["label"]) for r in outcome.rows[split]).items()))
                for split in SPLITS
            }
            if task.kind == "classification"
            else None
        ),
        "skipped": dict(sorted(outcome.skipped.items())),
        "skipped_total": sum(outcome.skipped.values()),
        "content_sha256": content_sha256(outcome.rows),
    }
    if task.multimodal:
        paths = [p for rows in outcome.rows.values() for r in rows for p in r["images"]]
        entry["assets"] = len(set(paths))
        entry["assets_sha256"] = assets_sha256(out, paths)
    if outcome.asset_errors:
        entry["asset_errors"] = outcome.asset_errors  # file paths and reasons, never note text
    return entry


def write_patient_splits(out: Path, splits: dict[str, str]) -> None:
    """Write ``out/patient_splits.json``: ``{split: [patient ids, sorted]}`` for every split."""
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for pid, split in splits.items():
        by_split[split].append(pid)
    payload = {s: sorted(ids) for s, ids in by_split.items()}
    with atomic_write(out / PATIENT_SPLITS_FILE) as fh:
        fh.write(json.dumps(payload, indent=1) + "\n")


def read_patient_splits(dataset_dir: Path) -> dict[str, set[str]]:
    """The patient ids of each split of a ``data build`` folder.

    Every patient of the records is listed, also those no task rendered, so
    "not in validation or test" means "never evaluated on" for every task.

    Raises:
        BadInputError: the folder has no ``patient_splits.json`` (not a task
            dataset folder, or built before the file existed) or it is malformed.
    """
    path = dataset_dir / PATIENT_SPLITS_FILE
    if not path.is_file():
        raise BadInputError(
            f"{path}: not found; {dataset_dir} is not a task dataset folder or was built by an "
            f"older version: rebuild it with `clinical-llm data build --out {dataset_dir}`"
        )
    payload = read_json_object(path, what="patient split file")
    if set(payload) != set(SPLITS):
        raise BadInputError(f"{path}: expected an object with the keys {', '.join(SPLITS)}")
    out: dict[str, set[str]] = {}
    for split in SPLITS:
        ids = payload[split]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadInputError(f"{path}: field {split!r} must be a list of patient id strings")
        out[split] = set(ids)
    return out


def check_unique_patients(records: Sequence[PatientRecord], path: Path) -> None:
    """Raise when a patient id appears twice (splits are by patient).

    Raises:
        BadInputError: names the id and the record positions.
    """
    first: dict[str, int] = {}
    for i, record in enumerate(records, start=1):
        if record.patient_id in first:
            raise BadInputError(
                f"{path}: patient_id {record.patient_id!r} appears in valid record "
                f"#{first[record.patient_id]} and again in #{i}; splits are by patient, "
                "so ids must be unique"
            )
        first[record.patient_id] = i


def build_task_datasets(
    records_path: Path,
    task_names: Sequence[str],
    out: Path,
    *,
    split: Sequence[float] = DEFAULT_SPLIT,
    seed: int = DEFAULT_SPLIT_SEED,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    progress: Progress | None = None,
    ray_address: str | None = None,
    workers: int = 1,
) -> BuildResult:
    """Render task datasets from a records file and save them with a manifest.

    Args:
        records_path: records JSONL; asset paths are relative to its folder.
        task_names: registered task names (see :data:`llm.data.tasks.TASKS`).
        out: output folder (created; an earlier build there is replaced).
        split: train, validation, test proportions.
        seed: split seed.
        skip_invalid: skip invalid record lines and unreadable asset files
            (counted) instead of stopping at the first.
        rejects: where invalid lines go with ``skip_invalid`` (default ``out/rejects.jsonl``).
        progress: wraps the record loop, e.g. with a progress bar.
        ray_address: render on Ray Data (``local``, ``auto``, ``ray://HOST:PORT``,
            :mod:`llm.ray_cluster`); the datasets and counts are those of one process.
        workers: Ray actors (one CPU each) with ``ray_address``.

    Returns:
        The read counts, per-task outcomes and the manifest (also written to
        ``out/manifest.json``).

    Raises:
        BadInputError: unknown task, bad split, unusable ``out``, invalid
            record or asset (without ``skip_invalid``), repeated patient id, a bad
            ``ray_address`` or Ray not installed.
    """
    started = datetime.now(timezone.utc)
    for name in task_names:
        TASKS.check(name)
    proportions = check_split(split)
    if rejects is not None and not skip_invalid:
        raise BadInputError(
            "--rejects needs --skip-invalid (without it, an invalid line stops the build)"
        )
    if not records_path.is_file():
        raise BadInputError(f"{records_path}: records file not found")
    if ray_address is not None:  # before anything is written: a bad address or no Ray
        check_ray_address(ray_address)
        import_ray()
    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    prepare_out_dir(out, records_path, rejects)
    rejects_path = (rejects or out / "rejects.jsonl") if skip_invalid else None
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run of this same pid
    staging.mkdir(parents=True)
    try:
        records, stats = read_records(
            records_path,
            skip_invalid=skip_invalid,
            rejects_path=(rejects or staging / "rejects.jsonl") if skip_invalid else None,
        )
        check_unique_patients(records, records_path)
        splits = assign_splits(records, proportions, seed)
        tasks: list[Task] = [TASKS.get(name)() for name in task_names]
        answers = {task.name: task.answer_space(records) for task in tasks}
        ctx = RenderContext(records_dir=records_path.parent, out_dir=staging, answers=answers)
        outcomes = render_tasks(
            records,
            tasks,
            ctx,
            splits,
            skip_invalid=skip_invalid,
            progress=progress,
            ray_address=ray_address,
            workers=workers,
        )
        for task in tasks:
            save_task(staging, task, outcomes[task.name])
        write_patient_splits(staging, splits)
        manifest: dict[str, Any] = {
            "kind": MANIFEST_KIND,
            "package_version": llm.__version__,
            "git_commit": git_commit(),
            "args": {
                "records": str(records_path),
                "tasks": list(task_names),
                "out": str(out),
                "split": list(proportions),
                "seed": seed,
                "skip_invalid": skip_invalid,
                "rejects": str(rejects_path) if rejects_path else None,
            },
            "records": {"path": str(records_path), "sha256": file_sha256(records_path)},
            "read": stats.read,
            "used": stats.used,
            "rejected": stats.rejected,
            "patients": {s: sum(1 for v in splits.values() if v == s) for s in SPLITS},
            "tasks": {
                t.name: task_manifest(staging, t, outcomes[t.name], answers[t.name]) for t in tasks
            },
            "libraries": library_versions(LIBRARIES),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_write(staging / "manifest.json") as fh:
            fh.write(json.dumps(manifest, indent=2) + "\n")
        publish_build(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)  # an earlier build in out is untouched
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # disk full, read-only
            raise write_error(out, exc) from exc
        raise
    return BuildResult(out=out, stats=stats, manifest=manifest, outcomes=outcomes)
