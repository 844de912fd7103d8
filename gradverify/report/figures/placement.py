"""Labels set above an axes without overlapping one another.

A label belongs to an x position (a threshold line). Labels are measured with the figure's
renderer after a first layout pass, centred on their x where the axes allows it, and
stacked into rows above the axes wherever two would touch; the axes title is then raised
above the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["TopLabel", "place_top_labels", "stack_rows", "text_width"]

ROW_HEIGHT = 11.0
"""Points between two rows of labels (for font sizes up to 8.5)."""
GAP = 4.0
"""Points of free space between two labels in one row."""


@dataclass(frozen=True)
class TopLabel:
    """A label to write above ``ax`` at data coordinate ``x``."""

    ax: Axes
    x: float
    text: str
    color: str
    fontsize: float = 8.0


def stack_rows(spans: Sequence[tuple[float, float]], gap: float = 0.0) -> list[int]:
    """The row of each interval ``(left, right)``, lowest first, such that intervals in one
    row are at least ``gap`` apart; each takes the lowest row where it fits."""
    ends: list[float] = []  # the right end of the last interval in each row
    rows = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        left, right = spans[i]
        row = next((r for r, end in enumerate(ends) if left >= end + gap), len(ends))
        if row == len(ends):
            ends.append(right)
        else:
            ends[row] = right
        rows[i] = row
    return rows


def place_top_labels(fig: Figure, labels: Sequence[TopLabel]) -> None:
    """Write ``labels`` above their axes: centred on x, kept inside the axes' width,
    stacked where they would overlap, the axes title raised above them."""
    if not labels:
        return
    fig.get_layout_engine().execute(fig)  # the axes' final widths
    renderer = fig.canvas.get_renderer()
    by_axes: dict[int, list[TopLabel]] = {}
    for label in labels:
        by_axes.setdefault(id(label.ax), []).append(label)
    highest = max(_place(fig, group, renderer) for group in by_axes.values())
    for group in by_axes.values():  # every title at the same height above its axes
        ax = group[0].ax
        ax.set_title(ax.get_title(), pad=6 + (highest + 1) * ROW_HEIGHT)


def _place(fig: Figure, group: Sequence[TopLabel], renderer: object) -> int:
    """Write the labels of one axes; returns the highest row used."""
    ax = group[0].ax
    width = ax.get_window_extent(renderer).width * 72.0 / fig.dpi  # the axes, in points
    spans = []
    for label in group:
        centre = _axes_fraction(ax, label.x) * width
        half = text_width(fig, label.text, label.fontsize) / 2
        centre = min(max(centre, half), width - half)  # inside the axes' width
        spans.append((centre - half, centre + half))
    rows = stack_rows(spans, GAP)
    for label, (left, right), row in zip(group, spans, rows, strict=True):
        ax.annotate(
            label.text,
            xy=((left + right) / 2 / width, 1.0),
            xycoords="axes fraction",
            xytext=(0, 2 + row * ROW_HEIGHT),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=label.fontsize,
            color=label.color,
            annotation_clip=False,
        )
    return max(rows)


def _axes_fraction(ax: Axes, x: float) -> float:
    """Where data coordinate ``x`` lies across ``ax`` (0 left, 1 right), whatever its scale."""
    display = ax.transData.transform((x, 0.0))
    return float(ax.transAxes.inverted().transform(display)[0])


def text_width(fig: Figure, text: str, fontsize: float) -> float:
    """The width of ``text`` in points, as ``fig``'s renderer draws it at ``fontsize``."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = fig.canvas.get_renderer().get_text_width_height_descent(
        text, FontProperties(size=fontsize), ismath=False
    )
    return float(width) * 72.0 / fig.dpi
