"""The exact reference on python-flint (Arb ball arithmetic): the fast backend.

Same recursion and the same per-element forms as the mpmath backend
(:mod:`gradverify.exact.reference_mpmath`; the mpmath forms of :mod:`gradverify.model.functions`,
run on Arb balls through a small context object), but:

* the matrix products (``W z + b``, ``W^T delta``, ``delta z^T``, the bias sums) are Arb
  matrix products in C instead of products of Python integers;
* precision is certified by the balls themselves, not by agreement of two precisions: every
  value carries a rigorous error radius, and a pass is accepted only when every point of
  every gradient entry's ball has the same correctly rounded double-double ``(hi, lo)``
  (:func:`gradverify.exact.rounding.double_double`), is known to ``bits`` relative bits,
  and J's ball rounds to one float64. Otherwise the working precision is doubled. The float64
  values are then exactly those of the mpmath backend, residuals included.

What it cannot certify, the mpmath backend can (:func:`gradverify.exact.reference.
reference_gradients` falls back to it by itself): an exact zero reached by cancellation
(a ball around 0 never shrinks to a point), a value exactly on a kink (a relu, leaky_relu or
elu pre-activation at 0, ``z - y`` at 0 for l1, ``|z - y|`` at delta for huber: the forms
branch on the side, and Arb cannot tell it on a ball that contains the kink), and registered
functions (their mpmath forms need a real mpmath context).

Arb's precision is python-flint's process-wide ``flint.ctx.prec``: it is set for the call,
under a lock, and restored afterwards.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpmath import libmp

from gradverify.exact.contexts import result_context
from gradverify.exact.gradients import ExactValues, ReferenceGradients, cancellation_bits
from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    outside_domain,
    working_precisions,
)
from gradverify.exact.rounding import double_double, round_to_float64
from gradverify.model.functions import Activation, Loss, activation, has_fused_delta, loss_function
from gradverify.model.names import ACTIVATION_NAMES, LOSS_NAMES, base_name
from gradverify.model.network import Problem

__all__ = [
    "FLINT",
    "Unsettled",
    "GUARD_BITS",
    "flint_available",
    "flint_reference_gradients",
    "loss_kink_balls",
    "supports_problem",
]

FLINT = "flint"
"""The ``backend`` of a result computed here."""

GUARD_BITS = 64
"""Working precision of the first pass beyond the bits to certify. With 32 guard bits one
gradient entry of 74,497 at [32, 256, 256, 1] (a sum with cancellation) missed 80 bits and
forced a second pass at twice the precision; 64 costs little more per operation."""

_PRECISION_LOCK = threading.RLock()
"""Held while this module has set ``flint.ctx.prec``, which every thread shares."""


@functools.cache
def flint_available() -> bool:
    """Whether python-flint can be imported (looked up once)."""
    try:
        import flint  # noqa: F401
    except ImportError:
        return False
    return True


def supports_problem(problem: Problem) -> bool:
    """Whether this backend can run ``problem``: python-flint is importable and every
    function is a built-in one (registered functions need a real mpmath context)."""
    return not _registered_functions(problem) and flint_available()


# ---------------------------------------------------------------------------
# The network as Arb matrices, made once per problem
# ---------------------------------------------------------------------------


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


def _float_matrix(a: np.ndarray) -> Any:
    """A 2-d float array as an arb_mat (exactly: every float is a point ball)."""
    from flint import arb_mat

    rows, cols = a.shape
    return arb_mat(rows, cols, np.asarray(a, dtype=np.float64).ravel().tolist())


def _objects(values: list[Any], shape: tuple[int, int]) -> np.ndarray:
    """A list of arb as an object array of ``shape``."""
    out = np.empty(shape, dtype=object)
    out.ravel()[:] = values
    return out


def _object_array(m: Any) -> np.ndarray:
    """An arb_mat as a 2-d object array of arb."""
    return _objects(m.entries(), (m.nrows(), m.ncols()))


@dataclass(frozen=True)
class _ArbNetwork:
    """What every pass shares, whatever its precision: exact point balls and the functions."""

    ctx: _ArbContext
    acts: tuple[Activation, ...]
    loss: Loss
    weights: tuple[Any, ...]  # arb_mat (n_i, n_{i-1})
    weights_t: tuple[Any, ...]  # their transposes
    bias_rows: tuple[Any, ...]  # arb_mat (n_i, batch): b_i repeated over the batch
    x: Any  # arb_mat (n_0, batch)
    y: np.ndarray  # object array of arb (n_L, batch)
    ones: Any  # arb_mat (batch, 1)

    @classmethod
    def of(cls, problem: Problem) -> _ArbNetwork:
        spec, batch = problem.spec, problem.batch_size
        weights = tuple(_float_matrix(w) for w in problem.weights)
        ctx = _ArbContext()
        return cls(
            ctx=ctx,
            acts=tuple(activation(name) for name in spec.activations),
            loss=loss_function(spec.loss),
            weights=weights,
            weights_t=tuple(w.transpose() for w in weights),
            bias_rows=tuple(
                _float_matrix(np.repeat(np.asarray(b, np.float64)[:, None], batch, axis=1))
                for b in problem.biases
            ),
            x=_float_matrix(problem.x),
            y=np.frompyfunc(ctx.arb, 1, 1)(problem.y.astype(np.float64)),
            ones=_float_matrix(np.ones((batch, 1))),
        )


# ---------------------------------------------------------------------------
# Reverse mode at the current precision
# ---------------------------------------------------------------------------


def loss_kink_balls(loss: Any, z: np.ndarray, y: np.ndarray) -> list[tuple[Any, float]]:
    """(ball, kink) pairs of the loss's kinks: ``z - y`` at 0 (l1), ``|z - y|`` at delta (huber)."""
    base = base_name(loss.name)
    if base == "l1":
        return [(v, 0.0) for v in (z - y).flat]
    if base == "huber":
        return [(abs(v), loss.parameter) for v in (z - y).flat]
    return []


