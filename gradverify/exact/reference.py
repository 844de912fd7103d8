"""Exact reference gradients: the one entry point, and the choice of backend.

:func:`reference_gradients` computes dJ/dW_i and dJ/db_i of a problem exactly (correctly
rounded float64 values and their float64 residuals) with one of two backends:

* ``"flint"``: Arb ball arithmetic through python-flint (:mod:`gradverify.exact.reference_flint`),
  certified by the balls' own error bounds; matrix products in C.
* ``"mpmath"``: exact integer linear algebra and mpmath elementwise functions
  (:mod:`gradverify.exact.reference_mpmath`), verified by two working precisions that agree.

By default (``backend="auto"``) it takes Arb wherever python-flint is installed and the
problem uses built-in functions only, and falls back to mpmath wherever Arb cannot certify
(an exact zero reached by cancellation, a value on a kink: see :data:`ARB_PASSES`; a
registered function) or is not installed. Both give the same float64
bits, residuals included (tests/unit/test_reference_backends.py), except where the exact value
lies within 2**-p of a rounding tie (p: mpmath's working precision): mpmath then sees the tie
and rounds it to even, Arb takes the precision it needs and rounds correctly. The result's
``backend`` says which one computed it.
"""

from __future__ import annotations

from gradverify.common.errstate import with_own_errstate
from gradverify.exact.gradients import ReferenceGradients
from gradverify.exact.precision import (
    DEFAULT_BITS,
    MAX_PRECISION,
    ExactReferenceError,
    agree_to_bits,
)
from gradverify.exact.reference_flint import FLINT, flint_reference_gradients, supports_problem
from gradverify.exact.reference_mpmath import Dyadic, mpmath_backend, mpmath_reference_gradients
from gradverify.exact.rounding import round_to_float64, split_to_float64
from gradverify.model.network import Problem

__all__ = [
    "ARB_PASSES",
    "BACKENDS",
    "DEFAULT_BITS",
    "MAX_PRECISION",
    "Dyadic",
    "agree_to_bits",
    "ExactReferenceError",
    "ReferenceGradients",
    "describe_backend",
    "mpmath_backend",
    "reference_gradients",
    "round_to_float64",
    "split_to_float64",
]
"""``DEFAULT_BITS``, ``MAX_PRECISION``, ``ExactReferenceError`` and ``agree_to_bits`` live in
:mod:`gradverify.exact.precision`, ``round_to_float64`` and ``split_to_float64`` in
:mod:`gradverify.exact.rounding`, ``ReferenceGradients`` in :mod:`gradverify.exact.gradients`,
``Dyadic`` and ``mpmath_backend`` in :mod:`gradverify.exact.reference_mpmath`; they stay
importable from here."""

BACKENDS = ("auto", "flint", "mpmath")
"""The values of ``reference_gradients(..., backend=...)``."""

ARB_PASSES = 2
"""Passes the automatic choice lets Arb make with a ball stuck around 0 or on a kink before
it falls back to mpmath (:attr:`~gradverify.exact.reference_flint.Unsettled.STUCK`).

What two such passes leave is almost always an exact zero reached by cancellation or a value
exactly on a kink, which no precision separates and mpmath's exact integer arithmetic
decides. A ball that only straddles a rounding boundary gets all the precision it needs
(up to ``max_precision``): there the mpmath backend cannot be trusted to the last bit (a
value within 2**-p of a tie looks like the tie at p bits), and Arb settles it.
"""


@with_own_errstate
def reference_gradients(
    problem: Problem,
    *,
    bits: int = DEFAULT_BITS,
    max_precision: int = MAX_PRECISION,
    backend: str = "auto",
) -> ReferenceGradients:
    """Exact dJ/dW_i and dJ/db_i for ``problem``, certified (Arb) or verified (mpmath).

    Args:
        problem: the network, parameters and batch; their float values are taken exactly.
        bits: significant bits every gradient entry must be known to (80 by default).
        max_precision: give up (``ExactReferenceError``) rather than work beyond this many bits.
        backend: ``"auto"`` (Arb where it can certify, else mpmath), ``"flint"`` or ``"mpmath"``.

    Raises:
        ExactReferenceError: the gradients cannot be established (mpmath's precisions never
            agree, or a value leaves its domain; with ``backend="flint"``, anything Arb cannot
            certify).
        ImportError: ``backend="flint"`` without python-flint installed.
        ValueError: an unknown ``backend``.
    """
    if backend == "mpmath":
        return mpmath_reference_gradients(problem, bits=bits, max_precision=max_precision)
    if backend == FLINT:
        return flint_reference_gradients(problem, bits=bits, max_precision=max_precision)
    if backend != "auto":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if supports_problem(problem):
        try:
            return flint_reference_gradients(
                problem, bits=bits, max_precision=max_precision, max_stuck_passes=ARB_PASSES
            )
        except ExactReferenceError:
            pass  # not certified by Arb: mpmath decides
    return mpmath_reference_gradients(problem, bits=bits, max_precision=max_precision)


def describe_backend(backend: str) -> str:
    """What a result's ``backend`` computed with, in words (for reports and messages)."""
    if backend == FLINT:
        return "Arb ball arithmetic (python-flint)"
    arithmetic = backend.removeprefix("mpmath-")  # the bare "gmpy" / "python" too
    if arithmetic in ("gmpy", "python"):
        return f"mpmath on {'gmpy2' if arithmetic == 'gmpy' else 'Python'} integers"
    return backend
