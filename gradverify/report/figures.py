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


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


@contextmanager
def _style() -> Iterator[None]:
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


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without time- or version-dependent metadata."""
    buffer = io.BytesIO()
    with _style():  # some settings are read when drawing, not when the figure is built
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


def _short(text: Any, limit: int = 40) -> str:
    """A user-supplied string, shortened, with ``$`` escaped so it is never mathtext."""
    text = str(text)
    text = text if len(text) <= limit else text[: limit - 1] + "~"
    return text.replace("$", r"\$")


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


MARK_STYLES = {"inf/NaN": (0, (4, 2)), "100% error": (0, (1, 2))}


def _marks(
    thresholds: Sequence[Mapping[str, Any]], dtype: str, label: Any, signed: bool
) -> list[tuple[float, str, str]]:
    """(x, implementation, kind) of the thresholds in one panel, without exact repeats."""
    out: dict[tuple[float, str], str] = {}
    for t in thresholds:
        if t["dtype"] != dtype or _label_text(t.get("label")) != _label_text(label):
            continue
        x = _float(t.get("value") if signed else t.get("saturation"))
        if math.isfinite(x):
            out.setdefault((x, t["implementation"]), str(t["kind"]))
    return [(x, impl, kind) for (x, impl), kind in sorted(out.items())]


def error_vs_saturation_figure(
    series: Sequence[Mapping[str, Any]],
    thresholds: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "Gradient error against output saturation",
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

    One line per implementation (colour) in every panel. Points where the gradient is
    inf/NaN are drawn at the dtype's full width and their range of h is shaded.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with _style():
        dtypes = _ordered_dtypes([s["dtype"] for s in series]) or ["float64"]
        labels = list(dict.fromkeys(s.get("label") for s in series)) or [None]
        signed = bool(series) and all("h" in s for s in series)
        fig = _new_figure(11.5, 0.9 + 2.75 * len(dtypes))
        colors = implementation_colors([s["implementation"] for s in series])
        axes = fig.subplots(len(dtypes), len(labels), squeeze=False)
        for r, dtype in enumerate(dtypes):
            width = DTYPE_BITS.get(dtype, 64)
            for c, label in enumerate(labels):
                ax = axes[r][c]
                panel = [
                    s
                    for s in series
                    if s["dtype"] == dtype and _label_text(s.get("label")) == _label_text(label)
                ]
                lab = _label_text(label)
                ax.set_title(f"{dtype}" + (f", label {lab}" if lab else ""))
                if not panel:
                    _empty(ax, f"no sweep data for {dtype} {lab}")
                    continue
                for s in reversed(panel):  # the first implementation ends up on top
                    x = [_float(v) for v in (s["h"] if signed else s["saturation"])]
                    bits = [_float(v) for v in s["bits"]]
                    nonfinite = list(s.get("nonfinite") or [b >= width for b in bits])
                    failed = list(s.get("error") or [False] * len(x))
                    color = colors[s["implementation"]]
                    shown = [
                        math.nan if f else (width if n else b)
                        for b, n, f in zip(bits, nonfinite, failed, strict=True)
                    ]
                    ax.plot(x, shown, color=color, linewidth=1.2)
                    for start, stop in _runs(nonfinite):
                        ax.axvspan(
                            x[max(start - 1, 0)], x[stop - 1], color=color, alpha=0.12, linewidth=0
                        )
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
                placed: list[float] = []
                for xt, impl, kind in _marks(thresholds, dtype, label, signed):
                    color = colors.get(impl, "0.3")
                    ax.axvline(
                        xt, color=color, linewidth=1.0, linestyle=MARK_STYLES.get(kind, (0, (2, 2)))
                    )
                    scale = math.log1p(abs(xt)) * (1 if xt >= 0 else -1)
                    if any(abs(scale - p) < 0.12 for p in placed):
                        continue  # the value is already written next to this line
                    placed.append(scale)
                    ax.annotate(
                        f"{xt:.4g}",
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
                ax.axhline(width, color="0.5", linewidth=0.8, linestyle=":")
                ax.set_ylim(-0.5, width * 1.05)
                if signed:
                    ax.set_xscale("symlog", linthresh=1.0)
                if r == len(dtypes) - 1:
                    ax.set_xlabel(
                        "output logit h_L (symlog: linear for |h| < 1)"
                        if signed
                        else "output logit |h_L|"
                    )
                if c == 0:
                    ax.set_ylabel("bits of error")
        handles = [
            Line2D([], [], color=col, linewidth=2, label=_short(name, 28))
            for name, col in colors.items()
        ]
        handles += [
            Line2D([], [], color="0.3", linestyle=style, label=f"first {kind}")
            for kind, style in MARK_STYLES.items()
        ]
        handles.append(Patch(color="0.5", alpha=0.25, label="inf/NaN returned"))
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 7),
            frameon=False,
            fontsize=8,
        )
        fig.suptitle(
            title + " (bits of error in dJ/dh_L against the exact gradient; "
            "inf/NaN drawn at the dtype's width)",
            fontsize=10,
        )
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
        ncols = 2 if len(panels) == 4 else 3
        fig = _new_figure(11.0, 0.6 + 3.6 * math.ceil(max(1, len(panels)) / ncols))
        subtitle = _short(data.get("network", ""), 160)
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        if not panels:
            _empty(fig.add_subplot(), "no per-layer data")
            return fig
        depth = int(data["depth"])
        ticks = list(range(depth))
        tick_labels = [f"W{depth - k}" + (" (output)" if k == 0 else "") for k in ticks]
        names = [
            ln["implementation"]
            for p in panels
            for ln in p["lines"]
            if ln.get("kind", "implementation") == "implementation"
        ]
        colors = implementation_colors(names)
        for ax, panel in zip(_grid(fig, len(panels), ncols), panels, strict=True):
            finite_values = [
                _float(v)
                for ln in panel["lines"]
                for v in ln["errors"]
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
                xs = [
                    t + offsets.get(ln["implementation"], 0.0) if kind == "implementation" else t
                    for t in ticks
                ]
                if kind == "baseline":
                    style = {"color": "0.35", "linestyle": "--", "marker": "s", "markersize": 3}
                elif kind == "tolerance":
                    style = {"color": "0.6", "linestyle": ":", "marker": None}
                else:
                    style = {
                        "color": colors[ln["implementation"]],
                        "linestyle": "-",
                        "marker": "o",
                        "markersize": 4,
                    }
                ax.plot(xs, shown, label=_short(ln["implementation"], 24), linewidth=1.3, **style)
                bad = [k for k, v in enumerate(values) if not math.isfinite(v)]
                if bad:
                    ax.plot(
                        [xs[k] for k in bad],
                        [top] * len(bad),
                        linestyle="none",
                        marker="X",
                        markersize=8,
                        color=style["color"],
                    )
            ax.axhspan(top / 3, top * 3, color=NONFINITE_SHADE, alpha=0.35, linewidth=0)
            ax.text(
                0.02, 0.985, "inf/NaN", transform=ax.transAxes, fontsize=7, va="top", color="#a33"
            )
            ax.axhline(1.0, color="#a33", linewidth=0.8, linestyle=(0, (4, 3)))
            ax.annotate(
                "100% error",
                xy=(1.0, 1.0),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color="#a33",
            )
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
        subtitle = _short(data.get("network", ""), 160)
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
        ax = fig.add_subplot()
        levels = [_float(v) for v in data.get("saturation", [])]
        series = list(data.get("series", []))
        if not series or not levels:
            _empty(ax, "no hidden-layer data")
            return fig
        groups = list(dict.fromkeys(tuple(s["implementations"]) for s in series))
        styles = {g: LABEL_STYLES[i % len(LABEL_STYLES)] for i, g in enumerate(groups)}
        for s in sorted(
            series,
            key=lambda s: _ordered_dtypes([s["dtype"]] + list(DTYPE_ORDER)).index(s["dtype"]),
        ):
            group = tuple(s["implementations"])
            who = ", ".join(_short(n, 20) for n in group)
            label = s["dtype"] if len(groups) == 1 else f"{s['dtype']}: {who}"
            if all(v is None for v in s["fraction"]):
                label += " (no data: the implementation failed)"
            ax.plot(
                levels,
                [_float(v) for v in s["fraction"]],
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
                "implementations: " + ", ".join(_short(n, 20) for n in groups[0]),
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
    from matplotlib.lines import Line2D

    with _style():
        count = max(1, len(searches))
        ncols = min(3, count)
        fig = _new_figure(11.0, 0.8 + 3.4 * math.ceil(count / ncols))
        fig.suptitle(title)
        if not searches:
            _empty(fig.add_subplot(), "no search data")
            return fig
        seen: list[str] = []
        for ax, search in zip(_grid(fig, count, ncols), searches, strict=True):
            samples = list(search.get("samples", []))
            failed = sum(1 for s in samples if s["verdict"] in FAILED)
            name = _short(search["implementation"], 40)
            ax.set_title(f"{name}: {len(samples)} examples, {failed} failed")
            if not samples:
                _empty(ax, "no examples recorded")
                continue
            positive = [_float(s["saturation"]) for s in samples if _float(s["saturation"]) > 0]
            floor = min(positive, default=1e-3) / 2
            for dtype in _ordered_dtypes([s["dtype"] for s in samples]):
                seen.append(dtype)
                color = DTYPE_COLORS.get(dtype, "0.3")
                mine = [s for s in samples if s["dtype"] == dtype]
                ok = [s for s in mine if s["verdict"] not in FAILED]
                bad = [s for s in mine if s["verdict"] in FAILED]
                if ok:
                    ax.scatter(
                        [max(_float(s["saturation"]), floor) for s in ok],
                        [_float(s["bits"]) for s in ok],
                        s=10,
                        color=color,
                        alpha=0.55,
                        linewidths=0,
                    )
                if bad:
                    ax.scatter(
                        [max(_float(s["saturation"]), floor) for s in bad],
                        [_float(s["bits"]) for s in bad],
                        s=34,
                        marker="X",
                        color=color,
                        edgecolors="black",
                        linewidths=0.5,
                    )
                threshold = (search.get("thresholds") or {}).get(dtype)
                if threshold is not None and math.isfinite(_float(threshold)):
                    ax.axvline(_float(threshold), color=color, linestyle=(0, (2, 2)), linewidth=0.9)
            ax.set_xscale("log")
            ax.set_xlabel("saturation max |h| over all layers")
            ax.set_ylabel("worst bits of error beyond the stable baseline")
        handles = [
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=5,
                color=DTYPE_COLORS.get(d, "0.3"),
                label=d,
            )
            for d in _ordered_dtypes(seen)
        ]
        handles += [
            Line2D([], [], linestyle="none", marker="o", markersize=4, color="0.5", label="passed"),
            Line2D(
                [],
                [],
                linestyle="none",
                marker="X",
                markersize=7,
                color="0.5",
                markeredgecolor="black",
                label="failed",
            ),
            Line2D([], [], color="0.3", linestyle=(0, (2, 2)), label="first failing |h|"),
        ]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            frameon=False,
            fontsize=8,
        )
        return fig
