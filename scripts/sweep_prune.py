"""Pruning sweep: the sparsity at which the first subgroup loses, against the overall score.

    .venv/bin/python scripts/sweep_prune.py --model build/demo-smollm2/export \
        --datasets build/demo-smollm2/datasets --sparsity 0.1,0.3,0.5,0.7 \
        --limit 40 --out build/sweep-smollm2 --json build/sweep-smollm2/sweep.json

Issue #26 asks for "the sparsity at which the first subgroup loses more than 2 points,
against the sparsity at which the overall score does". For every sparsity this makes an
unstructured magnitude-pruned variant (``clinical-llm compress make --method
prune-unstructured --sparsity S``, under ``<out>/variants/``), then runs ``clinical-llm
compress report`` once over all of them (the base model is evaluated once; the report's
speed part is cut to one round of one token, since the pruned weights are dense and compute
what the base computes). A variant folder already made from the same source files (by the
SHA-256 of each, as its manifest records them) is reused. ``--report`` reads an earlier
``report.json`` instead.

A loss **crosses** the margin by the report's gate rule (``--judge``, default ``ci``): a
change crosses when the upper bound of its paired bootstrap interval is below ``-margin``
(the loss is shown by the data); ``point``: when the change itself is; ``ci_conservative``:
when the lower bound is. The subgroup side is exactly the gate: any non-small (task,
attribute, group). The overall side is any task's overall change. Both first sparsities
are also given under the point rule, which crosses earlier at small sizes.

Prints a table per task (overall change and the worst subgroup's change, with intervals, in
points) and the first sparsity at which each crosses; ``--json`` writes it all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "clinical-llm")
SUITE = REPO / "eval/suites/compression.yaml"
JUDGES = ("ci", "ci_conservative", "point")
VARIANT_PREFIX = "prune-unstructured-"


def parse_sparsities(text: str) -> list[float]:
    """``"0.1,0.3"`` as sorted distinct sparsities, each in (0, 1).

    Raises:
        ValueError: a value that is not a number in (0, 1), or none at all.
    """
    values = sorted({float(part) for part in text.split(",") if part.strip()})
    if not values:
        raise ValueError("give at least one sparsity, e.g. --sparsity 0.1,0.3,0.5")
    bad = [v for v in values if not 0.0 < v < 1.0]
    if bad:
        raise ValueError(f"a sparsity is a share of weights in (0, 1), got {bad}")
    return values


def observed(change: dict[str, Any], judge: str) -> float | None:
    """The value of a ``report.json`` change that ``judge`` compares with ``-margin``."""
    if judge == "point":
        return float(change["change"])
    if change["ci"] is None:
        return None
    return float(change["ci"][1] if judge == "ci" else change["ci"][0])


def crosses(change: dict[str, Any], *, margin: float, judge: str) -> bool:
    """Whether a change shows a loss beyond ``margin`` by ``judge`` (the gate's rule).

    Without an interval a CI judge counts it as crossing, as the gate does (never pass on
    missing evidence).
    """
    value = observed(change, judge)
    return value is None or value < -margin


def _source_hashes(model: Path) -> dict[str, str]:
    from llm.manifest import file_sha256

    return {p.name: file_sha256(p) for p in sorted(model.iterdir()) if p.is_file()}


def made_from(folder: Path, sparsity: float, source: dict[str, str]) -> bool:
    """Whether ``folder`` is already this sparsity's pruned variant of the source files."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    compression = manifest.get("compression") or {}
    return (
        manifest.get("kind") == "model-compress"
        and compression.get("method") == "prune-unstructured"
        and compression.get("sparsity") == sparsity
        and (manifest.get("source") or {}).get("files") == source
    )


def _make_variants(model: Path, sparsities: Sequence[float], out: Path) -> list[Path]:
    source = _source_hashes(model)
    folders = []
    for sparsity in sparsities:
        folder = out / "variants" / f"{VARIANT_PREFIX}{sparsity:g}"
        if made_from(folder, sparsity, source):
            print(f"{folder}: made from these source files already, reused", file=sys.stderr)
        else:
            argv = [CLI, "compress", "make", str(model), "--method", "prune-unstructured"]
            argv += ["--sparsity", f"{sparsity:g}", "--out", str(folder)]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        folders.append(folder)
    return folders


def _report_argv(args: argparse.Namespace, variants: Sequence[Path], out: Path) -> list[str]:
    argv = [CLI, "compress", "report", str(args.suite), "--base", str(args.model)]
    for folder in variants:
        argv += ["--variant", str(folder)]
    if args.datasets is not None:
        argv += ["--set", f"dataset_dir={args.datasets}"]
    argv += ["--margin", f"{args.margin:g}", "--judge", args.judge]
    argv += ["--bootstrap", str(args.bootstrap), "--new-tokens", "1", "--speed-rounds", "1"]
    if args.limit is not None:
        argv += ["--limit", str(args.limit)]
    return [*argv, "--out", str(out)]


def _run_reports(
    args: argparse.Namespace, variants: Sequence[Path]
) -> tuple[list[Path], list[list[str]]]:
    """One ``compress report`` over every variant, or with ``--jobs`` > 1 one per variant.

    Several reports side by side each evaluate the base model again (its scores are
    deterministic, so every report pairs against the same base answers); on a machine whose
    cores are shared that buys wall time with CPU time.
    """
    if args.jobs <= 1:
        runs = [(args.out / "report", variants)]
    else:
        runs = [(args.out / "reports" / folder.name, [folder]) for folder in variants]
    commands = [_report_argv(args, group, out) for out, group in runs]
    pending = list(commands)
    running: list[tuple[subprocess.Popen[bytes], list[str]]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            argv = pending.pop(0)
            running.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL), argv))
        proc, argv = running.pop(0)
        # exit 1 is a variant failing the gate, which is what a sweep is looking for
        if proc.wait() not in (0, 1):
            raise SystemExit(f"compress report failed ({proc.returncode}): {' '.join(argv)}")
    return [out / "report.json" for out, _ in runs], commands


