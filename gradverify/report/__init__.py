"""Reports people read: error-vs-saturation plots and a self-contained HTML/Markdown/JSON report.

* :func:`write_report` runs the search and the scan for each implementation (the three
  built-ins by default), computes the per-layer and hidden-underflow measurements and
  writes ``index.html``, ``summary.md``, ``report.json`` and the PNG figures, atomically.
* :func:`overview` is the paragraph a report opens with: which forms are safe, and where
  each unsafe one first breaks per dtype.
* :func:`render_report` writes a report from precomputed results.
* :func:`write_report_from_results` does so for a list of Search/CheckResults (the pytest
  plugin's ``--gradverify-report DIR``).

Names are loaded lazily: importing this package does not import matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "write_report": "gradverify.report.writer",
    "render_report": "gradverify.report.writer",
    "write_report_from_results": "gradverify.report.writer",
    "REPORT_MAX_EXAMPLES": "gradverify.report.writer",
    "OutputDirectoryError": "gradverify.report.atomic",
    "SCHEMA": "gradverify.report.document",
    "build_document": "gradverify.report.document",
    "overview": "gradverify.report.overview",
    "load_schema": "gradverify.report.document",
    "error_vs_saturation_figure": "gradverify.report.figures",
    "layer_error_figure": "gradverify.report.figures",
    "vanishing_gradient_figure": "gradverify.report.figures",
    "search_samples_figure": "gradverify.report.figures",
    "figure_png": "gradverify.report.figures",
    "layer_errors": "gradverify.report.measure",
    "hidden_underflow": "gradverify.report.measure",
}

__all__ = [
    "OutputDirectoryError",
    "REPORT_MAX_EXAMPLES",
    "SCHEMA",
    "build_document",
    "error_vs_saturation_figure",
    "figure_png",
    "hidden_underflow",
    "layer_error_figure",
    "layer_errors",
    "load_schema",
    "overview",
    "render_report",
    "search_samples_figure",
    "vanishing_gradient_figure",
    "write_report",
    "write_report_from_results",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gradverify.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from gradverify.report.atomic import OutputDirectoryError
    from gradverify.report.document import SCHEMA, build_document, load_schema
    from gradverify.report.figures import (
        error_vs_saturation_figure,
        figure_png,
        layer_error_figure,
        search_samples_figure,
        vanishing_gradient_figure,
    )
    from gradverify.report.measure import hidden_underflow, layer_errors
    from gradverify.report.overview import overview
    from gradverify.report.writer import (
        REPORT_MAX_EXAMPLES,
        render_report,
        write_report,
        write_report_from_results,
    )
