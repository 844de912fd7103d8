"""The report's figures, drawn from plain data with matplotlib's object-oriented ``Figure`` API.

No pyplot and no ``matplotlib.use``: every figure is a fresh ``Figure`` with its own Agg
canvas, so nothing leaks into (or out of) a user's matplotlib state. Figures are drawn
under matplotlib's default style and saved without the ``Software`` PNG metadata, so the
same data gives byte-identical PNG files (:mod:`.style`).

Each ``*_figure`` function takes plain data (the dictionaries stored in ``report.json``),
one module each:

* :func:`error_vs_saturation_figure` (:mod:`.saturation`): bits of error against the output
  logit |h|, one line per implementation x dtype (x label), inf/NaN regions shaded,
  thresholds marked;
* :func:`layer_error_figure` (:mod:`.layers`): normwise error of each layer's dW, from the
  output backward;
* :func:`vanishing_gradient_figure` (:mod:`.underflow`): fraction of hidden-layer gradient
  entries that are 0 in float while the exact gradient is not, against hidden saturation,
  per dtype;
* :func:`search_samples_figure` (:mod:`.samples`): every example the search tried,
  failures marked.

Importing this package does not import matplotlib; drawing a figure does.
"""

from __future__ import annotations

from gradverify.report.figures.layers import layer_error_figure
from gradverify.report.figures.samples import search_samples_figure
from gradverify.report.figures.saturation import error_vs_saturation_figure
from gradverify.report.figures.style import (
    DPI,
    IMPLEMENTATION_COLORS,
    figure_png,
    implementation_colors,
)
from gradverify.report.figures.underflow import vanishing_gradient_figure

__all__ = [
    "DPI",
    "IMPLEMENTATION_COLORS",
    "error_vs_saturation_figure",
    "figure_png",
    "implementation_colors",
    "layer_error_figure",
    "search_samples_figure",
    "vanishing_gradient_figure",
]
