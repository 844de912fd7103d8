"""The exact gradients of every float of a side at once: float64 enclosures, exact where close.

Judging all 65,536 floats of a 16-bit dtype one mpmath evaluation at a time takes tens of
seconds. Here the scan networks' exact gradients (:mod:`.exact_forms`) are evaluated for
a whole side in float64 with the forms that do not cancel, and each gets an **enclosure**
``[lo, hi]`` that contains the exact value:

* output: ``sigmoid(|h|) = 1/(1 + e)`` and ``sigmoid(-|h|) = e/(1 + e)``, ``e = exp(-|h|)``;
  ``sigmoid(h) - y`` is one of them (y = 0), minus the other (y = 1), or their difference
  with y (any other label, where it may cancel);
* hidden: ``sigmoid(act(h)) act'(h)`` with ``sigmoid'(h) = sigmoid(h) sigmoid(-h)`` and
  ``tanh'(h) = 4e/(1 + e)**2``, ``e = exp(-2|h|)``.

The enclosure's half-width is :data:`OUTPUT_RELATIVE_BOUND` (hidden:
:data:`HIDDEN_RELATIVE_BOUND`) times the value, plus :data:`ABSOLUTE_BOUND` for float64's
own underflow, and the sign of the exact value (known for y = 0 or 1 and for the hidden
unit, where it is never 0) is kept. The bounds assume numpy's float64 ``exp`` and ``tanh``
are within :data:`EXP_RELATIVE_ERROR` (16 ulps) of exact; the forms add a few roundings. That
assumption is checked by the tests against mpmath on every float16 and bfloat16 value, with
a margin of 16 times.

A decision (is the returned value the correctly rounded one; does its relative error reach
1e-3, 0.1, 1; does the exact value round to 0) is taken from the enclosure only when the
whole enclosure gives the same answer, with a further relative margin of 2**-40 on the
computed error; every other float is judged exactly (:func:`.observations.judge`, at
verified precision). The result is the judgement the scanner makes one float at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.engine.compare import elementwise_errors
from gradverify.exploration.scan.criteria import ERROR_LEVELS
from gradverify.exploration.scan.observations import judge
from gradverify.model.lattice import FloatFormat, round_to_format

__all__ = [
    "ABSOLUTE_BOUND",
    "EXP_RELATIVE_ERROR",
    "HIDDEN_RELATIVE_BOUND",
    "OUTPUT_RELATIVE_BOUND",
    "Enclosure",
    "Judged",
    "hidden_enclosure",
    "judge_side",
    "output_enclosure",
    "rounds_to_zero",
]

EXP_RELATIVE_ERROR = 2.0**-48
"""Assumed relative error of numpy's float64 exp and tanh (16 ulps; they are within 1)."""
OUTPUT_RELATIVE_BOUND = 2.0**-44
"""Half-width of the output gradient's enclosure, relative (16 times what the form needs)."""
HIDDEN_RELATIVE_BOUND = 2.0**-42
"""Half-width of the hidden gradient's enclosure, relative (16 times what the form needs)."""
ABSOLUTE_BOUND = 2.0**-1060
"""Added to every half-width: float64's own subnormal range (exp(-745) is already 0)."""
_DECISION_MARGIN = 2.0**-40  # a computed relative error this close to a level is not trusted


@dataclass(frozen=True)
class Enclosure:
    """``lo <= exact <= hi`` for every float of a side; ``mid`` is the float64 value;
    ``sign``: of every exact value (1 or -1; 0 where it may be either, or 0)."""

    lo: np.ndarray
    hi: np.ndarray
    mid: np.ndarray
    sign: int = 0


def _enclose(g: np.ndarray, half_width: np.ndarray, sign: int, outputs: int) -> Enclosure:
    """``g +- half_width``, divided by ``outputs``; ``sign``: of the exact value, 0 unknown."""
    if outputs != 1:
        g = g / outputs
        half_width = half_width / outputs * (1 + 2.0**-50)
    lo, hi = g - half_width, g + half_width
    if sign > 0:
        lo = np.maximum(lo, 0.0)
    elif sign < 0:
        hi = np.minimum(hi, -0.0)
    return Enclosure(lo, hi, g, sign)


