"""Plots of a subgroup report as PNG bytes for ``report.html``.

Two kinds of figure, both forest plots (a point with its interval per row),
the layout clinicians know from meta-analyses:

* :func:`attribute_figure`: one panel per metric, one row per group of an
  attribute, the overall value as a dashed line; small groups are drawn hollow
  and grey (they are left out of disparities and gates).
* :func:`disparity_figure`: one panel per metric (and equalized odds), one row
  per attribute, the difference between groups with its interval, and each
  ``max_difference`` gate's threshold drawn on the rows it applies to.

Figures are drawn on matplotlib's ``Figure`` with the Agg canvas directly (no
pyplot: no global state, no display needed); matplotlib is imported only when
a plot is drawn so that importing the CLI stays fast.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from eval.report.model import (
    EQUALIZED_ODDS,
    AttributeReport,
    GateResult,
    ReportValue,
    SubgroupReport,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100
WIDTH_IN = 11.0
PANELS_PER_ROW = 4
ROW_HEIGHT_IN = 0.32
# margins in inches: figure title + panel title on top, tick labels + legend below
TOP_IN = 0.75
BOTTOM_IN = 0.8
ROW_GAP_IN = 0.7
COL_GAP_IN = 0.3
CHAR_IN = 0.075  # width of one row-label character at font size 9
# colour-blind safe (Okabe-Ito): blue for groups, vermillion for thresholds
GROUP_COLOUR = "#0072B2"
SMALL_COLOUR = "#9a9a9a"
THRESHOLD_COLOUR = "#D55E00"
OVERALL_COLOUR = "#444444"
FAILED_COLOUR = "#D55E00"


def _figure(n_panels: int, labels: Sequence[str]) -> tuple[Figure, list[Axes]]:
    """A grid of panels sharing the row labels, with margins fixed in inches.

    Margins are computed rather than left to matplotlib's constrained layout,
    which measured about half of the drawing time.
    """
    from matplotlib.figure import Figure

    # balanced grid: 4 panels side by side, 5 as 3 + 2, 7 as 4 + 3
    grid_rows = math.ceil(n_panels / PANELS_PER_ROW)
    cols = math.ceil(n_panels / grid_rows)
    panel_in = ROW_HEIGHT_IN * len(labels) + 0.3
    height = grid_rows * panel_in + (grid_rows - 1) * ROW_GAP_IN + TOP_IN + BOTTOM_IN
    left = max((len(label) for label in labels), default=4) * CHAR_IN + 0.3
    axes_width = (WIDTH_IN - left - 0.25 - (cols - 1) * COL_GAP_IN) / cols
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    fig.subplots_adjust(
        left=left / WIDTH_IN,
        right=1 - 0.25 / WIDTH_IN,
        top=1 - TOP_IN / height,
        bottom=BOTTOM_IN / height,
        hspace=ROW_GAP_IN / panel_in,
        wspace=COL_GAP_IN / axes_width,
    )
    axes = fig.subplots(grid_rows, cols, squeeze=False, sharey=True)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # no Software/Date metadata: the same report gives the same bytes
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _errorbars(
    ax: Axes,
    points: Sequence[tuple[float, float, Sequence[float] | None]],
    *,
    colour: str,
    hollow: bool,
) -> None:
    """One ``errorbar`` call for all ``(y, value, ci)`` points of a style (fewer artists)."""
    if not points:
        return
    ys = [p[0] for p in points]
    values = [p[1] for p in points]
    # a point without an interval gets a zero-width bar
    lower = [0.0 if ci is None else max(v - ci[0], 0.0) for _, v, ci in points]
    upper = [0.0 if ci is None else max(ci[1] - v, 0.0) for _, v, ci in points]
    ax.errorbar(
        values,
        ys,
        xerr=[lower, upper],
        fmt="o",
        color=colour,
        ecolor=colour,
        elinewidth=1.6,
        capsize=3,
        markersize=6,
        markerfacecolor="white" if hollow else colour,
        markeredgecolor=colour,
    )


def _limit_to_compared(
    ax: Axes,
    compared: Sequence[tuple[float, float, Sequence[float] | None]],
    small: Sequence[tuple[float, float, Sequence[float] | None]],
) -> None:
    """Scale the axis to the compared groups' intervals and the small groups' points.

    A small group's interval is often most of [0, 1]; letting it set the scale
    would squeeze the groups that matter into a corner. Its whiskers are cut at
    the panel's edge instead (the table holds the full interval).
    """
    if not compared or not small:
        return
    xs = [v for _, v, _ in small]
    for _, value, ci in compared:
        xs += [value] if ci is None else [value, ci[0], ci[1]]
    low, high = min(xs), max(xs)
    pad = max((high - low) * 0.06, 0.005)
    ax.set_xlim(low - pad, high + pad)


def _undefined(ax: Axes, y: float) -> None:
    ax.text(
        0.02,
        y,
        "n/a",
        transform=ax.get_yaxis_transform(),
        va="center",
        ha="left",
        color=SMALL_COLOUR,
        fontsize=9,
        style="italic",
    )


def _style(ax: Axes, labels: list[str], title: str) -> None:
    # group names are user data: a '$' must not switch matplotlib into mathtext
    ax.set_yticks(range(len(labels)), labels, parse_math=False)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top, as in the tables
    ax.set_title(title, fontsize=11, parse_math=False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def attribute_figure(
    attribute: str,
    block: AttributeReport,
    metrics: Sequence[str],
    overall: dict[str, ReportValue],
    *,
    min_group_size: int | None,
) -> bytes:
    """Each metric by group of one attribute, with intervals, as PNG bytes.

    Args:
        attribute: the attribute's name (shown in the title).
        block: its entry of the report's ``by_attribute``.
        metrics: the metrics to plot, one panel each.
        overall: the report's ``overall`` (drawn as a dashed line per panel).
        min_group_size: the run's threshold for small groups (for the legend).

    Returns:
        The figure as a PNG image.
    """
    from matplotlib.lines import Line2D

    groups = list(block.groups.items())
    labels = [f"{name}  (n={entry.n})" for name, entry in groups]
    fig, axes = _figure(len(metrics), labels)
    for ax, metric in zip(axes, metrics, strict=True):
        points: dict[bool, list[tuple[float, float, Sequence[float] | None]]] = {
            False: [],
            True: [],
        }
        for y, (_, entry) in enumerate(groups):
            estimate = entry.metrics.get(metric)
            if estimate is None or estimate.value is None:
                _undefined(ax, y)
            else:
                points[entry.small].append((y, estimate.value, estimate.ci))
        _errorbars(ax, points[False], colour=GROUP_COLOUR, hollow=False)
        _errorbars(ax, points[True], colour=SMALL_COLOUR, hollow=True)
        _limit_to_compared(ax, points[False], points[True])
        overall_value = overall.get(metric)
        if overall_value is not None and overall_value.value is not None:
            ax.axvline(overall_value.value, color=OVERALL_COLOUR, linestyle="--", linewidth=1)
        _style(ax, labels, metric.replace("_", " "))
    handles = [
        Line2D([], [], color=GROUP_COLOUR, marker="o", linestyle="-", label="group (interval)"),
        Line2D([], [], color=OVERALL_COLOUR, linestyle="--", label="overall"),
    ]
    if any(entry.small for _, entry in groups):
        small_label = f"small (n<{min_group_size})" if min_group_size is not None else "small"
        handles.append(
            Line2D(
                [],
                [],
                color=SMALL_COLOUR,
                marker="o",
                markerfacecolor="white",
                linestyle="-",
                label=f"{small_label}: not compared",
            )
        )
    fig.suptitle(f"{attribute}: metrics by group", fontsize=12, fontweight="bold", parse_math=False)
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=9)
    return _png(fig)


def disparity_figure(report: SubgroupReport) -> bytes | None:
    """Difference between groups per attribute and metric, with intervals and gate thresholds.

    Args:
        report: the subgroup report.

    Returns:
        The figure as a PNG image, or ``None`` when the report has no attributes.
    """
    from matplotlib.lines import Line2D

    attributes = list(report.by_attribute)
    if not attributes:
        return None
    panels = list(report.metrics)
    if any(b.equalized_odds is not None for b in report.by_attribute.values()):
        panels.append(EQUALIZED_ODDS)
    thresholds = _difference_thresholds(report.gates)
    fig, axes = _figure(len(panels), attributes)
    any_threshold = any_failed = False
    for ax, metric in zip(axes, panels, strict=True):
        points: dict[bool, list[tuple[float, float, Sequence[float] | None]]] = {
            False: [],
            True: [],
        }
        for y, attribute in enumerate(attributes):
            gap = report.by_attribute[attribute].disparity_value(metric)
            value, ci = (None, None) if gap is None else (gap.value, gap.ci)
            gate = thresholds.get((attribute, metric))
            failed = gate is not None and not gate[1]
            any_failed |= failed
            if value is None:
                _undefined(ax, y)
            else:
                points[failed].append((y, value, ci))
            if gate is not None:
                any_threshold = True
                ax.vlines(gate[0], y - 0.4, y + 0.4, color=THRESHOLD_COLOUR, linestyle=":", lw=2)
        _errorbars(ax, points[False], colour=GROUP_COLOUR, hollow=False)
        _errorbars(ax, points[True], colour=FAILED_COLOUR, hollow=False)
        ax.axvline(0.0, color=OVERALL_COLOUR, linewidth=0.8)
        _style(ax, attributes, metric.replace("_", " "))
    handles = [
        Line2D([], [], color=GROUP_COLOUR, marker="o", label="difference max − min (interval)")
    ]
    if any_threshold:
        handles.append(
            Line2D([], [], color=THRESHOLD_COLOUR, linestyle=":", lw=2, label="gate threshold")
        )
    if any_failed:
        handles.append(Line2D([], [], color=FAILED_COLOUR, marker="o", label="gate failed"))
    fig.suptitle("Gaps between groups, per attribute", fontsize=12, fontweight="bold")
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=9)
    return _png(fig)


def _difference_thresholds(
    gates: Sequence[GateResult],
) -> dict[tuple[str, str], tuple[float, bool]]:
    """``(attribute, metric) -> (threshold, passed)`` of every ``max_difference`` gate.

    With two gates on the same row the stricter (lower) threshold is drawn,
    and the row counts as failed when either failed.
    """
    out: dict[tuple[str, str], tuple[float, bool]] = {}
    for gate in gates:
        if gate.rule != "max_difference" or gate.attribute is None:
            continue
        key = (gate.attribute, gate.metric)
        threshold, passed = gate.threshold, gate.passed
        if key in out:
            threshold = min(threshold, out[key][0])
            passed = passed and out[key][1]
        out[key] = (threshold, passed)
    return out
