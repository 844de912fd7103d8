"""The report's figures, drawn from plain data with matplotlib's object-oriented ``Figure`` API.

No pyplot and no ``matplotlib.use``: every figure is a fresh ``Figure`` with its own Agg
canvas, so nothing leaks into (or out of) a user's matplotlib state. Figures are drawn
under matplotlib's default style and saved without the ``Software`` PNG metadata, so the
same data gives byte-identical PNG files.

Each ``*_figure`` function takes plain data (the dictionaries stored in ``report.json``):

* :func:`error_vs_saturation_figure`: bits of error against the output logit |h|, one
  line per implementation x dtype (x label), inf/NaN regions shaded, thresholds marked;
* :func:`layer_error_figure`: normwise error of each layer's dW, from the output backward;
* :func:`vanishing_gradient_figure`: fraction of hidden-layer gradient entries that are 0
  in float while the exact gradient is not, against hidden saturation, per dtype;
* :func:`search_samples_figure`: every example the search tried, failures marked.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "error_vs_saturation_figure",
    "figure_png",
    "layer_error_figure",
    "search_samples_figure",
    "vanishing_gradient_figure",
]

DPI = 100
"""Resolution of the saved PNG files (pixels per inch of figure size)."""

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
DTYPE_COLORS = {"float16": "#d62728", "bfloat16": "#9467bd", "float32": "#1f77b4",
                "float64": "#2ca02c"}
# implementation colours: the built-ins get fixed ones, others follow in order
IMPLEMENTATION_COLORS = {"naive": "#d62728", "epsilon": "#ff7f0e", "fused": "#2ca02c"}
EXTRA_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LABEL_STYLES = ("-", "--", ":", "-.")
FAILED = ("unstable", "incorrect", "error")
NONFINITE_SHADE = "#f4a6a6"


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


@contextmanager
def _style() -> Iterator[None]:
    """matplotlib's default style plus a few settings, whatever the user's rcParams say."""
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
        "svg.hashsalt": "gradverify", "path.simplify": True,
    }):
        yield


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without time- or version-dependent metadata."""
    buffer = io.BytesIO()
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


def _ordered_dtypes(names: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda d: (DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 99, d))


def _float(value: Any) -> float:
    """A number from report data, where inf/NaN are stored as the strings 'inf'/'nan'."""
    if value is None:
        return math.nan
    return float(value)