def sweep_rows(
    reports: Sequence[dict[str, Any]], *, margin: float, judge: str
) -> list[dict[str, Any]]:
    """Per pruned variant of ``reports`` (by sparsity) and task: overall and worst-group change.

    Each row: ``sparsity``, ``task``, ``overall`` and ``worst_group`` (the report's entries),
    ``overall_crosses`` and ``groups_crossing`` (the non-small groups whose change crosses,
    as ``attribute=group``), under ``judge``.
    """
    rows = []
    for variant in (v for report in reports for v in report["variants"]):
        compression = variant.get("compression") or {}
        if compression.get("method") != "prune-unstructured":
            continue
        for task in variant["tasks"]:
            failing = [
                f"{attribute}={group}"
                for attribute, groups in task["by_attribute"].items()
                for group, change in groups.items()
                if not change["small"] and crosses(change, margin=margin, judge=judge)
            ]
            rows.append(
                {
                    "sparsity": float(compression["sparsity"]),
                    "zero_share": (compression.get("pruning") or {}).get("zero_share"),
                    "task": task["task"],
                    "overall": task["overall"],
                    "worst_group": task["worst_group"],
                    "overall_crosses": crosses(task["overall"], margin=margin, judge=judge),
                    "groups_crossing": failing,
                }
            )
    return sorted(rows, key=lambda r: (r["sparsity"], r["task"]))


def first_crossings(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The lowest sparsity at which any task's overall change crosses, and any group's.

    Also per task. None where nothing crosses at the swept sparsities.
    """

    def first(selected: Sequence[dict[str, Any]], key: str) -> float | None:
        hits = [r["sparsity"] for r in selected if r[key]]
        return min(hits) if hits else None

    tasks = sorted({r["task"] for r in rows})
    return {
        "overall": first(rows, "overall_crosses"),
        "subgroup": first(rows, "groups_crossing"),
        "by_task": {
            t: {
                "overall": first([r for r in rows if r["task"] == t], "overall_crosses"),
                "subgroup": first([r for r in rows if r["task"] == t], "groups_crossing"),
            }
            for t in tasks
        },
    }


def _points(change: dict[str, Any] | None) -> str:
    if change is None:
        return "none loses"
    text = f"{100 * change['change']:+.1f}"
    if change["ci"] is not None:
        text += f" [{100 * change['ci'][0]:+.1f}, {100 * change['ci'][1]:+.1f}]"
    return text


def render_table(rows: Sequence[dict[str, Any]], crossings: dict[str, Any], judge: str) -> str:
    """The sweep as a Markdown table (changes in points) and the first crossings."""
    lines = [
        "| sparsity | task | n | base acc | overall change [CI] | worst subgroup | "
        "its change [CI] | crossing (judge) |",
        "|---:|---|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        worst = r["worst_group"]
        name = "none"
        if worst is not None:
            name = f"{worst['attribute']}={worst['group']} (n={worst['n']})"
        marks = (["overall"] if r["overall_crosses"] else []) + r["groups_crossing"]
        lines.append(
            f"| {r['sparsity']:g} | {r['task']} | {r['overall']['n']} | "
            f"{r['overall']['base']:.3f} | {_points(r['overall'])} | {name} | "
            f"{_points(worst)} | {', '.join(marks) or '-'} |"
        )

    def fmt(value: float | None) -> str:
        return "not within the sweep" if value is None else f"{value:g}"

    lines.append("")
    lines.append(
        f"first sparsity crossing (judge {judge}): a subgroup {fmt(crossings['subgroup'])}, "
        f"the overall score {fmt(crossings['overall'])}"
    )
    for task, first in crossings["by_task"].items():
        lines.append(
            f"  {task}: a subgroup {fmt(first['subgroup'])}, overall {fmt(first['overall'])}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Model folder to prune (the base).")
    parser.add_argument("--datasets", type=Path, help="Task datasets (the suite's dataset_dir).")
    parser.add_argument("--sparsity", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--limit", type=int, default=None, help="Examples per task.")
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--judge", choices=JUDGES, default="ci")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="Folder for variants/ and report/.")
    parser.add_argument(
        "--jobs", type=int, default=1, help="Reports at once; > 1: one report per sparsity."
    )
    parser.add_argument(
        "--report", type=Path, nargs="+", help="Read these report.json; make and run none."
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the sweep here too.")
    args = parser.parse_args()
    started = time.monotonic()
    commands: list[list[str]] | None = None
    if args.report is not None:
        report_paths = list(args.report)
    else:
        if args.model is None or args.out is None:
            parser.error("--model and --out are needed unless --report is given")
        variants = _make_variants(args.model, parse_sparsities(args.sparsity), args.out)
        report_paths, commands = _run_reports(args, variants)
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in report_paths]
    rows = sweep_rows(reports, margin=args.margin, judge=args.judge)
    point = first_crossings(sweep_rows(reports, margin=args.margin, judge="point"))
    crossings = first_crossings(rows)
    print(render_table(rows, crossings, args.judge))
    if args.judge != "point":
        print(f"under the point rule: a subgroup {point['subgroup']}, overall {point['overall']}")
    if args.json is not None:
        result = {
            "reports": [str(p) for p in report_paths],
            "commands": commands,
            "margin": args.margin,
            "judge": args.judge,
            "limit": args.limit,
            "seconds": round(time.monotonic() - started, 1),
            "load_average": os.getloadavg(),
            "rows": rows,
            "first_crossing": crossings,
            "first_crossing_point": point,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