def _ambiguous(pairs: Iterable[tuple[Any, float]]) -> bool:
    """Whether a ball that is not a point contains its kink.

    The forms branch on which side of a kink a value lies (``h > 0`` for relu, leaky_relu
    and elu, the sign of ``z - y`` for l1); on such a ball Arb cannot tell the side, and a
    wrong branch would not widen the ball. A higher precision may shrink the ball off the
    kink; a value exactly on it (reached by cancellation) never does.
    """
    return any(not ball.is_exact() and ball.contains(kink) for ball, kink in pairs)


@dataclass(frozen=True)
class _Pass:
    """One pass's balls: dJ/dW_i (n_i, n_{i-1}), dJ/db_i (n_i, 1) as arb_mat, and J."""

    dweights: list[Any]
    dbiases: list[Any]
    loss: Any


def _layer(net: _ArbNetwork, i: int, z: Any) -> tuple[Any, list[Any], list[Any]] | None:
    """``(h_i, act(h_i), act'(h_i))`` of layer ``i`` on its input ``z`` (arb_mat, lists);
    None where a pre-activation ball contains a kink of the activation."""
    act, ctx = net.acts[i], net.ctx
    h = net.weights[i] * z + net.bias_rows[i]
    entries = h.entries()
    if act.kinks and _ambiguous((v, k) for v in entries for k in act.kinks):
        return None
    forward, derivative = act.mp_forward, act.mp_derivative
    return h, [forward(ctx, v) for v in entries], [derivative(ctx, v) for v in entries]


