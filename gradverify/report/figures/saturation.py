"""Figure 1: where each form of the gradient breaks, per dtype: bits of error against the
output logit, inf/NaN ranges and thresholds marked.

The same figure draws the scans of named activations and losses: their series carry a
``column`` (the panel: ``"softplus"``, ``"mse y=0"``) instead of a label, and the axis names
the probed quantity (``quantity``, ``xlabel``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradverify.common.formatting import format_logit
from gradverify.report.figures.legend import legend_below
from gradverify.report.figures.placement import TopLabel, place_top_labels
from gradverify.report.figures.style import (
    DTYPE_BITS,
    REFERENCE_COLOR,
    ImplementationStyle,
    bits_axis,
    empty,
    implementation_handles,
    implementation_styles,
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

__all__ = ["BCE_NOTE", "LANE_ALPHA", "MARK_STYLES", "error_vs_saturation_figure"]

MARK_STYLES = {"inf/NaN": (0, (4, 2)), "100% error": (0, (1, 1.5))}
"""The line style of each kind of threshold mark."""
LANE_ALPHA = 0.6
"""Opacity of the bars that mark where an implementation returns inf/NaN."""
_LANE = 0.08  # height of one inf/NaN bar and its gap, as a fraction of the dtype's width
_SHARED = "#1a1a1a"  # the colour of a threshold value shared by several implementations

BCE_NOTE = (
    "With y = 1 and h > 0 (or y = 0 and h < 0) the exact gradient sigmoid(h) - y is about "
    "e^-|h|: every form that computes sigmoid(h) - y first, fused included, keeps only its "
    "absolute accuracy there, which is harmless for training. Where a line falls back to 0 "
    "bits at the far end, the exact gradient itself rounds to 0 in the dtype, so the 0 "
    "returned is correctly rounded."
)
"""What the figure of the BCE output gradient states below its panels."""


def _panel_key(item: Mapping[str, Any]) -> str:
    """The panel column of a series or mark: its ``column``, else its label (``"y=1"``)."""
    column = item.get("column")
    return str(column) if column is not None else label_text(item.get("label"))


def _marks(
    thresholds: Sequence[Mapping[str, Any]], dtype: str, key: str, signed: bool
) -> dict[float, dict[str, str]]:
    """{x: {implementation: kind}} of the thresholds in one panel; where an implementation
    has both kinds at one x, inf/NaN (it implies the other)."""
    out: dict[float, dict[str, str]] = {}
    for t in thresholds:
        if t["dtype"] != dtype or _panel_key(t) != key:
            continue
        x = number(t.get("value") if signed else t.get("saturation"))
        if math.isfinite(x):
            kinds = out.setdefault(x, {})
            if kinds.get(t["implementation"]) != "inf/NaN":
                kinds[t["implementation"]] = str(t["kind"])
    return dict(sorted(out.items()))


def error_vs_saturation_figure(
    series: Sequence[Mapping[str, Any]],
    thresholds: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "Where does each form of the BCE gradient break, per dtype?",
    quantity: str = "dJ/dh_L",
    xlabel: str = "output logit h_L",
    note: str = BCE_NOTE,
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
            or ``saturation``; drawn as vertical lines in the implementation's colour with
            the value of h above the panel.
        title: the figure's title: the question it answers.
        quantity, xlabel: the gradient plotted and the variable swept, in the legend and
            on the x axis (for the scans of named activations, ``"dJ/dW1"`` and
            ``"hidden pre-activation h"``).
        note: what the reader must know to read the panels, set below them.

    A series (and a threshold) may carry ``column`` instead of ``label``: the panel
    column it belongs to (one per scanned activation, or loss and label).

    One line per implementation in its colour and marker in every panel, the first
    implementation widest and lowest so that equal lines all stay visible. Points where
    the gradient is inf/NaN are drawn at the dtype's full width, and a bar in the
    implementation's colour above the panel marks their range of h.
    """
    with style():
        dtypes = ordered_dtypes([s["dtype"] for s in series]) or ["float64"]
        keys = list(dict.fromkeys(_panel_key(s) for s in series)) or [""]
        signed = bool(series) and all("h" in s for s in series)
        fig = new_figure(11.5, 1.9 + 2.75 * len(dtypes))
        styles = implementation_styles([s["implementation"] for s in series])
        lanes = [n for n in styles if _returns_nonfinite(series, n)]
        axes = fig.subplots(len(dtypes), len(keys), squeeze=False)
        labels: list[TopLabel] = []
        for r, dtype in enumerate(dtypes):
            for c, key in enumerate(keys):
                ax = axes[r][c]
                panel = [s for s in series if s["dtype"] == dtype and _panel_key(s) == key]
                if _panel(ax, panel, dtype, key, signed, styles, lanes):
                    marks = _marks(thresholds, dtype, key, signed)
                    labels += _draw_marks(ax, marks, styles)
                    edges = (r == len(dtypes) - 1, c == 0)
                    _finish_axes(ax, signed, edges, xlabel)
        _legend(fig, styles, lanes, quantity, note)
        fig.suptitle(title, fontsize=12, fontweight="bold")
        place_top_labels(fig, labels)
        return fig


