"""Figure 4: where the property-based search finds failures: every example it tried, one
panel per dtype (row) and implementation (column), failures filled."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.common.formatting import format_logit
from gradverify.report.figures.legend import legend_below
from gradverify.report.figures.placement import TopLabel, place_top_labels
from gradverify.report.figures.style import (
    DTYPE_BITS,
    FAILED,
    NOTE_SIZE,
    REFERENCE_COLOR,
    ImplementationStyle,
    bits_axis,
    empty,
    implementation_handles,
    implementation_styles,
    new_figure,
    number,
    ordered_dtypes,
    plain_text,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIRST_FAILURE_STYLE", "SAMPLES_NOTE", "search_samples_figure"]

FIRST_FAILURE_STYLE = (0, (4, 2))
"""The line style of the vertical line at the first failing saturation."""
_LINE_COLOR = "#1a1a1a"

SAMPLES_NOTE = (
    "Every example the property-based search generated: the worst bits of error beyond the "
    "stable float baseline, log2(1 + ulps), against the largest |h| anywhere in the "
    "network. A dashed line marks where the implementation first failed at that dtype "
    "(the value above it); where no example passed (an incorrect verdict: wrong at every "
    "|h|), at the smallest |h| that failed."
)
"""What the search figure states below its panels."""


def search_samples_figure(
    searches: Sequence[Mapping[str, Any]],
    *,
    title: str = "Where does the search find failures, per implementation and dtype?",
) -> Figure:
    """Bits of error against saturation for every example of every search: a row per
    dtype, a column per search.

    Args:
        searches: mappings with ``implementation``, ``samples`` (mappings with ``dtype``,
            ``saturation``, ``bits``, ``verdict``) and optionally ``thresholds``
            (``{dtype: |h| or None}``: where the dtype first fails) and ``verdicts``
            (``{dtype: verdict}``).
        title: the figure's title: the question it answers.
    """
    with style():
        dtypes = ordered_dtypes([s["dtype"] for search in searches for s in search["samples"]])
        fig = new_figure(11.0, 1.9 + 2.3 * max(1, len(dtypes)))
        fig.suptitle(title, fontsize=12, fontweight="bold")
        if not searches or not dtypes:
            empty(fig.add_subplot(), "no search data")
            return fig
        styles = implementation_styles([s["implementation"] for s in searches])
        axes = fig.subplots(len(dtypes), len(searches), squeeze=False)
        xlim = _saturation_range(searches)
        labels: list[TopLabel] = []
        for c, search in enumerate(searches):
            look = styles[search["implementation"]]
            for r, dtype in enumerate(dtypes):
                ax = axes[r][c]
                labels += _samples_panel(ax, search, dtype, look, xlim)
                if r == len(dtypes) - 1:
                    ax.set_xlabel("saturation max |h| over all layers")
                if c == 0:
                    ax.set_ylabel("worst bits of error\nbeyond the baseline")
        _legend(fig, styles)
        place_top_labels(fig, labels)
        return fig


def _saturation_range(searches: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """The x range shared by every panel: all positive saturations, with a margin."""
    values = [
        number(s["saturation"])
        for search in searches
        for s in search["samples"]
        if number(s["saturation"]) > 0
    ]
    low, high = min(values, default=1.0), max(values, default=10.0)
    return low / 1.6, max(high, low * 10) * 1.6


def _samples_panel(
    ax: Axes,
    search: Mapping[str, Any],
    dtype: str,
    look: ImplementationStyle,
    xlim: tuple[float, float],
) -> list[TopLabel]:
    """One search at one dtype: passing examples hollow, failing ones filled, the first
    failing saturation marked; returns the label of that mark."""
    samples = [s for s in search.get("samples", []) if s["dtype"] == dtype]
    failing = [s for s in samples if s["verdict"] in FAILED]
    name = plain_text(search["implementation"], 30)
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    bits_axis(ax, DTYPE_BITS.get(dtype, 64))
    if not samples:
        ax.set_title(f"{name}, {dtype}")
        ax.text(0.5, 0.5, f"not searched at {dtype}", ha="center", va="center",
                transform=ax.transAxes, color=REFERENCE_COLOR)  # fmt: skip
        return []
    verdict = (search.get("verdicts") or {}).get(dtype)
    everywhere = bool(failing) and len(failing) == len(samples)
    detail = f" ({verdict})" if everywhere and verdict else ""
    ax.set_title(f"{name}, {dtype}: {len(failing)} of {len(samples)} failed{detail}")
    _scatter(ax, [s for s in samples if s not in failing], look, xlim[0], failed=False)
    _scatter(ax, failing, look, xlim[0], failed=True)
    if all(number(s["bits"]) == 0 for s in samples):
        ax.text(0.5, 0.5, f"all {len(samples)} examples: 0 bits", ha="center", va="center",
                transform=ax.transAxes, color=REFERENCE_COLOR, fontsize=NOTE_SIZE)  # fmt: skip
    first = _first_failure(search, dtype, failing)
    if first is None:
        return []
    ax.axvline(first, color=_LINE_COLOR, linestyle=FIRST_FAILURE_STYLE, linewidth=1.0)
    return [TopLabel(ax, first, format_logit(first), _LINE_COLOR)]


def _first_failure(
    search: Mapping[str, Any], dtype: str, failing: Sequence[Mapping[str, Any]]
) -> float | None:
    """Where ``dtype`` first fails: the search's threshold, else (no example passed, so
    there is no threshold) the smallest failing saturation; None without failures."""
    threshold = number((search.get("thresholds") or {}).get(dtype))
    if math.isfinite(threshold):
        return threshold
    positive = [number(s["saturation"]) for s in failing if number(s["saturation"]) > 0]
    return min(positive) if positive else None


def _scatter(
    ax: Axes,
    samples: Sequence[Mapping[str, Any]],
    look: ImplementationStyle,
    floor: float,
    *,
    failed: bool,
) -> None:
    """Passing examples as hollow markers, failing ones filled and edged in black."""
    if not samples:
        return
    x = [max(number(s["saturation"]), floor) for s in samples]
    y = [max(number(s["bits"]), 0.0) for s in samples]
    if failed:
        ax.scatter(x, y, s=30, marker=look.marker, facecolors=look.color,
                   edgecolors="black", linewidths=0.6, zorder=3)  # fmt: skip
    else:
        ax.scatter(x, y, s=16, marker=look.marker, facecolors="none",
                   edgecolors=look.color, linewidths=0.8, alpha=0.7, zorder=2)  # fmt: skip


def _legend(fig: Figure, styles: Mapping[str, ImplementationStyle]) -> None:
    """One legend below the panels: the implementations, passed, failed, the first
    failing |h|, under the note that says how to read the panels."""
    from matplotlib.lines import Line2D

    handles = implementation_handles(styles)
    handles += [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=6,
            markerfacecolor="none",
            markeredgecolor=REFERENCE_COLOR,
            label="hollow: passed",
        ),  # fmt: skip
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=6,
            markerfacecolor=REFERENCE_COLOR,
            markeredgecolor="black",
            label="filled, black edge: failed",
        ),  # fmt: skip
        Line2D(
            [],
            [],
            color=_LINE_COLOR,
            linestyle=FIRST_FAILURE_STYLE,
            label="first failing |h| (value above)",
        ),  # fmt: skip
    ]
    legend_below(fig, handles, SAMPLES_NOTE)
