"""The figures a report has: their titles and captions, and which of them have data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradverify.report.figures.layers import layer_error_figure
from gradverify.report.figures.samples import search_samples_figure
from gradverify.report.figures.saturation import error_vs_saturation_figure
from gradverify.report.figures.underflow import vanishing_gradient_figure
from gradverify.report.scan_data import PLOTTED_CRITERIA, function_marks, function_sweeps

__all__ = ["FIGURES", "figure_drawers"]

FIGURES = {
    "error_vs_saturation": (
        "Where does each form of the BCE gradient break, per dtype?",
        "Bits of error (log2(1 + ulps)) of the gradient dJ/dh_L of a one-layer sigmoid + "
        "BCE network against the exact reference, as the scan sweeps the output logit h "
        "over each dtype's lattice: one row per dtype, one column per label y, one line per "
        "implementation, each in its own colour and marker. inf/NaN is drawn at the dtype's "
        "full width and its range of h marked by a bar above the lines in the colour of the "
        "implementation that returns it; vertical lines mark the first float with inf/NaN "
        "(dashed) or 100% error (dotted), with the value of h above the panel. With y = 1 "
        "and h > 0 (and y = 0, h < 0) the exact gradient is tiny (about e^-|h|), and every "
        "form that computes sigmoid(h) - y first, the stable baseline included, keeps only "
        "its absolute accuracy there: harmless for training, and not held against a "
        "verdict. Where a line falls back to 0 at the far end, the exact gradient itself "
        "rounds to 0 in the dtype.",
    ),
    "hidden_derivative_error": (
        "Where does each implementation's hidden-layer derivative break, per dtype?",
        "Bits of error of dJ/dW1 of a 1 -> 1 -> 1 network whose hidden pre-activation is h "
        "exactly, for each activation scanned (gradverify scan --activations), as the scan "
        "sweeps h over each dtype's lattice: one row per dtype, one column per activation, "
        "one line per implementation. The output layer and label of the probe keep the "
        "factor dJ/dh_2 well away from 0 and infinity, so the error is the derivative's. "
        "inf/NaN is drawn at the dtype's full width and marked by a bar in the "
        "implementation's colour; vertical lines mark the first float with inf/NaN "
        "(dashed) or 100% error (dotted). Drawn only when activations were scanned.",
    ),
    "loss_delta_error": (
        "Where does each implementation's output delta break, per loss and dtype?",
        "Bits of error of dJ/db of a one-layer network whose output logit is h exactly, for "
        "each loss scanned besides bce (gradverify scan --losses), with the output "
        "activation the loss requires: one row per dtype, one column per loss and label, "
        "one line per implementation, thresholds marked as above. Drawn only when such "
        "losses were scanned.",
    ),
    "layer_errors": (
        "Which layer's gradient goes wrong first?",
        "Normwise relative error of each layer's dJ/dW for one network with confident "
        "output logits (layer L first), one panel per dtype. An error made in delta_L "
        "travels back unchanged in relative terms through delta_{i-1} = (W_i^T delta_i) "
        "(.) act'(h_{i-1}), so it shows in every layer at once; an error that starts in a "
        "hidden layer shows from that layer on. inf/NaN is drawn in the grey band at the "
        "top. The dashed grey line is a stable float implementation at the same dtype; "
        "the dotted line is the tolerance derived from it.",
    ),
    "hidden_underflow": (
        "Does hidden-layer underflow depend on the implementation or on the dtype?",
        "Fraction of hidden-layer gradient entries (dW_i, db_i for i < L) that are exactly "
        "0 in float while the exact gradient is not, as the hidden pre-activations are "
        "scaled to saturation max |h_i|, one line per dtype. It depends on the dtype's "
        "exponent range, not on how the output layer is handled: the figure says whether "
        "every implementation gave the same fractions.",
    ),
    "search_samples": (
        "Where does the search find failures, per implementation and dtype?",
        "Every example the property-based search generated, as worst bits of error beyond "
        "the stable baseline against the largest |h| in the network: one row per dtype, one "
        "column per implementation; failures are filled markers edged in black. A dashed "
        "line marks the saturation at which the implementation first failed at that dtype, "
        "or, where no example passed, the smallest failing one.",
    ),
}
"""Figure id (its PNG is ``ID.png``) -> (title, caption), in page order."""


def figure_drawers(
    doc_parts: Mapping[str, Any], searches: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Callable[[], Any]]]:
    """The figures of a report that have data, as (id, draw) pairs in page order.

    ``doc_parts`` is the report document (its ``sweeps``, ``thresholds``, ``layers`` and
    ``hidden_underflow``), ``searches`` the search result dicts (their ``samples``).
    """

    out: list[tuple[str, Callable[[], Any]]] = []
    sweeps = doc_parts["sweeps"]
    if sweeps:
        marks = [
            dict(t, kind=PLOTTED_CRITERIA[t["criterion"]])
            for t in doc_parts["thresholds"]
            if t.get("plot")
        ]
        out.append(("error_vs_saturation", lambda: error_vs_saturation_figure(sweeps, marks)))
    out += _function_figures((doc_parts.get("results") or {}).get("scans") or [])
    if doc_parts.get("layers") and doc_parts["layers"].get("panels"):
        out.append(("layer_errors", lambda: layer_error_figure(doc_parts["layers"])))
    if doc_parts.get("hidden_underflow") and doc_parts["hidden_underflow"].get("series"):
        out.append(
            (
                "hidden_underflow",
                lambda: vanishing_gradient_figure(doc_parts["hidden_underflow"]),
            )
        )
    with_samples = [s for s in searches if s.get("samples")]
    if with_samples:
        data = [
            {
                "implementation": s.get("implementation"),
                "samples": s["samples"],
                "thresholds": {
                    d: v.get("threshold_saturation") for d, v in (s.get("per_dtype") or {}).items()
                },
                "verdicts": {d: v.get("verdict") for d, v in (s.get("per_dtype") or {}).items()},
            }
            for s in with_samples
        ]
        out.append(("search_samples", lambda: search_samples_figure(data)))
    return out


_FUNCTION_FIGURES = {
    "activation": ("hidden_derivative_error", "dJ/dW1", "hidden pre-activation h"),
    "loss": ("loss_delta_error", "dJ/db", "logit h"),
}
_FUNCTION_NOTE = ""  # the BCE figure's note is about sigmoid(h) - y


def _function_figures(scans: Sequence[Mapping[str, Any]]) -> list[tuple[str, Callable[[], Any]]]:
    """The figures of the scans of named activations and losses, where there are any."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for kind, (fig_id, quantity, xlabel) in _FUNCTION_FIGURES.items():
        title = FIGURES[fig_id][0]
        series = [s for scan in scans for s in function_sweeps(scan, kind)]
        if not series:
            continue
        marks = [m for scan in scans for m in function_marks(scan, kind)]

        def draw(series=series, marks=marks, title=title, quantity=quantity, xlabel=xlabel):
            return error_vs_saturation_figure(
                series, marks, title=title, quantity=quantity, xlabel=xlabel, note=_FUNCTION_NOTE
            )

        out.append((fig_id, draw))
    return out
