"""What every figure shares: the style, the colours and markers, a fresh canvas and the PNG.

One visual language: each implementation has one colour and one marker in every figure
(:func:`implementation_styles`, Okabe-Ito colours, safe for the common colour-vision
deficiencies); dtypes are told apart by panel or by black and grey line styles
(:data:`DTYPE_LINES`), never by an implementation's colour; reference lines are grey.

No pyplot and no ``matplotlib.use``: every figure is a fresh ``Figure`` with its own Agg
canvas, so nothing leaks into (or out of) a user's matplotlib state. Figures are drawn
under matplotlib's default style (plus :func:`style`'s few settings) and saved without the
``Software`` PNG metadata, so the same data gives byte-identical PNG files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradverify.common.formatting import as_float, format_label, shorten

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "DTYPE_BITS",
    "DTYPE_LINES",
    "DTYPE_ORDER",
    "EXTRA_COLORS",
    "EXTRA_MARKERS",
    "FAILED",
    "IMPLEMENTATION_COLORS",
    "IMPLEMENTATION_MARKERS",
    "NOTE_SIZE",
    "REFERENCE_COLOR",
    "ImplementationStyle",
    "bits_axis",
    "empty",
    "figure_png",
    "grid",
    "implementation_colors",
    "implementation_handles",
    "implementation_styles",
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

# One visual language for every figure. An implementation has one colour and one marker
# everywhere, from the Okabe-Ito palette (safe for the common colour-vision deficiencies);
# the built-ins get fixed ones, others follow in order. Dtypes are told apart by panel or,
# where they share an axes, by black and grey line styles: never by an implementation's
# colour. Reference lines (baselines, tolerances, limits) are grey.
IMPLEMENTATION_COLORS = {"naive": "#D55E00", "epsilon": "#0072B2", "fused": "#009E73"}
"""The colour of each built-in implementation (Okabe-Ito vermillion, blue, bluish green)."""
IMPLEMENTATION_MARKERS = {"naive": "o", "epsilon": "s", "fused": "^"}
"""The marker of each built-in implementation."""
EXTRA_COLORS = ("#CC79A7", "#E69F00", "#56B4E9")
"""Colours of other implementations, in order (Okabe-Ito reddish purple, orange, sky blue)."""
EXTRA_MARKERS = ("D", "v", "P", "X", "<", ">", "h", "*")
"""Markers of other implementations, in order; with the colours they make distinct pairs."""
DTYPE_LINES = {
    "float16": ("#000000", "-"),
    "bfloat16": ("#000000", (0, (5, 2))),
    "float32": ("#6e6e6e", (0, (5, 1.5, 1.2, 1.5))),
    "float64": ("#6e6e6e", (0, (1.2, 1.2))),
}
"""(colour, line style) of each dtype where dtypes share an axes: black and grey only."""
REFERENCE_COLOR = "#5a5a5a"
"""Grey of reference lines and notes (baselines, tolerances, the dtype's width)."""
NOTE_SIZE = 9
"""Font size (points) of the notes a figure states inside itself."""
FAILED = ("unstable", "incorrect", "error")


@dataclass(frozen=True)
class ImplementationStyle:
    """How one implementation is drawn in every figure: its colour and marker."""

    color: str
    marker: str


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


def implementation_styles(names: Sequence[str]) -> dict[str, ImplementationStyle]:
    """A fixed colour and marker per implementation name: built-ins fixed, others in order.

    Others cycle through :data:`EXTRA_COLORS` and :data:`EXTRA_MARKERS` together, so the
    first 24 of them differ in colour, marker or both.
    """
    styles: dict[str, ImplementationStyle] = {}
    extra = 0
    for name in names:
        if name in styles:
            continue
        if name in IMPLEMENTATION_COLORS:
            styles[name] = ImplementationStyle(
                IMPLEMENTATION_COLORS[name], IMPLEMENTATION_MARKERS[name]
            )
            continue
        color = EXTRA_COLORS[extra % len(EXTRA_COLORS)]
        styles[name] = ImplementationStyle(color, EXTRA_MARKERS[extra % len(EXTRA_MARKERS)])
        extra += 1
    return styles


def implementation_colors(names: Sequence[str]) -> dict[str, str]:
    """The colour of each implementation name (:func:`implementation_styles`)."""
    return {name: look.color for name, look in implementation_styles(names).items()}


def implementation_handles(styles: Mapping[str, ImplementationStyle]) -> list[Any]:
    """Legend handles for the implementations: each its colour, marker and name."""
    from matplotlib.lines import Line2D

    return [
        Line2D(
            [],
            [],
            color=look.color,
            marker=look.marker,
            markersize=6,
            markeredgecolor="white",
            markeredgewidth=0.6,
            linewidth=2,
            label=plain_text(name, 28),
        )
        for name, look in styles.items()
    ]


def bits_axis(ax: Axes, width: float, *, lanes: float = 0.0) -> None:
    """A y axis of bits of error from 0 to ``width`` (the dtype's width): ticks at multiples
    of ``width / 4``, never negative; ``lanes`` (a fraction of ``width``) is room above it."""
    ax.set_ylim(-0.04 * width, width * (1.04 + lanes))
    ax.set_yticks([width * k / 4 for k in range(5)])


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
