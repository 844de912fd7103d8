"""The report's figures: valid, non-trivial PNGs, byte-identical on every render, no pyplot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gradverify.report import figures
from tests.png_helpers import assert_nontrivial_png, png_size


def sweep_data() -> tuple[list[dict], list[dict]]:
    series, marks = [], []
    for dtype, p in (("float16", 11), ("float32", 24)):
        h = np.concatenate([-np.geomspace(100, 1 / 16, 40), np.geomspace(1 / 16, 100, 40)])
        for impl, slope in (("naive", 1.0), ("epsilon", 0.6), ("fused", 0.0)):
            for label in (0.0, 1.0):
                threshold = p * np.log(2)
                nonfinite = (impl == "naive") & (h > threshold)
                bits = np.minimum(slope * np.abs(h) / np.log(2), {11: 16, 24: 32}[p])
                series.append(
                    {
                        "implementation": impl,
                        "dtype": dtype,
                        "label": label,
                        "h": h.tolist(),
                        "bits": bits.tolist(),
                        "nonfinite": nonfinite.tolist(),
                        "error": [False] * len(h),
                    }
                )
            marks.append(
                {
                    "implementation": "naive",
                    "dtype": dtype,
                    "label": 0.0,
                    "kind": "inf/NaN",
                    "value": p * np.log(2),
                }
            )
    return series, marks


LAYERS = {
    "network": "4 -> 8(sigmoid) -> 1(sigmoid), loss bce",
    "depth": 2,
    "panels": [
        {
            "dtype": d,
            "lines": [
                {"implementation": "naive", "kind": "implementation", "errors": ["inf", "inf"]},
                {"implementation": "epsilon", "kind": "implementation", "errors": [0.02, 0.019]},
                {"implementation": "fused", "kind": "implementation", "errors": [1e-7, 3e-7]},
                {"implementation": "stable baseline", "kind": "baseline", "errors": [1e-7, 3e-7]},
                {"implementation": "tolerance", "kind": "tolerance", "errors": [3e-6, 1e-5]},
            ],
        }
        for d in ("float16", "float32", "float64")
    ],
}

HIDDEN = {
    "network": "demo",
    "saturation": [1.0, 10.0, 100.0, 1000.0],
    "series": [
        {
            "dtype": "float16",
            "implementations": ["naive", "fused"],
            "fraction": [0.0, 0.2, 0.9, 1.0],
        },
        {
            "dtype": "float32",
            "implementations": ["naive", "fused"],
            "fraction": [0.0, 0.0, 0.1, 0.8],
        },
        {
            "dtype": "bfloat16",
            "implementations": ["naive", "fused"],
            "fraction": [None, None, None, None],
        },
    ],
}

SEARCHES = [
    {
        "implementation": name,
        "thresholds": {"float32": 16.6},
        "samples": [
            {
                "dtype": "float32",
                "saturation": float(10 ** (k / 10 - 1)),
                "bits": float(k % 30),
                "verdict": "unstable" if k > 25 else "pass",
            }
            for k in range(40)
        ],
    }
    for name in ("naive", "<script>alert(1)</script>")
]


def all_figures():
    series, marks = sweep_data()
    return {
        "error_vs_saturation": lambda: figures.error_vs_saturation_figure(series, marks),
        "layer_errors": lambda: figures.layer_error_figure(LAYERS),
        "hidden_underflow": lambda: figures.vanishing_gradient_figure(HIDDEN),
        "search_samples": lambda: figures.search_samples_figure(SEARCHES),
    }


@pytest.mark.parametrize("name", list(all_figures()))
def test_figure_is_a_nontrivial_png_and_renders_identically_twice(name):
    draw = all_figures()[name]
    first, second = figures.figure_png(draw()), figures.figure_png(draw())
    assert_nontrivial_png(first)
    assert first == second
    assert b"Software" not in first  # no version-dependent metadata


def test_figures_ignore_the_users_matplotlib_style():
    import matplotlib

    draw = all_figures()["layer_errors"]
    plain = figures.figure_png(draw())
    with matplotlib.rc_context(
        {"lines.linewidth": 7.0, "axes.facecolor": "black", "font.size": 20}
    ):
        styled = figures.figure_png(draw())
    assert plain == styled


def test_different_data_gives_a_different_picture():
    other = dict(HIDDEN, series=[dict(s, fraction=[0.0, 0.0, 0.0, 0.0]) for s in HIDDEN["series"]])
    assert figures.figure_png(figures.vanishing_gradient_figure(HIDDEN)) != figures.figure_png(
        figures.vanishing_gradient_figure(other)
    )


def test_empty_data_still_draws_a_figure_with_a_message():
    for fig in (
        figures.error_vs_saturation_figure([]),
        figures.layer_error_figure({}),
        figures.vanishing_gradient_figure({}),
        figures.search_samples_figure([]),
    ):
        width, height = png_size(figures.figure_png(fig))
        assert width > 100 and height > 100


def test_figures_never_import_pyplot():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, {root!r})
        import tests.unit.test_figures as t
        from gradverify.report import figures
        for draw in t.all_figures().values():
            figures.figure_png(draw())
        assert "matplotlib.backends.backend_agg" in sys.modules  # it did render
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        print("OK")
    """).format(root=str(Path(__file__).parents[2]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK")


def test_implementation_colours_are_fixed_for_builtins_and_distinct_for_others():
    colours = figures.implementation_colors(["fused", "mine", "naive", "theirs", "epsilon"])
    assert colours["naive"] == figures.IMPLEMENTATION_COLORS["naive"]
    assert colours["fused"] == figures.IMPLEMENTATION_COLORS["fused"]
    assert len(set(colours.values())) == 5


def test_every_implementation_gets_its_own_colour_and_marker_pair():
    names = ["fused", *(f"user{k}" for k in range(30)), "naive", "epsilon"]
    styles = figures.implementation_styles(names)
    for name in ("naive", "epsilon", "fused"):
        assert styles[name].color == figures.IMPLEMENTATION_COLORS[name]
        assert styles[name].marker == figures.IMPLEMENTATION_MARKERS[name]
    # the built-ins and the first 24 others: no two drawn alike
    first = [styles[n] for n in ["naive", "epsilon", "fused", *names[1:25]]]
    assert len({(s.color, s.marker) for s in first}) == len(first)
    # the order of first appearance decides, not the order of the dict
    assert figures.implementation_styles(names[::-1])["user0"] != styles["user0"]


def test_names_with_mathtext_and_markup_are_drawn_as_plain_text():
    searches = [
        dict(SEARCHES[0], implementation=r"cost $\nosuchcommand{x$ and $_$"),
        dict(SEARCHES[1], implementation="a" * 300),
    ]
    assert_nontrivial_png(figures.figure_png(figures.search_samples_figure(searches)))
    hidden = dict(HIDDEN, series=[dict(s, implementations=["$", "_{x}"]) for s in HIDDEN["series"]])
    assert_nontrivial_png(figures.figure_png(figures.vanishing_gradient_figure(hidden)))
