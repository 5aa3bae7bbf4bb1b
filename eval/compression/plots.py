"""Figures of a compression report as PNG bytes for ``report.html``.

* :func:`changes_figure`: a forest plot per task: one row per subgroup (not small), one
  marker per variant at its accuracy change with its paired interval; zero and ``-margin``
  drawn as lines, so a variant whose interval lies left of the margin line fails the gate.
* :func:`frontier_figure`: the accuracy-size frontier per subgroup: for each task, the
  change of every group (one line each, the group that loses most in colour) against the
  variant's size relative to the base model.

Drawn on matplotlib's ``Figure`` with the Agg canvas (no pyplot, no display), imported
only when a figure is drawn.
"""

from __future__ import annotations

import io
from typing import Any

from eval.compression.report import CompressionReport

DPI = 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Okabe-Ito, colour-blind safe
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARGIN_COLOUR = "#D55E00"


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _groups(report: CompressionReport, task_index: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for variant in report.variants:
        for attribute, groups in variant.tasks[task_index].by_attribute.items():
            for group, change in groups.items():
                if not change.small and (attribute, group) not in seen:
                    seen.append((attribute, group))
    return seen


def changes_figure(report: CompressionReport, task_index: int, margin: float) -> bytes:
    """Forest plot of one task's changes per subgroup and variant (module docstring)."""
    from matplotlib.figure import Figure

    rows = _groups(report, task_index)
    task = report.variants[0].tasks[task_index].task
    height = 1.4 + 0.35 * max(len(rows), 1) * max(1, len(report.variants)) ** 0.5
    fig = Figure(figsize=(9.0, height))
    ax = fig.add_axes((0.28, 0.9 / height + 0.05, 0.68, 1 - 1.5 / height))
    step = 0.8 / max(len(report.variants), 1)
    for k, variant in enumerate(report.variants):
        colour = COLOURS[k % len(COLOURS)]
        for i, (attribute, group) in enumerate(rows):
            change = variant.tasks[task_index].by_attribute.get(attribute, {}).get(group)
            if change is None or change.small:
                continue
            y = i - 0.4 + step * (k + 0.5)
            x = 100 * change.change
            if change.ci is not None:
                ax.plot([100 * change.ci[0], 100 * change.ci[1]], [y, y], color=colour, lw=1.5)
            ax.plot([x], [y], "o", color=colour, ms=4, label=variant.name if i == 0 else None)
    ax.axvline(0.0, color="#444444", lw=0.8)
    ax.axvline(-100 * margin, color=MARGIN_COLOUR, lw=0.8, ls="--", label=f"-{100 * margin:g}")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{a}={g}" for a, g in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy change from the uncompressed model (points)")
    ax.set_title(f"{task}: change per subgroup", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=min(3, len(report.variants) + 1))
    return _png(fig)


def frontier_figure(report: CompressionReport, task_index: int) -> bytes:
    """Accuracy change of every subgroup against size on disk (module docstring)."""
    from matplotlib.figure import Figure

    task = report.variants[0].tasks[task_index].task
    variants = sorted(report.variants, key=lambda v: v.weights_bytes)
    sizes = [v.weights_bytes / report.base_weights_bytes for v in variants]
    worst = {
        (t.worst.attribute, t.worst.group)
        for v in report.variants
        for t in v.tasks[task_index : task_index + 1]
        if t.worst is not None
    }
    fig = Figure(figsize=(9.0, 4.2))
    ax = fig.add_axes((0.08, 0.13, 0.62, 0.78))
    for k, (attribute, group) in enumerate(_groups(report, task_index)):
        points = [v.tasks[task_index].by_attribute.get(attribute, {}).get(group) for v in variants]
        xs = [1.0] + [s for s, p in zip(sizes, points, strict=True) if p is not None]
        ys = [0.0] + [100 * p.change for p in points if p is not None]
        named = (attribute, group) in worst
        ax.plot(
            xs,
            ys,
            marker="o",
            ms=3,
            lw=1.6 if named else 0.7,
            color=COLOURS[k % len(COLOURS)] if named else "#9a9a9a",
            label=f"{attribute}={group}" if named else None,
        )
    for v, s in zip(variants, sizes, strict=True):
        ax.annotate(v.name, (s, 0), fontsize=7, rotation=90, va="bottom")
    ax.axhline(0.0, color="#444444", lw=0.8)
    ax.set_xlabel("weights on disk, relative to the uncompressed model")
    ax.set_ylabel("accuracy change (points)")
    ax.set_title(f"{task}: accuracy-size frontier per subgroup (grey: other groups)", fontsize=10)
    if worst:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)
