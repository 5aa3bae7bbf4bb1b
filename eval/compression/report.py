"""The compression report: ``report.json`` and ``report.md``.

One entry per variant: size on disk, peak memory and speed against the uncompressed model
(ratios), the runtime that ran it (torch, or OpenVINO with its precisions), and
per task the accuracy change overall and per subgroup with its interval, the subgroup that
loses most, and the compression gate's verdict. Changes are variant minus base, in points of
accuracy (0.02 = 2 points).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.compression.changes import Change, TaskChanges
from eval.compression.gate import GateOutcome
from eval.compression.memory import PeakMemory
from eval.compression.speed import Speed

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class VariantEntry:
    """One compressed variant, measured against the base model."""

    name: str
    folder: Path
    manifest: dict[str, Any] | None
    weights_bytes: int
    speed: Speed
    memory: PeakMemory
    runtime: dict[str, Any]
    tasks: list[TaskChanges]
    gate: GateOutcome


@dataclass
class CompressionReport:
    """Everything ``compress report`` measured."""

    suite: str
    confidence: float
    min_group_size: int
    base_folder: Path
    base_weights_bytes: int
    base_speed: Speed
    base_memory: PeakMemory
    base_runtime: dict[str, Any]
    variants: list[VariantEntry] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every variant passed the gate."""
        return all(v.gate.passed for v in self.variants)

    def as_json(self) -> dict[str, Any]:
        """The report as ``report.json`` holds it."""
        return {
            "suite": self.suite,
            "confidence": self.confidence,
            "min_group_size": self.min_group_size,
            "base": {
                "folder": str(self.base_folder),
                "weights_bytes": self.base_weights_bytes,
                "speed": self.base_speed.as_json(),
                "memory": self.base_memory.as_json(),
                "runtime": self.base_runtime,
            },
            "variants": [_variant_json(self, v) for v in self.variants],
            "passed": self.passed,
            "manifest": self.manifest,
        }


def _variant_json(report: CompressionReport, v: VariantEntry) -> dict[str, Any]:
    compression = (v.manifest or {}).get("compression")
    return {
        "name": v.name,
        "folder": str(v.folder),
        "compression": compression,
        "weights_bytes": v.weights_bytes,
        "size_ratio": round(v.weights_bytes / report.base_weights_bytes, 4),
        "speed": v.speed.as_json(),
        "speedup": round(v.speed.tokens_per_s / report.base_speed.tokens_per_s, 3),
        "first_token_ratio": round(v.speed.first_token_s / report.base_speed.first_token_s, 3),
        "memory": v.memory.as_json(),
        "peak_memory_ratio": round(v.memory.peak_rss_bytes / report.base_memory.peak_rss_bytes, 3),
        "runtime": v.runtime,
        "tasks": [t.as_json() for t in v.tasks],
        "gate": v.gate.as_json(),
    }


def _points(change: Change) -> str:
    text = f"{100 * change.change:+.1f}"
    if change.ci is not None:
        text += f" [{100 * change.ci[0]:+.1f}, {100 * change.ci[1]:+.1f}]"
    return text


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def runtime_name(runtime: dict[str, Any]) -> str:
    """``torch``, or ``openvino`` with the precision it computed in (``openvino bf16``)."""
    if runtime.get("runner") != "openvino":
        return "torch"
    precision = (runtime.get("openvino") or {}).get("inference_precision_hint")
    return f"openvino {precision}" if precision else "openvino"


def render_markdown(report: CompressionReport) -> str:
    """The report as Markdown: a summary table, then per variant its subgroup changes."""
    level = f"{report.confidence:.0%}"
    lines = [
        f"# Compression report: suite {report.suite}",
        "",
        f"Changes are variant minus uncompressed model, in points of accuracy, with paired "
        f"bootstrap {level} intervals. Groups under {report.min_group_size} examples are "
        "marked small and not gated. Speed: batch 1, greedy, measured side by side in one run. "
        "Peak memory: resident set of a process that loads the model and generates.",
        "",
        "| model | runtime | weights | size × | peak memory | tokens/s | speed × | first token "
        "| loses most (task) | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| base | {runtime_name(report.base_runtime)} | {_mb(report.base_weights_bytes)} | 1.00 | "
        f"{_mb(report.base_memory.peak_rss_bytes)} | {report.base_speed.tokens_per_s:.1f} | 1.00 | "
        f"{1000 * report.base_speed.first_token_s:.0f} ms | | |",
    ]
    for v in report.variants:
        worst = [(t.task, t.worst) for t in v.tasks if t.worst is not None]
        named = "none loses"
        if worst:
            worst_task, w = min(worst, key=lambda item: item[1].change.change)
            named = f"{w.attribute}={w.group}: {_points(w.change)} ({worst_task})"
        lines.append(
            f"| {v.name} | {runtime_name(v.runtime)} | {_mb(v.weights_bytes)} | "
            f"{v.weights_bytes / report.base_weights_bytes:.2f} | "
            f"{_mb(v.memory.peak_rss_bytes)} | {v.speed.tokens_per_s:.1f} | "
            f"{v.speed.tokens_per_s / report.base_speed.tokens_per_s:.2f} | "
            f"{1000 * v.speed.first_token_s:.0f} ms | {named} | "
            f"{v.gate.verdict()} |"
        )
    for v in report.variants:
        lines += ["", f"## {v.name}", ""]
        gate = v.gate
        lines.append(
            f"Gate: no subgroup may lose more than {100 * gate.margin:g} points "
            f"(judged on `{gate.judge}`): **{'passed' if gate.passed else 'failed'}**."
        )
        for failure in gate.failures:
            lines.append(f"- {failure.task}: {failure.attribute}={failure.group}: {failure.reason}")
        for task in v.tasks:
            overall = task.overall
            lines += [
                "",
                f"### {task.task}",
                "",
                f"Overall: {100 * overall.base:.1f} → {100 * overall.variant:.1f} "
                f"({_points(overall)}), n={overall.n}.",
                "",
                "| attribute | group | n | base | variant | change [CI] |",
                "|---|---|---|---|---|---|",
            ]
            for attribute, groups in task.by_attribute.items():
                for group, c in groups.items():
                    small = " (small)" if c.small else ""
                    lines.append(
                        f"| {attribute} | {group}{small} | {c.n} | {100 * c.base:.1f} | "
                        f"{100 * c.variant:.1f} | {_points(c)} |"
                    )
            if task.worst is None:
                lines += ["", "No subgroup loses accuracy."]
            else:
                lines += [
                    "",
                    f"Loses most: {task.worst.attribute}={task.worst.group} "
                    f"({_points(task.worst.change)}).",
                ]
    return "\n".join(lines) + "\n"


def write_report(report: CompressionReport, out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``. Returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / REPORT_JSON
    json_path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    md_path = out / REPORT_MD
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
