"""What every figure shares: the style, the colours, a fresh canvas and the PNG bytes.

No pyplot and no ``matplotlib.use``: every figure is a fresh ``Figure`` with its own Agg
canvas, so nothing leaks into (or out of) a user's matplotlib state. Figures are drawn
under matplotlib's default style (plus :func:`style`'s few settings) and saved without the
``Software`` PNG metadata, so the same data gives byte-identical PNG files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gradverify.common.formatting import as_float, format_label, shorten

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "DTYPE_BITS",
    "DTYPE_COLORS",
    "DTYPE_ORDER",
    "EXTRA_COLORS",
    "FAILED",
    "IMPLEMENTATION_COLORS",
    "LABEL_STYLES",
    "NONFINITE_SHADE",
    "empty",
    "figure_png",
    "grid",
    "implementation_colors",
    "label_text",
    "new_figure",
    "number",
    "ordered_dtypes",
    "plain_text",
    "runs",
    "style",
]

DPI = 100
"""Resolution of the saved PNG files (pixels per inch of figure size)."""

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
DTYPE_COLORS = {
    "float16": "#d62728",
    "bfloat16": "#9467bd",
    "float32": "#1f77b4",
    "float64": "#2ca02c",
}
# implementation colours: the built-ins get fixed ones, others follow in order
IMPLEMENTATION_COLORS = {"naive": "#d62728", "epsilon": "#ff7f0e", "fused": "#2ca02c"}
EXTRA_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LABEL_STYLES = ("-", "--", ":", "-.")
FAILED = ("unstable", "incorrect", "error")
NONFINITE_SHADE = "#f4a6a6"


@contextmanager
def style() -> Iterator[None]:
    """matplotlib's default style plus a few settings, whatever the user's rcParams say."""
    import matplotlib
    import matplotlib.style

    with (
        matplotlib.style.context("default"),
        matplotlib.rc_context(
            {
                "font.size": 9,
                "axes.titlesize": 10,
                "axes.labelsize": 9,
                "legend.fontsize": 8,
                "xtick.labelsize": 8,
                "ytick.labelsize": 8,
                "axes.grid": True,
                "grid.alpha": 0.3,
                "svg.hashsalt": "gradverify",
                "path.simplify": True,
            }
        ),
    ):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A fresh figure (inches) with its own Agg canvas and constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without time- or version-dependent metadata."""
    buffer = io.BytesIO()
    with style():  # some settings are read when drawing, not when the figure is built
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def implementation_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per implementation name: built-ins fixed, others in order."""
    colors: dict[str, str] = {}
    extra = iter(EXTRA_COLORS * (1 + len(names) // len(EXTRA_COLORS)))
    for name in names:
        if name not in colors:
            colors[name] = IMPLEMENTATION_COLORS.get(name) or next(extra)
    return colors


def ordered_dtypes(names: Sequence[str]) -> list[str]:
    """The distinct dtype names, narrowest first (unknown names last, alphabetically)."""
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda d: (DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 99, d))


def number(value: Any) -> float:
    """A number from report data, where inf/NaN are stored as the strings 'inf'/'nan';
    NaN (not drawn) where there is none."""
    return as_float(value, math.nan)


def plain_text(text: Any, limit: int = 40) -> str:
    """A user-supplied string, shortened, with ``$`` escaped so it is never mathtext."""
    return shorten(text, limit).replace("$", r"\$")


def label_text(label: Any) -> str:
    """``"y=1"`` for a label, ``""`` for none."""
    return "" if label is None else f"y={format_label(number(label))}"


def grid(fig: Figure, count: int, ncols: int) -> list[Axes]:
    """``count`` axes in rows of ``ncols``; the unused cells of the last row are hidden."""
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return flat[:count]


def runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of True in ``flags``."""
    found, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            found.append((start, i))
            start = None
    if start is not None:
        found.append((start, len(flags)))
    return found


def empty(ax: Axes, message: str) -> None:
    """An axes with no data: the message in its middle, no ticks."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
