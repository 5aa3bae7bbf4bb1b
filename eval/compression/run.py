"""``compress report``: every variant and its uncompressed model through one suite, compared.

For the base model and each variant folder: the suite's tasks with the local runner, or the
OpenVINO runner for an IR folder (:class:`eval.runners.openvino.OpenVINORunner`: the same
tokens scored with the OpenVINO runtime), through :func:`eval.run.run_suite` (written under
``<out>/evals/<name>/`` like any ``eval run``); then all models timed side by side
(:mod:`eval.compression.speed`), each model's peak memory in a process of its own
(:mod:`eval.compression.memory`), then, per labelled task,
each variant's accuracy changes from the base model overall and per subgroup
(:mod:`eval.compression.changes`) and the compression gate
(:mod:`eval.compression.gate`). ``report.json``, ``report.md`` and ``report.html`` close
the run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.compression.changes import TaskChanges, task_changes
from eval.compression.gate import Judge, check_compression_gate
from eval.compression.html import write_html
from eval.compression.memory import PeakMemory, measure_peak_memory
from eval.compression.report import CompressionReport, VariantEntry, write_report
from eval.compression.speed import Speed, measure_speed
from eval.run import PREDICTIONS, plan_suite, prepare_out, run_suite
from eval.runners.base import Runner
from eval.runners.local import LocalRunner
from eval.runners.openvino import OpenVINORunner
from eval.subgroups.analysis import Progress
from eval.tasks.suite import Suite
from llm.errors import BadInputError
from llm.manifest import base_manifest, earlier_manifest, file_sha256, now_utc, write_manifest
from llm.models.openvino_ir import IR_FILES, Precision, is_openvino_ir

MANIFEST_KIND = "compress-report"
BASE = "base"
EVALS = "evals"
Log = Callable[[str], None]


@dataclass(frozen=True)
class ReportOptions:
    """How variants are compared and gated."""

    margin: float = 0.02
    judge: Judge = "ci"
    bootstrap: int = 1000
    new_tokens: int = 64
    speed_rounds: int = 3
    batch_size: int = 8
    limit: int | None = None
    openvino_precision: Precision = "default"


def model_name(folder: Path) -> str:
    """A variant's name: its ``compress`` manifest's compression name, else the folder's."""
    manifest = earlier_manifest(folder) or {}
    compression = manifest.get("compression")
    if isinstance(compression, dict) and isinstance(compression.get("name"), str):
        return str(compression["name"])
    return folder.name


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if (earlier_manifest(out) or {}).get("kind") != MANIFEST_KIND:
            raise BadInputError(
                f"--out {out}: not empty and not an earlier `compress report`; choose another"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _weights_bytes(folder: Path) -> int:
    return sum(
        p.stat().st_size
        for p in folder.iterdir()
        if p.is_file() and (p.suffix == ".safetensors" or p.name in IR_FILES)
    )


def _runner(folder: Path, options: ReportOptions) -> Runner:
    """The OpenVINO runner for an IR folder, the local (torch) runner for the others."""
    if is_openvino_ir(folder):
        return OpenVINORunner(folder, precision=options.openvino_precision)
    return LocalRunner(folder, batch_size=options.batch_size)


def compression_report(
    suite: Suite,
    suite_path: Path,
    base: Path,
    variants: Sequence[Path],
    out: Path,
    *,
    options: ReportOptions = ReportOptions(),
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
    log: Log | None = None,
) -> CompressionReport:
    """Evaluate ``base`` and every variant with ``suite`` and write the comparison.

    Args:
        suite / suite_path: the loaded suite and its file.
        base: the uncompressed model folder.
        variants: compressed model folders (``compress make`` outputs, or any model folder).
        out: output folder (new, empty, or an earlier ``compress report``).
        options: margin, judge, bootstrap, speed settings.
        overrides: the suite's ``--set`` strings (recorded).
        progress: wraps long loops with a progress display.
        log: called with one line per finished step.

    Returns:
        The report (also written as ``out/report.json`` and ``out/report.md``).

    Raises:
        BadInputError: no variants, two models with one name, a bad suite or model folder.
    """
    if not variants:
        raise BadInputError("give at least one --variant model folder")
    started = now_utc()
    models = {BASE: base}
    for folder in variants:
        name = model_name(folder)
        if name in models:
            raise BadInputError(f"two models are named {name!r}: {models[name]} and {folder}")
        models[name] = folder
    plans = plan_suite(
        suite, runner_kind="local", images=False, loglikelihood=True, limit=options.limit
    )
    labelled = [p for p in plans if p.skip_reason is None and p.spec.is_classification]
    if not labelled:
        raise BadInputError(
            f"suite {suite.suite}: no labelled task the local runner can run; accuracy changes "
            "need classification tasks"
        )
    _prepare(out)
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    runtimes: dict[str, dict[str, Any]] = {}
    for name, folder in models.items():
        runner = _runner(folder, options)
        runtimes[name] = {k: v for k, v in runner.describe().items() if k != "model"}
        target = out / EVALS / name
        prepare_out(target)
        try:
            manifest_path = folder / "manifest.json"
            run_suite(
                suite,
                suite_path,
                labelled,
                runner,
                target,
                overrides=list(overrides),
                model_manifest=manifest_path if manifest_path.is_file() else None,
                progress=progress,
            )
        finally:
            runner.close()
        rows[name] = {p.spec.task: _read_rows(target / p.spec.task / PREDICTIONS) for p in labelled}
        if log is not None:
            log(f"{name}: evaluated ({', '.join(rows[name])}) in {target}")
    speeds: dict[str, Speed] = measure_speed(
        models,
        new_tokens=options.new_tokens,
        rounds=options.speed_rounds,
        openvino_precision=options.openvino_precision,
    )
    if log is not None:
        log(f"timed {len(models)} models side by side ({options.speed_rounds} rounds)")
    memories: dict[str, PeakMemory] = {}
    for name, folder in models.items():
        memories[name] = measure_peak_memory(
            folder, new_tokens=options.new_tokens, openvino_precision=options.openvino_precision
        )
        if log is not None:
            log(f"{name}: peak memory {memories[name].peak_rss_bytes / 1e6:.0f} MB")
    base_bytes = _weights_bytes(base)
    entries: list[VariantEntry] = []
    for name, folder in models.items():
        if name == BASE:
            continue
        changes: list[TaskChanges] = [
            task_changes(
                plan.spec.task,
                rows[BASE][plan.spec.task],
                rows[name][plan.spec.task],
                attributes=plan.attributes,
                bootstrap=options.bootstrap,
                confidence=suite.confidence,
                min_group_size=suite.min_group_size,
                seed=suite.seed,
            )
            for plan in labelled
        ]
        entries.append(
            VariantEntry(
                name=name,
                folder=folder,
                manifest=earlier_manifest(folder),
                weights_bytes=_weights_bytes(folder),
                speed=speeds[name],
                memory=memories[name],
                runtime=runtimes[name],
                tasks=changes,
                gate=check_compression_gate(changes, margin=options.margin, judge=options.judge),
            )
        )
    manifest = base_manifest(MANIFEST_KIND, started=started)
    manifest.update(
        {
            "suite": {"path": str(suite_path), "sha256": file_sha256(suite_path)},
            "overrides": list(overrides),
            "options": options.__dict__,
            "models": {name: str(folder) for name, folder in models.items()},
            "skipped_tasks": {
                p.spec.task: p.skip_reason or "not a labelled task (no accuracy)"
                for p in plans
                if p not in labelled
            },
        }
    )
    report = CompressionReport(
        suite=suite.suite,
        confidence=suite.confidence,
        min_group_size=suite.min_group_size,
        base_folder=base,
        base_weights_bytes=base_bytes,
        base_speed=speeds[BASE],
        base_memory=memories[BASE],
        base_runtime=runtimes[BASE],
        variants=entries,
        manifest=manifest,
    )
    write_report(report, out)
    write_html(report, out)
    write_manifest(out, manifest)
    return report