def _returns_nonfinite(series: Sequence[Mapping[str, Any]], name: str) -> bool:
    """Whether implementation ``name`` returns inf/NaN anywhere in ``series``."""
    return any(any(_nonfinite(s)) for s in series if s["implementation"] == name)


def _nonfinite(s: Mapping[str, Any]) -> list[bool]:
    """Per point of a series: whether inf/NaN was returned (else: bits at the full width)."""
    width = DTYPE_BITS.get(s["dtype"], 64)
    return list(s.get("nonfinite") or [number(b) >= width for b in s["bits"]])


def _panel(
    ax: Axes,
    panel: Sequence[Mapping[str, Any]],
    dtype: str,
    key: str,
    signed: bool,
    styles: Mapping[str, ImplementationStyle],
    lanes: Sequence[str],
) -> bool:
    """The title and the lines of one dtype x label (or column) panel; False if no data."""
    lab = key  # "y=1" (a label), "softplus" (a column) or "" (neither)
    named = f"label {lab}" if lab.startswith("y=") else lab
    ax.set_title(f"{dtype}" + (f", {named}" if lab else ""))
    if not panel:
        empty(ax, f"no sweep data for {dtype} {lab}")
        return False
    if signed:  # before anything is drawn: a linear autoscale of |h| near 1e308 overflows
        _symlog_axis(ax, [number(v) for s in panel for v in s["h"]])
    width = DTYPE_BITS.get(dtype, 64)
    order = list(styles)
    for s in sorted(panel, key=lambda s: order.index(s["implementation"])):
        rank = order.index(s["implementation"])
        _draw_series(ax, s, signed, width, styles[s["implementation"]], (rank, len(order)))
        if s["implementation"] in lanes:
            lane = lanes.index(s["implementation"])
            _draw_lane(ax, s, signed, width, lane, styles[s["implementation"]].color)
    bits_axis(ax, width, lanes=_LANE * len(lanes))
    return True


def _symlog_axis(ax: Axes, h: Sequence[float]) -> None:
    """A symlog x axis (linear for |h| < 1) over exactly the range of ``h``, with a tick at 0
    and at most about five decades each side: +-1, +-10, ... for a narrow range, every
    k-th decade (never +-1, too close to 0) for a wide one such as a whole float range."""
    ax.set_xscale("symlog", linthresh=1.0)
    finite = [v for v in h if math.isfinite(v)]
    if not finite or min(finite) == max(finite):
        return
    low, high = min(finite), max(finite)
    ax.set_xlim(low, high)  # no margins: past the largest float they overflow
    top = math.floor(math.log10(max(abs(low), abs(high), 1.0)))
    step = next(n for n in (1, 2, 3, 5, 10, 20, 50, 100, 200) if n >= (top + 1) / 5)
    exponents = range(0 if step == 1 else step, top + 1, step)
    ticks = [0.0] + [sign * 10.0**e for e in exponents for sign in (-1.0, 1.0)]
    ax.set_xticks(sorted(t for t in ticks if low <= t <= high))


