"""Verified working precision: the one loop every exact computation runs.

An exact value (a reference gradient, one of the scan's closed forms, a plain function's
mpmath derivative) is computed at a working precision ``p`` and again at ``2p``, and accepted
only when the two agree to the bits needed (:func:`agree_to_bits`); otherwise ``p`` doubles.
:func:`verified_precision` is that loop, :func:`working_precisions` the sequence of
precisions it (and the Arb reference, which certifies one precision at a time) may use, and
:data:`MAX_PRECISION` the one cap on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mpmath import libmp

__all__ = [
    "DEFAULT_BITS",
    "MAX_PRECISION",
    "ExactReferenceError",
    "agree_to_bits",
    "outside_domain",
    "verified_precision",
    "working_precisions",
]

DEFAULT_BITS = 80
"""Significant bits on which two precisions must agree: enough to round to float64 correctly."""

MAX_PRECISION = 1 << 16
"""The most working bits (65,536) any exact computation uses before it gives up.

Doubling from about 100 bits reaches it after 10 passes. A value that two precisions cannot
pin down by then is no float-scale quantity (an exact zero reached by cancellation, say),
and one ``exp`` at 2**16 bits already takes about 15 ms on gmpy2. Every loop checks the cap
before it computes, so no pass runs beyond it.
"""

T = TypeVar("T")


class ExactReferenceError(ArithmeticError):
    """The exact reference could not be established (outside its domain, or no agreement)."""


def agree_to_bits(a: Any, b: Any, bits: int) -> bool:
    """|a - b| <= 2**-bits |b|, decided exactly on the raw mpf tuples (conservatively)."""
    diff = libmp.mpf_sub(a._mpf_, b._mpf_)  # no precision given: exact
    if diff == libmp.fzero:
        return True
    _, b_man, b_exp, b_bc = b._mpf_
    if not b_man:
        return False
    _, _, d_exp, d_bc = diff
    # |diff| < 2**(d_exp + d_bc) and |b| >= 2**(b_exp + b_bc - 1)
    return d_exp + d_bc <= b_exp + b_bc - 1 - bits


def working_precisions(start: int, max_precision: int = MAX_PRECISION) -> Iterator[int]:
    """``start``, then doubled for as long as it stays within ``max_precision``.

    ``start`` itself always comes first: a caller's first pass is never refused.
    """
    prec = start
    yield prec
    while 2 * prec <= max_precision:
        prec *= 2
        yield prec


def verified_precision(
    compute: Callable[[int], T],
    agree: Callable[[T, T], bool],
    *,
    start: int,
    bits: int,
    what: str,
    max_precision: int = MAX_PRECISION,
) -> tuple[T, int]:
    """``compute`` at ``start`` and twice that, doubling until two passes ``agree``.

    Args:
        compute: the value at a working precision (bits).
        agree: whether the pass at ``p`` (first) and the one at ``2p`` (second) agree to
            ``bits`` bits; usually :func:`agree_to_bits` on every entry.
        start: the working precision of the first pass.
        bits: the bits ``agree`` asks for (for the message).
        what: the value's name, for the message (``"reference gradients"``).
        max_precision: no pass runs beyond this many bits.

    Returns:
        ``(value, precision)``: the higher-precision pass that agreed, and its precision.

    Raises:
        ExactReferenceError: no two passes agreed within ``max_precision``.
    """
    precisions = working_precisions(start, max_precision)
    low = compute(next(precisions))
    for prec in precisions:
        high = compute(prec)
        if agree(low, high):
            return high, prec
        low = high
    raise ExactReferenceError(
        f"{what} did not agree to {bits} bits below {max_precision} bits of working precision"
    )


@contextmanager
def outside_domain(what: str) -> Iterator[None]:
    """Turn mpmath's domain errors (ValueError, ZeroDivisionError, OverflowError) into
    :class:`ExactReferenceError` ``"{what} is outside its domain: ..."``."""
    try:
        yield
    except (ValueError, ZeroDivisionError, OverflowError) as exc:
        raise ExactReferenceError(f"{what} is outside its domain: {exc}") from exc
