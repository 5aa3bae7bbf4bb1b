"""``eval run``: a suite of tasks on one model, each scored with the subgroup engine.

Two phases. :func:`plan_suite` checks everything that can be checked without
the model (task files, dataset files, answer spaces, gates against each
task's metrics and attributes), so a typo costs seconds, not a model load.
:func:`run_suite` then, per task: reads the examples (``read = used +
rejected``), runs the runner (generation + parsing, or log-likelihood choice),
writes ``<out>/<task>/predictions.jsonl`` (the predictions contract plus
``task``) and the task's ``gates.yaml``, and hands both over in memory to
:func:`eval.subgroups.analysis.analyze_subgroups` for
``report.json``/``report.md``/``manifest.json``. Tasks that the runner cannot
serve (images required, scoring needed) are skipped with the reason.
``summary.json`` and ``manifest.json`` close the run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from eval.gates import GateSpec, check_gates
from eval.manifest import library_versions, read_model_manifest
from eval.metrics.functional import normalize_answer
from eval.metrics.labels import canonical_label
from eval.metrics.text import rouge_l_f1
from eval.report.model import SubgroupReport
from eval.runners.base import GenerationParams, Runner, ShardedRunner
from eval.subgroups.analysis import Progress, analyze_subgroups, make_config
from eval.tasks import load_task
from eval.tasks.dataset import Example, allowed_answers, read_examples, split_file
from eval.tasks.parse import parse_answer
from eval.tasks.spec import TaskSpec
from eval.tasks.suite import Suite, gates_for_task, read_suite_gates, write_gates
from llm import __version__
from llm.data.io import ReadStats
from llm.errors import BadInputError
from llm.manifest import earlier_manifest, file_sha256, git_commit

RUN_MANIFEST_KIND = "eval-run"
PREDICTIONS = "predictions.jsonl"
# what `--no-prediction-text` leaves out of every row (generation tasks also lose their texts)
PREDICTION_TEXT_KEYS = ("completion",)
SUMMARY = "summary.json"
MANIFEST = "manifest.json"
GATES_APPLIED = "gates.yaml"
# called with each finished task's summary entry and its read counts (None when skipped)
TaskDone = Callable[[dict[str, Any], ReadStats | None], None]


@dataclass
class TaskPlan:
    """One task, resolved and checked: what to read, what to compute, which gates."""

    spec: TaskSpec
    split_path: Path
    choices: list[str] | None
    attributes: list[str]
    gates: list[GateSpec]
    limit: int | None
    skip_reason: str | None = None


@dataclass
class SuiteRun:
    """What a run produced."""

    summary: dict[str, Any]
    manifest: dict[str, Any]
    out: Path
    stats: list[ReadStats] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.summary["passed"])


def skip_reason(spec: TaskSpec, runner_kind: str, images: bool, loglikelihood: bool) -> str | None:
    """Why a runner cannot serve a task, or None when it can."""
    if spec.images == "required" and not images:
        return f"needs image input (images: required) and the {runner_kind} runner is text-only"
    if spec.mode == "loglikelihood_choice" and not loglikelihood:
        return (
            f"needs answer scoring (mode: loglikelihood_choice); the {runner_kind} runner "
            "cannot score"
        )
    return None


def plan_suite(
    suite: Suite,
    *,
    runner_kind: str,
    images: bool,
    loglikelihood: bool,
    limit: int | None = None,
) -> list[TaskPlan]:
    """Resolve and check every task of a suite before any model work.

    Args:
        suite: the loaded suite.
        runner_kind / images / loglikelihood: what the runner can do (skips).
        limit: ``--limit``, over the suite's and the task entries'.

    Returns:
        One plan per task, in suite order (skipped tasks carry their reason).

    Raises:
        BadInputError: an unknown task, a missing dataset or split, no answer
            space, a gate on a metric or attribute the task does not compute, or
            a suite gate that applies to no task.
    """
    suite_gates = read_suite_gates(suite.gates)
    plans: list[TaskPlan] = []
    for entry in suite.tasks:
        spec = load_task(entry.task)
        dataset_dir = entry.dataset_dir or spec.dataset.dataset_dir or suite.dataset_dir
        if dataset_dir is None:
            raise BadInputError(
                f"task {spec.task!r}: no dataset_dir; set it in the suite or --set dataset_dir=PATH"
            )
        split = entry.split or suite.split or spec.dataset.split
        attributes = entry.attributes or spec.attributes or suite.attributes
        binary = spec.positive_label is not None
        gates_path: Path | None = entry.gates or suite.gates
        if entry.gates is not None:
            gates = read_suite_gates(entry.gates)
        else:
            gates = gates_for_task(suite_gates, spec.metrics, binary)
        if gates and gates_path is not None:
            check_gates(
                gates,
                path=gates_path,
                metrics=spec.metrics,
                attributes=attributes,
                bootstrap=suite.bootstrap > 0,
                binary=binary,
            )
        reason = skip_reason(spec, runner_kind, images, loglikelihood)
        path = split_file(dataset_dir, spec, split)
        plans.append(
            TaskPlan(
                spec=spec,
                split_path=path,
                choices=allowed_answers(dataset_dir, spec),
                attributes=attributes,
                gates=gates,
                limit=limit or entry.limit or suite.limit,
                skip_reason=reason,
            )
        )
    used = {(g.metric, g.rule, g.attribute) for p in plans for g in p.gates}
    unused = [g for g in suite_gates if (g.metric, g.rule, g.attribute) not in used]
    if unused:
        raise BadInputError(
            f"{suite.gates}: gate(s) on metric(s) no task of the suite computes: "
            f"{', '.join(g.display_name(g.attribute) for g in unused)}"
        )
    return plans


def prepare_out(out: Path) -> None:
    """Make ``out`` ready: new or empty, or an earlier ``eval run`` (then replaced whole).

    Raises:
        BadInputError: ``out`` is a file, or a non-empty folder that is not an eval run.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if (earlier_manifest(out) or {}).get("kind") != RUN_MANIFEST_KIND:
            raise BadInputError(
                f"--out {out}: not empty and not an earlier `eval run` output; "
                "choose another folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def iter_predictions(
    plan: TaskPlan, examples: list[Example], runner: Runner, *, seed: int, chunk_size: int = 8
) -> Iterator[dict[str, Any]]:
    """Run the runner on the examples and parse its answers into prediction rows.

    Rows come out chunk by chunk (``chunk_size`` prompts per runner call, one
    example per scoring call), so a progress bar wrapped around this moves as
    the model works.

    Yields:
        One row per example, in order: ``id, task, prediction, reference, score?,
        demographics`` and, for classification, ``invalid`` (plus the raw
        ``completion`` when a generation was parsed).
    """
    spec = plan.spec
    if spec.mode == "loglikelihood_choice":
        assert plan.choices is not None  # planned: classification tasks have choices
        for example in examples:
            probabilities = _softmax(runner.loglikelihood(example.prompt, plan.choices))
            best = max(range(len(plan.choices)), key=probabilities.__getitem__)
            scored = plan.choices.index(spec.positive_label) if spec.positive_label else best
            yield _row(
                spec, example, plan.choices[best], score=probabilities[scored], invalid=False
            )
        return
    params = GenerationParams(
        max_tokens=spec.generation.max_tokens,
        temperature=spec.generation.temperature,
        stop=tuple(spec.generation.stop),
        seed=seed,
    )
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start : start + chunk_size]
        completions = runner.generate([e.prompt for e in chunk], params)
        for example, completion in zip(chunk, completions, strict=True):
            parsed = parse_answer(completion, spec.parse, plan.choices)
            row = _row(spec, example, parsed.prediction, score=None, invalid=parsed.invalid)
            if spec.is_classification:
                row["completion"] = completion
            yield row


