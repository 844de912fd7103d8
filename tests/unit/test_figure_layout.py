"""The report's figures read without a caption: nothing covers anything, and one visual language.

The figures are drawn from real data, made the way ``gradverify report`` makes it (a scan,
a seeded search and the per-layer and underflow measurements of the three built-ins, kept
small), then measured through matplotlib's own artist bounding boxes after a draw:

* no legend covers plotted data, and no note inside an axes does;
* no two pieces of text overlap (a legend counts as one box);
* every failing example has its marker and every failing implementation x dtype its line;
* an implementation has one colour and one marker in every figure, from a
  colour-blind-safe palette, and no dtype is drawn in an implementation's colour;
* inf/NaN shading is in the colour of the implementation that returns it, as in the legend;
* bits of error are never shown negative, and a panel of zeros says so;
* every title is the question its figure answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib.style
import numpy as np
import pytest
from matplotlib.collections import Collection, PathCollection
from matplotlib.colors import to_hex, to_rgba
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from gradverify.report import build_document, hidden_underflow, layer_errors
from gradverify.report.figures import error_vs_saturation_figure, search_samples_figure
from gradverify.report.figures.catalog import FIGURES, figure_drawers

BUILTINS = ("naive", "epsilon", "fused")
DTYPES = ("float16", "bfloat16", "float32", "float64")
FAILED = ("unstable", "incorrect", "error")
OKABE_ITO = {"#000000", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7"}
COLORBLIND10 = {
    to_hex(c).lower()
    for c in matplotlib.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()["color"]
}
SAFE = OKABE_ITO | COLORBLIND10
FIGURE_IDS = ("error_vs_saturation", "layer_errors", "hidden_underflow", "search_samples")
SMALLEST_FONT = 8.0  # points: readable at the size the page shows the figures


# -- the data, made the way the report makes it --------------------------------------------


SEARCHED = {"naive": ("float16",), "epsilon": ("float64",), "fused": ("float16", "float64")}
"""The dtypes each search covers. Certain whatever Hypothesis draws: epsilon fails every
float64 example (an incorrect verdict, no threshold), fused passes every example with 0
bits, and naive is not searched at float64. Naive at float16 fails (unstable, with its
threshold) when the two examples reach saturation; the tests hold either way."""


@pytest.fixture(scope="module")
def report_data() -> dict[str, Any]:
    """A small real report: scans at float32/float64 (whose thresholds lie close together
    on the negative side), seeded searches, per-layer errors and underflow fractions."""
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS
    from gradverify.exploration.scan import scan
    from gradverify.exploration.search import search

    impls = {name: BUILTIN_IMPLEMENTATIONS[name] for name in BUILTINS}
    scans = [
        scan(f, dtypes=("float32", "float64"), name=n, sweep_points=40, check_points=4,
             neighbourhood=1, hidden_activations=(), timeout=None).to_dict()
        for n, f in impls.items()
    ]  # fmt: skip
    searches = [
        search(f, dtypes=SEARCHED[n], max_examples=2, seed=0, name=n, timeout=None).to_dict()
        for n, f in impls.items()
    ]
    layers = layer_errors(impls, ("float16", "float32"), timeout=None)
    hidden = hidden_underflow(impls, ("float16", "float32"), levels=(1.0, 30.0, 300.0, 3000.0))
    doc = build_document(
        title="layout", searches=searches, scans=scans, layers=layers, hidden_underflow=hidden
    )
    return {"doc": doc, "searches": searches}


class Drawn:
    """A figure after a full draw, with its renderer."""

    def __init__(self, fig: Any) -> None:
        from gradverify.report.figures.style import style

        self.fig = fig
        with style():  # as the report saves it: some settings are read while drawing
            fig.canvas.draw()
        self.renderer = fig.canvas.get_renderer()


@pytest.fixture(scope="module")
def figures(report_data) -> dict[str, Drawn]:
    drawers = figure_drawers(report_data["doc"], report_data["searches"])
    drawn = {fig_id: Drawn(draw()) for fig_id, draw in drawers}
    assert set(drawn) == set(FIGURE_IDS)
    return drawn


# -- geometry --------------------------------------------------------------------------------


def legends(fig) -> list[Legend]:
    found = list(fig.legends)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            found.append(ax.get_legend())
    return [lg for lg in found if lg.get_visible()]


def _in_legend(text: Text, fig) -> bool:
    return any(text in lg.get_texts() or text is lg.get_title() for lg in legends(fig))


def _tick_labels(fig) -> tuple[set[int], list[Text]]:
    """(ids of every tick label, the tick labels actually drawn: inside their axis' span)."""
    every: set[int] = set()
    drawn: list[Text] = []
    for ax in _all_axes(fig):
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                every.update({id(tick.label1), id(tick.label2)})
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is None or not (low - 1e-12 * abs(low) <= loc <= high + 1e-12 * abs(high)):
                    continue
                drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    return every, drawn


def _all_axes(fig) -> list[Any]:
    out = []
    for ax in fig.axes:
        if ax.get_visible():
            out.append(ax)
            out += [child for child in ax.child_axes if child.get_visible()]
    return out


def text_boxes(drawn: Drawn) -> list[tuple[str, Any]]:
    """(what, display bbox) of every visible piece of text; each legend as one box."""
    fig, renderer = drawn.fig, drawn.renderer
    tick_ids, ticks = _tick_labels(fig)
    boxes = []
    for t in fig.findobj(Text):
        if id(t) in tick_ids or _in_legend(t, fig) or not _shown(t):
            continue
        boxes.append((f"text {t.get_text()!r}", t.get_window_extent(renderer)))
    boxes += [(f"tick {t.get_text()!r}", t.get_window_extent(renderer)) for t in ticks if _shown(t)]
    boxes += [(f"legend {id(lg)}", lg.get_window_extent(renderer)) for lg in legends(fig)]
    return boxes


def _shown(t: Text) -> bool:
    if not t.get_visible() or not t.get_text().strip():
        return False
    return t.axes is None or t.axes.get_visible()


def overlap(a, b, slack: float = 0.5) -> bool:
    """Whether two display bboxes overlap by more than ``slack`` pixels both ways."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width > slack and height > slack


def data_points(ax) -> np.ndarray:
    """Display coordinates of what is plotted in ``ax``, inside the axes: the vertices of
    its lines (segments sampled densely), its markers and the corners of filled areas."""
    pieces = []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if line.get_linestyle() not in ("None", "none", "", " ") and len(xy) > 1:
            t = np.linspace(0.0, 1.0, 12)[:, None, None]
            xy = (xy[:-1][None] * (1 - t) + xy[1:][None] * t).reshape(-1, 2)
        pieces.append(xy)
    for col in ax.collections:
        if not col.get_visible():
            continue
        if isinstance(col, PathCollection):
            pieces.append(col.get_offset_transform().transform(col.get_offsets()))
        else:
            for path in col.get_paths():
                pieces.append(col.get_transform().transform(path.vertices))
    if not pieces:
        return np.empty((0, 2))
    xy = np.concatenate(pieces)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    box = ax.get_window_extent()
    keep = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
    return xy[keep]


def inside(points: np.ndarray, box, margin: float = 1.0) -> np.ndarray:
    return points[
        (points[:, 0] > box.x0 + margin)
        & (points[:, 0] < box.x1 - margin)
        & (points[:, 1] > box.y0 + margin)
        & (points[:, 1] < box.y1 - margin)
    ]


def hex_of(color: Any) -> str:
    return to_hex(to_rgba(color), keep_alpha=False).lower()


def line_color(artist: Any) -> str | None:
    if isinstance(artist, Line2D):
        return hex_of(artist.get_color())
    if isinstance(artist, Collection):
        faces = artist.get_facecolor()
        if len(faces) and faces[0][3] > 0:
            return hex_of(faces[0])
        edges = artist.get_edgecolor()
        return hex_of(edges[0]) if len(edges) else None
    if isinstance(artist, Patch):
        return hex_of(artist.get_facecolor())
    return None


def marker_of(artist: Any) -> str | None:
    if isinstance(artist, Line2D):
        marker = artist.get_marker()
        return None if marker in ("None", "none", "", " ", None) else str(marker)
    return None


def implementation_entries(fig) -> dict[str, tuple[str, str | None]]:
    """{implementation: (colour, marker)} from the legend entries named after one."""
    out = {}
    for lg in legends(fig):
        for handle, text in zip(lg.legend_handles, lg.get_texts(), strict=True):
            if text.get_text() in BUILTINS and isinstance(handle, Line2D):
                out[text.get_text()] = (hex_of(handle.get_color()), marker_of(handle))
    return out


def failing(search: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in search["samples"] if s["verdict"] in FAILED]


def vertical_lines(fig) -> Iterator[float]:
    """The data x of every vertical line in the figure (two points, one x)."""
    for ax in fig.axes:
        for line in ax.lines:
            xy = np.asarray(line.get_xydata(), dtype=float)
            if len(xy) == 2 and xy[0, 0] == xy[1, 0] and line.get_visible():
                yield float(xy[0, 0])


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_no_legend_covers_plotted_data(figures, fig_id):
    drawn = figures[fig_id]
    for lg in legends(drawn.fig):
        box = lg.get_window_extent(drawn.renderer)
        for ax in drawn.fig.axes:
            covered = inside(data_points(ax), box)
            assert len(covered) == 0, (
                f"{fig_id}: the legend covers {len(covered)} plotted points of "
                f"{ax.get_title()!r}, e.g. {covered[:3].round(1).tolist()}"
            )


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_no_note_inside_an_axes_covers_plotted_data(figures, fig_id):
    drawn = figures[fig_id]
    for ax in drawn.fig.axes:
        points = data_points(ax)
        for t in ax.texts:
            if not _shown(t):
                continue
            covered = inside(points, t.get_window_extent(drawn.renderer))
            assert len(covered) == 0, f"{fig_id}: {t.get_text()!r} covers plotted data"


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_no_two_labels_overlap(figures, fig_id):
    boxes = text_boxes(figures[fig_id])
    assert len(boxes) > 10  # titles, axis labels, ticks, legend: the figure has text
    clashes = [
        (a, b)
        for i, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[i + 1 :]
        if overlap(box_a, box_b)
    ]
    assert not clashes, f"{fig_id}: overlapping text: {clashes[:5]}"


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_every_text_is_readable_at_the_displayed_size(figures, fig_id):
    fig = figures[fig_id].fig
    small = {
        (t.get_text()[:40], t.get_fontsize())
        for t in fig.findobj(Text)
        if _shown(t) and t.get_fontsize() < SMALLEST_FONT
    }
    assert not small, f"{fig_id}: text smaller than {SMALLEST_FONT} pt: {sorted(small)[:5]}"


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_text_reads_left_to_right_except_the_y_axis_labels(figures, fig_id):
    fig = figures[fig_id].fig
    y_labels = {id(ax.yaxis.label) for ax in _all_axes(fig)}
    turned = {
        t.get_text()[:40]
        for t in fig.findobj(Text)
        if _shown(t) and id(t) not in y_labels and t.get_rotation() % 180 != 0
    }
    assert not turned, f"{fig_id}: rotated text: {sorted(turned)[:5]}"


def test_every_failing_example_has_its_marker(report_data, figures):
    fig = figures["search_samples"].fig
    searches = report_data["searches"]
    handle = next(
        h
        for lg in legends(fig)
        for h, t in zip(lg.legend_handles, lg.get_texts(), strict=True)
        if "failed" in t.get_text()
    )
    edge = hex_of(handle.get_markeredgecolor())
    marked = sum(
        len(col.get_offsets())
        for ax in fig.axes
        for col in ax.collections
        if isinstance(col, PathCollection)
        and len(col.get_edgecolor())
        and hex_of(col.get_edgecolor()[0]) == edge
        and col.get_linewidths()[0] > 0
    )
    expected = sum(len(failing(s)) for s in searches)
    assert expected > 0  # the data has failures to mark
    assert marked == expected, f"{marked} failure markers for {expected} failing examples"


def test_every_failing_implementation_and_dtype_has_its_line(report_data, figures):
    lines = list(vertical_lines(figures["search_samples"].fig))
    missing = []
    for s in report_data["searches"]:
        for dtype, per in s["per_dtype"].items():
            bad = [x for x in failing(s) if x["dtype"] == dtype]
            if not bad:
                continue
            threshold = per.get("threshold_saturation")
            first = threshold if threshold is not None else min(x["saturation"] for x in bad)
            if not any(math.isclose(x, first, rel_tol=1e-9) for x in lines):
                missing.append((s["implementation"], dtype, per["verdict"], first))
    assert not missing, f"failures without a line at their first failing |h|: {missing}"


def test_an_implementation_has_one_colour_and_marker_in_every_figure(figures):
    seen: dict[str, set[tuple[str, str | None]]] = {}
    for fig_id in ("error_vs_saturation", "layer_errors", "search_samples"):
        entries = implementation_entries(figures[fig_id].fig)
        assert set(entries) == set(BUILTINS), f"{fig_id} names {sorted(entries)} in its legend"
        for name, look in entries.items():
            seen.setdefault(name, set()).add(look)
    for name, looks in seen.items():
        assert len(looks) == 1, f"{name} is drawn as {sorted(looks, key=str)}"
        ((color, marker),) = looks
        assert marker is not None, f"{name} has no marker"
        assert color in SAFE, f"{name}'s colour {color} is not from a colour-blind-safe palette"
    looks = [next(iter(v)) for v in seen.values()]
    assert len({c for c, _ in looks}) == len(looks) and len({m for _, m in looks}) == len(looks)


def test_data_drawn_in_an_implementations_colour_uses_its_marker(figures):
    looks = implementation_entries(figures["error_vs_saturation"].fig)
    marker_of_color = {color: marker for color, marker in looks.values()}
    for fig_id, drawn in figures.items():
        for ax in drawn.fig.axes:
            for line in ax.lines:
                color, marker = line_color(line), marker_of(line)
                if marker is not None and color in marker_of_color:
                    assert marker == marker_of_color[color], (fig_id, color, marker)


def test_no_dtype_is_drawn_in_an_implementations_colour(figures):
    """What stands for a dtype alone (its legend entry, its line) is never in a colour that
    stands for an implementation elsewhere."""
    looks = implementation_entries(figures["error_vs_saturation"].fig)
    taken = {color for color, _ in looks.values()}
    dtype_entries = 0
    for fig_id, drawn in figures.items():
        for lg in legends(drawn.fig):
            for handle, text in zip(lg.legend_handles, lg.get_texts(), strict=True):
                if text.get_text() in DTYPES:
                    dtype_entries += 1
                    assert line_color(handle) not in taken, f"{fig_id}: {text.get_text()}"
        for ax in drawn.fig.axes:
            for line in ax.lines:
                if line.get_label() in DTYPES:
                    assert line_color(line) not in taken, f"{fig_id}: {line.get_label()}"
    assert dtype_entries > 0  # the underflow figure has a line per dtype


def test_inf_nan_shading_is_its_implementations_and_matches_the_legend(figures):
    fig = figures["error_vs_saturation"].fig
    colors = {c for c, _ in implementation_entries(fig).values()}
    legend_patches = {
        (hex_of(h.get_facecolor()), round(float(to_rgba(h.get_facecolor())[3]), 3))
        for lg in legends(fig)
        for h in lg.legend_handles
        if isinstance(h, Patch)
    }
    shades = []
    for ax in fig.axes:
        shades += [p for p in ax.patches if isinstance(p, Rectangle)]
        shades += [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert shades, "no inf/NaN is marked, though naive returns inf/NaN"
    for shade in shades:
        face = shade.get_facecolor()
        rgba = face[0] if np.ndim(face) == 2 else face
        key = (hex_of(rgba), round(float(rgba[3]), 3))
        assert key[0] in colors, f"a shading in {key[0]}, no implementation's colour"
        assert key in legend_patches, f"the shading {key} is not in the legend {legend_patches}"


def test_lines_drawn_over_others_are_thinner(figures):
    fig = figures["error_vs_saturation"].fig
    colors = {c for c, _ in implementation_entries(fig).values()}
    for ax in fig.axes:
        lines = [ln for ln in ax.lines if line_color(ln) in colors and len(ln.get_xydata()) > 2]
        assert len(lines) == 3, ax.get_title()
        ordered = sorted(enumerate(lines), key=lambda il: (il[1].get_zorder(), il[0]))
        widths = [ln.get_linewidth() for _, ln in ordered]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3, widths


@pytest.mark.parametrize("fig_id", ["error_vs_saturation", "search_samples"])
def test_bits_of_error_are_never_negative(figures, fig_id):
    for ax in figures[fig_id].fig.axes:
        low, high = ax.get_ylim()
        shown = [v for v in ax.get_yticks() if low <= v <= high]
        assert shown and min(shown) >= 0, f"{ax.get_title()}: y ticks {shown}"


def test_a_panel_of_zeros_says_so(figures):
    zero_panels = 0
    for ax in figures["search_samples"].fig.axes:
        ys = [y for col in ax.collections for y in np.asarray(col.get_offsets())[:, 1]]
        if ys and all(y == 0 for y in ys):
            zero_panels += 1
            said = " ".join(t.get_text() for t in ax.texts if _shown(t))
            assert "0 bits" in said, f"{ax.get_title()}: all zeros, and nothing says so"
    assert zero_panels > 0  # fused passes everything: its panels are all zeros


def test_every_title_is_a_question(figures):
    for fig_id, drawn in figures.items():
        title = drawn.fig.get_suptitle()
        assert title.strip().endswith("?"), f"{fig_id}: {title!r}"
        assert title == FIGURES[fig_id][0], f"{fig_id}: the page and the figure disagree"
    for fig_id, (title, _) in FIGURES.items():
        assert title.endswith("?"), f"{fig_id}: {title!r}"


# -- crowded and unusual data ----------------------------------------------------------------


def test_stacked_labels_keep_their_gap_and_take_the_lowest_free_row():
    from gradverify.report.figures.placement import stack_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        lefts = rng.uniform(0, 100, rng.integers(1, 12))
        spans = [(a, a + w) for a, w in zip(lefts, rng.uniform(1, 30, len(lefts)), strict=True)]
        rows = stack_rows(spans, gap=4.0)
        for i, (a, b) in enumerate(spans):
            for j, (c, d) in enumerate(spans[:i]):
                if rows[i] == rows[j]:
                    assert c >= b + 4.0 or a >= d + 4.0, (spans[i], spans[j])
        # brute force: no label could sit one row lower beside the labels placed before it
        order = sorted(range(len(spans)), key=lambda i: spans[i][0])
        for k, i in enumerate(order):
            for row in range(rows[i]):
                before = [spans[j] for j in order[:k] if rows[j] == row]
                assert any(spans[i][0] < d + 4.0 for _, d in before), (i, row)


def crowded_sweeps(names: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """Five implementations whose thresholds fall within a few percent of each other."""
    h = np.concatenate([-np.geomspace(100, 1 / 16, 30), np.geomspace(1 / 16, 100, 30)])
    series, marks = [], []
    for k, name in enumerate(names):
        at = 10.0 * (1 + 0.03 * k)
        nonfinite = (h > at) if k % 2 == 0 else np.zeros(len(h), dtype=bool)
        bits = np.minimum(np.abs(h) / (3 + k), 32.0)
        for label in (0.0, 1.0):
            series.append(
                {"implementation": name, "dtype": "float32", "label": label, "h": h.tolist(),
                 "bits": bits.tolist(), "nonfinite": nonfinite.tolist(),
                 "error": [False] * len(h)}
            )  # fmt: skip
            marks += [
                {"implementation": name, "dtype": "float32", "label": label,
                 "kind": "inf/NaN", "value": at},
                {"implementation": name, "dtype": "float32", "label": label,
                 "kind": "100% error", "value": -at * (1 + 0.01 * k)},
            ]  # fmt: skip
    return series, marks


CROWDED = ["naive", "a_colleagues_long_named_impl", "epsilon", "theirs", "fused"]


@pytest.fixture(scope="module")
def crowded() -> tuple[Drawn, list[dict]]:
    """The saturation figure of five implementations (two of them users', one with a long
    name) whose thresholds fall within a few percent of each other."""
    series, marks = crowded_sweeps(CROWDED)
    return Drawn(error_vs_saturation_figure(series, marks)), marks


def test_crowded_threshold_labels_do_not_overlap_and_each_is_written(crowded):
    drawn, marks = crowded
    boxes = text_boxes(drawn)
    clashes = [
        (a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if overlap(ba, bb)
    ]
    assert not clashes, clashes[:5]
    written = {t.get_text() for ax in drawn.fig.axes for t in ax.texts}
    for value in {m["value"] for m in marks}:
        assert f"{value:.4g}" in written, f"no label for the threshold at {value}"


def test_other_implementations_get_distinct_safe_colours_and_markers(crowded):
    drawn, _ = crowded
    looks = {}
    for lg in legends(drawn.fig):
        for handle, text in zip(lg.legend_handles, lg.get_texts(), strict=True):
            if isinstance(handle, Line2D) and text.get_text() in CROWDED:
                looks[text.get_text()] = (hex_of(handle.get_color()), marker_of(handle))
    assert set(looks) == set(CROWDED)
    assert len(set(looks.values())) == len(CROWDED)
    assert all(color in SAFE for color, _ in looks.values())


def test_a_legend_of_long_names_stays_inside_the_figure(crowded):
    drawn, _ = crowded
    page = drawn.fig.bbox
    for lg in legends(drawn.fig):
        box = lg.get_window_extent(drawn.renderer)
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, (box, page)


def test_the_line_of_a_search_with_a_threshold_is_at_the_threshold():
    samples = [
        {"dtype": "float32", "saturation": s, "bits": 32.0 if s > 16.6 else 0.5,
         "verdict": "unstable" if s > 16.6 else "pass"}
        for s in (1.0, 3.0, 12.0, 20.0, 90.0)
    ]  # fmt: skip
    search = {"implementation": "naive", "samples": samples, "thresholds": {"float32": 16.64}}
    assert list(vertical_lines(search_samples_figure([search]))) == [16.64]


def test_a_search_that_fails_everywhere_is_marked_and_named():
    samples = [
        {"dtype": "float64", "saturation": s, "bits": 30.0 + s / 10, "verdict": "incorrect"}
        for s in (1.5, 2.0, 8.0, 40.0)
    ]
    search = {"implementation": "epsilon", "samples": samples, "thresholds": {"float64": None},
              "verdicts": {"float64": "incorrect"}}  # fmt: skip
    drawn = Drawn(search_samples_figure([search]))
    assert any(math.isclose(x, 1.5) for x in vertical_lines(drawn.fig))
    assert "incorrect" in drawn.fig.axes[0].get_title()


@pytest.mark.parametrize("fig_id", FIGURE_IDS)
def test_all_text_lies_inside_the_figure(figures, fig_id):
    drawn = figures[fig_id]
    page = drawn.fig.bbox
    outside = [
        what
        for what, box in text_boxes(drawn)
        if box.x0 < page.x0 - 1
        or box.x1 > page.x1 + 1
        or box.y0 < page.y0 - 1
        or box.y1 > page.y1 + 1
    ]
    assert not outside, f"{fig_id}: cut off at the figure's edge: {outside[:5]}"


def test_a_sweep_over_the_whole_float_range_keeps_its_ticks_apart():
    """Scans of losses sweep h up to the largest float: the symlog axis must not overflow
    and its tick labels must not pile up around 0."""
    series, marks = [], []
    for dtype, top in (("float32", 3.4e38), ("float64", 1.79e308)):
        h = np.concatenate([-np.geomspace(top, 1e-3, 40), np.geomspace(1e-3, top, 40)])
        nonfinite = np.abs(h) > top / 2
        series.append(
            {"implementation": "stable", "dtype": dtype, "column": "mse y=0", "h": h.tolist(),
             "bits": np.where(nonfinite, 64, 0.5).tolist(), "nonfinite": nonfinite.tolist()}
        )  # fmt: skip
        marks.append({"implementation": "stable", "dtype": dtype, "column": "mse y=0",
                      "kind": "inf/NaN", "value": top / 2})  # fmt: skip
    drawn = Drawn(error_vs_saturation_figure(series, marks))
    for ax in drawn.fig.axes:
        assert all(math.isfinite(v) for v in ax.get_xlim())
        assert len([t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]) >= 5
    boxes = text_boxes(drawn)
    clashes = [
        (a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if overlap(ba, bb)
    ]
    assert not clashes, clashes[:5]


def test_underflow_that_differs_between_implementations_gets_a_line_each():
    from gradverify.report.figures import vanishing_gradient_figure

    data = {
        "network": "n",
        "saturation": [1.0, 10.0, 100.0],
        "series": [
            {"dtype": "float16", "implementations": ["naive"], "fraction": [0.0, 0.5, 1.0]},
            {"dtype": "float16", "implementations": ["fused"], "fraction": [0.0, 0.2, 0.9]},
            {"dtype": "float32", "implementations": ["naive", "fused"], "fraction": [0, 0, 0.3]},
        ],
    }
    fig = vanishing_gradient_figure(data)
    (ax,) = fig.axes
    drawn_as = {(hex_of(ln.get_color()), str(ln.get_linestyle()), marker_of(ln)) for ln in ax.lines}
    assert len(drawn_as) == 3  # no two lines look alike
    assert "differ" in ax.get_title(loc="left")
