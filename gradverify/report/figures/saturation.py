"""Figure 1: bits of error of dJ/dh_L against the output logit, thresholds marked.

The same figure draws the scans of named activations and losses: their series carry a
``column`` (the panel: ``"softplus"``, ``"mse y=0"``) instead of a label, and the axis names
the probed quantity (``quantity``, ``xlabel``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.common.formatting import format_logit
from gradverify.report.figures.style import (
    DTYPE_BITS,
    empty,
    implementation_colors,
    label_text,
    new_figure,
    number,
    ordered_dtypes,
    plain_text,
    runs,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MARK_STYLES", "error_vs_saturation_figure"]

MARK_STYLES = {"inf/NaN": (0, (4, 2)), "100% error": (0, (1, 2))}
"""The line style of each kind of threshold mark."""


def _panel_key(item: Mapping[str, Any]) -> str:
    """The panel column of a series or mark: its ``column``, else its label (``"y=1"``)."""
    column = item.get("column")
    return str(column) if column is not None else label_text(item.get("label"))


def _marks(
    thresholds: Sequence[Mapping[str, Any]], dtype: str, key: str, signed: bool
) -> list[tuple[float, str, str]]:
    """(x, implementation, kind) of the thresholds in one panel, without exact repeats."""
    out: dict[tuple[float, str], str] = {}
    for t in thresholds:
        if t["dtype"] != dtype or _panel_key(t) != key:
            continue
        x = number(t.get("value") if signed else t.get("saturation"))
        if math.isfinite(x):
            out.setdefault((x, t["implementation"]), str(t["kind"]))
    return [(x, impl, kind) for (x, impl), kind in sorted(out.items())]


def error_vs_saturation_figure(
    series: Sequence[Mapping[str, Any]],
    thresholds: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "Gradient error against output saturation",
    quantity: str = "dJ/dh_L",
    xlabel: str = "output logit h_L",
) -> Figure:
    """Bits of error of dJ/dh_L against the output logit: a row per dtype, a column per label.

    Args:
        series: mappings with ``implementation``, ``dtype``, ``label`` (y, or None),
            ``bits`` (bits of error, the dtype's full width for inf/NaN) and either ``h``
            (signed logits, drawn on a symlog axis) or ``saturation`` (|h|, linear axis);
            optionally ``nonfinite`` and ``error`` (bools, one per point: inf/NaN returned,
            the call failed).
        thresholds: mappings with ``implementation``, ``dtype``, ``label``, ``kind``
            (``"inf/NaN"`` or ``"100% error"``: the line style) and ``value`` (signed h)
            or ``saturation``; drawn as vertical lines with the value of h on top.
        title: the figure's title.
        quantity, xlabel: the gradient plotted and the variable swept, in the subtitle and
            on the x axis (for the scans of named activations, ``"dJ/dW1"`` and
            ``"hidden pre-activation h"``).

    A series (and a threshold) may carry ``column`` instead of ``label``: the panel
    column it belongs to (one per scanned activation, or loss and label).

    One line per implementation (colour) in every panel. Points where the gradient is
    inf/NaN are drawn at the dtype's full width and their range of h is shaded.
    """
    with style():
        dtypes = ordered_dtypes([s["dtype"] for s in series]) or ["float64"]
        keys = list(dict.fromkeys(_panel_key(s) for s in series)) or [""]
        signed = bool(series) and all("h" in s for s in series)
        fig = new_figure(11.5, 0.9 + 2.75 * len(dtypes))
        colors = implementation_colors([s["implementation"] for s in series])
        axes = fig.subplots(len(dtypes), len(keys), squeeze=False)
        for r, dtype in enumerate(dtypes):
            for c, key in enumerate(keys):
                panel = [s for s in series if s["dtype"] == dtype and _panel_key(s) == key]
                if _panel(axes[r][c], panel, dtype, key, signed, colors):
                    _draw_marks(axes[r][c], _marks(thresholds, dtype, key, signed), colors)
                    edges = (r == len(dtypes) - 1, c == 0)
                    _finish_axes(axes[r][c], dtype, signed, edges, xlabel)
        _legend(fig, colors)
        fig.suptitle(
            title + f" (bits of error in {quantity} against the exact gradient; "
            "inf/NaN drawn at the dtype's width)",
            fontsize=10,
        )
        return fig


def _panel(
    ax: Axes,
    panel: Sequence[Mapping[str, Any]],
    dtype: str,
    key: str,
    signed: bool,
    colors: Mapping[str, str],
) -> bool:
    """The title and the lines of one dtype x label (or column) panel; False if no data."""
    lab = key  # "y=1" (a label), "softplus" (a column) or "" (neither)
    named = f"label {lab}" if lab.startswith("y=") else lab
    ax.set_title(f"{dtype}" + (f", {named}" if lab else ""))
    if not panel:
        empty(ax, f"no sweep data for {dtype} {lab}")
        return False
    width = DTYPE_BITS.get(dtype, 64)
    for s in reversed(panel):  # the first implementation ends up on top
        _draw_series(ax, s, signed, width, colors[s["implementation"]])
    return True


def _draw_series(ax: Axes, s: Mapping[str, Any], signed: bool, width: int, color: str) -> None:
    """One implementation's line: inf/NaN at the dtype's width, their range of h shaded,
    failed calls as ticks at the top."""
    x = [number(v) for v in (s["h"] if signed else s["saturation"])]
    bits = [number(v) for v in s["bits"]]
    nonfinite = list(s.get("nonfinite") or [b >= width for b in bits])
    failed = list(s.get("error") or [False] * len(x))
    shown = [
        math.nan if f else (width if n else b)
        for b, n, f in zip(bits, nonfinite, failed, strict=True)
    ]
    ax.plot(x, shown, color=color, linewidth=1.2)
    for start, stop in runs(nonfinite):
        ax.axvspan(x[max(start - 1, 0)], x[stop - 1], color=color, alpha=0.12, linewidth=0)
    bad = [xi for xi, f in zip(x, failed, strict=True) if f]
    if bad:
        ax.plot(
            bad,
            [width] * len(bad),
            linestyle="none",
            marker="|",
            markersize=9,
            color=color,
        )


def _draw_marks(
    ax: Axes, marks: Sequence[tuple[float, str, str]], colors: Mapping[str, str]
) -> None:
    """The thresholds as vertical lines, each value written once above its line."""
    placed: list[float] = []
    for xt, impl, kind in marks:
        color = colors.get(impl, "0.3")
        ax.axvline(xt, color=color, linewidth=1.0, linestyle=MARK_STYLES.get(kind, (0, (2, 2))))
        scale = math.log1p(abs(xt)) * (1 if xt >= 0 else -1)
        if any(abs(scale - p) < 0.12 for p in placed):
            continue  # the value is already written next to this line
        placed.append(scale)
        ax.annotate(
            format_logit(xt),
            xy=(xt, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2),
            textcoords="offset points",
            rotation=90,
            fontsize=6.5,
            color=color,
            ha="center",
            va="bottom",
        )


def _finish_axes(ax: Axes, dtype: str, signed: bool, edges: tuple[bool, bool], xlabel: str) -> None:
    """The dtype's width as a dotted line, the axis scales and (at the ``edges``: bottom,
    left) the labels."""
    bottom, left = edges
    width = DTYPE_BITS.get(dtype, 64)
    ax.axhline(width, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_ylim(-0.5, width * 1.05)
    if signed:
        ax.set_xscale("symlog", linthresh=1.0)
    if bottom:
        ax.set_xlabel(
            f"{xlabel} (symlog: linear for |h| < 1)" if signed else f"{_absolute(xlabel)}"
        )
    if left:
        ax.set_ylabel("bits of error")


def _absolute(xlabel: str) -> str:
    """``"output logit |h_L|"`` for ``"output logit h_L"``: the last word in bars."""
    head, _, var = xlabel.rpartition(" ")
    return f"{head} |{var}|".strip()


def _legend(fig: Figure, colors: Mapping[str, str]) -> None:
    """One legend below the panels: implementations, threshold kinds, the inf/NaN shade."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=col, linewidth=2, label=plain_text(name, 28))
        for name, col in colors.items()
    ]
    handles += [
        Line2D([], [], color="0.3", linestyle=line, label=f"first {kind}")
        for kind, line in MARK_STYLES.items()
    ]
    handles.append(Patch(color="0.5", alpha=0.25, label="inf/NaN returned"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 7),
        frameon=False,
        fontsize=8,
    )