def _short(text: str, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "~"


def _label_text(label: Any) -> str:
    return "" if label is None else f"y={_float(label):g}"


def _grid(fig: Figure, count: int, ncols: int) -> list[Axes]:
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return flat[:count]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of True in ``flags``."""
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------
# 1. Error against saturation
# ---------------------------------------------------------------------------


def error_vs_saturation_figure(
    series: Sequence[Mapping[str, Any]],
    thresholds: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "Gradient error against output saturation",
) -> Figure:
    """Bits of error of dJ/dh_L against |h_L|, one panel per dtype.

    Args:
        series: mappings with ``implementation``, ``dtype``, ``label`` (y, or None),
            ``saturation`` (|h_L| values), ``bits`` (bits of error, the dtype's full
            width for inf/NaN) and optionally ``nonfinite`` (bools, one per point).
        thresholds: mappings with ``implementation``, ``dtype``, ``label``,
            ``saturation`` (|h|) and ``kind`` (a short text such as ``"inf/NaN"``).
        title: the figure's title.

    Colour is the implementation, line style the label; points where the gradient is
    inf/NaN sit on the dtype's full width and their |h| range is shaded.
    """
    with _style():
        dtypes = _ordered_dtypes([s["dtype"] for s in series]) or ["float64"]
        fig = _new_figure(11.0, 3.6 * math.ceil(len(dtypes) / 2))
        fig.suptitle(title)
        colors = implementation_colors([s["implementation"] for s in series])
        labels = list(dict.fromkeys(_label_text(s.get("label")) for s in series))
        styles = {lab: LABEL_STYLES[i % len(LABEL_STYLES)] for i, lab in enumerate(labels)}
        for ax, dtype in zip(_grid(fig, len(dtypes), 2), dtypes, strict=True):
            width = DTYPE_BITS.get(dtype, 64)
            panel = [s for s in series if s["dtype"] == dtype]
            if not panel:
                _empty(ax, f"no sweep data for {dtype}")
                continue
            shaded = False
            for s in panel:
                x = [_float(v) for v in s["saturation"]]
                bits = [_float(v) for v in s["bits"]]
                nonfinite = list(s.get("nonfinite") or [b >= width for b in bits])
                color = colors[s["implementation"]]
                lab = _label_text(s.get("label"))
                name = _short(s["implementation"], 24) + (f" ({lab})" if lab else "")
                ax.plot(x, [width if n else b for b, n in zip(bits, nonfinite, strict=True)],
                        linestyle=styles[lab], color=color, linewidth=1.4, label=name)
                for start, stop in _runs(nonfinite):
                    lo = x[start - 1] if start > 0 else x[start]
                    hi = x[stop - 1]
                    ax.axvspan(lo, hi, color=color, alpha=0.10, linewidth=0)
                    shaded = True
            marks = [t for t in thresholds if t["dtype"] == dtype
                     and math.isfinite(_float(t.get("saturation")))]
            for k, t in enumerate(marks):
                xt = _float(t["saturation"])
                color = colors.get(t["implementation"], "0.3")
                ax.axvline(xt, color=color, linestyle=(0, (2, 2)), linewidth=0.9)
                lab = _label_text(t.get("label"))
                ax.annotate(
                    f"{_short(t['implementation'], 16)} {lab} {t['kind']}\n|h|={xt:.4g}",
                    xy=(xt, width * (0.97 - 0.13 * (k % 6))), xycoords="data",
                    xytext=(3, 0), textcoords="offset points", fontsize=6.5, color=color,
                    va="top", ha="left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.75},
                )
            ax.axhline(width, color="0.5", linewidth=0.8, linestyle=":")
            ax.set_ylim(-0.5, width * 1.06)
            ax.set_title(f"{dtype}  (inf/NaN plotted at {width} bits"
                         f"{', its |h| range shaded' if shaded else ''})")
            ax.set_xlabel("output logit |h_L|")
            ax.set_ylabel("bits of error in dJ/dh_L")
            ax.legend(loc="center left", frameon=True, framealpha=0.85)
        return fig


# ---------------------------------------------------------------------------
# 2. Error per layer
# ---------------------------------------------------------------------------


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
    with _style():
        panels = list(data.get("panels", []))
        fig = _new_figure(11.0, 3.8 * math.ceil(max(1, len(panels)) / 3))
        subtitle = data.get("network", "")
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        if not panels:
            _empty(fig.add_subplot(), "no per-layer data")
            return fig
        depth = int(data["depth"])
        ticks = list(range(depth))
        tick_labels = [f"W{depth - k}" + (" (output)" if k == 0 else "") for k in ticks]
        names = [ln["implementation"] for p in panels for ln in p["lines"]
                 if ln.get("kind", "implementation") == "implementation"]
        colors = implementation_colors(names)
        for ax, panel in zip(_grid(fig, len(panels), 3), panels, strict=True):
            finite_values = [
                _float(v) for ln in panel["lines"] for v in ln["errors"]
                if math.isfinite(_float(v)) and _float(v) > 0
            ]
            floor = min(finite_values, default=1e-16) / 10
            top = max(max(finite_values, default=1.0), 1.0) * 30  # inf/NaN drawn here
            offsets = {n: 0.06 * (k - (len(colors) - 1) / 2) for k, n in enumerate(colors)}
            for ln in panel["lines"]:
                kind = ln.get("kind", "implementation")
                values = [_float(v) for v in ln["errors"]]
                shown = [top if not math.isfinite(v) else max(v, floor) for v in values]
                # implementations are nudged sideways so that equal values stay visible
                xs = [t + offsets.get(ln["implementation"], 0.0) if kind == "implementation"
                      else t for t in ticks]
                if kind == "baseline":
                    style = {"color": "0.35", "linestyle": "--", "marker": "s", "markersize": 3}
                elif kind == "tolerance":
                    style = {"color": "0.6", "linestyle": ":", "marker": None}
                else:
                    style = {"color": colors[ln["implementation"]], "linestyle": "-",
                             "marker": "o", "markersize": 4}
                ax.plot(xs, shown, label=_short(ln["implementation"], 24), linewidth=1.3,
                        **style)
                bad = [k for k, v in enumerate(values) if not math.isfinite(v)]
                if bad:
                    ax.plot([xs[k] for k in bad], [top] * len(bad), linestyle="none",
                            marker="X", markersize=8, color=style["color"])
            ax.axhspan(top / 3, top * 3, color=NONFINITE_SHADE, alpha=0.35, linewidth=0)
            ax.text(0.02, 0.985, "inf/NaN", transform=ax.transAxes, fontsize=7, va="top",
                    color="#a33")
            ax.axhline(1.0, color="#a33", linewidth=0.8, linestyle=(0, (4, 3)))
            ax.annotate("100% error", xy=(1.0, 1.0), xycoords=("axes fraction", "data"),
                        xytext=(-3, 2), textcoords="offset points", ha="right", va="bottom",
                        fontsize=7, color="#a33")
            ax.set_yscale("log")
            ax.set_ylim(floor, top * 3)
            ax.set_xticks(ticks, tick_labels)
            ax.set_title(f"{panel['dtype']}" + (f", {panel['note']}" if panel.get("note") else ""))
            ax.set_xlabel("layer (backpropagation order)")
            ax.set_ylabel("normwise relative error of dJ/dW")
            ax.legend(loc="lower right", framealpha=0.85)
        return fig


# ---------------------------------------------------------------------------
# 3. Vanishing gradients
# ---------------------------------------------------------------------------


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
    with _style():
        fig = _new_figure(8.0, 4.2)
        subtitle = data.get("network", "")
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        ax = fig.add_subplot()
        levels = [_float(v) for v in data.get("saturation", [])]
        series = list(data.get("series", []))
        if not series or not levels:
            _empty(ax, "no hidden-layer data")
            return fig
        groups = list(dict.fromkeys(tuple(s["implementations"]) for s in series))
        styles = {g: LABEL_STYLES[i % len(LABEL_STYLES)] for i, g in enumerate(groups)}
        for s in sorted(series, key=lambda s: _ordered_dtypes([s["dtype"]] + list(DTYPE_ORDER))
                        .index(s["dtype"])):
            group = tuple(s["implementations"])
            who = ", ".join(_short(n, 20) for n in group)
            label = s["dtype"] if len(groups) == 1 else f"{s['dtype']}: {who}"
            if all(v is None for v in s["fraction"]):
                label += " (no data: the implementation failed)"
            ax.plot(levels, [_float(v) for v in s["fraction"]], label=label,
                    color=DTYPE_COLORS.get(s["dtype"], "0.3"), linestyle=styles[group],
                    marker="o", markersize=3, linewidth=1.4)
        if len(groups) == 1:
            ax.text(0.01, 0.98, "implementations: " + ", ".join(_short(n, 20) for n in groups[0]),
                    transform=ax.transAxes, fontsize=7, va="top", color="0.35")
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("hidden-layer saturation max |h_i|")
        ax.set_ylabel("fraction of hidden dW, db entries = 0\n(exact gradient non-zero)")
        ax.legend(loc="center left", framealpha=0.85)
        return fig


# ---------------------------------------------------------------------------
# 4. Search summary
# ---------------------------------------------------------------------------


def search_samples_figure(
    searches: Sequence[Mapping[str, Any]],
    *,
    title: str = "Examples tried by the search",
) -> Figure:
    """Bits of error against saturation for every example of every search, one panel each.

    Args:
        searches: mappings with ``implementation``, ``samples`` (mappings with ``dtype``,
            ``saturation``, ``bits``, ``verdict``) and optionally ``thresholds``
            (``{dtype: |h| or None}``: where the dtype first fails).
    """
    with _style():
        count = max(1, len(searches))
        ncols = min(3, count)
        fig = _new_figure(11.0, 3.6 * math.ceil(count / ncols))
        fig.suptitle(title)
        if not searches:
            _empty(fig.add_subplot(), "no search data")
            return fig
        for ax, search in zip(_grid(fig, count, ncols), searches, strict=True):
            samples = list(search.get("samples", []))
            name = _short(search["implementation"], 40)
            ax.set_title(f"{name}: {len(samples)} examples")
            if not samples:
                _empty(ax, "no examples recorded")
                continue
            positive = [_float(s["saturation"]) for s in samples if _float(s["saturation"]) > 0]
            floor = min(positive, default=1e-3) / 2
            for dtype in _ordered_dtypes([s["dtype"] for s in samples]):
                color = DTYPE_COLORS.get(dtype, "0.3")
                mine = [s for s in samples if s["dtype"] == dtype]
                ok = [s for s in mine if s["verdict"] not in FAILED]
                bad = [s for s in mine if s["verdict"] in FAILED]
                if ok:
                    ax.scatter([max(_float(s["saturation"]), floor) for s in ok],
                               [_float(s["bits"]) for s in ok], s=10, color=color, alpha=0.55,
                               linewidths=0, label=f"{dtype} pass")
                if bad:
                    ax.scatter([max(_float(s["saturation"]), floor) for s in bad],
                               [_float(s["bits"]) for s in bad], s=34, marker="X",
                               color=color, edgecolors="black", linewidths=0.5,
                               label=f"{dtype} fail")
                threshold = (search.get("thresholds") or {}).get(dtype)
                if threshold is not None and math.isfinite(_float(threshold)):
                    ax.axvline(_float(threshold), color=color, linestyle=(0, (2, 2)),
                               linewidth=0.9)
            ax.set_xscale("log")
            ax.set_xlabel("saturation max |h| over all layers")
            ax.set_ylabel("worst bits of error")
            ax.legend(loc="upper left", framealpha=0.85, markerscale=0.8)
        return fig
