"""Figure 4: every example the property-based search tried, failures marked."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.style import (
    DTYPE_COLORS,
    FAILED,
    empty,
    grid,
    new_figure,
    number,
    ordered_dtypes,
    plain_text,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["search_samples_figure"]


def search_samples_figure(
    searches: Sequence[Mapping[str, Any]],
    *,
    title: str = "Examples tried by the search",
) -> Figure:
    """Bits of error against saturation for every example of every search, one panel each.

    Args:
        searches: mappings with ``implementation``, ``samples`` (mappings with ``dtype``,
            ``saturation``, ``bits``, ``verdict``) and optionally ``thresholds``
            (``{dtype: |h| or None}``: where the dtype first fails).
    """
    with style():
        count = max(1, len(searches))
        ncols = min(3, count)
        fig = new_figure(11.0, 0.8 + 3.4 * math.ceil(count / ncols))
        fig.suptitle(title)
        if not searches:
            empty(fig.add_subplot(), "no search data")
            return fig
        seen: list[str] = []
        for ax, search in zip(grid(fig, count, ncols), searches, strict=True):
            seen += _samples_panel(ax, search)
        _legend(fig, seen)
        return fig


def _samples_panel(ax: Axes, search: Mapping[str, Any]) -> list[str]:
    """One search's examples, a colour per dtype; returns the dtypes drawn."""
    samples = list(search.get("samples", []))
    failed = sum(1 for s in samples if s["verdict"] in FAILED)
    name = plain_text(search["implementation"], 40)
    ax.set_title(f"{name}: {len(samples)} examples, {failed} failed")
    if not samples:
        empty(ax, "no examples recorded")
        return []
    positive = [number(s["saturation"]) for s in samples if number(s["saturation"]) > 0]
    floor = min(positive, default=1e-3) / 2
    dtypes = ordered_dtypes([s["dtype"] for s in samples])
    for dtype in dtypes:
        color = DTYPE_COLORS.get(dtype, "0.3")
        mine = [s for s in samples if s["dtype"] == dtype]
        _scatter(ax, [s for s in mine if s["verdict"] not in FAILED], floor, color, False)
        _scatter(ax, [s for s in mine if s["verdict"] in FAILED], floor, color, True)
        threshold = (search.get("thresholds") or {}).get(dtype)
        if threshold is not None and math.isfinite(number(threshold)):
            ax.axvline(number(threshold), color=color, linestyle=(0, (2, 2)), linewidth=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("saturation max |h| over all layers")
    ax.set_ylabel("worst bits of error beyond the stable baseline")
    return dtypes


def _scatter(
    ax: Axes, samples: Sequence[Mapping[str, Any]], floor: float, color: str, failed: bool
) -> None:
    """Passing examples as dots, failing ones as crosses (nothing for no examples)."""
    if not samples:
        return
    x = [max(number(s["saturation"]), floor) for s in samples]
    y = [number(s["bits"]) for s in samples]
    if failed:
        ax.scatter(x, y, s=34, marker="X", color=color, edgecolors="black", linewidths=0.5)
    else:
        ax.scatter(x, y, s=10, color=color, alpha=0.55, linewidths=0)


def _legend(fig: Figure, seen: Sequence[str]) -> None:
    """One legend below the panels: the dtypes drawn, passed, failed, the threshold line."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=5,
            color=DTYPE_COLORS.get(d, "0.3"),
            label=d,
        )
        for d in ordered_dtypes(seen)
    ]
    handles += [
        Line2D([], [], linestyle="none", marker="o", markersize=4, color="0.5", label="passed"),
        Line2D(
            [],
            [],
            linestyle="none",
            marker="X",
            markersize=7,
            color="0.5",
            markeredgecolor="black",
            label="failed",
        ),
        Line2D([], [], color="0.3", linestyle=(0, (2, 2)), label="first failing |h|"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=len(handles),
        frameon=False,
        fontsize=8,
    )