def _sigmoids(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sigmoid(|h|), sigmoid(-|h|))`` in float64 without cancellation."""
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(h))
        return 1.0 / (1.0 + e), e / (1.0 + e)


def output_enclosure(h: np.ndarray, y: float, outputs: int = 1) -> Enclosure:
    """The exact output-probe gradient ``(sigmoid(h) - y) / outputs`` at every ``h``."""
    h = np.asarray(h, dtype=np.float64)
    big, small = _sigmoids(h)
    positive = h >= 0
    at_h, at_minus_h = np.where(positive, big, small), np.where(positive, small, big)
    if y == 0.0:
        g, sign, scale = at_h, 1, at_h
    elif y == 1.0:
        g, sign, scale = -at_minus_h, -1, at_minus_h
    else:  # sigmoid(h) - y may cancel: the bound is relative to the terms
        g, sign, scale = at_h - y, 0, at_h + abs(y)
    return _enclose(g, OUTPUT_RELATIVE_BOUND * scale + ABSOLUTE_BOUND, sign, outputs)


def hidden_enclosure(activation: str, h: np.ndarray, outputs: int = 1) -> Enclosure:
    """The exact hidden-probe gradient ``sigmoid(act(h)) act'(h) / outputs`` at every ``h``
    (``activation``: "sigmoid" or "tanh"; the output label is 0)."""
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(all="ignore"):
        if activation == "sigmoid":
            big, small = _sigmoids(h)
            z, slope = np.where(h >= 0, big, small), big * small
        elif activation == "tanh":
            e = np.exp(-2.0 * np.abs(h))
            z, slope = np.tanh(h), 4.0 * e / ((1.0 + e) * (1.0 + e))
        else:
            raise ValueError(f"no enclosure for hidden activation {activation!r}")
        g = slope / (1.0 + np.exp(-z))  # sigmoid(z): z is in [-1, 1], nothing cancels
    return _enclose(g, HIDDEN_RELATIVE_BOUND * g + ABSOLUTE_BOUND, 1, outputs)


def rounds_to_zero(
    enclosure: Enclosure, fmt: FloatFormat, exact_at: Callable[[int], bool]
) -> np.ndarray:
    """Whether each exact value rounds to 0 in ``fmt`` (``exact_at(i)`` decides where the
    enclosure straddles half the smallest subnormal)."""
    low = round_to_format(enclosure.lo, fmt) == 0
    high = round_to_format(enclosure.hi, fmt) == 0
    out = low & high
    for i in np.flatnonzero(low != high):
        out[i] = exact_at(int(i))
    return out


@dataclass(frozen=True)
class Judged:
    """The judgement of every float of a side (see :func:`judge_side`)."""

    bad: dict[str, np.ndarray]  # criterion -> bool per float (as Observation.bad)
    relative_error: np.ndarray  # the scanner's measure; nan: the call failed, or undecided
    bits: np.ndarray  # bits of error of the worse entry; nan as relative_error
    undecided: np.ndarray  # bool: the value is known only to a range that does not decide
    bounded: np.ndarray  # bool: relative_error and bits are upper bounds (value in a range)
    exactly_judged: int  # floats judged at verified precision, not from the enclosure


def _relative(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.abs(v - g) / np.abs(g)


def _entry_decisions(
    a: np.ndarray, b: np.ndarray, enc: Enclosure, rounded: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For one entry per float, returned as some float in ``[a, b]`` (``a == b``: that
    float): (levels reached (floats, levels), decided (floats,)). ``rounded``: the exact
    value correctly rounded, where ``known``. A level is decided when every float of the
    range and every value of the enclosure give the same answer.
    """
    levels = np.array(list(ERROR_LEVELS.values()))
    with np.errstate(all="ignore"):
        nonfinite = ~np.isfinite(a)
        holds_rounded = known & (a <= rounded) & (rounded <= b)  # a result of error 0
        correct = holds_rounded & (a == b)
        # every candidate on the other side of 0 from g (or 0): error >= 1 (exactly 1 at 0)
        opposite = known & ((b <= 0) & (enc.lo > 0) | (a >= 0) & (enc.hi < 0))
        overlap = (a <= enc.hi) & (enc.lo <= b)  # some candidate may equal g: error near 0
    corners = [_relative(v, g) for v in (a, b) for g in (enc.lo, enc.hi)]
    low = np.where(overlap, 0.0, np.minimum.reduce(corners))[:, None]
    high = np.maximum.reduce(corners)[:, None]
    reached = (low >= levels * (1 + _DECISION_MARGIN)) & ~holds_rounded[:, None]
    missed = high < levels * (1 - _DECISION_MARGIN)
    decided = known & np.all(reached | missed, axis=1)
    reached[opposite & ~holds_rounded] = levels <= 1.0
    decided |= opposite & ~holds_rounded & np.all(levels <= 1.0)
    reached[correct] = False
    reached[nonfinite] = True
    return reached, decided | correct | nonfinite


