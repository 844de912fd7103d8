"""Figure 3: the fraction of hidden-layer gradient entries that underflow to 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.style import (
    DTYPE_COLORS,
    DTYPE_ORDER,
    LABEL_STYLES,
    empty,
    new_figure,
    number,
    ordered_dtypes,
    plain_text,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["vanishing_gradient_figure"]


def vanishing_gradient_figure(
    data: Mapping[str, Any],
    *,
    title: str = "Hidden-layer gradients that underflow to 0",
) -> Figure:
    """Fraction of hidden-layer gradient entries that are exactly 0 in float while the exact
    gradient is not, against the hidden layers' saturation max |h_i|.

    Args:
        data: a mapping with ``network`` (description), ``saturation`` (the hidden max |h|
            levels) and ``series``: mappings with ``dtype``, ``implementations`` (the names
            sharing this curve) and ``fraction`` (one value in [0, 1] per level).
    """
    with style():
        fig = new_figure(8.0, 4.2)
        subtitle = plain_text(data.get("network", ""), 160)
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        ax = fig.add_subplot()
        levels = [number(v) for v in data.get("saturation", [])]
        series = list(data.get("series", []))
        if not series or not levels:
            empty(ax, "no hidden-layer data")
            return fig
        groups = list(dict.fromkeys(tuple(s["implementations"]) for s in series))
        styles = {g: LABEL_STYLES[i % len(LABEL_STYLES)] for i, g in enumerate(groups)}
        for s in sorted(
            series,
            key=lambda s: ordered_dtypes([s["dtype"]] + list(DTYPE_ORDER)).index(s["dtype"]),
        ):
            group = tuple(s["implementations"])
            who = ", ".join(plain_text(n, 20) for n in group)
            label = s["dtype"] if len(groups) == 1 else f"{s['dtype']}: {who}"
            if all(v is None for v in s["fraction"]):
                label += " (no data: the implementation failed)"
            ax.plot(
                levels,
                [number(v) for v in s["fraction"]],
                label=label,
                color=DTYPE_COLORS.get(s["dtype"], "0.3"),
                linestyle=styles[group],
                marker="o",
                markersize=3,
                linewidth=1.4,
            )
        if len(groups) == 1:
            ax.text(
                0.01,
                0.98,
                "implementations: " + ", ".join(plain_text(n, 20) for n in groups[0]),
                transform=ax.transAxes,
                fontsize=7,
                va="top",
                color="0.35",
            )
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("hidden-layer saturation max |h_i|")
        ax.set_ylabel("fraction of hidden dW, db entries = 0\n(exact gradient non-zero)")
        ax.legend(loc="center left", framealpha=0.85)
        return fig