def example_shards(examples: Sequence[Example], size: int) -> list[str]:
    """The examples cut into shards of ``size`` in order, each a JSON list of examples."""
    return [
        json.dumps([asdict(e) for e in examples[i : i + size]], ensure_ascii=False)
        for i in range(0, len(examples), size)
    ]


def predict_shard(plan: TaskPlan, seed: int, shard: str, runner: Runner) -> list[dict[str, Any]]:
    """The prediction rows of one shard of :func:`example_shards` on ``runner``.

    What a :class:`~eval.runners.base.ShardedRunner` calls where the shard runs (bound
    to the task with ``functools.partial``): the same loop as in one process, on the
    runner's own chunk size.
    """
    examples = [Example(**fields) for fields in json.loads(shard)]
    chunk = int(getattr(runner, "chunk_size", 8))
    return list(iter_predictions(plan, examples, runner, seed=seed, chunk_size=chunk))


def _row(
    spec: TaskSpec, example: Example, prediction: str, *, score: float | None, invalid: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": example.id,
        "task": spec.task,
        "prediction": prediction,
        "reference": example.reference,
    }
    if score is not None:
        row["score"] = score
    row["demographics"] = example.demographics
    if spec.is_classification:
        row["invalid"] = invalid
    return row


def _write_predictions(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def without_text(spec: TaskSpec, row: dict[str, Any]) -> dict[str, Any]:
    """A prediction row with no model output or reference text (``--no-prediction-text``).

    Kept: id, task, demographics, score, invalid, and for classification the
    labels (answers from the task's closed answer space) with ``correct``.
    Left out: the raw ``completion``; for generation tasks the ``prediction``
    and ``reference`` texts, replaced by their per-example ``exact_match``
    (bool) and ``rouge_l`` (F-measure).
    """
    kept = {k: v for k, v in row.items() if k not in PREDICTION_TEXT_KEYS}
    if spec.is_classification:
        kept["correct"] = canonical_label(row["prediction"]) == canonical_label(row["reference"])
        return kept
    prediction, reference = str(row["prediction"]), str(row["reference"])
    kept.pop("prediction"), kept.pop("reference")
    kept["exact_match"] = normalize_answer(prediction) == normalize_answer(reference)
    kept["rouge_l"] = rouge_l_f1(prediction, reference)
    return kept


def sensitive_files(out: Path, tasks: list[str], prediction_text: bool) -> dict[str, Any]:
    """The manifest's ``sensitive`` entry: which files hold text from patient records."""
    return {
        "files": [str(out / task / PREDICTIONS) for task in tasks],
        "prediction_text": prediction_text,
        "why": (
            "model output (completions, generated text) and reference text taken from "
            "patient records; treat as the records themselves"
            if prediction_text
            else "ids, labels, scores, correctness and demographics of patients; "
            "no model output or reference text (--no-prediction-text)"
        ),
    }


def _task_summary(plan: TaskPlan, report: SubgroupReport | None) -> dict[str, Any]:
    spec = plan.spec
    entry: dict[str, Any] = {
        "task": spec.task,
        "version": spec.version,
        "split": plan.split_path.stem,
        "status": "skipped" if plan.skip_reason else "ok",
    }
    if plan.skip_reason:
        entry["reason"] = plan.skip_reason
        return entry
    assert report is not None
    entry.update(
        {
            "n": report.n,
            "metrics": {name: v.model_dump(mode="json") for name, v in report.overall.items()},
            "positive_label": spec.positive_label,
            "gates": {
                "total": len(report.gates),
                "failed": [
                    f"{g.name} ({g.attribute})" if g.attribute else g.name
                    for g in report.failed_gates
                ],
                "passed": not report.failed_gates,
            },
        }
    )
    return entry


def run_task(
    plan: TaskPlan,
    runner: Runner | ShardedRunner,
    suite: Suite,
    out: Path,
    *,
    model_manifest: Path | None,
    progress: Progress | None = None,
    prediction_text: bool = True,
) -> tuple[dict[str, Any], ReadStats]:
    """Evaluate one planned (not skipped) task and write its folder.

    With ``prediction_text`` false, ``predictions.jsonl`` holds no model output
    or reference text (:func:`without_text`); the report is computed from the
    full rows in memory either way. A :class:`~eval.runners.base.ShardedRunner`
    (the local runner on Ray) computes the rows itself, shard by shard, with
    :func:`iter_predictions` on its actors: the same rows in the same order.

    Returns:
        The task's summary entry and the read counts of its split.

    Raises:
        BadInputError / RecordError: a bad dataset row; runner errors.
    """
    spec = plan.spec
    folder = out / spec.task
    folder.mkdir(parents=True, exist_ok=True)
    stats = ReadStats(str(plan.split_path))
    examples = read_examples(
        plan.split_path,
        spec,
        images=runner.supports_images,
        choices=plan.choices,
        limit=plan.limit,
        stats=stats,
    )
    started = time.perf_counter()
    truncated_before = runner.truncated_prompts
    produced: Iterator[dict[str, Any]]
    if isinstance(runner, ShardedRunner):
        shards = example_shards(examples, runner.shard_size)
        produced = runner.predict(shards, partial(predict_shard, plan, suite.seed))
    else:
        chunk = int(getattr(runner, "chunk_size", 8))
        produced = iter_predictions(plan, examples, runner, seed=suite.seed, chunk_size=chunk)
    if progress is not None:
        produced = iter(progress(produced, len(examples), f"{spec.task}: running the model"))
    rows = list(produced)
    seconds = time.perf_counter() - started
    written = rows if prediction_text else [without_text(spec, r) for r in rows]
    predictions = _write_predictions(written, folder / PREDICTIONS)
    gates_path = write_gates(plan.gates, folder / GATES_APPLIED) if plan.gates else None
    config = make_config(
        predictions=predictions,
        attributes=plan.attributes,
        metrics=spec.metrics,
        positive_label=spec.positive_label,
        min_group_size=suite.min_group_size,
        bootstrap=suite.bootstrap,
        seed=suite.seed,
        confidence=suite.confidence,
        gates=gates_path,
        model_manifest=model_manifest,
        out=folder,
    )
    # the rows and gates just written are handed over, not read back
    analysis = analyze_subgroups(config, progress=progress, rows=rows, gates=plan.gates)
    entry = _task_summary(plan, analysis.report)
    entry.update(
        {
            "invalid": sum(bool(r["invalid"]) for r in rows) if spec.is_classification else None,
            "truncated_prompts": runner.truncated_prompts - truncated_before,
            "prompt": _prompt_kind(spec, runner.supports_images),
            "seconds": round(seconds, 2),
            "examples_per_s": round(len(rows) / seconds, 2) if seconds > 0 else None,
            "predictions": str(predictions),
            "report": str(folder / "report.json"),
        }
    )
    return entry, stats


def _prompt_kind(spec: TaskSpec, images: bool) -> str:
    if spec.doc_to_text is not None:
        return f"doc_to_text ({spec.doc_to_text.name})"
    if spec.images == "optional" and not images:
        name = spec.text_fallback.name if spec.text_fallback else "eval.tasks.hooks.without_images"
        return f"text fallback, images dropped ({name})"
    return "dataset messages"


def _task_json(plan: TaskPlan) -> dict[str, Any]:
    spec = plan.spec.model_dump(mode="json", exclude={"doc_to_text", "text_fallback"})
    for hook in ("doc_to_text", "text_fallback"):
        ref = getattr(plan.spec, hook)
        spec[hook] = ref.name if ref is not None else None
    return {
        "spec": spec,
        "dataset": {"path": str(plan.split_path), "sha256": file_sha256(plan.split_path)},
        "choices": plan.choices,
        "attributes": plan.attributes,
        "limit": plan.limit,
        "gates": [g.model_dump(mode="json") for g in plan.gates],
    }


def run_suite(
    suite: Suite,
    suite_path: Path,
    plans: list[TaskPlan],
    runner: Runner | ShardedRunner,
    out: Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    model_manifest: Path | None = None,
    progress: Progress | None = None,
    on_task: TaskDone | None = None,
    prediction_text: bool = True,
) -> SuiteRun:
    """Run planned tasks and write per-task folders, ``summary.json`` and ``manifest.json``.

    Args:
        suite: the loaded suite.
        suite_path: its file (hashed into the manifest).
        plans: from :func:`plan_suite`.
        runner: the model runner.
        out: output folder (prepared with :func:`prepare_out`).
        overrides: the ``--set`` strings, recorded in the manifest.
        model_manifest: the evaluated model's ``manifest.json``, when it has one.
        progress: wraps long loops with a progress display.
        on_task: called with each task's summary entry as it finishes.
        prediction_text: keep model output and reference text in the prediction
            files (false: ``--no-prediction-text``, see :func:`without_text`).

    Returns:
        The summary (``passed`` false when any gate failed), manifest and read counts.
    """
    started = datetime.now(timezone.utc)
    entries: list[dict[str, Any]] = []
    all_stats: list[ReadStats] = []
    for plan in plans:
        stats: ReadStats | None = None
        if plan.skip_reason:
            entry = _task_summary(plan, None)
        else:
            entry, stats = run_task(
                plan,
                runner,
                suite,
                out,
                model_manifest=model_manifest,
                progress=progress,
                prediction_text=prediction_text,
            )
            all_stats.append(stats)
        entries.append(entry)
        if on_task is not None:
            on_task(entry, stats)
    ran = [e for e in entries if e["status"] == "ok"]
    summary: dict[str, Any] = {
        "suite": suite.suite,
        "model": runner.describe(),
        "tasks": entries,
        "passed": all(e["gates"]["passed"] for e in ran),
        "tasks_run": len(ran),
        "tasks_skipped": len(entries) - len(ran),
    }
    manifest: dict[str, Any] = {
        "kind": RUN_MANIFEST_KIND,
        "package_version": __version__,
        "git_commit": git_commit(),
        "suite": {
            "path": str(suite_path),
            "sha256": file_sha256(suite_path),
            "resolved": suite.model_dump(mode="json"),
            "overrides": list(overrides),
        },
        "runner": runner.describe(),
        "tasks": {p.spec.task: _task_json(p) for p in plans},
        "counts": {
            s.path: {"read": s.read, "used": s.used, "rejected": s.rejected} for s in all_stats
        },
        "sensitive": sensitive_files(out, [e["task"] for e in ran], prediction_text),
        "seed": suite.seed,
        "libraries": library_versions(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if model_manifest is not None:
        manifest["model_manifest"] = read_model_manifest(model_manifest)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return SuiteRun(summary=summary, manifest=manifest, out=out, stats=all_stats)


def format_value(entry: dict[str, Any] | None) -> str:
    """``0.812 [0.790, 0.833]`` from a report value entry (``n/a`` when undefined)."""
    if not entry or entry.get("value") is None:
        return "n/a"
    text = f"{entry['value']:.3f}"
    if entry.get("ci"):
        low, high = entry["ci"]
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows of the printed summary table: task, n, metrics with CIs, invalid, gates."""
    rows = []
    for entry in summary["tasks"]:
        if entry["status"] == "skipped":
            rows.append((entry["task"], "-", f"skipped: {entry['reason']}", "-", "-"))
            continue
        metrics = "\n".join(f"{name} {format_value(v)}" for name, v in entry["metrics"].items())
        gates = entry["gates"]
        if not gates["total"]:
            gate_text = "none"
        elif gates["passed"]:
            gate_text = f"{gates['total']} passed"
        else:
            gate_text = f"{len(gates['failed'])} of {gates['total']} FAILED"
        invalid = "-" if entry.get("invalid") is None else str(entry["invalid"])
        rows.append((entry["task"], str(entry["n"]), metrics, invalid, gate_text))
    return rows
