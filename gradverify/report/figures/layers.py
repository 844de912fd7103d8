"""Figure 2: which layer's gradient goes wrong first: the normwise error of each layer's
dJ/dW, from the output backward."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.legend import legend_below
from gradverify.report.figures.style import (
    REFERENCE_COLOR,
    ImplementationStyle,
    empty,
    grid,
    implementation_handles,
    implementation_styles,
    new_figure,
    number,
    plain_text,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LAYER_NOTE", "layer_error_figure"]

LAYER_NOTE = (
    "An error made in the output delta travels back unchanged in relative terms through "
    "delta_(i-1) = (W_i^T delta_i) (.) act'(h_(i-1)): it shows in every layer at once. An "
    "error that starts in a hidden layer shows from that layer on. Implementations are "
    "set slightly apart so that equal values stay visible."
)
"""What the per-layer figure states below its panels."""

_BAND = "#e4e4e4"  # the band at the top where inf/NaN is drawn


def layer_error_figure(
    data: Mapping[str, Any],
    *,
    title: str = "Which layer's gradient goes wrong first?",
) -> Figure:
    """Normwise relative error of dJ/dW_i for one network, layer L first.

    Args:
        data: a mapping with ``network`` (a description string), ``depth`` (L), and
            ``panels``: mappings with ``dtype`` and ``lines``; each line has
            ``implementation``, ``errors`` (L values for W_L .. W_1, 'inf' for inf/NaN) and
            optionally ``kind`` ("implementation", "baseline" or "tolerance").
        title: the figure's title: the question it answers.
    """
    with style():
        panels = list(data.get("panels", []))
        ncols = 2 if len(panels) == 4 else 3
        fig = new_figure(11.0, 1.7 + 3.4 * math.ceil(max(1, len(panels)) / ncols))
        fig.suptitle(title, fontsize=12, fontweight="bold")
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
        styles = implementation_styles(names)
        for ax, panel in zip(grid(fig, len(panels), ncols), panels, strict=True):
            _layer_panel(ax, panel, depth, styles)
        _legend(fig, styles, plain_text(data.get("network", ""), 160))
        return fig


def _layer_panel(
    ax: Axes, panel: Mapping[str, Any], depth: int, styles: Mapping[str, ImplementationStyle]
) -> None:
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
    offsets = {n: 0.07 * (k - (len(styles) - 1) / 2) for k, n in enumerate(styles)}
    for ln in panel["lines"]:
        _layer_line(ax, ln, ticks, offsets, styles, (floor, top))
    ax.axhspan(top / 3, top * 3, color=_BAND, linewidth=0, zorder=0)
    ax.axhline(1.0, color=REFERENCE_COLOR, linewidth=0.9, linestyle=(0, (4, 3)), zorder=1)
    ax.set_yscale("log")
    ax.set_ylim(floor, top * 3)
    ax.set_xlim(-0.4, depth - 0.6)
    ax.set_xticks(ticks, [f"W{depth - k}" + (" (output)" if k == 0 else "") for k in ticks])
    ax.set_title(f"{panel['dtype']}" + (f", {panel['note']}" if panel.get("note") else ""))
    ax.set_xlabel("layer (backpropagation order)")
    ax.set_ylabel("normwise relative error of dJ/dW")
    marks = ax.secondary_yaxis("right")
    marks.set_yticks([1.0, top], ["100% error", "inf/NaN"])
    marks.tick_params(length=0, labelsize=8, labelcolor=REFERENCE_COLOR)
    marks.set_yticks([], minor=True)


def _line_style(kind: str, look: ImplementationStyle | None, width: float = 1.4) -> dict[str, Any]:
    """How a line of ``kind`` is drawn; an implementation's in its ``look``, ``width`` wide."""
    if kind == "baseline":
        return {"color": REFERENCE_COLOR, "linestyle": "--", "linewidth": 2.2, "alpha": 0.6}
    if kind == "tolerance":
        return {"color": REFERENCE_COLOR, "linestyle": ":", "linewidth": 1.4}
    color, marker = (look.color, look.marker) if look else (REFERENCE_COLOR, "o")
    return {
        "color": color,
        "linestyle": "-",
        "linewidth": width,
        "marker": marker,
        "markersize": 5,
        "markeredgecolor": "white",
        "markeredgewidth": 0.5,
    }


def _layer_line(
    ax: Axes,
    ln: Mapping[str, Any],
    ticks: Sequence[int],
    offsets: Mapping[str, float],
    styles: Mapping[str, ImplementationStyle],
    limits: tuple[float, float],
) -> None:
    """One line of a panel; inf/NaN drawn at ``top`` (of ``limits``: floor, top) with the
    implementation's marker, larger and edged in black."""
    floor, top = limits
    kind = ln.get("kind", "implementation")
    values = [number(v) for v in ln["errors"]]
    shown = [top if not math.isfinite(v) else max(v, floor) for v in values]
    # implementations are nudged sideways so that equal values stay visible
    xs = [
        t + offsets.get(ln["implementation"], 0.0) if kind == "implementation" else t for t in ticks
    ]
    # as in every figure: earlier implementations lower and wider, so equal lines all show
    order = list(styles)
    rank = order.index(ln["implementation"]) if ln["implementation"] in order else 0
    width = 1.2 + min(1.0, 2.4 / max(len(order) - 1, 1)) * (len(order) - 1 - rank)
    line_style = _line_style(kind, styles.get(ln["implementation"]), width)
    ax.plot(xs, shown, label=plain_text(ln["implementation"], 24), zorder=2 + rank, **line_style)
    bad = [k for k, v in enumerate(values) if not math.isfinite(v)]
    if bad and kind == "implementation":
        ax.plot(
            [xs[k] for k in bad],
            [top] * len(bad),
            linestyle="none",
            marker=line_style["marker"],
            markersize=9,
            color=line_style["color"],
            markeredgecolor="black",
            markeredgewidth=0.8,
            zorder=10,
        )


def _legend(fig: Figure, styles: Mapping[str, ImplementationStyle], network: str) -> None:
    """One legend below the panels: the implementations, the baseline and the tolerance,
    under the network and the note that says how to read the panels."""
    from matplotlib.lines import Line2D

    handles = implementation_handles(styles)
    handles += [
        Line2D([], [], label="stable float baseline (same dtype)", **_line_style("baseline", None)),
        Line2D([], [], label="tolerance derived from it", **_line_style("tolerance", None)),
    ]
    reading = (f"Network: {network}. " if network else "") + LAYER_NOTE
    legend_below(fig, handles, reading)
