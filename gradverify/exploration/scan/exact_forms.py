"""Exact gradients of the two scan networks: closed forms at verified precision.

Output layer: a one-layer network (1 input, 1 output, sigmoid, ``bce``; ``x = 1``,
``W = 0``, batch 1) whose bias is a float ``b`` of the dtype, so the logit is
``h = 0*1 + b = b`` exactly and every float of the lattice is hit. Its exact gradient is
``dJ/db = dJ/dW = sigmoid(h) - y``, evaluated without cancellation: ``(1 - y) - e/(1 + e)``,
``e = exp(-h)``, for h >= 0; ``e/(1 + e) - y``, ``e = exp(h)``, otherwise.

Hidden layer: a 1 -> 1 -> 1 network (hidden sigmoid or tanh, output sigmoid with ``bce``,
``x = 1``, ``W1 = 0``, ``b1 = h``, ``W2 = 1``, ``b2 = 0``, ``y = 0``): the hidden
pre-activation is exactly ``h`` and ``dJ/dW1 = sigmoid(act(h)) act'(h)``.

Both are computed at two working precisions that must agree to 80 bits
(:func:`gradverify.exact.precision.verified_precision`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpmath import libmp

from gradverify.exact.contexts import fixed_context
from gradverify.exact.precision import DEFAULT_BITS, agree_to_bits, verified_precision
from gradverify.model.functions import activation

__all__ = ["ExactEvaluator", "exact_hidden_gradient", "exact_output_gradient"]


class ExactEvaluator:
    """Closed forms evaluated in private mpmath contexts, accepted when two precisions agree.

    One evaluator serves a whole scan: it keeps one context per working precision, the one
    its (first) thread keeps at that precision (:func:`gradverify.exact.contexts.fixed_context`),
    so that making an evaluator makes no context.
    """

    def __init__(self, bits: int = DEFAULT_BITS) -> None:
        self.bits = bits
        self._contexts: dict[int, Any] = {}

    def _ctx(self, prec: int) -> Any:
        ctx = self._contexts.get(prec)
        if ctx is None:
            ctx = self._contexts[prec] = fixed_context(prec)
        return ctx

    def verified(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(ctx)`` at the first two working precisions that agree to ``bits`` bits."""
        value, _ = verified_precision(
            lambda prec: fn(self._ctx(prec)),
            lambda low, high: agree_to_bits(low, high, self.bits),
            start=self.bits + 16,
            bits=self.bits,
            what="the exact gradient",
        )
        return value


def _output_delta(ctx: Any, h: Any, y: Any) -> Any:
    """sigmoid(h) - y without cancellation for y in {0, 1} (precision checks the rest)."""
    if h >= 0:
        e = ctx.exp(-h)
        return (1 - y) - e / (1 + e)
    e = ctx.exp(h)
    return e / (1 + e) - y


def _output_delta_raw(prec: int, h: float, y: float) -> Any:
    """:func:`_output_delta` on raw mpf tuples at ``prec`` bits (the scanner's hot path)."""
    rnd = libmp.round_nearest
    one, hv, yv = libmp.fone, libmp.from_float(h), libmp.from_float(y)
    if h >= 0:
        e = libmp.mpf_exp(libmp.mpf_neg(hv), prec, rnd)
        q = libmp.mpf_div(e, libmp.mpf_add(one, e, prec, rnd), prec, rnd)
        return libmp.mpf_sub(libmp.mpf_sub(one, yv, prec, rnd), q, prec, rnd)
    e = libmp.mpf_exp(hv, prec, rnd)
    q = libmp.mpf_div(e, libmp.mpf_add(one, e, prec, rnd), prec, rnd)
    return libmp.mpf_sub(q, yv, prec, rnd)


def exact_output_gradient(
    h: float, y: float, *, evaluator: ExactEvaluator | None = None, outputs: int = 1
) -> Any:
    """Exact dJ/db (= dJ/dW) of the one-layer scan network at logit ``h`` and label ``y``.

    ``h`` and ``y`` are taken as exact float64 values; ``outputs``: that many output units
    with the same logit and label (the mean loss divides by it). Returns an mpf verified to
    80 bits.
    """
    ev = evaluator or ExactEvaluator()
    h, y = float(h), float(y)
    if outputs == 1:
        return ev.verified(lambda ctx: ctx.make_mpf(_output_delta_raw(ctx.prec, h, y)))
    return ev.verified(lambda ctx: ctx.make_mpf(_output_delta_raw(ctx.prec, h, y)) / outputs)


def exact_hidden_gradient(
    activation_name: str, h: float, *, evaluator: ExactEvaluator | None = None, outputs: int = 1
) -> Any:
    """Exact dJ/dW1 of the 1 -> 1 -> 1 scan network with hidden pre-activation ``h``.

    The network has x = 1, W1 = 0, b1 = h, W2 = 1, b2 = 0, a sigmoid output, bce, y = 0,
    so dJ/dW1 = sigmoid(act(h)) * act'(h) (divided by ``outputs`` when the output layer has
    that many units, of which only the first is connected). Returns an mpf verified to 80
    bits.
    """
    act = activation(activation_name)
    ev = evaluator or ExactEvaluator()

    def form(ctx: Any) -> Any:
        hv = ctx.mpf(h)
        value = _output_delta(ctx, act.mp_forward(ctx, hv), ctx.zero) * act.mp_derivative(ctx, hv)
        return value / outputs if outputs != 1 else value

    return ev.verified(form)
