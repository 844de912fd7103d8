"""Exact reference gradients: reverse mode over the network in a private mpmath context.

The context is reused, not made per pass (:mod:`gradverify.exact.contexts`).

How it stays exact
------------------
* Every parameter and input is a float, hence an exact dyadic rational ``m * 2**e``.
* The linear algebra (``W z + b``, ``W^T delta``, ``delta z^T``, bias sums) is done on
  Python integers scaled to a common power of two (:class:`Dyadic`): it is *exact*.
* Only the elementwise functions (activations, their derivatives, the loss) round, each
  once per element, at the context's working precision, using forms that never cancel
  (see :mod:`gradverify.model.functions`). ``1 - sigmoid(700)`` is never formed.
* The whole computation is run at two working precisions and accepted only when every
  gradient entry agrees to ``bits`` significant bits; otherwise the precision is doubled
  (:func:`gradverify.exact.precision.verified_precision`). The result is rounded to float64
  once (:mod:`gradverify.exact.rounding`).

Cost: one forward and one backward pass, i.e. O(multiply-adds) integer operations plus
O(units x batch) mpmath function calls. Never O(parameters x forward).

The recursion (``delta_i = dJ/dh_i``, samples as columns, ``N = y.size``):

    delta_L     = dloss/dh_L / N
    delta_{i-1} = (W_i^T delta_i) (.) act_{i-1}'(h_{i-1})
    dJ/dW_i     = delta_i z_{i-1}^T,    dJ/db_i = delta_i summed over the batch
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from mpmath import libmp

from gradverify.common.errstate import with_own_errstate
from gradverify.exact.contexts import rebind, result_context, working_context
from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    agree_to_bits,
    outside_domain,
    verified_precision,
)
from gradverify.exact.rounding import round_to_float64, split_to_float64
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.network import Problem

__all__ = [
    "DEFAULT_BITS",
    "MAX_PRECISION",
    "Dyadic",
    "agree_to_bits",
    "ExactReferenceError",
    "ReferenceGradients",
    "mpmath_backend",
    "reference_gradients",
    "round_to_float64",
    "split_to_float64",
]
"""``DEFAULT_BITS``, ``MAX_PRECISION``, ``ExactReferenceError`` and ``agree_to_bits`` live in
:mod:`gradverify.exact.precision`, ``round_to_float64`` and ``split_to_float64`` in
:mod:`gradverify.exact.rounding`; they stay importable from here."""


def mpmath_backend() -> str:
    """'gmpy' when mpmath runs on gmpy2, else 'python'."""
    return str(libmp.BACKEND)


# ---------------------------------------------------------------------------
# Exact linear algebra on dyadic rationals
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dyadic:
    """An exact array ``ints * 2**exponent``: ``ints`` is an object array of Python ints."""

    ints: np.ndarray
    exponent: int

    @classmethod
    def from_floats(cls, a: np.ndarray) -> Dyadic:
        """Exact conversion of a float array (any float dtype) to a common power of two."""
        a = np.asarray(a, dtype=np.float64)  # exact for float16/bfloat16/float32/float64
        mantissa, exp = np.frexp(a)
        ints = (mantissa * 2.0**53).astype(np.int64)
        exp = exp.astype(np.int64) - 53
        nonzero = ints != 0
        base = int(exp[nonzero].min()) if nonzero.any() else 0
        shifts = np.where(nonzero, exp - base, 0).astype(object)
        return cls(np.left_shift(ints.astype(object), shifts), base)

    @classmethod
    def from_mpf(cls, a: np.ndarray) -> Dyadic:
        """Exact conversion of an object array of mpf values."""
        raw = [v._mpf_ for v in a.flat]
        exps = [e for _, m, e, _ in raw if m]
        base = min(exps) if exps else 0
        ints = np.array(
            [(-m if s else m) << (e - base) if m else 0 for s, m, e, _ in raw], dtype=object
        ).reshape(a.shape)
        return cls(ints, base)

    def aligned(self, exponent: int) -> np.ndarray:
        """The ints rescaled (exactly) to a smaller or equal ``exponent``."""
        return np.left_shift(self.ints, self.exponent - exponent)

    def __matmul__(self, other: Dyadic) -> Dyadic:
        return Dyadic(self.ints @ other.ints, self.exponent + other.exponent)

    def __add__(self, other: Dyadic) -> Dyadic:
        base = min(self.exponent, other.exponent)
        return Dyadic(self.aligned(base) + other.aligned(base), base)

    @property
    def T(self) -> Dyadic:  # noqa: N802 - mirrors numpy
        return Dyadic(self.ints.T, self.exponent)

    def sum_columns(self) -> Dyadic:
        """Sum over the batch axis (axis 1), exactly."""
        return Dyadic(self.ints.sum(axis=1), self.exponent)

    def to_mpf(self, ctx: Any) -> np.ndarray:
        """Round each entry once, to the nearest mpf at ``ctx.prec``."""
        prec, exponent = ctx.prec, self.exponent
        make = ctx.make_mpf
        out = np.empty(self.ints.shape, dtype=object)
        for index, n in np.ndenumerate(self.ints):
            out[index] = make(libmp.from_man_exp(int(n), exponent, prec, libmp.round_nearest))
        return out


def _apply(ctx: Any, fn: Any, a: np.ndarray) -> np.ndarray:
    return np.frompyfunc(lambda v: fn(ctx, v), 1, 1)(a)


# ---------------------------------------------------------------------------
# Reverse mode at one working precision
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Network:
    """What every pass shares, whatever its precision: the functions and the exact parameters."""

    acts: tuple[Any, ...]
    loss: Any
    weights: tuple[Dyadic, ...]
    biases: tuple[Dyadic, ...]
    x: Dyadic
    y: np.ndarray  # float64

    @classmethod
    def of(cls, problem: Problem) -> _Network:
        spec = problem.spec
        return cls(
            acts=tuple(activation(name) for name in spec.activations),
            loss=loss_function(spec.loss),
            weights=tuple(Dyadic.from_floats(w) for w in problem.weights),
            biases=tuple(Dyadic.from_floats(b[:, None]) for b in problem.biases),
            x=Dyadic.from_floats(problem.x),
            y=problem.y.astype(np.float64),
        )


def _reverse_mode(net: _Network, ctx: Any) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    """dJ/dW_i, dJ/db_i (object arrays of mpf) and J, at ``ctx``'s working precision."""
    acts, loss, weights, biases = net.acts, net.loss, net.weights, net.biases
    depth = len(acts)
    y = _apply(ctx, lambda c, v: c.mpf(v), net.y)
    n = ctx.mpf(net.y.size)

    # forward: h_i = W_i z_{i-1} + b_i exactly, then one rounding per activation value
    layer_inputs = [net.x]
    hs, zs = [], []
    for i, act in enumerate(acts):
        h = (weights[i] @ layer_inputs[i] + biases[i]).to_mpf(ctx)
        z = _apply(ctx, act.mp_forward, h)
        hs.append(h)
        zs.append(z)
        layer_inputs.append(Dyadic.from_mpf(z))
    J = ctx.fsum(loss.mp_value(ctx, hs[-1], zs[-1], y).flat) / n

    # delta_L = dJ/dh_L
    if has_fused_delta(loss):
        delta = loss.mp_output_delta(ctx, hs[-1], zs[-1], y) / n
    else:  # dloss/dz (.) act_L'(h_L): mse's 2 (z - y), l1's sign, huber's clip
        dz = loss.mp_output_gradient(ctx, zs[-1], y)
        delta = dz * _apply(ctx, acts[-1].mp_derivative, hs[-1]) / n

    dweights: list[np.ndarray] = [None] * depth  # type: ignore[list-item]
    dbiases: list[np.ndarray] = [None] * depth  # type: ignore[list-item]
    for i in reversed(range(depth)):
        d = Dyadic.from_mpf(delta)
        dweights[i] = (d @ layer_inputs[i].T).to_mpf(ctx)
        dbiases[i] = d.sum_columns().to_mpf(ctx)
        if i > 0:
            back = (weights[i].T @ d).to_mpf(ctx)
            delta = back * _apply(ctx, acts[i - 1].mp_derivative, hs[i - 1])
    return dweights, dbiases, J


