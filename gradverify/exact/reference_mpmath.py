"""The exact reference on mpmath: reverse mode in a private mpmath context, exact linear algebra.

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

It runs every problem, registered functions included; :func:`gradverify.exact.reference.
reference_gradients` prefers the Arb backend (:mod:`gradverify.exact.reference_flint`) where
python-flint is installed and falls back to this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from mpmath import libmp

from gradverify.exact.contexts import rebind, result_context, working_context
from gradverify.exact.gradients import (
    RESIDUAL_BITS,
    ExactValues,
    ReferenceGradients,
    cancellation_bits,
)
from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    agree_to_bits,
    outside_domain,
    verified_precision,
)
from gradverify.exact.rounding import double_double, round_to_float64
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.network import Problem

__all__ = [
    "GUARD_BITS",
    "MAX_EXACT_BITS",
    "Dyadic",
    "mpmath_backend",
    "mpmath_reference_backend",
    "mpmath_reference_gradients",
]

GUARD_BITS = 32
"""Working bits of the first pass beyond those its double-doubles need (``bits`` of the value
and :data:`~gradverify.exact.gradients.RESIDUAL_BITS` of its residual)."""


MAX_EXACT_BITS = 1 << 31
"""The most bits the integers of one exact array may take together (256 MiB).

An array's integers share one power of two, so one value far below the others widens all of
them: a hidden unit deep in a Gaussian or exponential tail (gelu at h = -1e4 is about
``2**-(7e7)``) makes every other entry a 70-million-bit integer. Such an array stops the
reference with :class:`ExactReferenceError` instead of exhausting memory (gelu at |h| ~ 1e5
asked for more than 20 GB). For scale: the widest array of a [3, 4, 1] network with gelu at
|h| ~ 1e4 takes 1.1e9 bits (3 s, 0.9 GB at most).
"""


def mpmath_backend() -> str:
    """'gmpy' when mpmath runs on gmpy2, else 'python'."""
    return str(libmp.BACKEND)


def mpmath_reference_backend() -> str:
    """The ``backend`` of a result computed here: ``"mpmath-gmpy"`` or ``"mpmath-python"``."""
    return f"mpmath-{mpmath_backend()}"


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
    def from_mpf(cls, a: np.ndarray, what: str = "these values") -> Dyadic:
        """Exact conversion of an object array of mpf values (``what`` they are, for the
        ExactReferenceError above :data:`MAX_EXACT_BITS`)."""
        raw = [v._mpf_ for v in a.flat]
        exps = [e for _, m, e, _ in raw if m]
        base = min(exps) if exps else 0
        needed = sum(e - base + bc for _, m, e, bc in raw if m)
        if needed > MAX_EXACT_BITS:
            top = max(e + bc for _, m, e, bc in raw if m)
            raise ExactReferenceError(
                f"exact arithmetic on {what} would take {needed:,} bits of integers (their "
                f"magnitudes span 2**{base} to 2**{top}), more than the limit of "
                f"{MAX_EXACT_BITS:,}: some value lies too far into a tail (a pre-activation "
                "deep in its activation's tail) for the exact reference"
            )
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
        if i < depth - 1:  # the outputs feed no layer
            layer_inputs.append(Dyadic.from_mpf(z, f"the activations of layer {i + 1}"))
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
        d = Dyadic.from_mpf(delta, f"dJ/dh of layer {i + 1}")
        dweights[i] = (d @ layer_inputs[i].T).to_mpf(ctx)
        dbiases[i] = d.sum_columns().to_mpf(ctx)
        if i > 0:
            back = (weights[i].T @ d).to_mpf(ctx)
            delta = back * _apply(ctx, acts[i - 1].mp_derivative, hs[i - 1])
    return dweights, dbiases, J


@dataclass(frozen=True)
class _Pass:
    """One pass at one working precision: the values and their float64 double-doubles."""

    dweights: list[np.ndarray]  # object arrays of mpf of the working context
    dbiases: list[np.ndarray]
    loss: Any
    his: list[np.ndarray]  # float64, for dW_1, ..., dW_L, db_1, ..., db_L
    los: list[np.ndarray]
    rounded_loss: float

    def values(self) -> list[Any]:
        """Every gradient entry, then J."""
        return [v for a in (*self.dweights, *self.dbiases) for v in a.flat] + [self.loss]

    def same_floats(self, other: _Pass) -> bool:
        """Whether both passes give the same float64 bits (values and residuals, and J)."""
        pairs = zip((*self.his, *self.los), (*other.his, *other.los), strict=True)
        return self.rounded_loss.hex() == other.rounded_loss.hex() and all(
            np.array_equal(a.view(np.uint64), b.view(np.uint64)) for a, b in pairs
        )


def _double_doubles(exact: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [double_double(v, bits) for v in exact.flat]
    hi = np.array([p[0] for p in pairs], dtype=np.float64).reshape(exact.shape)
    lo = np.array([p[1] for p in pairs], dtype=np.float64).reshape(exact.shape)
    return hi, lo


def _pass(net: _Network, bits: int, prec: int) -> _Pass:
    """:func:`_reverse_mode` at ``prec`` bits, in a reused private context, and its floats."""
    with working_context(prec) as ctx:
        dweights, dbiases, J = _reverse_mode(net, ctx)
    pairs = [_double_doubles(a, bits) for a in (*dweights, *dbiases)]
    return _Pass(
        dweights=dweights,
        dbiases=dbiases,
        loss=J,
        his=[hi for hi, _ in pairs],
        los=[lo for _, lo in pairs],
        rounded_loss=round_to_float64(J),
    )


def _agree(bits: int, low: _Pass, high: _Pass) -> bool:
    """The same float64 bits, and every value (J too) the same to ``bits`` bits."""
    return low.same_floats(high) and all(
        agree_to_bits(a, b, bits) for a, b in zip(low.values(), high.values(), strict=True)
    )


def _rebound(a: np.ndarray, ctx: Any) -> np.ndarray:
    """The object array ``a`` of mpf, every entry (exactly) a value of ``ctx``."""
    make = ctx.make_mpf
    out = np.empty(a.shape, dtype=object)
    for index, v in np.ndenumerate(a):
        out[index] = make(v._mpf_)
    return out


def _exact_values(high: _Pass, prec: int) -> ExactValues:
    """The accepted pass's values, bound to a context that stays at ``prec`` bits (as a
    fresh context per pass was), not to the working context lent for the pass."""
    ctx = result_context(prec)
    return (
        tuple(_rebound(a, ctx) for a in high.dweights),
        tuple(_rebound(a, ctx) for a in high.dbiases),
        rebind(high.loss, ctx),
    )


def mpmath_reference_gradients(
    problem: Problem, *, bits: int = DEFAULT_BITS, max_precision: int = MAX_PRECISION
) -> ReferenceGradients:
    """Exact dJ/dW_i and dJ/db_i for ``problem``, verified at two working precisions.

    Two passes agree when they give the same float64 double-doubles
    (:func:`gradverify.exact.rounding.double_double`) and every value agrees to ``bits`` bits.

    Args:
        problem: the network, parameters and batch; their float values are taken exactly.
        bits: significant bits on which the two precisions must agree (80 by default).
        max_precision: give up (``ExactReferenceError``) rather than work beyond this many bits.

    Raises:
        ExactReferenceError: if the precisions never agree, or mpmath leaves its domain.
    """
    with outside_domain("the exact reference"):
        high, precision = verified_precision(
            partial(_pass, _Network.of(problem), bits),
            partial(_agree, bits),
            start=bits + RESIDUAL_BITS + GUARD_BITS + cancellation_bits(problem),
            bits=bits,
            what="reference gradients",
            max_precision=max_precision,
        )
    depth = len(high.dweights)
    return ReferenceGradients(
        dweights=tuple(high.his[:depth]),
        dbiases=tuple(high.his[depth:]),
        dweights_low=tuple(high.los[:depth]),
        dbiases_low=tuple(high.los[depth:]),
        loss=high.rounded_loss,
        precision=precision,
        agreed_bits=bits,
        backend=mpmath_reference_backend(),
        exact_values=partial(_exact_values, high, precision),
    )
