"""Exact values to floats: correct rounding of an mpmath value, in one step.

:func:`round_mpf` rounds an exact (mpmath) value to the nearest float of a dtype (ties to
even), subnormals and overflow included and for any exponent, so a reference is never
rounded twice. :func:`round_to_float64` is its float64 case and :func:`split_to_float64`
the double-double ``hi + lo`` that keeps 106 bits of an exact value in two float64s.
:func:`double_double` is the split the exact reference returns: the same, except that a
residual too small to be known at the reference's accuracy is 0.
"""

from __future__ import annotations

import math
from typing import Any

from mpmath import libmp

from gradverify.model.lattice import FloatFormat, float_format

__all__ = ["double_double", "round_mpf", "round_to_float64", "split_to_float64"]

_FLOAT64 = float_format("float64")


def round_mpf(x: Any, fmt: FloatFormat) -> float:
    """Round an mpmath ``mpf`` to the nearest float of ``fmt`` (ties to even), in one step.

    Subnormals round to the fixed spacing ``fmt.min_subnormal``; magnitudes at or beyond
    ``max_finite + ulp/2`` give +-inf. The result is returned as an exact float64.
    ``x`` may also be a raw mpf tuple ``(sign, man, exp, bc)``. Any exponent works.
    """
    raw = getattr(x, "_mpf_", x)
    sign, man, exp, bc = raw
    if not man:
        if raw[2] == 0 and raw[3] == 0:  # +0 or -0 (not every mpmath names -0)
            return -0.0 if sign else 0.0
        return libmp.to_float(raw)  # inf or nan
    p = fmt.precision
    top = exp + bc - 1  # |x| in [2**top, 2**(top + 1))
    if top >= fmt.emin:
        bits_kept = p
    else:
        # subnormal: the spacing is 2**(emin - p + 1), so fewer significant bits survive
        bits_kept = top - (fmt.emin - p + 1) + 1
    if bits_kept <= 0:
        # |x| < spacing: rounds to 0, or to the smallest subnormal if above half of it
        half_exponent = fmt.emin - p  # spacing / 2 = 2**half_exponent
        above_half = top > half_exponent or (top == half_exponent and bc > 1)
        magnitude = fmt.min_subnormal if (above_half and bits_kept == 0) else 0.0
        return -magnitude if sign else magnitude
    r_sign, r_man, r_exp, r_bc = libmp.normalize(sign, man, exp, bc, bits_kept, libmp.round_nearest)
    if r_exp + r_bc - 1 > fmt.emax:
        return -math.inf if r_sign else math.inf
    value = math.ldexp(float(r_man), r_exp)  # exact: r_man has at most p <= 53 bits
    return -value if r_sign else value


def round_to_float64(x: Any) -> float:
    """Correctly rounded (to nearest, ties to even) float64 value of an mpf, subnormals included.

    Any exponent works: beyond float64's range the result is +-inf or +-0.
    """
    return round_mpf(x, _FLOAT64)


def split_to_float64(x: Any) -> tuple[float, float]:
    """``(hi, lo)``: hi = x rounded to float64, lo = (x - hi) rounded (the difference exactly)."""
    hi = round_to_float64(x)
    if hi == 0.0 or not math.isfinite(hi):
        return hi, 0.0
    residual = libmp.mpf_sub(getattr(x, "_mpf_", x), libmp.from_float(hi))  # exact: no prec
    return hi, round_to_float64(residual)


def double_double(x: Any, bits: int) -> tuple[float, float]:
    """``(hi, lo)`` of an exact value known to ``bits`` significant bits.

    ``hi`` is ``x`` correctly rounded to float64 and ``lo`` the residual ``x - hi``
    correctly rounded, as :func:`split_to_float64` gives them, except that ``lo`` is
    ``0.0`` wherever ``|x - hi| < 2**-bits |hi|`` (and wherever it rounds to zero): a residual
    below the accuracy asked for is not a property of ``x`` that a reference could verify
    (an exact float64 reached through ``exp`` and ``log`` has a residual of 0 that no
    finite precision pins down). The pair is a monotone function of ``x`` (ordered by
    ``hi``, then ``lo``), so every value between two with the same pair has that pair too.
    ``x`` may also be a raw mpf tuple.
    """
    raw = getattr(x, "_mpf_", x)
    sign, man, exp, bc = raw
    if man and _SAFE_TOP[0] <= exp + bc - 1 <= _SAFE_TOP[1]:
        pair = _double_double_normal(sign, int(man), exp, bc, bits)
        if pair is not None:
            return pair
    return _double_double_general(raw, bits)


_SAFE_TOP = (-1022 + 60, 1023 - 1)
"""Binary exponents of ``x`` for which ``hi`` is a normal float64 however it rounds."""


def _nearest(magnitude: int, exponent: int) -> float:
    """``magnitude * 2**exponent`` (magnitude > 0) rounded to nearest float64 (ties to even),
    if the result is a normal float64 (else possibly double-rounded: callers check)."""
    extra = magnitude.bit_length() - 64
    if extra > 0:  # keep 64 bits and a sticky bit below the rounding position
        head = magnitude >> extra
        if head << extra != magnitude:
            head |= 1
        magnitude, exponent = head, exponent + extra
    return math.ldexp(float(magnitude), exponent)  # int -> float rounds correctly


def _double_double_normal(
    sign: int, man: int, exp: int, bc: int, bits: int
) -> tuple[float, float] | None:
    """:func:`double_double` in integer arithmetic where ``hi`` is normal; None where ``lo``
    might be subnormal (the general path rounds it)."""
    if bc <= 53:  # x is a float64
        hi = math.ldexp(float(man), exp)
        return (-hi if sign else hi), 0.0
    hi = _nearest(man, exp)
    fraction, hi_exp = math.frexp(hi)
    hi_man, hi_exp = int(fraction * 2.0**53), hi_exp - 53  # hi = hi_man 2**hi_exp, hi_exp > exp
    residual = man - (hi_man << (hi_exp - exp))  # x - hi = residual 2**exp, exactly
    if not residual:
        return (-hi if sign else hi), 0.0
    shift = hi_exp - bits - exp  # 2**-bits hi = hi_man 2**(shift + exp)
    below = abs(residual) < hi_man << shift if shift >= 0 else abs(residual) << -shift < hi_man
    if below:
        return (-hi if sign else hi), 0.0
    if exp + abs(residual).bit_length() - 1 < -1022 + 1:  # lo near or below the subnormals
        return None
    lo = _nearest(abs(residual), exp)
    if residual < 0:
        lo = -lo
    return (-hi, -lo) if sign else (hi, lo)


def _double_double_general(raw: tuple, bits: int) -> tuple[float, float]:
    """:func:`double_double` through :func:`round_to_float64`, for any exponent."""
    hi = round_to_float64(raw)
    if hi == 0.0 or not math.isfinite(hi):
        return hi, 0.0
    residual = libmp.mpf_sub(raw, libmp.from_float(hi))  # exact: no prec
    _, h_man, h_exp, h_bc = libmp.from_float(abs(hi))
    threshold = (0, h_man, h_exp - bits, h_bc)  # 2**-bits |hi|, exactly
    if libmp.mpf_lt(libmp.mpf_abs(residual), threshold):
        return hi, 0.0
    lo = round_to_float64(residual)
    return hi, lo if lo != 0.0 else 0.0
