"""An optional exact reference on python-flint (Arb ball arithmetic), for speed.

Same recursion and the same per-element forms as :mod:`gradverify.exact.reference` (the mpmath
forms of :mod:`gradverify.model.functions`, run on Arb balls through a small context object), but:

* the matrix products (``W z + b``, ``W^T delta``, ``delta z^T``) are Arb matrix products in
  C instead of products of Python integers;
* precision is verified by the balls themselves, not by agreement of two precisions: every
  value carries a rigorous error radius, and a result is accepted only when every gradient
  entry (and J) is known to ``bits`` relative bits *and* both ends of its ball round to the
  same float64 (so the float64 value is certainly correctly rounded). Otherwise the working
  precision is doubled.

Its :class:`~gradverify.exact.reference.ReferenceGradients` has ``backend="flint"`` and can be
passed to :func:`gradverify.check_problem` as ``reference=``. Exact zeros that arise by
cancellation (a ball around 0 that never shrinks to a point) cannot be certified; those
problems raise ``ExactReferenceError``, and the mpmath reference is the one to use there.

Every activation and loss works here (the context provides ``exp``, ``expm1``, ``log``,
``log1p``, ``tanh``, ``sech``, ``erfc``, ``sqrt`` and ``pi``). Where a ball that is not a
point contains a kink (a leaky_relu or elu pre-activation at 0, ``z - y`` at 0 for l1,
``|z - y|`` at delta for huber), Arb cannot tell which branch applies; those problems raise
``ExactReferenceError`` too, so that the caller uses the mpmath reference.

Arb's precision is python-flint's process-wide ``flint.ctx.prec``; it is set for the call
and restored afterwards (not thread-safe).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import mpmath
import numpy as np
from mpmath import libmp

from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    outside_domain,
    working_precisions,
)
from gradverify.exact.reference import ReferenceGradients
from gradverify.exact.rounding import split_to_float64
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.names import ACTIVATION_NAMES, LOSS_NAMES, base_name
from gradverify.model.network import Problem

__all__ = ["GUARD_BITS", "flint_available", "flint_reference_gradients"]

GUARD_BITS = 64
"""Working precision of the first pass beyond the bits to certify. With 32 guard bits one
gradient entry of 74,497 at [32, 256, 256, 1] (a sum with cancellation) missed 80 bits and
forced a second pass at twice the precision; 64 costs little more per operation."""


def flint_available() -> bool:
    """Whether python-flint can be imported."""
    try:
        import flint  # noqa: F401
    except ImportError:
        return False
    return True


class _ArbContext:
    """The part of an mpmath context that functions.py's mp forms use, on Arb balls."""

    def __init__(self) -> None:
        from flint import arb

        self.arb = arb
        self.zero = arb(0)
        self.one = arb(1)

    def mpf(self, v: Any) -> Any:
        return self.arb(v)

    def exp(self, v: Any) -> Any:
        return self.arb(v).exp()

    def log(self, v: Any) -> Any:
        return self.arb(v).log()

    def log1p(self, v: Any) -> Any:
        return self.arb(v).log1p()

    def tanh(self, v: Any) -> Any:
        return self.arb(v).tanh()

    def sech(self, v: Any) -> Any:
        return self.arb(v).sech()

    def expm1(self, v: Any) -> Any:
        return self.arb(v).expm1()

    def erfc(self, v: Any) -> Any:
        return self.arb(v).erfc()

    def sqrt(self, v: Any) -> Any:
        return self.arb(v).sqrt()

    @property
    def pi(self) -> Any:
        return self.arb.pi()

    def fsum(self, values: Iterable[Any]) -> Any:
        total = self.arb(0)
        for v in values:
            total += v
        return total


def _matrix(a: np.ndarray) -> Any:
    """An object array of arb (or a float array, converted exactly) as an arb_mat."""
    from flint import arb_mat

    rows, cols = a.shape
    return arb_mat(rows, cols, a.ravel().tolist())


def _array(m: Any) -> np.ndarray:
    out = np.empty((m.nrows(), m.ncols()), dtype=object)
    out.ravel()[:] = m.entries()
    return out


