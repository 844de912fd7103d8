"""Plain functions of a flat parameter vector: ``fun(theta) -> float``, ``grad(theta) -> array``.

For code that is not a layered network, :func:`check_function` takes the pair
``scipy.optimize.check_grad`` takes and judges ``grad`` at one point ``theta``:

* ``grad`` is called on a copy of ``theta`` rounded to the dtype under test and must return
  an array of ``theta``'s shape in that dtype (anything else, an exception, or a change to
  its input is an ``error`` verdict with a one-line message);
* the reference is exact when an mpmath version of the loss is given
  (``mp_fun(ctx, thetas) -> mpf``, ``thetas`` a list of mpf, using ``ctx``'s functions such
  as ``ctx.exp``): every partial derivative comes from ``ctx.diff`` in a private context,
  computed at two working precisions and accepted only when they agree to 80 bits
  (otherwise the precision is doubled), then correctly rounded to float64;
* finite differences are always computed (float64, on the exact values of the rounded
  ``theta``): Richardson-extrapolated central differences at steps h, h/2, h/4 with a step per
  coordinate and an error estimate per entry, the same scheme as
  :mod:`gradverify.engine.finite_diff`. They are the reference when there is no ``mp_fun``, and a
  second opinion when there is.

The verdict (``pass``, ``incorrect`` or ``error``) compares the normwise relative error of
``grad`` with a tolerance. A plain function has no stable float twin to measure a baseline
error against (as :func:`gradverify.check_problem` does for networks), so the default
tolerance is ``tolerance_factor * u`` of the dtype (32 u: 5 bits of slack over one
rounding); pass ``tolerance=`` for an ill-conditioned function. Against finite differences
the allowance also includes four times their estimated error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from gradverify.common.errstate import with_own_errstate
from gradverify.common.formatting import format_fd_error, format_relative_error, json_number
from gradverify.engine.compare import DEFAULT_TOLERANCE_FACTOR, elementwise_errors, normwise_error
from gradverify.engine.harness import ImplementationTimeout, last_frame, run_with_time_limit
from gradverify.engine.implementations import implementation_name
from gradverify.engine.results import ElementError, Verdict
from gradverify.engine.stencil import (
    STENCIL,
    UNIT_ROUNDOFF,
    central_differences,
    richardson,
    step_sizes,
)
from gradverify.exact.contexts import rebind, result_context, working_context
from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    agree_to_bits,
    outside_domain,
    verified_precision,
)
from gradverify.exact.reference import mpmath_backend
from gradverify.exact.rounding import split_to_float64
from gradverify.model.dtypes import dtype_name, resolve_dtype, unit_roundoff

__all__ = [
    "FD_ERROR_MULTIPLE",
    "FlatFiniteDifferences",
    "FunctionCheckResult",
    "check_function",
    "flat_finite_differences",
    "mp_reference_gradient",
]

FD_ERROR_MULTIPLE = 4.0
"""Against finite differences, ``grad`` may differ by this many times their error estimate."""

EVALUATION_ERROR_ULPS = 32.0
"""Assumed rounding error of one float64 evaluation of ``fun``, in units of u * |fun(theta)|."""

CONSISTENCY_BITS = 20
"""``fun(theta)`` and ``mp_fun(theta)`` must agree to this many bits, or mp_fun is refused."""


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatFiniteDifferences:
    """Richardson central differences of a flat function (all float64, shape of theta)."""

    values: np.ndarray
    errors: np.ndarray  # absolute error estimates
    steps: np.ndarray  # the largest step per coordinate (then /2, /4)
    evaluations: int


def flat_finite_differences(
    fun: Callable[[np.ndarray], Any], theta: np.ndarray
) -> FlatFiniteDifferences:
    """d fun / d theta_k for every k, by central differences at h, h/2, h/4 and Richardson.

    ``theta`` is used in float64 (exactly); each coordinate gets its own power-of-two step
    (:func:`gradverify.engine.stencil.step_sizes`); the error estimate is the numdifftools-style
    one of :mod:`gradverify.engine.stencil`, with the rounding error of one evaluation of
    ``fun`` taken as ``EVALUATION_ERROR_ULPS * u * |fun(theta)|``. Cost: ``6 * theta.size + 1``
    calls of ``fun``.
    """
    flat = np.asarray(theta, dtype=np.float64).ravel()
    f0 = float(fun(flat.reshape(np.shape(theta)).copy()))
    eps_f = EVALUATION_ERROR_ULPS * UNIT_ROUNDOFF * max(abs(f0), np.finfo(np.float64).tiny)
    steps = step_sizes(flat)
    losses = np.empty((flat.size, len(STENCIL)))
    for k in range(flat.size):
        for s, offset in enumerate(STENCIL):
            point = flat.copy()
            point[k] += offset * steps[k]
            losses[k, s] = float(fun(point.reshape(np.shape(theta))))
    differences = central_differences(losses.ravel(), steps)
    values, errors = richardson(differences, steps, eps_f)
    shape = np.shape(theta)
    return FlatFiniteDifferences(
        values.reshape(shape), errors.reshape(shape), steps.reshape(shape), 1 + losses.size
    )


def _mp_gradient(mp_fun: Callable, theta: np.ndarray, prec: int) -> tuple[Any, list]:
    """(mp_fun(theta), [d mp_fun / d theta_k]) at working precision ``prec``, in a reused
    private context (:func:`gradverify.exact.contexts.working_context`)."""
    with working_context(prec) as ctx:
        xs = [ctx.mpf(float(t)) for t in theta]
        value = ctx.convert(mp_fun(ctx, list(xs)))
        partials = []
        for k in range(len(xs)):

            def along(t: Any, k: int = k) -> Any:
                return mp_fun(ctx, [*xs[:k], t, *xs[k + 1 :]])

            partials.append(ctx.convert(ctx.diff(along, xs[k])))
    return value, partials


def mp_reference_gradient(
    mp_fun: Callable,
    theta: np.ndarray,
    *,
    bits: int = DEFAULT_BITS,
    max_precision: int = MAX_PRECISION,
) -> tuple[np.ndarray, np.ndarray, Any, int]:
    """The exact gradient of ``mp_fun`` at the float64 values ``theta``, verified.

    Returns ``(hi, lo, value, precision)``: the gradient correctly rounded to float64, the
    float64 residual ``exact - hi``, ``mp_fun(theta)`` as an mpf, and the working precision of
    the accepted pass. Two passes at ``p`` and ``2p`` bits must agree to ``bits`` bits.

    Raises:
        ExactReferenceError: no agreement below ``max_precision`` bits, or mpmath left its domain.
    """
    flat = np.asarray(theta, dtype=np.float64).ravel()

    def agree(low: tuple[Any, list], high: tuple[Any, list]) -> bool:
        pairs = zip((low[0], *low[1]), (high[0], *high[1]), strict=True)
        return all(agree_to_bits(a, b, bits) for a, b in pairs)

    with outside_domain("the mpmath reference"):
        (value, partials), precision = verified_precision(
            lambda prec: _mp_gradient(mp_fun, flat, prec),
            agree,
            start=bits + 32,
            bits=bits,
            what="mp_fun's derivatives",
            max_precision=max_precision,
        )
    split = [split_to_float64(v) for v in partials]
    value = rebind(value, result_context(precision))
    shape = np.shape(theta)
    hi = np.array([h for h, _ in split], dtype=np.float64).reshape(shape)
    lo = np.array([low for _, low in split], dtype=np.float64).reshape(shape)
    return hi, lo, value, precision


# ---------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------


@dataclass
class FunctionCheckResult:
    """The verdict on ``grad`` at one point ``theta``, in one dtype.

    ``normwise_error`` is ``||g - r|| / ||r||`` against the reference (``reference`` says
    which: "mpmath" or "finite differences"); ``allowed`` is what it had to stay within.
    """

    implementation: str
    verdict: Verdict
    dtype: str
    parameter_count: int
    reference: str = ""
    normwise_error: float = float("nan")
    tolerance: float = float("nan")
    allowed: float = float("nan")
    fd_normwise_error: float | None = None  # FD against the exact reference, when there is one
    worst: list[ElementError] = field(default_factory=list)
    message: str = ""
    reference_precision: int | None = None
    reference_backend: str | None = None
    elapsed: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def worst_bits(self) -> float | None:
        """The worst entry's bits of error; None for an ``error`` verdict (see CheckResult)."""
        if self.verdict is Verdict.ERROR:
            return None
        return max((w.bits for w in self.worst), default=0.0)

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "verdict": self.verdict.value,
            "dtype": self.dtype,
            "parameter_count": self.parameter_count,
            "reference": self.reference,
            "normwise_error": json_number(self.normwise_error),
            "tolerance": json_number(self.tolerance),
            "allowed": json_number(self.allowed),
            "fd_normwise_error": json_number(self.fd_normwise_error),
            "worst": [w.to_dict() for w in self.worst],
            "message": self.message,
            "reference_precision": self.reference_precision,
            "reference_backend": self.reference_backend,
            "elapsed_seconds": self.elapsed,
        }

    def __str__(self) -> str:
        lines = [
            f"gradverify: {self.implementation} -> {self.verdict.value.upper()} "
            f"({self.dtype}, a function of {self.parameter_count} parameters)"
        ]
        if self.message:
            lines.append(f"  {self.message}")
        if self.reference:
            error, allowed, tolerance = (
                format_relative_error(e)
                for e in (self.normwise_error, self.allowed, self.tolerance)
            )
            lines.append(
                f"  normwise error {error} against {self.reference}"
                f" (allowed {allowed}; tolerance {tolerance})"
            )
        if self.fd_normwise_error is not None:
            lines.append(
                f"  finite differences agree with the exact gradient to "
                f"{format_relative_error(self.fd_normwise_error)} (normwise)"
            )
        if self.worst and self.verdict is not Verdict.PASS:
            lines.append("  worst elements:")
            for w in self.worst:
                if self.reference == "mpmath":
                    lines.append(f"    {w.describe()}")
                else:
                    lines.append(
                        f"    {w.tensor}[{', '.join(map(str, w.index))}]: got "
                        f"{w.value:.9g}, FD {w.reference:.9g} "
                        f"(+-{format_fd_error(w.fd_error)}); rel. error "
                        f"{format_relative_error(w.relative_error)}"
                    )
        if self.reference_precision:
            lines.append(
                f"  reference: mpmath.diff at {self.reference_precision} bits "
                f"(backend {self.reference_backend})"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


def _call_grad(grad: Callable, theta: np.ndarray, timeout: float | None) -> np.ndarray | str:
    """``grad(copy of theta)`` validated, or a message saying what went wrong."""
    given = theta.copy()
    try:
        out = run_with_time_limit(lambda: grad(given), timeout)
    except ImplementationTimeout:
        return f"did not return within {timeout:g} s (per-call time limit)"
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        return f"raised {type(exc).__name__}: {exc}{last_frame(exc)}"
    if given.tobytes() != theta.tobytes():
        return "modified its input theta in place"
    try:
        g = np.asarray(out)
    except Exception:  # noqa: BLE001
        return f"returned a {type(out).__name__}, not an array"
    if g.shape != theta.shape:
        return f"returned shape {g.shape}; expected {theta.shape} (the shape of theta)"
    if g.dtype != theta.dtype:
        return f"returned {g.dtype}; expected {dtype_name(theta.dtype)} (the dtype it was given)"
    return g


def _worst_elements(
    g: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    dtype: Any,
    fd: FlatFiniteDifferences,
    count: int,
    *,
    fd_is_reference: bool,
) -> list[ElementError]:
    """The ``count`` entries with most bits of error, each with the FD error estimate (and the
    FD value too when it is a second opinion rather than the reference itself)."""
    errs = elementwise_errors(g, hi, lo, dtype)
    order = np.argsort(-errs.bits.ravel(), kind="stable")[:count]
    out = []
    for j in order:
        if errs.bits.ravel()[j] <= 0:
            break
        index = np.unravel_index(j, hi.shape)
        out.append(
            ElementError(
                tensor="theta",
                index=tuple(int(i) for i in index),
                value=float(np.asarray(g, dtype=np.float64)[index]),
                reference=float(hi[index]),
                relative_error=float(errs.relative[index]),
                ulps=float(errs.ulps[index]),
                bits=float(errs.bits[index]),
                fd=None if fd_is_reference else float(fd.values[index]),
                fd_error=float(fd.errors[index]),
            )
        )
    return out


def _mpmath_reference(
    fun: Callable,
    mp_fun: Callable,
    theta64: np.ndarray,
    fd: FlatFiniteDifferences,
    result: FunctionCheckResult,
) -> tuple[np.ndarray, np.ndarray] | str:
    """``(hi, lo)`` of the exact gradient (recorded in ``result``), or why there is none."""
    try:
        hi, lo, value, precision = mp_reference_gradient(mp_fun, theta64)
    except ExactReferenceError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - the user's mp_fun may raise anything
        return f"mp_fun raised {type(exc).__name__}: {exc}{last_frame(exc)}"
    f0 = float(fun(theta64.copy()))
    if not agree_to_bits(mpmath.mpf(f0), value, CONSISTENCY_BITS):
        return (
            f"fun and mp_fun disagree at theta ({f0!r} against "
            f"{mpmath.nstr(value, 17)}): they are not the same function"
        )
    result.reference, result.allowed = "mpmath", result.tolerance
    result.reference_precision = precision
    result.reference_backend = f"mpmath-{mpmath_backend()}"
    result.fd_normwise_error = normwise_error(fd.values, hi, lo)
    return hi, lo


def _fd_slack(fd: FlatFiniteDifferences) -> float:
    """How far ``grad`` may be from the finite differences on account of their error."""
    return FD_ERROR_MULTIPLE * float(np.linalg.norm(fd.errors))


def _fd_reference(
    fd: FlatFiniteDifferences, result: FunctionCheckResult
) -> tuple[np.ndarray, np.ndarray] | str:
    """The finite differences as the reference (recorded in ``result``), or why they are not."""
    if not np.all(np.isfinite(fd.values)):
        return (
            "the finite differences of fun are not finite at theta; "
            "give mp_fun for an exact reference"
        )
    scale = float(np.linalg.norm(fd.values))
    result.reference = "finite differences"
    result.allowed = result.tolerance + (_fd_slack(fd) / scale if scale > 0 else float("inf"))
    return fd.values, np.zeros_like(fd.values)


def _within_allowance(
    g: np.ndarray, fd: FlatFiniteDifferences, result: FunctionCheckResult
) -> bool:
    """Whether ``grad``'s normwise error is allowed (against a zero FD gradient: its norm)."""
    if result.reference == "finite differences" and float(np.linalg.norm(fd.values)) == 0.0:
        return float(np.linalg.norm(g.astype(np.float64))) <= _fd_slack(fd)
    return result.normwise_error <= result.allowed


def _judge(
    fun: Callable,
    grad: Callable,
    mp_fun: Callable | None,
    theta_d: np.ndarray,
    result: FunctionCheckResult,
    *,
    worst: int,
    timeout: float | None,
) -> tuple[Verdict, str]:
    """The verdict on ``grad`` at ``theta_d`` and its message; fills in ``result``."""
    label, dt = result.implementation, theta_d.dtype
    theta64 = theta_d.astype(np.float64)
    if not np.all(np.isfinite(theta64)):
        return Verdict.ERROR, f"theta must be finite in {dtype_name(dt)}"
    g = _call_grad(grad, theta_d, timeout)
    if isinstance(g, str):
        return Verdict.ERROR, f"{label} {g}"
    try:
        fd = flat_finite_differences(fun, theta64)
    except Exception as exc:  # noqa: BLE001 - the user's fun may raise anything
        return Verdict.ERROR, f"fun raised {type(exc).__name__}: {exc}{last_frame(exc)}"
    if mp_fun is not None:
        reference = _mpmath_reference(fun, mp_fun, theta64, fd, result)
    else:
        reference = _fd_reference(fd, result)
    if isinstance(reference, str):
        return Verdict.ERROR, reference
    hi, lo = reference
    result.normwise_error = normwise_error(g, hi, lo)
    result.worst = _worst_elements(g, hi, lo, dt, fd, worst, fd_is_reference=mp_fun is None)
    nonfinite = int(np.count_nonzero(~np.isfinite(g.astype(np.float64)) & np.isfinite(hi)))
    if nonfinite:
        return (
            Verdict.ERROR,
            f"{label} returned {nonfinite} inf/NaN entries where the gradient is finite",
        )
    if _within_allowance(g, fd, result):
        return Verdict.PASS, ""
    return Verdict.INCORRECT, (
        f"normwise error {format_relative_error(result.normwise_error)} exceeds the "
        f"allowed {format_relative_error(result.allowed)} against {result.reference}"
    )


@with_own_errstate
def check_function(
    fun: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    theta: Sequence[float] | np.ndarray,
    *,
    mp_fun: Callable[[Any, list], Any] | None = None,
    dtype: str | np.dtype = "float64",
    tolerance: float | None = None,
    tolerance_factor: float = DEFAULT_TOLERANCE_FACTOR,
    worst: int = 5,
    timeout: float | None = 10.0,
    name: str | None = None,
) -> FunctionCheckResult:
    """Judge ``grad`` as the gradient of ``fun`` at ``theta``.

    Args:
        fun: the loss, ``fun(theta) -> float``; evaluated in float64 for finite differences.
        grad: the gradient under test, ``grad(theta) -> array`` of theta's shape and dtype.
        theta: the point (rounded to ``dtype``; the references use those rounded values).
        mp_fun: optional exact loss ``mp_fun(ctx, thetas) -> mpf`` (``thetas``: a flat list
            of mpf; use ``ctx.exp``, ``ctx.log``, ... so it runs at ``ctx``'s precision).
        dtype: the dtype ``grad`` is called and judged in.
        tolerance: the allowed normwise relative error (default ``tolerance_factor * u``).
        tolerance_factor: multiple of the dtype's unit roundoff u for the default tolerance.
        worst: how many worst elements to report.
        timeout: seconds allowed for the call of ``grad``.
        name: the name shown in the result.

    Returns:
        A FunctionCheckResult with verdict ``pass``, ``incorrect`` or ``error``.
    """
    start = time.perf_counter()
    dt = resolve_dtype(dtype)
    theta_d = np.asarray(theta, dtype=np.float64).astype(dt)
    tol = float(tolerance) if tolerance is not None else tolerance_factor * unit_roundoff(dt)
    result = FunctionCheckResult(
        name or implementation_name(grad),
        Verdict.ERROR,
        dtype_name(dt),
        int(theta_d.size),
        tolerance=tol,
    )
    result.verdict, result.message = _judge(
        fun, grad, mp_fun, theta_d, result, worst=worst, timeout=timeout
    )
    result.elapsed = time.perf_counter() - start
    return result