def _bounds_of_entries(
    values: np.ndarray, ranges: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, in a range) per entry: the value itself, or the range it is known to."""
    if ranges is None:
        return values, values, np.zeros(values.shape, dtype=bool)
    unknown = np.isnan(values) & ~np.isnan(ranges[0])
    return np.where(unknown, ranges[0], values), np.where(unknown, ranges[1], values), unknown


def judge_side(
    values: np.ndarray,
    returned: np.ndarray,
    enc: Enclosure,
    fmt: FloatFormat,
    exact_at: Callable[[int], Any],
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
) -> Judged:
    """Judge every float of a side as :func:`.observations.judge` would, one at a time.

    ``values``: (floats, entries) float64, the returned entries compared at each float
    (dJ/dW and dJ/db); ``returned``: whether the call at each float returned (failed calls
    are only ``raises``); ``enc``: the exact gradients' enclosure; ``exact_at(i)``: the
    exact gradient (mpf) at float ``i``, for the floats the enclosure does not decide.
    ``ranges``: ``(low, high)`` like ``values``, bounding the entries not known exactly
    (NaN in ``values``; a range from 0 holds only floats of one sign); a float whose range
    does not decide every criterion is ``undecided`` (it needs a call of its own).
    """
    n, entries = values.shape
    with np.errstate(all="ignore"):
        r_lo, r_hi = round_to_format(enc.lo, fmt), round_to_format(enc.hi, fmt)
    same_sign = (np.sign(enc.lo) == np.sign(enc.hi)) & (enc.lo != 0)
    known = (r_lo == r_hi) & (same_sign | (enc.sign != 0))  # the exact value is not 0
    low, high, in_range = _bounds_of_entries(values, ranges)
    reached = np.zeros((n, len(ERROR_LEVELS)), dtype=bool)
    decided = returned.copy()
    nonfinite = np.zeros(n, dtype=bool)
    for k in range(entries):
        hits, ok = _entry_decisions(low[:, k], high[:, k], enc, r_lo, known)
        reached |= hits
        decided &= ok
        nonfinite |= ~np.isfinite(low[:, k])
    nonfinite &= returned
    bounded = returned & in_range.any(axis=1)
    undecided = bounded & ~decided
    rel, bits = _measures(low, high, enc, r_lo, fmt)
    exact = np.flatnonzero(returned & ~decided & ~bounded)
    for i in exact:
        status, _, exact_rel, bad = judge(tuple(values[i]), exact_at(int(i)), fmt)
        reached[i] = [c in bad for c in ERROR_LEVELS]
        nonfinite[i] = status == "nonfinite"
        rel[i] = exact_rel
    reached &= (returned & ~undecided)[:, None]
    bad = {c: reached[:, k] for k, c in enumerate(ERROR_LEVELS)}
    bad["nonfinite"] = nonfinite
    bad["raises"] = ~returned
    rel = np.where(returned & ~undecided, rel, np.nan)
    bits = np.where(returned & ~undecided, bits, np.nan)
    return Judged(bad, rel, bits, undecided, bounded, len(exact))


def _measures(
    low: np.ndarray, high: np.ndarray, enc: Enclosure, rounded: np.ndarray, fmt: FloatFormat
) -> tuple[np.ndarray, np.ndarray]:
    """(relative error, bits) of the worse entry from the float64 exact value: exact up to
    float64 rounding where the entry is known, an upper bound where it is a range."""
    n = low.shape[0]
    zeros = np.zeros((n, 1))
    rel, bits = np.zeros(n), np.zeros(n)
    for side in (low, high):
        errors = elementwise_errors(side, enc.mid[:, None], zeros, fmt.dtype)
        with np.errstate(all="ignore"):
            r = np.where((side == rounded[:, None]) & (low == high), 0.0, errors.relative)
            r = np.where(np.isfinite(side), r, np.inf)
        rel = np.maximum(rel, r.max(axis=1))
        bits = np.maximum(bits, errors.bits.max(axis=1))
    return rel, bits