def loss_kink_balls(loss: Any, z: np.ndarray, y: np.ndarray) -> list[tuple[Any, float]]:
    """(ball, kink) pairs of the loss's kinks: ``z - y`` at 0 (l1), ``|z - y|`` at delta (huber)."""
    base = base_name(loss.name)
    if base == "l1":
        return [(v, 0.0) for v in (z - y).flat]
    if base == "huber":
        return [(abs(v), loss.parameter) for v in (z - y).flat]
    return []


def _refuse_ambiguous_kinks(pairs: Iterable[tuple[Any, float]]) -> None:
    """ExactReferenceError if a ball that is not a point contains its kink.

    The forms branch on which side of a kink a value lies (``h > 0`` for leaky_relu and elu,
    the sign of ``z - y`` for l1); on such a ball Arb cannot tell the side, and a wrong branch
    would not widen the ball. The mpmath reference (:func:`gradverify.exact.reference.
    reference_gradients`) decides these by its agreement of two precisions: use it there.
    """
    for ball, kink in pairs:
        if not ball.is_exact() and ball.contains(kink):
            raise ExactReferenceError(
                f"the Arb reference cannot tell on which side of the kink at {kink!r} a value "
                f"lies ({ball}); use the mpmath reference"
            )


def _apply(ctx: _ArbContext, fn: Any, a: np.ndarray) -> np.ndarray:
    return np.frompyfunc(lambda v: fn(ctx, v), 1, 1)(a)


def _reverse_mode(problem: Problem) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    """dJ/dW_i, dJ/db_i (object arrays of arb) and J at the current flint precision."""
    ctx = _ArbContext()
    spec = problem.spec
    acts = [activation(name) for name in spec.activations]
    loss = loss_function(spec.loss)
    ones = _matrix(np.ones((problem.batch_size, 1)))
    weights = [_matrix(w.astype(np.float64)) for w in problem.weights]
    biases = [_matrix(b.astype(np.float64)[:, None]) for b in problem.biases]
    y = _apply(ctx, lambda c, v: c.mpf(v), problem.y.astype(np.float64))
    n = ctx.mpf(problem.y.size)
    ones_row = _matrix(np.ones((1, problem.batch_size)))

    layer_inputs = [_matrix(problem.x.astype(np.float64))]
    hs, zs = [], []
    for i, act in enumerate(acts):
        h = _array(weights[i] * layer_inputs[i] + biases[i] * ones_row)
        _refuse_ambiguous_kinks([(v, k) for v in h.flat for k in act.kinks])
        z = _apply(ctx, act.mp_forward, h)
        hs.append(h)
        zs.append(z)
        layer_inputs.append(_matrix(z))
    J = ctx.fsum(loss.mp_value(ctx, hs[-1], zs[-1], y).flat) / n

    if has_fused_delta(loss):
        delta = loss.mp_output_delta(ctx, hs[-1], zs[-1], y) / n
    else:
        _refuse_ambiguous_kinks(loss_kink_balls(loss, zs[-1], y))
        dz = loss.mp_output_gradient(ctx, zs[-1], y)
        delta = dz * _apply(ctx, acts[-1].mp_derivative, hs[-1]) / n

    dweights: list[np.ndarray] = [None] * spec.depth  # type: ignore[list-item]
    dbiases: list[np.ndarray] = [None] * spec.depth  # type: ignore[list-item]
    for i in reversed(range(spec.depth)):
        d = _matrix(delta)
        dweights[i] = _array(d * layer_inputs[i].transpose())
        dbiases[i] = _array(d * ones)[:, 0]
        if i > 0:
            back = _array(weights[i].transpose() * d)
            delta = back * _apply(ctx, acts[i - 1].mp_derivative, hs[i - 1])
    return dweights, dbiases, J


_MP = mpmath.MPContext()
"""A private context: only make_mpf is used, which does not round."""