def _pass(net: _Network, prec: int) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    """:func:`_reverse_mode` at ``prec`` bits, in a reused private context."""
    with working_context(prec) as ctx:
        return _reverse_mode(net, ctx)


def _rebound(a: np.ndarray, ctx: Any) -> np.ndarray:
    """The object array ``a`` of mpf, every entry (exactly) a value of ``ctx``."""
    make = ctx.make_mpf
    out = np.empty(a.shape, dtype=object)
    for index, v in np.ndenumerate(a):
        out[index] = make(v._mpf_)
    return out


# ---------------------------------------------------------------------------
# Verified result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceGradients:
    """Verified exact gradients of J (the mean loss).

    Attributes:
        dweights, dbiases: float64, correctly rounded; same shapes as the parameters.
        dweights_low, dbiases_low: float64 residuals ``exact - rounded`` (double-double tail).
        exact_dweights, exact_dbiases: object arrays of mpf at ``precision`` bits.
        loss: J rounded to float64.
        precision: the working precision (bits) of the accepted pass.
        agreed_bits: the significant bits on which two precisions agreed.
        backend: mpmath's arithmetic backend ('gmpy' or 'python').
    """

    dweights: tuple[np.ndarray, ...]
    dbiases: tuple[np.ndarray, ...]
    dweights_low: tuple[np.ndarray, ...]
    dbiases_low: tuple[np.ndarray, ...]
    exact_dweights: tuple[np.ndarray, ...]
    exact_dbiases: tuple[np.ndarray, ...]
    loss: float
    exact_loss: Any
    precision: int
    agreed_bits: int
    backend: str

    def tensors(self) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """(name, rounded, residual, exact) for dW_1, db_1, ..., dW_L, db_L."""
        out = []
        for i in range(len(self.dweights)):
            out.append(
                (f"dW{i + 1}", self.dweights[i], self.dweights_low[i], self.exact_dweights[i])
            )
            out.append((f"db{i + 1}", self.dbiases[i], self.dbiases_low[i], self.exact_dbiases[i]))
        return out