def _output_delta(net: _ArbNetwork, h: Any, z: Any, slopes: list[Any]) -> tuple[Any, Any] | None:
    """``(J, dJ/dh_L)`` (an arb and an arb_mat), or None where a loss kink is ambiguous."""
    from flint import arb_mat

    ctx, loss, y = net.ctx, net.loss, net.y
    n = ctx.arb(y.size)
    h_out, z_out = _object_array(h), _object_array(z)
    J = ctx.fsum(loss.mp_value(ctx, h_out, z_out, y).flat) / n
    if has_fused_delta(loss):
        delta = loss.mp_output_delta(ctx, h_out, z_out, y) / n
    else:  # dloss/dz (.) act_L'(h_L): mse's 2 (z - y), l1's sign, huber's clip
        if _ambiguous(loss_kink_balls(loss, z_out, y)):
            return None
        delta = loss.mp_output_gradient(ctx, z_out, y) * _objects(slopes, h_out.shape) / n
    return J, arb_mat(h.nrows(), h.ncols(), delta.ravel().tolist())


def _reverse_mode(net: _ArbNetwork) -> _Pass | None:
    """The gradients and J at the current flint precision; None if a kink is ambiguous."""
    from flint import arb_mat

    inputs, slopes = [net.x], []
    for i in range(len(net.acts)):
        layer = _layer(net, i, inputs[-1])
        if layer is None:
            return None
        h, z, slope = layer
        inputs.append(arb_mat(h.nrows(), h.ncols(), z))
        slopes.append(slope)
    out = _output_delta(net, h, inputs[-1], slopes[-1])
    if out is None:
        return None
    J, delta = out
    depth = len(net.acts)
    dweights: list[Any] = [None] * depth
    dbiases: list[Any] = [None] * depth
    for i in reversed(range(depth)):
        dweights[i] = delta * inputs[i].transpose()
        dbiases[i] = delta * net.ones
        if i > 0:
            back = net.weights_t[i] * delta
            products = [a * b for a, b in zip(back.entries(), slopes[i - 1], strict=True)]
            delta = arb_mat(back.nrows(), back.ncols(), products)
    return _Pass(dweights, dbiases, J)


# ---------------------------------------------------------------------------
# Certification: every point of a ball has the same double-double
# ---------------------------------------------------------------------------

_UP = 1.0 + 2.0**-50
"""Makes a positive float64 result of one or two roundings to nearest an upper bound."""
_DOWN = 1.0 - 2.0**-50
"""Makes a positive float64 result of one or two roundings to nearest a lower bound."""
_TINY = 2.0**-1022
"""The smallest normal float64: below it, scaling by a power of two is not exact."""


def _raw(v: Any) -> tuple:
    """An exact, finite arb (a midpoint or an endpoint) as a raw mpf tuple, not rounded."""
    man, exp = v.man_exp()
    return libmp.from_man_exp(int(man), int(exp))


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Equal as float64 bit patterns (so -0.0 and 0.0 differ)."""
    return a[0].hex() == b[0].hex() and a[1].hex() == b[1].hex()


def _double_double_slowly(v: Any, bits: int) -> tuple[float, float] | None:
    """:func:`~gradverify.exact.rounding.double_double` of every point of the ball ``v``, if
    it is one pair and ``v`` is known to ``bits`` relative bits; else None. Exact, through the
    ball's endpoints: the pair is a monotone function of the value."""
    if v.is_exact():
        return double_double(_raw(v), bits)
    if not v.is_finite() or v.rel_accuracy_bits() < bits:
        return None
    low, high = double_double(_raw(v.lower()), bits), double_double(_raw(v.upper()), bits)
    return low if _same(low, high) else None


def _rounded_slowly(v: Any, bits: int) -> float | None:
    """The float64 every point of ``v`` rounds to, if one and ``v`` is known to ``bits``."""
    if v.is_exact():
        return round_to_float64(_raw(v))
    if not v.is_finite() or v.rel_accuracy_bits() < bits:
        return None
    low, high = round_to_float64(_raw(v.lower())), round_to_float64(_raw(v.upper()))
    return low if low.hex() == high.hex() else None


def _half_gap(a: np.ndarray) -> np.ndarray:
    """Half the smaller spacing of the float64s around each ``a`` (0 where that underflows)."""
    return np.spacing(np.nextafter(np.abs(a), 0.0)) / 2


