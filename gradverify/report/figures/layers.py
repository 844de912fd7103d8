"""Figure 2: the normwise error of each layer's dJ/dW, from the output backward."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.style import (
    NONFINITE_SHADE,
    empty,
    grid,
    implementation_colors,
    new_figure,
    number,
    plain_text,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["layer_error_figure"]


def layer_error_figure(
    data: Mapping[str, Any],
    *,
    title: str = "Gradient error per layer, from the output backward",
) -> Figure:
    """Normwise relative error of dJ/dW_i for one network, layer L first.

    Args:
        data: a mapping with ``network`` (a description string), ``depth`` (L), and
            ``panels``: mappings with ``dtype`` and ``lines``; each line has
            ``implementation``, ``errors`` (L values for W_L .. W_1, 'inf' for inf/NaN) and
            optionally ``kind`` ("implementation", "baseline" or "tolerance").
    """
    with style():
        panels = list(data.get("panels", []))
        ncols = 2 if len(panels) == 4 else 3
        fig = new_figure(11.0, 0.6 + 3.6 * math.ceil(max(1, len(panels)) / ncols))
        subtitle = plain_text(data.get("network", ""), 160)
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        if not panels:
            empty(fig.add_subplot(), "no per-layer data")
            return fig
        depth = int(data["depth"])
        names = [
            ln["implementation"]
            for p in panels
            for ln in p["lines"]
            if ln.get("kind", "implementation") == "implementation"
        ]
        colors = implementation_colors(names)
        for ax, panel in zip(grid(fig, len(panels), ncols), panels, strict=True):
            _layer_panel(ax, panel, depth, colors)
        return fig


def _layer_panel(ax: Axes, panel: Mapping[str, Any], depth: int, colors: Mapping[str, str]) -> None:
    """One dtype: a line per implementation (nudged sideways), the baseline, the tolerance."""
    ticks = list(range(depth))
    finite_values = [
        number(v)
        for ln in panel["lines"]
        for v in ln["errors"]
        if math.isfinite(number(v)) and number(v) > 0
    ]
    floor = min(finite_values, default=1e-16) / 10
    top = max(max(finite_values, default=1.0), 1.0) * 30  # inf/NaN drawn here
    offsets = {n: 0.06 * (k - (len(colors) - 1) / 2) for k, n in enumerate(colors)}
    for ln in panel["lines"]:
        _layer_line(ax, ln, ticks, offsets, colors, floor, top)
    _error_bands(ax, top)
    ax.set_yscale("log")
    ax.set_ylim(floor, top * 3)
    ax.set_xticks(ticks, [f"W{depth - k}" + (" (output)" if k == 0 else "") for k in ticks])
    ax.set_title(f"{panel['dtype']}" + (f", {panel['note']}" if panel.get("note") else ""))
    ax.set_xlabel("layer (backpropagation order)")
    ax.set_ylabel("normwise relative error of dJ/dW")
    ax.legend(loc="lower right", framealpha=0.85)


def _line_style(kind: str, color: str | None) -> dict[str, Any]:
    if kind == "baseline":
        return {"color": "0.35", "linestyle": "--", "marker": "s", "markersize": 3}
    if kind == "tolerance":
        return {"color": "0.6", "linestyle": ":", "marker": None}
    return {"color": color, "linestyle": "-", "marker": "o", "markersize": 4}


def _layer_line(
    ax: Axes,
    ln: Mapping[str, Any],
    ticks: Sequence[int],
    offsets: Mapping[str, float],
    colors: Mapping[str, str],
    floor: float,
    top: float,
) -> None:
    """One line of a panel; inf/NaN drawn as crosses at ``top``."""
    kind = ln.get("kind", "implementation")
    values = [number(v) for v in ln["errors"]]
    shown = [top if not math.isfinite(v) else max(v, floor) for v in values]
    # implementations are nudged sideways so that equal values stay visible
    xs = [
        t + offsets.get(ln["implementation"], 0.0) if kind == "implementation" else t for t in ticks
    ]
    line_style = _line_style(kind, colors.get(ln["implementation"]))
    ax.plot(xs, shown, label=plain_text(ln["implementation"], 24), linewidth=1.3, **line_style)
    bad = [k for k, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        ax.plot(
            [xs[k] for k in bad],
            [top] * len(bad),
            linestyle="none",
            marker="X",
            markersize=8,
            color=line_style["color"],
        )


def _error_bands(ax: Axes, top: float) -> None:
    """The inf/NaN band at the top and the 100%-error line."""
    ax.axhspan(top / 3, top * 3, color=NONFINITE_SHADE, alpha=0.35, linewidth=0)
    ax.text(0.02, 0.985, "inf/NaN", transform=ax.transAxes, fontsize=7, va="top", color="#a33")
    ax.axhline(1.0, color="#a33", linewidth=0.8, linestyle=(0, (4, 3)))
    ax.annotate(
        "100% error",
        xy=(1.0, 1.0),
        xycoords=("axes fraction", "data"),
        xytext=(-3, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=7,
        color="#a33",
    )
