"""Figure 3: whether hidden-layer underflow depends on the implementation or on the dtype:
the fraction of hidden-layer gradient entries that underflow to 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.legend import legend_below
from gradverify.report.figures.style import (
    DTYPE_LINES,
    DTYPE_ORDER,
    REFERENCE_COLOR,
    empty,
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

__all__ = ["UNDERFLOW_NOTE", "vanishing_gradient_figure"]

UNDERFLOW_NOTE = (
    "The hidden pre-activations are scaled to each saturation max |h_i| (the output logit "
    "stays at |h_L| = 1, so the output layer plays no part); a point is the share of "
    "hidden-layer entries of dW and db that come back exactly 0 while the exact gradient "
    "is not. One line per dtype (per dtype and group of implementations, where they differ)."
)
"""What the underflow figure states below its axes."""


def vanishing_gradient_figure(
    data: Mapping[str, Any],
    *,
    title: str = "Does hidden-layer underflow depend on the implementation or on the dtype?",
) -> Figure:
    """Fraction of hidden-layer gradient entries that are exactly 0 in float while the exact
    gradient is not, against the hidden layers' saturation max |h_i|.

    Args:
        data: a mapping with ``network`` (description), ``saturation`` (the hidden max |h|
            levels) and ``series``: mappings with ``dtype``, ``implementations`` (the names
            sharing this curve) and ``fraction`` (one value in [0, 1] per level).
        title: the figure's title: the question it answers.

    One line per dtype, told apart by black and grey line styles; where implementations
    differ at a dtype, one line per group of implementations with equal fractions. The
    answer is stated above the axes: the same for every implementation (the dtype's
    exponent range decides), or not.
    """
    with style():
        fig = new_figure(9.0, 4.9)
        fig.suptitle(title, fontsize=12, fontweight="bold")
        ax = fig.add_subplot()
        levels = [number(v) for v in data.get("saturation", [])]
        series = list(data.get("series", []))
        if not series or not levels:
            empty(ax, "no hidden-layer data")
            return fig
        groups = list(dict.fromkeys(tuple(s["implementations"]) for s in series))
        for s in sorted(
            series,
            key=lambda s: ordered_dtypes([s["dtype"]] + list(DTYPE_ORDER)).index(s["dtype"]),
        ):
            _draw_series(ax, s, levels, groups)
        ax.set_title(_answer(series, groups), fontsize=10, fontweight="bold", loc="left")
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("hidden-layer saturation max |h_i|")
        ax.set_ylabel("fraction of hidden dW, db entries = 0\n(exact gradient non-zero)")
        network = plain_text(data.get("network", ""), 160)
        reading = (f"Network: {network}. " if network else "") + UNDERFLOW_NOTE
        legend_below(fig, ax.get_legend_handles_labels()[0], reading)
        return fig


def _answer(series: Sequence[Mapping[str, Any]], groups: Sequence[tuple[str, ...]]) -> str:
    """The figure's answer: whether every implementation underflows alike at each dtype."""
    names = list(dict.fromkeys(n for g in groups for n in g))
    listed = ", ".join(plain_text(n, 20) for n in names)
    alike = all(
        len({tuple(s["implementations"]) for s in series if s["dtype"] == d}) == 1
        for d in {s["dtype"] for s in series}
    )
    if alike and len(names) > 1:
        return f"The same for {listed}: it is the dtype, not the formula."
    if alike:
        return f"{listed}: the dtype's exponent range sets where the gradient underflows."
    return "Implementations differ at some dtype: one line per group with equal fractions."


def _draw_series(
    ax: Axes, s: Mapping[str, Any], levels: Sequence[float], groups: Sequence[tuple[str, ...]]
) -> None:
    """One dtype's line (one group of implementations) in the dtype's line style: black or
    grey, or, where implementations differ and the line is one implementation's alone, in
    that implementation's colour and marker."""
    color, line = DTYPE_LINES.get(s["dtype"], (REFERENCE_COLOR, "-"))
    marker = None
    names = list(s["implementations"])
    if len(groups) > 1 and len(names) == 1:
        look = implementation_styles([n for g in groups for n in g])[names[0]]
        color, marker = look.color, look.marker
    who = ", ".join(plain_text(n, 20) for n in names)
    label = s["dtype"] if len(groups) == 1 else f"{s['dtype']}: {who}"
    if all(v is None for v in s["fraction"]):
        label += " (no data: the implementation failed)"
    ax.plot(
        levels,
        [number(v) for v in s["fraction"]],
        label=label,
        color=color,
        linestyle=line,
        linewidth=1.8,
        marker=marker,
        markersize=5,
        markeredgecolor="white",
        markeredgewidth=0.5,
    )
