"""Measuring error against the exact reference, and the tolerance that decides pass or fail.

Error measures (all dimensionless):

* relative error ``|a - r| / |r|`` (0 when both are 0, inf when only r is 0);
* normwise relative error per tensor ``||a - r||_2 / ||r||_2``;
* ULPs: ``|a - r|`` in units of the spacing of the dtype under test at ``r``;
* bits of error: ``log2(1 + ulps)`` (Herbie's measure), with inf/NaN counted as the
  dtype's full width (16, 32 or 64). It is finite, so it can be handed to ``target()``.

``r`` is carried as a double-double (``hi + lo``), so the errors of float64 implementations
are measured without the reference's own rounding.

The tolerance is not a guessed atol/rtol: for every tensor it is ``factor`` times the
normwise error that the stable float baseline attains on the *same* problem at the *same*
dtype (floored at the dtype's unit roundoff).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradverify.dtypes import resolve_dtype, ulp, unit_roundoff

__all__ = [
    "DEFAULT_TOLERANCE_FACTOR",
    "ElementwiseErrors",
    "elementwise_errors",
    "normwise_error",
    "tolerance",
]

DEFAULT_TOLERANCE_FACTOR = 32.0
"""How many times worse than the stable baseline a tensor may be (5 bits of slack)."""


def full_width_bits(dtype: str | np.dtype) -> float:
    """The bit width of the dtype: the bits of error assigned to inf/NaN."""
    return float(resolve_dtype(dtype).itemsize * 8)


@dataclass(frozen=True)
class ElementwiseErrors:
    """Errors of one tensor, each an array of the tensor's shape (float64)."""

    absolute: np.ndarray  # |a - r|, inf where a is not finite
    relative: np.ndarray
    ulps: np.ndarray
    bits: np.ndarray
    nonfinite: np.ndarray  # bool: a is inf/NaN while r is finite


def elementwise_errors(
    value: np.ndarray, ref_hi: np.ndarray, ref_lo: np.ndarray, dtype: str | np.dtype
) -> ElementwiseErrors:
    """Errors of ``value`` (any float dtype) against the reference ``ref_hi + ref_lo``."""
    a = np.asarray(value).astype(np.float64)
    with np.errstate(all="ignore"):
        nonfinite = ~np.isfinite(a) & np.isfinite(ref_hi)
        absolute = np.abs((a - ref_hi) - ref_lo)
        absolute = np.where(nonfinite, np.inf, absolute)
        relative = np.where(absolute == 0, 0.0, absolute / np.abs(ref_hi))
        ulps = np.where(absolute == 0, 0.0, absolute / ulp(ref_hi, dtype))
        width = full_width_bits(dtype)
        bits = np.where(np.isfinite(ulps), np.minimum(np.log2(1 + ulps), width), width)
    return ElementwiseErrors(absolute, relative, ulps, bits, nonfinite)


def normwise_error(value: np.ndarray, ref_hi: np.ndarray, ref_lo: np.ndarray) -> float:
    """``||a - r||_2 / ||r||_2``, scaled against overflow; 0/0 is 0, x/0 is inf."""
    a = np.asarray(value).astype(np.float64)
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(a)):
            return float("inf")
        diff = (a - ref_hi) - ref_lo
        scale = max(float(np.max(np.abs(diff), initial=0.0)),
                    float(np.max(np.abs(ref_hi), initial=0.0)))
        if scale == 0.0:
            return 0.0
        num = float(np.linalg.norm(diff / scale))
        den = float(np.linalg.norm(ref_hi / scale))
        if num == 0.0:
            return 0.0
        return num / den if den > 0 else float("inf")


def tolerance(baseline_error: float, dtype: str | np.dtype,
              factor: float = DEFAULT_TOLERANCE_FACTOR) -> float:
    """The normwise tolerance for one tensor: ``factor * max(baseline_error, u)``.

    A non-finite baseline error (the stable baseline itself overflowed) gives an infinite
    tolerance for that tensor: the dtype cannot represent the answer.
    """
    return factor * max(float(baseline_error), unit_roundoff(dtype))