def _double_doubles_fast(
    hi: np.ndarray, lo: np.ndarray, err: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(certain, lo)``: where every value within ``err`` of ``hi + lo`` certainly has the
    double-double ``(hi, lo)`` (``lo`` flushed to 0 where the residual is below ``2**-bits |hi|``).

    ``err`` bounds ``|value - hi - lo|`` up to one rounding to nearest. Certain means: every
    residual is strictly inside ``hi``'s rounding interval, and either strictly below the
    flushing threshold or at least at it and strictly inside ``lo``'s rounding interval.
    Zeros, subnormals and non-finite values are left to :func:`_double_double_slowly`.
    """
    with np.errstate(all="ignore"):
        bound = err * _UP + 5e-324
        threshold = np.ldexp(np.abs(hi), -bits)
        usable = np.isfinite(hi) & (hi != 0) & np.isfinite(lo) & (threshold >= _TINY)
        largest = (np.abs(lo) + bound) * _UP
        flushed = largest < threshold
        resolved = (lo != 0) & (bound < _half_gap(lo)) & ((np.abs(lo) - bound) * _DOWN >= threshold)
        certain = usable & (largest < _half_gap(hi)) & (flushed | resolved)
        return certain, np.where(flushed, 0.0, lo)


class Unsettled(enum.Enum):
    """Why a pass did not certify: what more precision may do about it."""

    BOUNDARY = "a ball straddles a rounding boundary"  # more precision separates it, or a tie
    STUCK = "a ball contains 0 or a kink"  # an exact zero or kink may never be separated


def _certified(m: Any, bits: int) -> tuple[np.ndarray, np.ndarray] | Unsettled:
    """``(hi, lo)`` float64 arrays of the arb_mat ``m``'s shape: the double-double of every
    point of every ball; or why not (a ball too wide, or not known to ``bits`` bits)."""
    from flint import arb

    shape = (m.nrows(), m.ncols())
    entries = m.entries()
    count = len(entries)
    hi = np.fromiter(map(float, entries), np.float64, count).reshape(shape)
    residual = m - _float_matrix(hi)
    lo = np.fromiter(map(float, residual.entries()), np.float64, count).reshape(shape)
    rest = (residual - _float_matrix(lo)).entries()
    err = np.fromiter(map(float, map(arb.abs_upper, rest)), np.float64, count).reshape(shape)
    certain, lo = _double_doubles_fast(hi, lo, err, bits)
    unsettled = []
    for k in np.flatnonzero(~certain):
        pair = _double_double_slowly(entries[k], bits)
        if pair is None:
            unsettled.append(entries[k])
        else:
            hi.flat[k], lo.flat[k] = pair
    if unsettled:
        return _why(unsettled)
    return hi, lo


def _why(balls: list[Any]) -> Unsettled:
    """STUCK if one of ``balls`` (not certified) contains 0, else BOUNDARY."""
    return Unsettled.STUCK if any(v.contains(0) for v in balls) else Unsettled.BOUNDARY


def _exact_values(run: _Pass, prec: int) -> ExactValues:
    """The balls' midpoints as mpf of the result context at ``prec`` (not rounded)."""
    ctx = result_context(prec)
    make = ctx.make_mpf

    def mpf_array(m: Any) -> np.ndarray:
        out = np.empty((m.nrows(), m.ncols()), dtype=object)
        out.ravel()[:] = [make(_raw(v.mid())) for v in m.entries()]
        return out

    return (
        tuple(mpf_array(m) for m in run.dweights),
        tuple(mpf_array(m)[:, 0] for m in run.dbiases),
        make(_raw(run.loss.mid())),
    )


def _result(run: _Pass, prec: int, bits: int) -> ReferenceGradients | Unsettled:
    """The certified result of one pass, or why there is none."""
    loss = _rounded_slowly(run.loss, bits)
    pairs = [_certified(m, bits) for m in (*run.dweights, *run.dbiases)]
    unsettled = [p for p in pairs if isinstance(p, Unsettled)]
    if loss is None:
        unsettled.append(_why([run.loss]))
    if unsettled or loss is None:
        return Unsettled.STUCK if Unsettled.STUCK in unsettled else Unsettled.BOUNDARY
    his = [p[0] for p in pairs if not isinstance(p, Unsettled)]
    los = [p[1] for p in pairs if not isinstance(p, Unsettled)]
    depth = len(run.dweights)
    return ReferenceGradients(
        dweights=tuple(his[:depth]),
        dbiases=tuple(hi[:, 0] for hi in his[depth:]),
        dweights_low=tuple(los[:depth]),
        dbiases_low=tuple(lo[:, 0] for lo in los[depth:]),
        loss=loss,
        precision=prec,
        agreed_bits=bits,
        backend=FLINT,
        exact_values=lambda: _exact_values(run, prec),
    )


def _attempt(net: _ArbNetwork, prec: int, bits: int) -> ReferenceGradients | Unsettled:
    """One pass at the current flint precision ``prec``, certified or not."""
    with outside_domain("the exact reference"):
        run = _reverse_mode(net)
        return Unsettled.STUCK if run is None else _result(run, prec, bits)


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


def flint_reference_gradients(
    problem: Problem,
    *,
    bits: int = DEFAULT_BITS,
    max_precision: int = MAX_PRECISION,
    max_stuck_passes: int | None = None,
) -> ReferenceGradients:
    """Exact dJ/dW_i and dJ/db_i by Arb ball arithmetic, certified to ``bits`` relative bits
    and to the last bit of the float64 double-double ``(hi, lo)``.

    Args:
        problem: the network, parameters and batch; their float values are taken exactly.
        bits: relative bits every gradient entry must be known to (at least).
        max_precision: give up rather than work beyond this many bits.
        max_stuck_passes: give up after this many passes that leave a ball around 0 or on a
            kink (:attr:`Unsettled.STUCK`: an exact zero reached by cancellation, or a value
            exactly on a kink, which no precision separates); None: only ``max_precision``
            limits them. Passes that leave only balls across a rounding boundary (a value
            within 2**-p of a tie) always go on: more precision settles those.

    Raises:
        ImportError: python-flint is not installed (``pip install gradverify[fast]``).
        ExactReferenceError: a registered function, a value outside its domain, or no
            certification within ``max_precision`` bits and ``max_stuck_passes``.
    """
    import flint

    registered = _registered_functions(problem)
    if registered:
        raise ExactReferenceError(
            f"the Arb reference supports only the built-in functions, not {', '.join(registered)}; "
            "the mpmath reference does"
        )
    net = _ArbNetwork.of(problem)
    start = bits + GUARD_BITS + cancellation_bits(problem)
    stuck = 0
    with _PRECISION_LOCK:
        saved = flint.ctx.prec
        try:
            for prec in working_precisions(start, max_precision):
                flint.ctx.prec = prec
                outcome = _attempt(net, prec, bits)
                if isinstance(outcome, ReferenceGradients):
                    return outcome
                stuck += outcome is Unsettled.STUCK
                if max_stuck_passes is not None and stuck >= max_stuck_passes:
                    break
        finally:
            flint.ctx.prec = saved
    raise ExactReferenceError(
        f"the Arb reference could not certify the float64 gradients to {bits} bits below "
        f"{max_precision} bits of working precision ({outcome.value}: an exact zero reached "
        "by cancellation, or a value on a kink?); the mpmath reference decides these"
    )


def _registered_functions(problem: Problem) -> list[str]:
    """The problem's functions that are not built in (registered ones)."""
    spec = problem.spec
    registered = [a for a in spec.activations if base_name(a) not in ACTIVATION_NAMES]
    if base_name(spec.loss) not in LOSS_NAMES:
        registered.append(spec.loss)
    return registered
