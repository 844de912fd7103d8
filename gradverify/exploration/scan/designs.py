"""Probe designs for scanning any activation or loss, and their exact gradients.

Besides the sigmoid + BCE output scan and the hidden-unit underflow scan, the scanner scans
**any** activation or loss known to :mod:`gradverify.model.functions` (looked up by name
with :func:`~gradverify.model.functions.activation` and
:func:`~gradverify.model.functions.loss_function`, so a function registered there later is
scanned the same way). A :class:`Design` says which probe network does it:

* ``kind="activation"``, **the hidden-layer derivative of A**: a 1 -> 1 -> n network
  (deeper or wider inside a declared architecture, see :mod:`.probes`) with ``x = 1``,
  ``W1 = 0``, ``b1 = h``, ``W2 = e_1`` (only the probed unit reaches the first output),
  ``b2 = 0``. The hidden pre-activation is exactly ``h`` and the output logit exactly
  ``a = A(h)`` as the implementation computes it, so

      dJ/dW1 = dJ/db1 = D(a, y) * A'(h) / n

  where ``D`` is the probe loss's output delta ``d loss / d h_L`` of the first output.
  The probe loss is the first of :data:`PROBE_LOSSES` the implementation supports (else
  its first loss). Its label is chosen **per side** so that ``D`` stays bounded away from 0
  and from infinity whatever ``a`` is: ``y = 0`` for h > 0 and ``y = 1`` for h < 0 with a
  sigmoid or softmax output (``|D| = sigmoid(|a|)`` in [1/2, 1) when ``a`` has the sign of
  ``h``), ``y = -1`` and ``y = 1`` with an identity output (``|a - y| >= 1``). ``D`` is then
  a well-conditioned factor, and what the scan measures is the implementation's ``A'(h)``.
* ``kind="loss"``, **the output delta of a loss L** with the output activation L requires
  (identity where it requires none): a one-layer network with ``x = 1``, ``W = 0`` and the
  first output's bias ``b = h`` (the other outputs' logits 0; ``softmax_ce`` gets 2
  outputs, labels ``(y, 1 - y)``), so ``dJ/dW = dJ/db = D(h, y) / n``. Labels: the scan's
  labels (0 and 1 by default) for ``bce`` and ``softmax_ce``, ``y = 0`` for a regression
  loss. (``bce`` itself is the classic output scan, :class:`.records.ScanRow`.)

**Exact zeros.** Where the exact gradient is exactly 0 (relu's negative side), a returned
0 (of either sign) is right and any other result, finite or not, has an infinite relative
error: it fails every error level (and inf/NaN fails ``nonfinite``). No threshold can come
from rounding there, because nothing is rounded. At a **kink** of A (relu's 0) the
derivative is a convention (relu'(0) = 0 here, 1 elsewhere): only inf/NaN and a failed call
count there, never an error level.

**Range.** The mpmath forms of the built-in activations and of every loss hold for every
float (tested up to the largest float64); a registered activation's may not (an
``exp(-h*h/2)`` whose exponent no longer fits an integer). For those a float beyond ``|h| =``
:data:`TRUSTED_RANGE` (2**64), or one where the exact form raises, is **unjudged**: the
implementation is not called there and no threshold can fall there.

The exact forms are evaluated from the functions' own mpmath forms (``mp_forward``,
``mp_derivative``, ``mp_output_delta``; for a loss without a fused delta, its exact
``mp_output_gradient`` d loss/dz times the output activation's derivative, as the exact
reference does, or, for a loss that has none, ``2 (z - y)`` for ``mse`` and
``d mp_value / dz`` by mpmath's differentiation otherwise), at two working precisions that
must agree to 80 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.exploration.scan.exact_forms import ExactEvaluator
from gradverify.model.functions import activation, has_fused_delta, loss_function

__all__ = [
    "KINDS",
    "PROBE_LOSSES",
    "TRUSTED_RANGE",
    "Design",
    "activation_design",
    "base_name",
    "exact_design_gradient",
    "loss_design",
    "probe_loss",
]

KINDS: dict[str, str] = {
    "activation": "the hidden-layer derivative: dJ/dW1 of a unit whose pre-activation is h",
    "loss": "the output delta: dJ/db of an output unit whose logit is h",
}
"""The kinds of function scan (``FunctionScan.kind``)."""

PROBE_LOSSES: tuple[str, ...] = ("bce", "softmax_ce", "l1", "huber", "mse")
"""The loss of a hidden-derivative probe: the first of these the implementation supports
(by base name; its first declared loss if none). bce and softmax_ce keep the factor ``D`` in
[1/2, 1); l1 and huber make it constant; mse makes it ``2 (a - y)``, unbounded in ``a``."""

_CLASSIFICATION = ("bce", "softmax_ce")

TRUSTED_RANGE = 2.0**64
"""Beyond this |h| only the activations of TRUSTED_EVERYWHERE are judged (see the doc)."""
TRUSTED_EVERYWHERE = (
    *("sigmoid", "tanh", "relu", "softplus", "identity"),
    *("gelu", "gelu_tanh", "silu", "leaky_relu", "elu"),
)


def base_name(name: str) -> str:
    """``"huber"`` for ``"huber(0.5)"``: the name without its parameter."""
    return name.split("(", 1)[0].strip()


def _output_of(loss: str) -> str:
    return loss_function(loss).output_activation or "identity"


def _classification(loss: str) -> bool:
    return base_name(loss) in _CLASSIFICATION or _output_of(loss) == "sigmoid"


def _outputs_of(loss: str) -> int:
    return 2 if base_name(loss) == "softmax_ce" else 1


@dataclass(frozen=True)
class Design:
    """One function scan's probe network (see the module doc)."""

    kind: str  # "activation" or "loss"
    function: str  # the activation or loss scanned
    loss: str  # the probe network's loss
    output: str  # its output activation
    outputs: int  # its output units (the exact gradient divides by them)
    label_positive: float  # y on the side h > 0
    label_negative: float  # y on the side h < 0

    def label(self, negative: bool) -> float:
        return self.label_negative if negative else self.label_positive

    def label_column(self, y: float) -> list[float]:
        """The label of every output unit: ``(y, 1 - y, 0, ...)`` for softmax_ce, else y."""
        if base_name(self.loss) == "softmax_ce":
            return [y, 1.0 - y] + [0.0] * (self.outputs - 2)
        return [y] * self.outputs

    def with_outputs(self, outputs: int) -> Design:
        return Design(
            self.kind,
            self.function,
            self.loss,
            self.output,
            outputs,
            self.label_positive,
            self.label_negative,
        )

    def judged(self, h: float) -> bool:
        """Whether the exact gradient at ``h`` is evaluated (see "Range" in the module doc)."""
        if self.kind == "loss" or base_name(self.function) in TRUSTED_EVERYWHERE:
            return True
        return abs(h) <= TRUSTED_RANGE

    @property
    def kinks(self) -> tuple[float, ...]:
        return tuple(activation(self.function).kinks) if self.kind == "activation" else ()

    def describe(self) -> str:
        """The probe network in words, e.g. for the table."""
        if self.kind == "loss":
            return f"1 -> {self.outputs}, {self.output} output + {self.loss}, h = b exactly"
        labels = f"y = {self.label_positive:g} for h > 0, {self.label_negative:g} for h < 0"
        return (
            f"1 -> 1 -> {self.outputs}, hidden {self.function}(h), h = b1 exactly, "
            f"{self.output} output + {self.loss}, {labels}"
        )