def _split(exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [split_to_float64(v) for v in exact.flat]
    hi = np.array([p[0] for p in pairs], dtype=np.float64).reshape(exact.shape)
    lo = np.array([p[1] for p in pairs], dtype=np.float64).reshape(exact.shape)
    return hi, lo


def _cancellation_bits(problem: Problem) -> int:
    """Extra working bits for losses without a cancellation-free delta (mse, l1, huber).

    ``z - y`` at a saturated output (sigmoid(h) - 1, tanh(h) - 1) loses about 2|h|/ln 2 bits;
    the fused bce and softmax_ce deltas are written without that subtraction.
    """
    if has_fused_delta(loss_function(problem.spec.loss)):
        return 0
    with np.errstate(all="ignore"):
        peak = float(np.max(np.abs(problem.forward64().h[-1]), initial=0.0))
    if not np.isfinite(peak):
        return MAX_PRECISION
    return int(np.ceil(2 * peak / np.log(2))) + 16


@with_own_errstate
def reference_gradients(
    problem: Problem, *, bits: int = DEFAULT_BITS, max_precision: int = MAX_PRECISION
) -> ReferenceGradients:
    """Exact dJ/dW_i and dJ/db_i for ``problem``, verified at two working precisions.

    Args:
        problem: the network, parameters and batch; their float values are taken exactly.
        bits: significant bits on which the two precisions must agree (80 by default).
        max_precision: give up (``ExactReferenceError``) rather than work beyond this many bits.

    Raises:
        ExactReferenceError: if the precisions never agree, or mpmath leaves its domain.
    """

    def agree(low: tuple, high: tuple) -> bool:
        pairs = zip((*low[0], *low[1]), (*high[0], *high[1]), strict=True)
        return agree_to_bits(low[2], high[2], bits) and all(
            agree_to_bits(a, b, bits) for x, y in pairs for a, b in zip(x.flat, y.flat, strict=True)
        )

    with outside_domain("the exact reference"):
        high, precision = verified_precision(
            partial(_pass, _Network.of(problem)),
            agree,
            start=bits + 32 + _cancellation_bits(problem),
            bits=bits,
            what="reference gradients",
            max_precision=max_precision,
        )
    # bound to a context that stays at ``precision`` bits, as a fresh context per pass was
    dweights, dbiases, J = high
    ctx = result_context(precision)
    dweights = [_rebound(a, ctx) for a in dweights]
    dbiases = [_rebound(a, ctx) for a in dbiases]
    J = rebind(J, ctx)
    w_split = [_split(a) for a in dweights]
    b_split = [_split(a) for a in dbiases]
    return ReferenceGradients(
        dweights=tuple(hi for hi, _ in w_split),
        dbiases=tuple(hi for hi, _ in b_split),
        dweights_low=tuple(lo for _, lo in w_split),
        dbiases_low=tuple(lo for _, lo in b_split),
        exact_dweights=tuple(dweights),
        exact_dbiases=tuple(dbiases),
        loss=round_to_float64(J),
        exact_loss=J,
        precision=precision,
        agreed_bits=bits,
        backend=mpmath_backend(),
    )
