"""Measuring error against the exact reference, and the tolerance that decides pass or fail.

Error measures (all dimensionless):

* relative error ``|a - r| / |r|`` (0 when both are 0, inf when only r is 0);
* normwise relative error per tensor ``||a - r||_2 / ||r||_2``;
* ULPs: ``|a - r|`` in units of the spacing of the dtype under test at ``r``;
* bits of error: ``log2(1 + ulps)`` (Herbie's measure), with inf/NaN counted as the
  dtype's full width (16, 32 or 64). It is finite, so it can be handed to ``target()``.

``r`` is carried as a double-double (``hi + lo``), so the errors of float64 implementations
are measured without the reference's own rounding.

The tolerance is not a guessed atol/rtol. Two float baselines run on the *same* problem at
the *same* dtype: the best stable formulation and the conventional autograd formulation
(what torch and jax compute). Under the default policy, ``"autograd"``, a tensor passes when

* it has no inf/NaN where the exact gradient (and the stable baseline) is finite, and
* its error *beyond the rounding floor* is within ``factor`` times the larger of the two
  baselines' normwise errors, floored at the unit roundoff.

The rounding floor (:mod:`gradverify.engine.bounds`) is an a-priori elementwise bound on what
correct float arithmetic may do to each entry; only the part of ``|a - r|`` above it counts:
``||max(|a - r| - floor, 0)||_2 / ||r||_2``. A multiple of one lucky rounding of a baseline
is thus never the only bar, and an exact zero reached by cancellation accepts a result at
the scale of the terms that cancelled.

The ``"strict"`` policy drops the conventional baseline and bounds the stable formulation's
arithmetic only: as accurate as the best formulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradverify.model.dtypes import resolve_dtype, ulp, unit_roundoff
from gradverify.model.names import check_name

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_TOLERANCE_FACTOR",
    "POLICIES",
    "ElementwiseErrors",
    "elementwise_errors",
    "error_beyond_floor",
    "normwise_error",
    "tolerance",
    "validate_policy",
    "validate_tolerance_factor",
]

DEFAULT_TOLERANCE_FACTOR = 32.0
"""How many times worse than the baselines a tensor may be (5 bits of slack)."""

POLICIES: dict[str, str] = {
    "autograd": "as accurate as framework autograd",
    "strict": "as accurate as the best stable formulation",
}
"""The accuracy bars a verdict can be judged against, and what passing each one means."""

DEFAULT_POLICY = "autograd"


def validate_tolerance_factor(factor: float) -> float:
    """``factor`` as a float if it is finite and positive, else a ValueError naming it.

    An infinite factor would let any finite error pass.
    """
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise ValueError(f"tolerance_factor must be a number; got {factor!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"tolerance_factor must be finite and positive; got {factor!r}")
    return value


def validate_policy(policy: str) -> str:
    """``policy`` if it names a known policy, else a ValueError listing them."""
    return check_name("policy", policy, POLICIES)


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
    a = np.asarray(value, dtype=np.float64)  # a copy only when converting
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
    a = np.asarray(value, dtype=np.float64)  # a copy only when converting
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(a)):
            return float("inf")
        return _norm_ratio((a - ref_hi) - ref_lo, ref_hi)


def _norm_ratio(diff: np.ndarray, ref: np.ndarray) -> float:
    """``||diff||_2 / ||ref||_2``, scaled against overflow; 0/0 is 0, x/0 is inf."""
    with np.errstate(all="ignore"):
        scale = max(
            float(np.max(np.abs(diff), initial=0.0)), float(np.max(np.abs(ref), initial=0.0))
        )
        if scale == 0.0:
            return 0.0
        num = float(np.linalg.norm(diff / scale))
        den = float(np.linalg.norm(ref / scale))
        if num == 0.0:
            return 0.0
        return num / den if den > 0 else float("inf")


def error_beyond_floor(
    value: np.ndarray, ref_hi: np.ndarray, ref_lo: np.ndarray, floor: np.ndarray
) -> float:
    """``||max(|a - r| - floor, 0)||_2 / ||r||_2``: the normwise error the floor does not excuse.

    0 when every entry is within its floor; inf when the reference is all zero and some
    entry is not within its floor, or when ``a`` has inf/NaN.
    """
    a = np.asarray(value, dtype=np.float64)  # a copy only when converting
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(a)):
            return float("inf")
        beyond = np.maximum(np.abs((a - ref_hi) - ref_lo) - floor, 0.0)
        return _norm_ratio(beyond, ref_hi)


def tolerance(
    baseline_error: float,
    dtype: str | np.dtype,
    factor: float = DEFAULT_TOLERANCE_FACTOR,
    autograd_error: float | None = None,
) -> float:
    """The normwise tolerance for one tensor: ``factor * max(baseline errors, u)``.

    ``baseline_error`` is the stable baseline's; a non-finite one (the stable formulation
    itself overflowed) gives an infinite tolerance for that tensor: the dtype cannot
    represent the answer. ``autograd_error``, the conventional baseline's (None under the
    strict policy), counts only when finite.
    """
    errors = [float(baseline_error), unit_roundoff(dtype)]
    if autograd_error is not None and np.isfinite(autograd_error):
        errors.append(float(autograd_error))
    return factor * max(errors)