def _to_mpf(v: Any) -> Any:
    """An exact (midpoint or endpoint) arb value as an mpf, without rounding."""
    man, exp = v.man_exp()
    return _MP.make_mpf(libmp.from_man_exp(int(man), int(exp)))


def _certified(v: Any, bits: int) -> tuple[float, float, Any] | None:
    """(correctly rounded float64, float64 residual, midpoint as mpf), or None if the ball
    is not known to ``bits`` relative bits or might round to two different float64 values.
    """
    if v.is_exact():
        mid = _to_mpf(v.mid())
        hi, lo = split_to_float64(mid)
        return hi, lo, mid
    if not v.is_finite() or v.rel_accuracy_bits() < bits:
        return None
    hi = float(v)  # the midpoint rounded to nearest
    if not math.isfinite(hi):
        return None
    # The ball must lie strictly inside hi's rounding interval; the gap below a power of two
    # is the smaller one, so half the spacing just below |hi| is a safe radius.
    half_gap = math.ulp(math.nextafter(abs(hi), 0.0)) / 2 if hi else 2.0**-1075
    residual = v - hi
    if not abs(residual) < half_gap:
        return None
    return hi, float(residual), _to_mpf(v.mid())


def flint_reference_gradients(
    problem: Problem, *, bits: int = DEFAULT_BITS, max_precision: int = MAX_PRECISION
) -> ReferenceGradients:
    """Exact dJ/dW_i and dJ/db_i by Arb ball arithmetic, certified to ``bits`` relative bits.

    Raises:
        ImportError: python-flint is not installed (``pip install gradverify[fast]``).
        ExactReferenceError: no certification below ``max_precision`` bits (e.g. an exact zero
            reached through cancellation), or a value outside its domain.
    """
    import flint

    _built_in_functions_only(problem)
    saved = flint.ctx.prec
    try:
        for prec in working_precisions(bits + GUARD_BITS, max_precision):
            flint.ctx.prec = prec
            with outside_domain("the exact reference"):
                dweights, dbiases, J = _reverse_mode(problem)
            tensors = [*dweights, *dbiases]
            certified = [[_certified(v, bits) for v in t.flat] for t in tensors]
            loss = _certified(J, bits)
            if loss is not None and all(c is not None for t in certified for c in t):
                break
        else:
            raise ExactReferenceError(
                f"the Arb reference could not certify {bits} bits below "
                f"{max_precision} bits of working precision"
            )
    finally:
        flint.ctx.prec = saved

    def split(t: np.ndarray, entries: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hi = np.array([c[0] for c in entries], dtype=np.float64).reshape(t.shape)
        lo = np.array([c[1] for c in entries], dtype=np.float64).reshape(t.shape)
        exact = np.empty(t.shape, dtype=object)
        exact.ravel()[:] = [c[2] for c in entries]
        return hi, lo, exact

    parts = [split(t, c) for t, c in zip(tensors, certified, strict=True)]
    depth = problem.spec.depth
    return ReferenceGradients(
        dweights=tuple(p[0] for p in parts[:depth]),
        dbiases=tuple(p[0] for p in parts[depth:]),
        dweights_low=tuple(p[1] for p in parts[:depth]),
        dbiases_low=tuple(p[1] for p in parts[depth:]),
        exact_dweights=tuple(p[2] for p in parts[:depth]),
        exact_dbiases=tuple(p[2] for p in parts[depth:]),
        loss=loss[0],
        exact_loss=loss[2],
        precision=prec,
        agreed_bits=bits,
        backend="flint",
    )


def _built_in_functions_only(problem: Problem) -> None:
    """ExactReferenceError for a registered function: its mpmath form needs a real mpmath
    context (``ctx.diff``, ``ctx.workprec``, ...), which the Arb stand-in is not."""
    spec = problem.spec
    registered = [a for a in spec.activations if base_name(a) not in ACTIVATION_NAMES]
    if base_name(spec.loss) not in LOSS_NAMES:
        registered.append(spec.loss)
    if registered:
        raise ExactReferenceError(
            f"the Arb reference supports only the built-in functions, not {', '.join(registered)}; "
            "the mpmath reference does"
        )