def probe_loss(declared: tuple[str, ...]) -> str:
    """The hidden-derivative probe's loss among the ``declared`` ones (see PROBE_LOSSES)."""
    if not declared:
        raise ValueError("the hidden-derivative scan needs a loss; none is declared")
    for preferred in PROBE_LOSSES:
        for name in declared:
            if base_name(name) == preferred:
                return name
    return declared[0]


def activation_design(name: str, loss: str) -> Design:
    """The hidden-derivative probe of activation ``name`` with output loss ``loss``."""
    activation(name)  # an unknown name: the one message listing the known ones
    pos, neg = (0.0, 1.0) if _classification(loss) else (-1.0, 1.0)
    return Design("activation", name, loss, _output_of(loss), _outputs_of(loss), pos, neg)


def loss_design(name: str, label: float) -> Design:
    """The output-delta probe of loss ``name`` at label ``label``."""
    return Design("loss", name, name, _output_of(name), _outputs_of(name), label, label)


def loss_labels(name: str, labels: tuple[float, ...]) -> tuple[float, ...]:
    """The labels a loss is scanned at: ``labels`` for a classification loss, else (0,)."""
    return labels if _classification(name) else (0.0,)


def _column(ctx: Any, values: list[Any]) -> np.ndarray:
    out = np.empty((len(values), 1), dtype=object)
    for k, v in enumerate(values):
        out[k, 0] = v
    return out


def _output_delta(ctx: Any, design: Design, logit: Any, y: float) -> Any:
    """``d loss / d h_L`` of the first output at logit ``logit`` (the others at 0)."""
    loss, out = loss_function(design.loss), activation(design.output)
    h = _column(ctx, [logit] + [ctx.zero] * (design.outputs - 1))
    z = _column(ctx, [out.mp_forward(ctx, v) for v in h[:, 0]])
    labels = _column(ctx, [ctx.mpf(v) for v in design.label_column(y)])
    if has_fused_delta(loss):
        return loss.mp_output_delta(ctx, h, z, labels)[0, 0]
    gradient = getattr(loss, "mp_output_gradient", None)  # exact d loss / dz, where given
    if gradient is not None:
        dz = gradient(ctx, z, labels)[0, 0]
    elif base_name(design.loss) == "mse":
        dz = 2 * (z[0, 0] - labels[0, 0])  # as the exact reference differentiates mse
    else:  # any other loss without a fused delta: its mpmath value, differentiated

        def value(zv: Any) -> Any:
            column = z.copy()
            column[0, 0] = zv
            return loss.mp_value(ctx, h, column, labels)[0, 0]

        dz = ctx.diff(value, z[0, 0])
    return dz * out.mp_derivative(ctx, logit)


def exact_design_gradient(
    design: Design, h: float, y: float, *, evaluator: ExactEvaluator | None = None
) -> Any:
    """The exact probed gradient (dJ/dW1 or dJ/db, see :class:`Design`) at float ``h``.

    ``y``: the first output's label. Returns an mpf verified to 80 bits (an exact 0 where
    the gradient is exactly 0, such as relu's derivative for h < 0).
    """
    ev = evaluator or ExactEvaluator()
    h = float(h)

    def form(ctx: Any) -> Any:
        hv = ctx.mpf(h)
        if design.kind == "loss":
            return _output_delta(ctx, design, hv, y) / design.outputs
        act = activation(design.function)
        slope = act.mp_derivative(ctx, hv)
        if not slope:
            return ctx.zero
        return _output_delta(ctx, design, act.mp_forward(ctx, hv), y) * slope / design.outputs

    return ev.verified(form)
