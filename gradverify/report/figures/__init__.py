"""The report's figures, drawn from plain data with matplotlib's object-oriented ``Figure`` API.

No pyplot and no ``matplotlib.use``: every figure is a fresh ``Figure`` with its own Agg
canvas, so nothing leaks into (or out of) a user's matplotlib state. Figures are drawn
under matplotlib's default style and saved without the ``Software`` PNG metadata, so the
same data gives byte-identical PNG files (:mod:`.style`).

Each figure answers one question, asked in its title, and states what the reader needs to
know inside itself (below the panels). One visual language throughout (:mod:`.style`): an
implementation has one colour and one marker in every figure, from a colour-blind-safe
palette; dtypes are told apart by panel or by black and grey line styles, never by an
implementation's colour. Each ``*_figure`` function takes plain data (the dictionaries
stored in ``report.json``), one module each:

* :func:`error_vs_saturation_figure` (:mod:`.saturation`): where does each form of the
  gradient break, per dtype? Bits of error against the output logit h, one line per
  implementation, a panel per dtype x label; inf/NaN marked by a bar in the colour of the
  implementation that returns it, thresholds by vertical lines with their values above
  (set apart by :mod:`.placement`);
* :func:`layer_error_figure` (:mod:`.layers`): which layer's gradient goes wrong first?
  Normwise error of each layer's dW, from the output backward;
* :func:`vanishing_gradient_figure` (:mod:`.underflow`): does hidden-layer underflow depend
  on the implementation or on the dtype? The fraction of hidden-layer gradient entries
  that are 0 in float while the exact gradient is not, against hidden saturation;
* :func:`search_samples_figure` (:mod:`.samples`): where does the search find failures?
  Every example it tried, a panel per dtype x implementation, failures filled and the
  first failing saturation marked.

Importing this package does not import matplotlib; drawing a figure does.
"""

from __future__ import annotations

from gradverify.report.figures.layers import layer_error_figure
from gradverify.report.figures.samples import search_samples_figure
from gradverify.report.figures.saturation import error_vs_saturation_figure
from gradverify.report.figures.style import (
    DPI,
    IMPLEMENTATION_COLORS,
    IMPLEMENTATION_MARKERS,
    ImplementationStyle,
    figure_png,
    implementation_colors,
    implementation_styles,
)
from gradverify.report.figures.underflow import vanishing_gradient_figure

__all__ = [
    "DPI",
    "IMPLEMENTATION_COLORS",
    "IMPLEMENTATION_MARKERS",
    "ImplementationStyle",
    "error_vs_saturation_figure",
    "figure_png",
    "implementation_colors",
    "implementation_styles",
    "layer_error_figure",
    "search_samples_figure",
    "vanishing_gradient_figure",
]
