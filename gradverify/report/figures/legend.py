"""The legend below a figure's panels: its entries in rows that fit the figure's width, read
left to right, under the note that says how to read the figure."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gradverify.report.figures.placement import text_width
from gradverify.report.figures.style import NOTE_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

__all__ = ["ENTRY_SIZE", "legend_below"]

ENTRY_SIZE = 8.5
"""Font size (points) of the legend's entries."""
_HANDLE = 40.0  # points an entry takes besides its text: the handle and the gaps around it


def legend_below(fig: Figure, handles: Sequence[Any], note: str) -> Legend:
    """A legend below every panel of ``fig`` (laid out by its constrained layout): as many
    entries per row as fit the figure's width, in reading order, under ``note``."""
    from matplotlib.lines import Line2D

    width = fig.get_figwidth() * 72.0 * 0.96
    widths = [_HANDLE + text_width(fig, h.get_label(), ENTRY_SIZE) for h in handles]
    ncols = next(n for n in range(len(handles), 0, -1) if _row_width(widths, n) <= width)
    rows = -(-len(handles) // ncols)
    blank = Line2D([], [], linestyle="none", label=" ")
    grid = [*handles, *[blank] * (rows * ncols - len(handles))]
    # matplotlib fills a legend column by column: reorder so it reads row by row
    by_columns = [grid[r * ncols + c] for c in range(ncols) for r in range(rows)]
    return fig.legend(
        handles=by_columns,
        loc="outside lower center",
        ncols=ncols,
        frameon=False,
        fontsize=ENTRY_SIZE,
        title=_wrap(fig, note, width) if note else None,
        title_fontsize=NOTE_SIZE,
        alignment="left",
    )


def _row_width(widths: Sequence[float], ncols: int) -> float:
    """The legend's width with ``ncols`` entries per row: each column as wide as its
    widest entry."""
    return sum(max(widths[c::ncols]) for c in range(ncols))


def _wrap(fig: Figure, note: str, width: float) -> str:
    """``note`` in lines no wider than ``width`` points at the note's font size."""
    chars = int(width / (0.45 * NOTE_SIZE))
    while True:
        lines = textwrap.wrap(note, chars)
        if chars <= 20 or max(text_width(fig, ln, NOTE_SIZE) for ln in lines) <= width:
            return "\n".join(lines)
        chars -= 4
