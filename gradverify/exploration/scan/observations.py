"""One call of the implementation at one float, judged against the exact gradient.

The measure (see :mod:`.criteria`): a returned value equal to the exact gradient correctly
rounded to the dtype has error 0; any other has ``|a - g| / |g|`` (inf if ``g == 0``),
decided exactly where it lies close to an error level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpmath import libmp

from gradverify.engine.compare import elementwise_errors
from gradverify.exact.rounding import round_mpf
from gradverify.exploration.scan.criteria import ERROR_LEVELS
from gradverify.model.lattice import FloatFormat

__all__ = ["Observation", "error_bits", "judge"]


@dataclass(frozen=True)
class Observation:
    h: float
    status: str  # "ok", "nonfinite", "error"
    values: tuple[float, ...]  # the returned entries compared (float64); () on error
    gradient: float | None  # the returned entry with the larger error; None on error
    exact: float  # exact gradient as a double-double exact + exact_low
    exact_low: float
    relative_error: float  # the scanner's measure; inf when nonfinite, nan on error
    bad: frozenset[str]  # the criteria this float fails
    message: str | None = None


def error_bits(observations: Sequence[Observation], fmt: FloatFormat) -> list[float]:
    """Bits of error (log2(1 + ulps)) of the worse returned entry; nan where the call failed."""
    values, hi, lo, owner = [], [], [], []
    for k, o in enumerate(observations):
        for v in o.values:
            values.append(v)
            hi.append(o.exact)
            lo.append(o.exact_low)
            owner.append(k)
    out = [math.nan] * len(observations)
    if values:
        bits = elementwise_errors(np.array(values), np.array(hi), np.array(lo), fmt.dtype).bits
        for k, b in zip(owner, bits.tolist(), strict=True):
            out[k] = b if math.isnan(out[k]) else max(out[k], b)
    return out


def _relative_error_reaches(a: float, g: Any, levels: Sequence[float]) -> list[bool]:
    """For each level t: |a - g| >= t |g|, decided exactly (a finite, g != 0)."""
    diff = libmp.mpf_abs(libmp.mpf_sub(libmp.from_float(a), g._mpf_))
    gabs = libmp.mpf_abs(g._mpf_)
    return [libmp.mpf_cmp(diff, libmp.mpf_mul(libmp.from_float(t), gabs)) >= 0 for t in levels]


def _relative_error(a: float, g: Any) -> float:
    diff = libmp.mpf_abs(libmp.mpf_sub(libmp.from_float(a), g._mpf_))
    return libmp.to_float(libmp.mpf_div(diff, libmp.mpf_abs(g._mpf_), 64, libmp.round_nearest))


def _judge_value(a: float, g: Any, rounded: float) -> tuple[float, list[bool]]:
    """(relative error, whether it reaches each error level) of one returned value ``a``."""
    if not math.isfinite(a):
        return math.inf, [True] * len(ERROR_LEVELS)
    if a == rounded:
        return 0.0, [False] * len(ERROR_LEVELS)
    if not g:
        return math.inf, [True] * len(ERROR_LEVELS)
    levels = list(ERROR_LEVELS.values())
    rel = _relative_error(a, g)  # to 64 bits: decides unless within 2**-50 of a level
    if any(abs(rel - t) <= t * 2.0**-50 for t in levels):
        return rel, _relative_error_reaches(a, g, levels)
    return rel, [rel >= t for t in levels]


def judge(
    values: Sequence[float], g: Any, fmt: FloatFormat
) -> tuple[str, float, float, frozenset[str]]:
    """(status, worst value, relative error, failed criteria) of the returned entries."""
    rounded = round_mpf(g, fmt)
    worst_value, worst_rel = values[0], -1.0
    reached = dict.fromkeys(ERROR_LEVELS, False)
    nonfinite = False
    for a in dict.fromkeys(values):  # dJ/dW and dJ/db usually agree: judge each value once
        rel, hits = _judge_value(a, g, rounded)
        nonfinite = nonfinite or not math.isfinite(a)
        for key, hit in zip(ERROR_LEVELS, hits, strict=True):
            reached[key] = reached[key] or hit
        if rel > worst_rel or (math.isnan(a) and not math.isnan(worst_value)):
            worst_value, worst_rel = a, rel
    bad = {k for k, hit in reached.items() if hit}
    if nonfinite:
        bad.add("nonfinite")
    return ("nonfinite" if nonfinite else "ok"), worst_value, worst_rel, frozenset(bad)
