"""Exact values to floats: correct rounding of an mpmath value, in one step.

:func:`round_mpf` rounds an exact (mpmath) value to the nearest float of a dtype (ties to
even), subnormals and overflow included and for any exponent, so a reference is never
rounded twice. :func:`round_to_float64` is its float64 case and :func:`split_to_float64`
the double-double ``hi + lo`` that keeps 106 bits of an exact value in two float64s.
"""

from __future__ import annotations

import math
from typing import Any

from mpmath import libmp

from gradverify.model.lattice import FloatFormat, float_format

__all__ = ["round_mpf", "round_to_float64", "split_to_float64"]

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