def _draw_series(
    ax: Axes,
    s: Mapping[str, Any],
    signed: bool,
    width: int,
    look: ImplementationStyle,
    rank: tuple[int, int],
) -> None:
    """One implementation's line, inf/NaN at the dtype's width, failed calls as hollow
    markers at the top. ``rank`` (index, count): earlier implementations are drawn lower
    and wider, so a later line drawn over an equal one leaves its edges visible; the
    markers are staggered along the line for the same reason."""
    index, count = rank
    x = [number(v) for v in (s["h"] if signed else s["saturation"])]
    bits = [number(v) for v in s["bits"]]
    nonfinite = _nonfinite(s)
    failed = list(s.get("error") or [False] * len(x))
    shown = [
        math.nan if f else (width if n else max(b, 0.0))
        for b, n, f in zip(bits, nonfinite, failed, strict=True)
    ]
    spread = min(1.0, 2.4 / max(count - 1, 1))
    ax.plot(
        x,
        shown,
        color=look.color,
        linewidth=1.1 + spread * (count - 1 - index),
        marker=look.marker,
        markersize=4.5,
        markeredgecolor="white",
        markeredgewidth=0.5,
        markevery=(0.1 * (index + 0.5) / count, 0.1),
        zorder=2 + index,
        label=plain_text(s["implementation"], 28),
    )
    bad = [xi for xi, f in zip(x, failed, strict=True) if f]
    if bad:
        ax.plot(
            bad,
            [width] * len(bad),
            linestyle="none",
            marker=look.marker,
            markersize=6,
            markerfacecolor="none",
            color=look.color,
            zorder=2 + count,
        )


def _draw_lane(
    ax: Axes, s: Mapping[str, Any], signed: bool, width: int, lane: int, color: str
) -> None:
    """A bar above the dtype's width over each range of h where this series is inf/NaN."""
    x = [number(v) for v in (s["h"] if signed else s["saturation"])]
    bottom = width * (1.06 + _LANE * lane)
    for start, stop in runs(_nonfinite(s)):
        left = _halfway(ax, x[start - 1], x[start]) if start > 0 else x[start]
        right = _halfway(ax, x[stop - 1], x[stop]) if stop < len(x) else x[stop - 1]
        ax.fill_between(
            [left, right],
            bottom,
            bottom + 0.6 * _LANE * width,
            color=color,
            alpha=LANE_ALPHA,
            linewidth=0,
        )


def _halfway(ax: Axes, a: float, b: float) -> float:
    """The x halfway between ``a`` and ``b`` as the axis shows them (on its scale)."""
    scale = ax.xaxis.get_transform()
    middle = scale.transform([[a], [b]]).mean()
    return float(scale.inverted().transform([[middle]])[0][0])


def _draw_marks(
    ax: Axes, marks: Mapping[float, Mapping[str, str]], styles: Mapping[str, ImplementationStyle]
) -> list[TopLabel]:
    """The thresholds as vertical lines in the implementation's colour (lines at one x
    side by side, a point apart); returns one label per x, for :func:`place_top_labels`."""
    from matplotlib.transforms import offset_copy

    labels = []
    for xt, kinds in marks.items():
        for k, (impl, kind) in enumerate(kinds.items()):
            look = styles.get(impl)
            line = ax.axvline(
                xt,
                color=look.color if look else REFERENCE_COLOR,
                linewidth=1.1,
                linestyle=MARK_STYLES.get(kind, (0, (2, 2))),
                zorder=1.5,
            )
            dx = 1.2 * (k - (len(kinds) - 1) / 2)  # side by side where several share x
            shifted = offset_copy(line.get_transform(), fig=ax.figure, x=dx, units="points")
            line.set_transform(shifted)
        only = styles.get(next(iter(kinds))) if len(kinds) == 1 else None
        labels.append(TopLabel(ax, xt, format_logit(xt), only.color if only else _SHARED))
    return labels


def _finish_axes(ax: Axes, signed: bool, edges: tuple[bool, bool], xlabel: str) -> None:
    """The axis labels, at the ``edges`` (bottom, left)."""
    bottom, left = edges
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


def _legend(
    fig: Figure,
    styles: Mapping[str, ImplementationStyle],
    lanes: Sequence[str],
    quantity: str,
    note: str,
) -> None:
    """One legend below the panels: the implementations, the threshold kinds and whose
    inf/NaN each bar marks, under the note that says how to read the panels."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = implementation_handles(styles)
    handles += [
        Line2D([], [], color=REFERENCE_COLOR, linestyle=line, label=f"first {kind} (value above)")
        for kind, line in MARK_STYLES.items()
    ]
    handles += [
        Patch(
            facecolor=styles[name].color,
            alpha=LANE_ALPHA,
            linewidth=0,
            label=f"{plain_text(name, 28)} returns inf/NaN",
        )
        for name in lanes
    ]
    reading = (
        f"Bits of error of {quantity} against the exact gradient, log2(1 + ulps); "
        "inf/NaN is drawn at the dtype's width (the top tick) and marked by a bar above "
        "the lines in the colour of the implementation that returns it. " + note
    )
    legend_below(fig, handles, reading)
