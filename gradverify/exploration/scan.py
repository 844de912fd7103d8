"""Stability scanner: the exact floats where an implementation's BCE gradient breaks.

:func:`scan` walks the float lattice of each dtype (float16, bfloat16, float32, float64)
outward from 0 and finds, for any implementation of the backprop protocol, the **first
float** at which its gradient goes wrong, and how its error grows on the way there.

Output layer
------------
A one-layer network (1 input, 1 output, sigmoid, ``bce``; ``x = 1``, ``W = 0``, batch 1)
whose bias is set to a float ``b`` of the dtype, so the logit is ``h = 0*1 + b = b``
exactly: every float of the lattice is hit. The exact gradient is
``dJ/db = dJ/dW = sigmoid(h) - y``, evaluated in mpmath with cancellation-free forms
(``(1 - y) - e/(1 + e)``, ``e = exp(-h)``, for h >= 0; ``e/(1 + e) - y``, ``e = exp(h)``,
otherwise) at two working precisions that must agree to 80 bits. For each side of 0 and
each label the scanner reports the first float where

* ``nonfinite``: the returned dJ/db or dJ/dW is inf or NaN;
* ``error_1e-3``, ``error_1e-1``, ``error_1``: the relative error of the worse of the two
  reaches 1e-3, 0.1 and 1 (100%). "Reaches" (``>=``) because a gradient returned as
  exactly 0 has a relative error of exactly 1: it has lost all information;
* ``raises``: the call fails (raises, exceeds the time limit, returns something malformed).
  A failed call is counted only here, never as inf/NaN or as an error level.

The error measure: a result equal to the exact gradient **correctly rounded to the dtype**
has error 0, since the dtype cannot do better. This is what happens when the exact value
underflows (a 0 returned where the exact value is below half the smallest subnormal is
correct), in the subnormal range, and in bfloat16, whose unit roundoff 2**-8 exceeds 1e-3.
Any other result has error ``|a - g| / |g|`` (inf if ``g == 0``), compared exactly.

Search and verification
-----------------------
On each side floats are addressed by lattice index (the bit pattern without the sign,
:mod:`gradverify.model.lattice`), so "the next float" is index + 1. Each criterion is bisected
over ``[0, max finite]``. Bisection assumes monotonicity, so the result is **verified** by
evaluating the criterion on

* every float within ``neighbourhood`` ULPs of the threshold, points spread over the octave
  below it, and every 16th of the 1024 floats below it;
* ``check_points`` floats spread over the whole lattice and over the saturation range
  (1/8 to twice ``ln(1/smallest subnormal)``);
* or, with ``exhaustive=True``, every finite float of a 16-bit dtype.

A bad float found below the threshold moves it down (bisecting between checked floats, at
most 4 times). Where the criterion is *noisy* at the threshold (it moved, or a good float
lies within 1024 after it), all 1024 floats below are checked, and again below any earlier
bad float found, up to 4 windows. ``checked_below`` counts the consecutive floats just
below the threshold that were checked and are good; a threshold whose search below hit a
limit is not ``settled`` (``<=`` in the table: the first bad float is at or below it).
Rounding noise near an error level makes such criteria bad, good and bad again across
many floats (epsilon's ``error_1e-3`` in float32 is one); only ``exhaustive`` settles them
completely.

A good float after the threshold is a **recovery**: the criterion is not monotone there.
The first 8 regions are reported (the first 2 with edges located by bisection), and all
are counted. One kind is expected: once the exact gradient underflows, a returned 0 is
correctly rounded and counts as good again. A criterion bad nowhere is reported as never
reached; for ``nonfinite`` this is "finite throughout", never a threshold at the end of
the range.

Hidden layers
-------------
A 1 -> 1 -> 1 network (hidden sigmoid or tanh, output sigmoid with ``bce``, ``x = 1``,
``W1 = 0``, ``b1 = h``, ``W2 = 1``, ``b2 = 0``, ``y = 0``): the hidden pre-activation is
exactly ``h`` and ``dJ/dW1 = sigmoid(act(h)) act'(h)``. Per dtype, activation and side the
scanner reports the first float where the returned ``dJ/dW1`` is exactly 0 although the
exact value is not (``first_zero``), and the first float where the exact value itself
rounds to 0 in the dtype (``representable_limit``): an implementation whose first zero
comes earlier underflows before the dtype forces it to.

Declared architectures
----------------------
An implementation that declares its depth, widths or batch (:func:`gradverify.supports`)
is scanned inside them: the probe network gets the smallest allowed depth (at least 2 for
the hidden-layer scan), the declared widths (1 where free) and the smallest allowed batch.
The layers before the probed one have ``W = 0``, ``b = 0`` (a sigmoid where declared,
else the first declared activation), so they cannot change the probed logit; every
output unit gets the same bias and label, and the exact gradients are divided by the
number of outputs (the loss is a mean over all elements). Deeper than that, the output
scan compares only ``dJ/db_L`` and the hidden scan ``dJ/db_{L-1}``. A declared depth of
exactly 1 leaves no hidden layer: the hidden-layer scan is then skipped (naming hidden
activations explicitly is an error).

Sweep data
----------
For each implementation x dtype x label x side, points log-spaced in |h| (rounded to the
lattice) from 1/16 past the thresholds, plus the floats next to every threshold, with the
bits of error (:func:`gradverify.engine.compare.elementwise_errors`: ``log2(1 + ulps)``, inf/NaN
counting as the dtype's width) and the relative error above, exact at every point.

JSON (``"schema": "gradverify.scan/1"``, JSON Schema in ``gradverify/schemas/``)
-------------------------------------------------------------------------------
Floats are numbers, or the strings ``"inf"``, ``"-inf"``, ``"nan"``; missing values null.

* document (:func:`scan_document`): ``schema``, ``gradverify_version``, ``mpmath_backend``,
  ``criteria`` (key -> description), ``scans`` (a list of the objects below).
* scan (:meth:`ScanResult.to_dict`): ``schema``, ``implementation``, ``dtypes``, ``labels``,
  ``settings`` (``check_points``, ``neighbourhood``, ``exhaustive``, ``sweep_points``,
  ``timeout``), ``elapsed`` (s), ``rows``, ``hidden``, ``sweeps``.
* row: ``implementation``, ``dtype``, ``label``, ``sides`` (``positive`` and ``negative``).
* side: ``side``, ``finite_throughout``, ``raises_anywhere``, ``checked_points``,
  ``verification`` (``"exhaustive"`` or ``"sampled"``), ``max_relative_error`` and
  ``max_error_bits`` over the checked points that returned, ``thresholds`` (criterion ->
  threshold).
* threshold: ``criterion``, ``found``; when found: ``index`` (lattice steps from 0),
  ``value`` (exact, as a float64), ``decimal`` (shortest string reading back to it),
  ``bits`` (hex bit pattern in the dtype), ``previous_value``/``previous_bits`` (the float
  just inside it, which is good), ``status`` (``ok``/``nonfinite``/``error`` there),
  ``gradient`` (returned), ``exact``, ``relative_error``, ``message`` (for ``error``);
  ``checked_below``, ``settled``; always: ``monotone``, ``recovery_count``,
  ``recoveries`` (``start``/``end`` values and bits of regions after the threshold where
  the criterion no longer fails, ``refined`` when the edges were bisected; at most 8).
* hidden: ``implementation``, ``dtype``, ``activation``, ``side``, ``first_zero``,
  ``representable_limit`` (thresholds), ``checked_points``, ``verification``,
  ``nonfinite_points``, ``error_points``, ``message``.
* sweep: ``implementation``, ``dtype``, ``label``, ``side``, and per point (lists of equal
  length, ordered by |h|): ``h`` (signed), ``saturation`` (|h|), ``gradient``, ``exact``,
  ``relative_error``, ``bits``, ``nonfinite`` (bool), ``error`` (bool: the call failed).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
from mpmath import libmp

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.compare import elementwise_errors
from gradverify.engine.harness import DEFAULT_TIMEOUT, CallFailure, call_backprop
from gradverify.engine.implementations import Capabilities, capabilities_of, implementation_name
from gradverify.engine.isolation import isolate_option
from gradverify.engine.results import json_number
from gradverify.engine.stopping import CallGuard
from gradverify.exact.reference import ExactReferenceError, agree_to_bits, mpmath_backend
from gradverify.model.dtypes import (
    available_dtypes,
    dtype_name,
    resolve_dtype,
    skipped_dtype_notes,
    unavailable_dtypes,
)
from gradverify.model.functions import activation
from gradverify.model.lattice import (
    FloatFormat,
    bit_pattern,
    float_format,
    index_at_least,
    lattice_values,
    round_mpf,
    shortest_decimal,
)
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "CRITERIA",
    "SCHEMA",
    "HiddenUnderflow",
    "ScanAborted",
    "ScanResult",
    "ScanRow",
    "SideScan",
    "SweepSeries",
    "Threshold",
    "exact_hidden_gradient",
    "exact_output_gradient",
    "format_scan_table",
    "scan",
    "scan_document",
    "scan_schema",
]

SCHEMA = "gradverify.scan/1"

CRITERIA: dict[str, str] = {
    "nonfinite": "the returned gradient is inf or NaN",
    "error_1e-3": "relative error >= 1e-3",
    "error_1e-1": "relative error >= 0.1",
    "error_1": "relative error >= 1 (100%: no correct digit, or 0 instead of the gradient)",
    "raises": "the call fails: it raises, exceeds the time limit or returns something malformed",
}
"""The output-layer criteria, in the order of the table."""

HIDDEN_CRITERIA: dict[str, str] = {
    "first_zero": "the returned hidden-layer dJ/dW1 is exactly 0 while the exact value is not",
    "representable_limit": "the exact hidden-layer dJ/dW1 rounds to 0 in the dtype",
}

ERROR_LEVELS: dict[str, float] = {"error_1e-3": 1e-3, "error_1e-1": 0.1, "error_1": 1.0}
HIDDEN_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh")
SIDES: tuple[str, ...] = ("positive", "negative")
MAX_RECOVERIES = 8
"""Recovery regions reported per threshold; the rest are only counted."""
REFINED_RECOVERIES = 2
"""Recovery regions whose edges are located exactly by bisection (the first ones found)."""
DENSE_WINDOW = 1024
"""Where a criterion is noisy at its threshold, every float this far below it is checked..."""
MAX_DENSE_WINDOWS = 4
"""...and again below any earlier bad float found, at most this many times."""
MAX_DESCENTS = 4
"""Times verification may move a threshold down before it stops looking further below."""

_AGREEMENT_BITS = 80
_MAX_PRECISION = 1 << 15

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------
# Exact gradients of the two scan networks
# ---------------------------------------------------------------------------


class _Exact:
    """Closed forms evaluated in private mpmath contexts, accepted when two precisions agree."""

    def __init__(self, bits: int = _AGREEMENT_BITS) -> None:
        self.bits = bits
        self._contexts: dict[int, Any] = {}

    def _ctx(self, prec: int) -> Any:
        ctx = self._contexts.get(prec)
        if ctx is None:
            ctx = mpmath.MPContext()
            ctx.prec = prec
            self._contexts[prec] = ctx
        return ctx

    def verified(self, fn: Callable[[Any], Any]) -> Any:
        prec = self.bits + 16
        low = fn(self._ctx(prec))
        while True:
            high = fn(self._ctx(2 * prec))
            if agree_to_bits(low, high, self.bits):
                return high
            prec *= 2
            if prec > _MAX_PRECISION:
                raise ExactReferenceError(
                    f"the exact gradient did not agree to {self.bits} bits below "
                    f"{_MAX_PRECISION} bits of working precision"
                )
            low = high


def _output_delta(ctx: Any, h: Any, y: Any) -> Any:
    """sigmoid(h) - y without cancellation for y in {0, 1} (precision checks the rest)."""
    if h >= 0:
        e = ctx.exp(-h)
        return (1 - y) - e / (1 + e)
    e = ctx.exp(h)
    return e / (1 + e) - y


def _output_delta_raw(prec: int, h: float, y: float) -> Any:
    """:func:`_output_delta` on raw mpf tuples at ``prec`` bits (the scanner's hot path)."""
    rnd = libmp.round_nearest
    one, hv, yv = libmp.fone, libmp.from_float(h), libmp.from_float(y)
    if h >= 0:
        e = libmp.mpf_exp(libmp.mpf_neg(hv), prec, rnd)
        q = libmp.mpf_div(e, libmp.mpf_add(one, e, prec, rnd), prec, rnd)
        return libmp.mpf_sub(libmp.mpf_sub(one, yv, prec, rnd), q, prec, rnd)
    e = libmp.mpf_exp(hv, prec, rnd)
    q = libmp.mpf_div(e, libmp.mpf_add(one, e, prec, rnd), prec, rnd)
    return libmp.mpf_sub(q, yv, prec, rnd)


def exact_output_gradient(
    h: float, y: float, *, evaluator: _Exact | None = None, outputs: int = 1
) -> Any:
    """Exact dJ/db (= dJ/dW) of the one-layer scan network at logit ``h`` and label ``y``.

    ``h`` and ``y`` are taken as exact float64 values; ``outputs``: that many output units
    with the same logit and label (the mean loss divides by it). Returns an mpf verified to
    80 bits.
    """
    ev = evaluator or _Exact()
    h, y = float(h), float(y)
    if outputs == 1:
        return ev.verified(lambda ctx: ctx.make_mpf(_output_delta_raw(ctx.prec, h, y)))
    return ev.verified(lambda ctx: ctx.make_mpf(_output_delta_raw(ctx.prec, h, y)) / outputs)


def exact_hidden_gradient(
    activation_name: str, h: float, *, evaluator: _Exact | None = None, outputs: int = 1
) -> Any:
    """Exact dJ/dW1 of the 1 -> 1 -> 1 scan network with hidden pre-activation ``h``.

    The network has x = 1, W1 = 0, b1 = h, W2 = 1, b2 = 0, a sigmoid output, bce, y = 0,
    so dJ/dW1 = sigmoid(act(h)) * act'(h) (divided by ``outputs`` when the output layer has
    that many units, of which only the first is connected). Returns an mpf verified to 80
    bits.
    """
    act = activation(activation_name)
    ev = evaluator or _Exact()

    def form(ctx: Any) -> Any:
        hv = ctx.mpf(h)
        value = _output_delta(ctx, act.mp_forward(ctx, hv), ctx.zero) * act.mp_derivative(ctx, hv)
        return value / outputs if outputs != 1 else value

    return ev.verified(form)


def _relative_error_reaches(a: float, g: Any, levels: Sequence[float]) -> list[bool]:
    """For each level t: |a - g| >= t |g|, decided exactly (a finite, g != 0)."""
    diff = libmp.mpf_abs(libmp.mpf_sub(libmp.from_float(a), g._mpf_))
    gabs = libmp.mpf_abs(g._mpf_)
    return [libmp.mpf_cmp(diff, libmp.mpf_mul(libmp.from_float(t), gabs)) >= 0 for t in levels]


def _relative_error(a: float, g: Any) -> float:
    diff = libmp.mpf_abs(libmp.mpf_sub(libmp.from_float(a), g._mpf_))
    return libmp.to_float(libmp.mpf_div(diff, libmp.mpf_abs(g._mpf_), 64, libmp.round_nearest))


# ---------------------------------------------------------------------------
# Observations: one call of the implementation at one float
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Observation:
    h: float
    status: str  # "ok", "nonfinite", "error"
    values: tuple[float, ...]  # the returned entries compared (float64); () on error
    gradient: float | None  # the returned entry with the larger error; None on error
    exact: float  # exact gradient as a double-double exact + exact_low
    exact_low: float
    relative_error: float  # the scanner's measure; inf when nonfinite, nan on error
    bad: frozenset[str]  # the criteria this float fails
    message: str | None = None


def _error_bits(observations: Sequence[_Observation], fmt: FloatFormat) -> list[float]:
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


def _float64(g: Any) -> float:
    """The float64 nearest to an mpf (any exponent; reference.round_to_float64 needs small ones)."""
    return round_mpf(g, float_format("float64"))


def _split(g: Any) -> tuple[float, float]:
    """g as a double-double hi + lo."""
    hi = _float64(g)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, round_mpf(libmp.mpf_sub(g._mpf_, libmp.from_float(hi)), float_format("float64"))


def _judge(
    values: Sequence[float], g: Any, fmt: FloatFormat
) -> tuple[str, float, float, frozenset[str]]:
    """(status, worst value, relative error, failed criteria) of the returned entries."""
    rounded = round_mpf(g, fmt)
    bad: set[str] = set()
    worst_value, worst_rel = values[0], -1.0
    reached = dict.fromkeys(ERROR_LEVELS, False)
    nonfinite = False
    for a in dict.fromkeys(values):  # dJ/dW and dJ/db usually agree: judge each value once
        if not math.isfinite(a):
            nonfinite = True
            rel = math.inf
            hits = [True] * len(ERROR_LEVELS)
        elif a == rounded:
            rel, hits = 0.0, [False] * len(ERROR_LEVELS)
        elif not g:
            rel, hits = math.inf, [True] * len(ERROR_LEVELS)
        else:
            rel = _relative_error(a, g)  # to 64 bits: decides unless within 2**-50 of a level
            hits = [rel >= t for t in ERROR_LEVELS.values()]
            if any(abs(rel - t) <= t * 2.0**-50 for t in ERROR_LEVELS.values()):
                hits = _relative_error_reaches(a, g, list(ERROR_LEVELS.values()))
        for key, hit in zip(ERROR_LEVELS, hits, strict=True):
            reached[key] = reached[key] or hit
        if rel > worst_rel or (math.isnan(a) and not math.isnan(worst_value)):
            worst_value, worst_rel = a, rel
    bad.update(k for k, hit in reached.items() if hit)
    if nonfinite:
        bad.add("nonfinite")
    return ("nonfinite" if nonfinite else "ok"), worst_value, worst_rel, frozenset(bad)


class ScanAborted(RuntimeError):
    """The implementation hung repeatedly: scanning on would take hours."""


MAX_TIMEOUTS = 3
"""Calls that may exceed the time limit before the scan is abandoned."""


class _Caller:
    """call_backprop for the probes of one scan; stops it after MAX_TIMEOUTS hangs or crashes."""

    def __init__(self, impl: Callable, timeout: float | None, name: str) -> None:
        self.impl, self.timeout, self.name = impl, timeout, name
        self.guard = CallGuard(limit=MAX_TIMEOUTS)

    def call(self, problem: Problem) -> Any:
        outcome = call_backprop(self.impl, problem, timeout=self.timeout)
        if self.guard.record(outcome.failure):
            count = self.guard.counts[self.guard.stopped_by]
            if self.guard.stopped_by is CallFailure.TIMED_OUT:
                raise ScanAborted(
                    f"{self.name} did not return within {self.timeout:g} s on {count} "
                    f"calls; the scan makes thousands, so it stopped (raise timeout= or fix "
                    f"the implementation)"
                )
            raise ScanAborted(
                f"{self.name} crashed its worker process on {count} calls (last: "
                f"{outcome.error}); the scan makes thousands, so it stopped"
            )
        return outcome


def _one_float(index: int, negative: bool, fmt: FloatFormat) -> np.ndarray:
    """A 1-element array holding the float at lattice ``index`` (a fast lattice_values)."""
    bits = index | (fmt.sign_bit if negative else 0)
    return np.array([bits], dtype=fmt.uint).view(fmt.dtype)


@dataclass(frozen=True)
class _Layout:
    """The probe network's shape inside a declared architecture (see the module doc)."""

    widths: tuple[int, ...]
    batch: int = 1
    filler: str = "sigmoid"  # activation of the layers before the probed one

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


def _layout(caps: Capabilities, min_depth: int) -> _Layout | None:
    """The smallest probe network of depth >= ``min_depth`` that ``caps`` allows, or None."""
    lo, hi = caps.depth_range or (1, max(min_depth, 1))
    depth = max(lo, min_depth)
    if depth > hi:
        return None
    widths = caps.widths or (None,) * (depth + 1)
    filler = "sigmoid" if "sigmoid" in caps.activations else caps.activations[0]
    return _Layout(
        tuple(1 if n is None else n for n in widths), caps.batch[0] if caps.batch else 1, filler
    )


_SMALLEST = _Layout((1, 1))


def _zero_layers(layout: _Layout, dt: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n = layout.widths
    return (
        [np.zeros((n[i + 1], n[i]), dtype=dt) for i in range(layout.depth)],
        [np.zeros(n[i + 1], dtype=dt) for i in range(layout.depth)],
    )


class _OutputProbe:
    """Calls the implementation on the one-layer network at lattice floats (cached)."""

    def __init__(
        self,
        calls: _Caller,
        fmt: FloatFormat,
        label: float,
        exact: _Exact,
        layout: _Layout = _SMALLEST,
    ) -> None:
        self.calls, self.fmt, self.exact = calls, fmt, exact
        dt = fmt.dtype
        n, depth = layout.widths, layout.depth
        self.layout, self.outputs = layout, n[-1]
        self.spec = NetworkSpec(n, (*(layout.filler,) * (depth - 1), "sigmoid"), "bce")
        weights, biases = _zero_layers(layout, dt)
        self.weights, self.hidden_biases = tuple(weights), tuple(biases[:-1])
        self.x = np.ones((n[0], layout.batch), dtype=dt)
        self.y = np.full((n[-1], layout.batch), label, dtype=np.float64).astype(dt)
        self.label = float(self.y.astype(np.float64)[0, 0])
        self.cache: dict[tuple[bool, int], _Observation] = {}

    def observe(self, negative: bool, index: int) -> _Observation:
        key = (negative, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        b = _one_float(index, negative, self.fmt)
        h = float(b.astype(np.float64)[0])
        g = exact_output_gradient(h, self.label, evaluator=self.exact, outputs=self.outputs)
        last = b if self.outputs == 1 else np.repeat(b, self.outputs)
        problem = Problem(self.spec, self.weights, (*self.hidden_biases, last), self.x, self.y)
        outcome = self.calls.call(problem)
        hi, lo = _split(g)
        if not outcome.ok:
            obs = _Observation(
                h, "error", (), None, hi, lo, math.nan, frozenset({"raises"}), outcome.error
            )
        else:
            db = float(outcome.dbiases[-1].astype(np.float64)[0])
            values = (
                (float(outcome.dweights[0].astype(np.float64)[0, 0]), db)
                if self.layout.depth == 1
                else (db,)
            )
            status, worst, rel, bad = _judge(values, g, self.fmt)
            obs = _Observation(h, status, values, worst, hi, lo, rel, bad)
        self.cache[key] = obs
        return obs


class _HiddenProbe:
    """Calls the implementation on the 1 -> 1 -> 1 network at lattice floats (cached)."""

    def __init__(
        self,
        calls: _Caller,
        fmt: FloatFormat,
        activation_name: str,
        exact: _Exact,
        layout: _Layout = _Layout((1, 1, 1)),
    ) -> None:
        self.calls, self.fmt, self.exact = calls, fmt, exact
        self.activation = activation_name
        dt = fmt.dtype
        n, depth = layout.widths, layout.depth
        self.layout, self.outputs = layout, n[-1]
        self.spec = NetworkSpec(
            n, (*(layout.filler,) * (depth - 2), activation_name, "sigmoid"), "bce"
        )
        weights, biases = _zero_layers(layout, dt)
        weights[-1][0, 0] = 1  # only the probed unit reaches the (first) output
        self.weights = tuple(weights)
        self.biases = biases
        self.x = np.ones((n[0], layout.batch), dtype=dt)
        self.y = np.zeros((n[-1], layout.batch), dtype=dt)
        self.exact_cache: dict[tuple[bool, int], tuple[float, Any]] = {}
        self.cache: dict[tuple[bool, int], _Observation] = {}

    def exact_at(self, negative: bool, index: int) -> tuple[float, Any]:
        key = (negative, index)
        hit = self.exact_cache.get(key)
        if hit is None:
            h = float(_one_float(index, negative, self.fmt).astype(np.float64)[0])
            hit = (
                h,
                exact_hidden_gradient(
                    self.activation, h, evaluator=self.exact, outputs=self.outputs
                ),
            )
            self.exact_cache[key] = hit
        return hit

    def exact_rounds_to_zero(self, negative: bool, index: int) -> bool:
        return round_mpf(self.exact_at(negative, index)[1], self.fmt) == 0

    def observe(self, negative: bool, index: int) -> _Observation:
        key = (negative, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        h, g = self.exact_at(negative, index)
        probed = _one_float(index, negative, self.fmt)
        biases = list(self.biases)
        if biases[-2].shape[0] > 1:
            probed = np.concatenate([probed, biases[-2][1:]])
        biases[-2] = probed
        problem = Problem(self.spec, self.weights, tuple(biases), self.x, self.y)
        outcome = self.calls.call(problem)
        hi, lo = _split(g)
        if not outcome.ok:
            obs = _Observation(h, "error", (), None, hi, lo, math.nan, frozenset(), outcome.error)
        else:
            # dJ/dW1 (x = 1) in the 1 -> 1 -> 1 network; dJ/db_{L-1} in a deeper one
            grad = outcome.dweights[0][0, 0] if self.layout.depth == 2 else outcome.dbiases[-2][0]
            value = float(np.asarray(grad).astype(np.float64))
            status = "ok" if math.isfinite(value) else "nonfinite"
            bad = frozenset({"first_zero"}) if value == 0 and g != 0 else frozenset()
            obs = _Observation(h, status, (value,), value, hi, lo, math.nan, bad)
        self.cache[key] = obs
        return obs


# ---------------------------------------------------------------------------
# Locating a threshold on one side of the lattice
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    index: int | None
    recoveries: tuple[tuple[int, int, bool], ...]  # (first good, last good, edges bisected)
    recovery_count: int
    checked_below: int = 0  # consecutive floats just below the threshold, checked and good
    settled: bool = True  # False: the search for earlier bad floats stopped at its limit


def _bisect(bad: Callable[[int], bool], good_index: int, bad_index: int) -> int:
    """The first bad index in (good_index, bad_index], if there is one transition between."""
    lo, hi = good_index, bad_index
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _spread(lo: int, hi: int, count: int) -> list[int]:
    """``count`` integers evenly spread over [lo, hi], ends included (exact for huge ints)."""
    if hi <= lo or count <= 1:
        return [lo]
    return [lo + (hi - lo) * k // (count - 1) for k in range(count)]


def _locate(
    bad: Callable[[int], bool],
    max_index: int,
    base: set[int],
    around: Callable[[int], set[int]],
    evaluated: Callable[[], Iterable[int]],
) -> _Located:
    """The first bad lattice index, bisected then verified on ``base`` and ``around(t)``.

    Where the criterion is noisy at the threshold (verification moved it down, or a good
    float was checked within DENSE_WINDOW after it), every float of the DENSE_WINDOW floats
    below it is checked too, and again below any earlier bad float found.
    """
    settled = True
    if bad(0):
        t: int | None = 0
    elif bad(max_index):
        t = _bisect(bad, 0, max_index)
    else:
        t = None
    moves = 0
    while True:
        points = sorted(base | (around(t) if t is not None else set()))
        flags = [bad(i) for i in points]  # evaluate them all: recoveries use them too
        first = next((i for i, f in zip(points, flags, strict=True) if f), None)
        if first is None or (t is not None and first >= t):
            break
        # a bad float below the threshold: the criterion is not monotone; move down
        goods = [i for i in points if i < first]
        moves = moves + 1 if t is not None else 0
        t = first if not goods else _bisect(bad, goods[-1], first)
        if moves >= MAX_DESCENTS:
            settled = False  # t is the first bad float found; there may be earlier ones
            break
    moved = moves > 0
    if t is None:
        return _Located(None, (), 0)

    checked = set(evaluated())
    noisy = moved or any(not bad(i) for i in checked if t < i <= t + DENSE_WINDOW)
    if noisy:
        settled = False
        for _ in range(MAX_DENSE_WINDOWS):
            earlier = next((i for i in range(max(0, t - DENSE_WINDOW), t) if bad(i)), None)
            if earlier is None:
                settled = True
                break
            t = earlier
    checked = set(evaluated())
    below = t
    while below > 0 and below - 1 in checked and not bad(below - 1):
        below -= 1

    def good(i: int) -> bool:
        return not bad(i)

    after = sorted(i for i in set(evaluated()) if i >= t)
    runs: list[list[int]] = []  # [previous bad, first good, last good, next bad or None]
    previous_bad = t
    current: list[int] | None = None
    for i in after:
        if bad(i):
            if current is not None:
                current[3] = i
                runs.append(current)
                current = None
            previous_bad = i
        elif current is None:
            current = [previous_bad, i, i, -1]
        else:
            current[2] = i
    if current is not None:
        runs.append(current)
    regions = []
    for k, (before, first_good, last_good, next_bad) in enumerate(runs[:MAX_RECOVERIES]):
        if k < REFINED_RECOVERIES:
            start = _bisect(good, before, first_good)
            end = (_bisect(bad, last_good, next_bad) - 1) if next_bad >= 0 else max_index
            regions.append((start, end, True))
        else:
            regions.append((first_good, last_good, False))
    return _Located(t, tuple(regions), len(runs), t - below, settled)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """The first float (moving outward from 0 on one side) that fails one criterion.

    ``index`` is None when no checked float fails it. ``value`` is the float exactly (as a
    float64), ``bits`` its bit pattern in the dtype, ``previous_*`` the float just inside.
    ``recoveries`` are ``(start, end, refined)`` regions after the threshold where the
    criterion no longer fails (so it is not monotone): ``refined`` regions have edges
    located by bisection; the others are given by the first and last checked float.
    """

    criterion: str
    dtype: str
    side: str
    index: int | None = None
    value: float | None = None
    decimal: str | None = None
    bits: str | None = None
    previous_value: float | None = None
    previous_bits: str | None = None
    status: str | None = None
    gradient: float | None = None
    exact: float | None = None
    relative_error: float | None = None
    message: str | None = None
    recoveries: tuple[tuple[float, float, bool], ...] = ()
    recovery_count: int = 0
    checked_below: int = 0
    settled: bool = True

    @property
    def found(self) -> bool:
        return self.index is not None

    @property
    def monotone(self) -> bool:
        return self.recovery_count == 0

    def to_dict(self) -> dict:
        fmt = float_format(self.dtype)
        out: dict[str, Any] = {"criterion": self.criterion, "found": self.found}
        if self.found:
            out.update(
                {
                    "index": self.index,
                    "value": json_number(self.value),
                    "decimal": self.decimal,
                    "bits": self.bits,
                    "previous_value": json_number(self.previous_value),
                    "previous_bits": self.previous_bits,
                    "status": self.status,
                    "gradient": json_number(self.gradient),
                    "exact": json_number(self.exact),
                    "relative_error": json_number(self.relative_error),
                    "message": self.message,
                    "checked_below": self.checked_below,
                    "settled": self.settled,
                }
            )
        out.update(
            {
                "monotone": self.monotone,
                "recovery_count": self.recovery_count,
                "recoveries": [
                    {
                        "start": json_number(a),
                        "start_bits": bit_pattern(a, fmt),
                        "end": json_number(b),
                        "end_bits": bit_pattern(b, fmt),
                        "refined": refined,
                    }
                    for a, b, refined in self.recoveries
                ],
            }
        )
        return out


@dataclass(frozen=True)
class SideScan:
    """The output-layer thresholds on one side of 0 for one dtype and label."""

    side: str
    thresholds: dict[str, Threshold]
    checked_points: int
    verification: str  # "exhaustive" or "sampled"
    max_relative_error: float
    max_error_bits: float
    raises_anywhere: bool

    @property
    def finite_throughout(self) -> bool:
        """No checked float gave inf/NaN (calls that failed are counted under ``raises``)."""
        return not self.thresholds["nonfinite"].found

    def to_dict(self) -> dict:
        return {
            "side": self.side,
            "finite_throughout": self.finite_throughout,
            "raises_anywhere": self.raises_anywhere,
            "checked_points": self.checked_points,
            "verification": self.verification,
            "max_relative_error": json_number(self.max_relative_error),
            "max_error_bits": json_number(self.max_error_bits),
            "thresholds": {k: t.to_dict() for k, t in self.thresholds.items()},
        }


@dataclass(frozen=True)
class ScanRow:
    """Output-layer thresholds for one implementation x dtype x label, both sides."""

    implementation: str
    dtype: str
    label: float
    positive: SideScan
    negative: SideScan

    @property
    def sides(self) -> tuple[SideScan, SideScan]:
        return self.positive, self.negative

    def threshold(self, side: str, criterion: str) -> Threshold:
        return (self.positive if side == "positive" else self.negative).thresholds[criterion]

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "label": self.label,
            "sides": {"positive": self.positive.to_dict(), "negative": self.negative.to_dict()},
        }


@dataclass(frozen=True)
class HiddenUnderflow:
    """Where a saturated hidden unit's weight gradient becomes exactly 0 (one side)."""

    implementation: str
    dtype: str
    activation: str
    side: str
    first_zero: Threshold
    representable_limit: Threshold
    checked_points: int
    verification: str
    nonfinite_points: int
    error_points: int
    message: str | None = None

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "activation": self.activation,
            "side": self.side,
            "first_zero": self.first_zero.to_dict(),
            "representable_limit": self.representable_limit.to_dict(),
            "checked_points": self.checked_points,
            "verification": self.verification,
            "nonfinite_points": self.nonfinite_points,
            "error_points": self.error_points,
            "message": self.message,
        }


@dataclass(frozen=True)
class SweepSeries:
    """Error against saturation for one implementation x dtype x label x side (by |h|)."""

    implementation: str
    dtype: str
    label: float
    side: str
    h: tuple[float, ...]
    gradient: tuple[float, ...]
    exact: tuple[float, ...]
    relative_error: tuple[float, ...]
    bits: tuple[float, ...]
    nonfinite: tuple[bool, ...]
    error: tuple[bool, ...]

    @property
    def saturation(self) -> tuple[float, ...]:
        return tuple(abs(v) for v in self.h)

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "label": self.label,
            "side": self.side,
            "h": [json_number(v) for v in self.h],
            "saturation": [json_number(v) for v in self.saturation],
            "gradient": [json_number(v) for v in self.gradient],
            "exact": [json_number(v) for v in self.exact],
            "relative_error": [json_number(v) for v in self.relative_error],
            "bits": [json_number(v) for v in self.bits],
            "nonfinite": list(self.nonfinite),
            "error": list(self.error),
        }


@dataclass(frozen=True)
class ScanResult:
    """Everything :func:`scan` found for one implementation."""

    implementation: str
    dtypes: tuple[str, ...]
    labels: tuple[float, ...]
    rows: list[ScanRow]
    sweeps: list[SweepSeries]
    hidden: list[HiddenUnderflow]
    elapsed: float
    settings: dict[str, Any] = field(default_factory=dict)
    skipped_dtypes: dict[str, str] = field(default_factory=dict)
    """``{dtype: why}`` for declared dtypes that are unavailable here."""

    def row(self, dtype: str, label: float) -> ScanRow:
        for r in self.rows:
            if r.dtype == dtype and r.label == label:
                return r
        raise KeyError(f"no scan row for dtype {dtype!r} and label {label!r}")

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "implementation": self.implementation,
            "dtypes": list(self.dtypes),
            "skipped_dtypes": dict(self.skipped_dtypes),
            "labels": list(self.labels),
            "settings": dict(self.settings),
            "elapsed": self.elapsed,
            "rows": [r.to_dict() for r in self.rows],
            "hidden": [h.to_dict() for h in self.hidden],
            "sweeps": [s.to_dict() for s in self.sweeps],
        }

    def __str__(self) -> str:
        return format_scan_table([self])


def scan_document(results: Sequence[ScanResult]) -> dict:
    """The versioned JSON document (``"schema": "gradverify.scan/1"``) for several scans."""
    from gradverify.common.version import __version__

    return {
        "schema": SCHEMA,
        "gradverify_version": __version__,
        "mpmath_backend": mpmath_backend(),
        "criteria": {**CRITERIA, **HIDDEN_CRITERIA},
        "scans": [r.to_dict() for r in results],
    }


def scan_schema() -> dict:
    """The JSON Schema (draft 2020-12) of :func:`scan_document`; ``$defs/scan`` is one scan."""
    import json
    from importlib import resources

    text = resources.files("gradverify").joinpath("schemas/scan.schema.json").read_text("utf-8")
    return json.loads(text)


# ---------------------------------------------------------------------------
# The scan
# ---------------------------------------------------------------------------


def _threshold(
    criterion: str,
    fmt: FloatFormat,
    side: str,
    located: _Located,
    observe: Callable[[int], _Observation] | None,
) -> Threshold:
    negative = side == "negative"

    def value(i: int) -> float:
        return float(lattice_values([i], negative, fmt).astype(np.float64)[0])

    recoveries = tuple((value(a), value(b), r) for a, b, r in located.recoveries)
    if located.index is None:
        return Threshold(
            criterion, fmt.name, side, recoveries=recoveries, recovery_count=located.recovery_count
        )

    t = located.index
    v = value(t)
    previous = value(t - 1) if t > 0 else None
    obs = observe(t) if observe is not None else None
    return Threshold(
        criterion,
        fmt.name,
        side,
        index=t,
        value=v,
        decimal=shortest_decimal(v, fmt),
        bits=bit_pattern(v, fmt),
        previous_value=previous,
        previous_bits=bit_pattern(previous, fmt) if previous is not None else None,
        status=obs.status if obs else None,
        gradient=obs.gradient if obs else None,
        exact=obs.exact if obs else None,
        relative_error=obs.relative_error if obs else None,
        message=obs.message if obs else None,
        recoveries=recoveries,
        recovery_count=located.recovery_count,
        checked_below=located.checked_below,
        settled=located.settled,
    )


@dataclass(frozen=True)
class _Plan:
    """Which floats verify a threshold on one side of one dtype's lattice."""

    fmt: FloatFormat
    check_points: int
    neighbourhood: int
    exhaustive: bool
    stride_window: bool = True  # every 16th of the DENSE_WINDOW floats below a threshold

    @property
    def verification(self) -> str:
        return "exhaustive" if self.exhaustive else "sampled"

    def base(self) -> set[int]:
        n = self.fmt.max_index
        if self.exhaustive:
            return set(range(n + 1))
        # the whole lattice, and the saturation range 1/8 .. 2 ln(1/smallest subnormal)
        focus_hi = index_at_least(2 * -math.log(self.fmt.min_subnormal), self.fmt)
        focus_lo = index_at_least(0.125, self.fmt)
        half = max(2, self.check_points // 2)
        return set(_spread(0, n, half)) | set(_spread(focus_lo, focus_hi, half))

    def around(self, t: int) -> set[int]:
        if self.exhaustive:
            return set()
        n, k = self.fmt.max_index, self.neighbourhood
        points = set(range(max(0, t - k), min(n, t + k) + 1))
        # the octave below: from the float of half the magnitude up to t
        magnitude = abs(float(lattice_values([t], False, self.fmt).astype(np.float64)[0]))
        lo = index_at_least(magnitude / 2, self.fmt)
        points |= set(_spread(lo, t, max(2, k // 2)))
        # every 16th float of the dense window below: a run of bad floats there marks the
        # criterion as noisy, and the whole window is then checked
        if self.stride_window:
            points |= set(range(t - 1, max(-1, t - DENSE_WINDOW - 1), -16))
        return points


def _scan_side(probe: _OutputProbe, plan: _Plan, side: str) -> SideScan:
    negative = side == "negative"
    fmt = plan.fmt

    def observe(i: int) -> _Observation:
        return probe.observe(negative, i)

    def evaluated() -> list[int]:
        return [i for (neg, i) in probe.cache if neg == negative]

    base = plan.base()
    thresholds = {}
    for criterion in CRITERIA:
        located = _locate(
            lambda i, c=criterion: c in observe(i).bad, fmt.max_index, base, plan.around, evaluated
        )
        thresholds[criterion] = _threshold(criterion, fmt, side, located, observe)
    seen = [o for (neg, _), o in probe.cache.items() if neg == negative]
    returned = [o for o in seen if o.status != "error"]
    return SideScan(
        side=side,
        thresholds=thresholds,
        checked_points=len(seen),
        verification=plan.verification,
        max_relative_error=max((o.relative_error for o in returned), default=math.nan),
        max_error_bits=max(_error_bits(returned, fmt), default=math.nan),
        raises_anywhere=len(returned) < len(seen),
    )


def _scan_hidden(probe: _HiddenProbe, plan: _Plan, side: str, name: str) -> HiddenUnderflow:
    negative = side == "negative"
    fmt = plan.fmt

    def observe(i: int) -> _Observation:
        return probe.observe(negative, i)

    base = plan.base()
    first_zero = _locate(
        lambda i: "first_zero" in observe(i).bad,
        fmt.max_index,
        base,
        plan.around,
        lambda: [i for (neg, i) in probe.cache if neg == negative],
    )
    limit = _locate(
        lambda i: probe.exact_rounds_to_zero(negative, i),
        fmt.max_index,
        base,
        plan.around,
        lambda: [i for (neg, i) in probe.exact_cache if neg == negative],
    )
    seen = [o for (neg, _), o in probe.cache.items() if neg == negative]
    errors = [o for o in seen if o.status == "error"]
    return HiddenUnderflow(
        implementation=name,
        dtype=fmt.name,
        activation=probe.activation,
        side=side,
        first_zero=_threshold("first_zero", fmt, side, first_zero, observe),
        representable_limit=_threshold("representable_limit", fmt, side, limit, None),
        checked_points=len(seen),
        verification=plan.verification,
        nonfinite_points=sum(o.status == "nonfinite" for o in seen),
        error_points=len(errors),
        message=errors[0].message if errors else None,
    )


def _sweep(probe: _OutputProbe, row: ScanRow, sweep_points: int, name: str) -> list[SweepSeries]:
    """Log-spaced |h| from 1/16 past the thresholds, plus the floats next to each threshold."""
    fmt = probe.fmt
    found = [t.value for s in row.sides for t in s.thresholds.values() if t.found]
    saturation = -math.log(fmt.min_subnormal)  # exp(-h) has underflowed entirely beyond
    top = max([1.1 * saturation, *(1.25 * abs(v) for v in found)])
    top = min(top, fmt.max_finite)
    per_side = max(2, sweep_points // 2)
    magnitudes = np.geomspace(1 / 16, top, per_side)
    series = []
    for side in row.sides:
        negative = side.side == "negative"
        indices = {index_at_least(m, fmt) for m in magnitudes}
        for t in side.thresholds.values():
            if t.found:
                indices |= {i for i in range(t.index - 2, t.index + 3) if 0 <= i <= fmt.max_index}
        observations = [probe.observe(negative, i) for i in sorted(indices)]
        series.append(
            SweepSeries(
                implementation=name,
                dtype=fmt.name,
                label=probe.label,
                side=side.side,
                h=tuple(o.h for o in observations),
                gradient=tuple(
                    math.nan if o.gradient is None else o.gradient for o in observations
                ),
                exact=tuple(o.exact for o in observations),
                relative_error=tuple(o.relative_error for o in observations),
                bits=tuple(_error_bits(observations, fmt)),
                nonfinite=tuple(o.status == "nonfinite" for o in observations),
                error=tuple(o.status == "error" for o in observations),
            )
        )
    return series


def _progress_sink(progress: Progress | bool | None) -> Progress:
    if callable(progress):
        return progress
    if progress:
        return lambda message: print(f"gradverify scan: {message}", file=sys.stderr, flush=True)
    return lambda message: None


def _resolve_dtypes(impl: Callable, dtypes: Iterable[str] | str | None) -> tuple[str, ...]:
    if dtypes is None:
        available = set(available_dtypes())
        chosen = tuple(d for d in capabilities_of(impl).dtypes if d in available)
        if not chosen:
            why = "; ".join(skipped_dtype_notes(_skipped_dtypes(impl, None)))
            raise ValueError(
                f"none of the declared dtypes ({', '.join(capabilities_of(impl).dtypes)}) is "
                f"available here ({', '.join(sorted(available))}){f': {why}' if why else ''}"
            )
        return chosen
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    names = tuple(dict.fromkeys(dtype_name(resolve_dtype(d)) for d in dtypes))
    if not names:
        raise ValueError(
            "dtypes is empty: name at least one of float16, bfloat16, float32, float64"
        )
    return names


def _skipped_dtypes(impl: Callable, dtypes: Iterable[str] | str | None) -> dict[str, str]:
    """``{dtype: why}`` for the declared dtypes left out as unavailable (none when named)."""
    if dtypes is not None:  # named dtypes are resolved, so an unavailable one is an error
        return {}
    missing = unavailable_dtypes()
    return {d: missing[d] for d in capabilities_of(impl).dtypes if d in missing}


def _resolve_labels(labels: Iterable[float]) -> tuple[float, ...]:
    out = []
    for y in labels:
        try:
            v = float(y)
        except (TypeError, ValueError):
            raise ValueError(f"labels must be numbers in [0, 1]; got {y!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"labels must be numbers in [0, 1]; got {y!r}")
        out.append(v)
    if not out:
        raise ValueError("labels is empty: give at least one label in [0, 1], e.g. (0.0, 1.0)")
    return tuple(dict.fromkeys(out))


@with_own_errstate
@isolate_option
def scan(
    impl: Callable,
    *,
    dtypes: Iterable[str] | str | None = None,
    labels: Iterable[float] = (0.0, 1.0),
    name: str | None = None,
    sweep_points: int = 200,
    progress: Progress | bool | None = None,
    check_points: int = 256,
    neighbourhood: int = 32,
    exhaustive: bool = False,
    hidden_activations: Iterable[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> ScanResult:
    """Find where floating point breaks ``impl``'s BCE gradient, per dtype (see module doc).

    Args:
        impl: a backprop following the protocol; it must support a sigmoid output with bce.
        dtypes: dtype names; default: the declared dtypes that are available here. An
            explicit list is scanned even where the implementation did not declare it.
        labels: the labels y of the output-layer scan (each rounded to the dtype).
        name: the name shown in results (default: the declared name or module:qualname).
        sweep_points: log-spaced |h| points per label and dtype (half per side); 0: no sweep.
        progress: None/False quiet, True one line per step on stderr, or a callable(str).
        check_points: floats per side spread over the lattice to verify monotonicity.
        neighbourhood: every float within this many ULPs of a threshold is checked.
        exhaustive: check every finite float of float16 and bfloat16 (the other dtypes
            are always sampled); about 64k calls per label and dtype.
        hidden_activations: hidden activations for the underflow scan (default: sigmoid
            and tanh, where declared); () skips it.
        timeout: seconds allowed per call of ``impl`` (None: no limit).
        isolate: call ``impl`` in a supervised worker process (see
            :mod:`gradverify.engine.isolation`); a call that crashes it counts as failed.

    Returns:
        A :class:`ScanResult`.

    Raises:
        ValueError: bad arguments, or an implementation without sigmoid + bce support.
        ScanAborted: the implementation exceeded ``timeout`` (or, isolated, crashed its
            worker process) on 3 calls.
    """
    if not callable(impl):
        raise ValueError(f"scan needs a callable backprop implementation; got {impl!r}")
    caps = capabilities_of(impl)
    if "bce" not in caps.losses or "sigmoid" not in caps.activations:
        raise ValueError(
            f"the scanner varies a sigmoid output with loss 'bce', but the implementation "
            f"declares losses ({', '.join(caps.losses)}) and activations "
            f"({', '.join(caps.activations)})"
        )
    for label, v in (
        ("sweep_points", sweep_points),
        ("check_points", check_points),
        ("neighbourhood", neighbourhood),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{label} must be a non-negative integer; got {v!r}")
    if check_points < 2 or neighbourhood < 1:
        raise ValueError("check_points must be at least 2 and neighbourhood at least 1")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None; got {timeout!r}")
    dtype_names = _resolve_dtypes(impl, dtypes)
    label_values = _resolve_labels(labels)
    output_layout, hidden_layout = _layout(caps, 1), _layout(caps, 2)
    if hidden_activations is None:
        hidden = tuple(a for a in HIDDEN_ACTIVATIONS if a in caps.activations)
        if hidden_layout is None:
            hidden = ()  # a declared depth of 1 has no hidden layer to scan
    else:
        hidden = tuple(hidden_activations)
        for a in hidden:
            if a not in HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"hidden_activations must be among {', '.join(HIDDEN_ACTIVATIONS)}; got {a!r}"
                )
        if hidden and hidden_layout is None:
            raise ValueError(
                "the hidden-layer scan needs a network of depth 2 or more, but "
                "the implementation declares depth 1; pass hidden_activations=()"
            )
    display = name or implementation_name(impl)
    say = _progress_sink(progress)
    start = time.perf_counter()
    exact = _Exact()
    calls = _Caller(impl, timeout, display)

    rows, sweeps, hidden_rows = [], [], []
    for dt in dtype_names:
        fmt = float_format(dt)
        plan = _Plan(fmt, check_points, neighbourhood, exhaustive and fmt.width == 16)
        for y in label_values:
            say(f"{display} {dt} y={y:g}: output layer")
            probe = _OutputProbe(calls, fmt, y, exact, output_layout or _SMALLEST)
            row = ScanRow(
                display,
                dt,
                probe.label,
                _scan_side(probe, plan, "positive"),
                _scan_side(probe, plan, "negative"),
            )
            rows.append(row)
            if sweep_points:
                sweeps.extend(_sweep(probe, row, sweep_points, display))
        # one criterion per side (not five): half the verification points suffice
        hidden_plan = _Plan(
            fmt, max(2, check_points // 2), neighbourhood, plan.exhaustive, stride_window=False
        )
        for act in hidden:
            say(f"{display} {dt}: hidden {act} underflow")
            hprobe = _HiddenProbe(calls, fmt, act, exact, hidden_layout or _Layout((1, 1, 1)))
            for side in SIDES:
                hidden_rows.append(_scan_hidden(hprobe, hidden_plan, side, display))
    settings = {
        "check_points": check_points,
        "neighbourhood": neighbourhood,
        "exhaustive": bool(exhaustive),
        "sweep_points": sweep_points,
        "timeout": timeout,
    }
    return ScanResult(
        display,
        dtype_names,
        label_values,
        rows,
        sweeps,
        hidden_rows,
        time.perf_counter() - start,
        settings,
        skipped_dtypes=_skipped_dtypes(impl, dtypes),
    )


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

_HEADINGS = {
    "nonfinite": "inf/NaN",
    "error_1e-3": "err>=1e-3",
    "error_1e-1": "err>=0.1",
    "error_1": "err>=100%",
    "raises": "raises",
}


def _cell(t: Threshold, side: SideScan | None = None) -> str:
    if not t.found:
        if t.criterion == "nonfinite" and side is not None:
            return "finite where returned" if side.raises_anywhere else "finite throughout"
        return "never"
    text = f"{'' if t.settled else '<='}{float(t.value):.6g} {t.bits}"
    return text + ("*" if not t.monotone else "")


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[k])) for r in (header, *lines)) for k in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for r in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return out


def format_scan_table(results: Sequence[ScanResult]) -> str:
    """A fixed-width table: one row per implementation x dtype x label (one line per side).

    Each cell is the first float h, moving outward from 0, that fails the column's
    criterion: its value (6 significant digits) and its exact bit pattern in the dtype.
    ``*`` marks a criterion that is not monotone (good again somewhere past it).
    """
    if isinstance(results, ScanResult):
        results = [results]
    criteria = [c for c in CRITERIA if c != "raises"]
    if any(s.raises_anywhere for r in results for row in r.rows for s in row.sides):
        criteria.append("raises")
    header = ["implementation", "dtype", "y", "side", *(_HEADINGS[c] for c in criteria), "max bits"]
    lines = []
    starred = False
    for result in results:
        for row in result.rows:
            for k, side in enumerate(row.sides):
                cells = [_cell(side.thresholds[c], side) for c in criteria]
                starred = starred or any(c.endswith("*") for c in cells)
                lead = [row.implementation, row.dtype, f"{row.label:g}"] if k == 0 else ["", "", ""]
                bits = "-" if math.isnan(side.max_error_bits) else f"{side.max_error_bits:.1f}"
                lines.append([*lead, "h>0" if side.side == "positive" else "h<0", *cells, bits])
    out = [
        "Output layer (1 -> 1, sigmoid + bce, h = b exactly): first float h, moving out "
        "from 0, where dJ/db goes bad"
    ]
    out += _table(header, lines)
    notes = [
        "err = relative error against the exact gradient (a correctly rounded result "
        "counts as exact); max bits = worst log2(1 + ulps) over the checked floats."
    ]
    sampled = {
        row.dtype
        for r in results
        for row in r.rows
        if any(side.verification == "sampled" for side in row.sides)
    }
    if sampled:
        notes.append(
            f"Checked on sampled floats ({', '.join(sorted(sampled))}): a bad float "
            "isolated between checked floats below a threshold can be missed; "
            "exhaustive=True checks every float16/bfloat16."
        )
    if starred:
        notes.append(
            "* not monotone: the gradient is good again by this column's measure "
            "somewhere past this float (regions in the JSON output)."
        )
    if any(c.startswith("<=") for line in lines for c in line):
        notes.append(
            "<= noisy: bad floats continue below this one past the search limit, so "
            "the first is at or below it."
        )
    hidden = [h for r in results for h in r.hidden]
    if hidden:
        out.append("")
        out.append(
            "Hidden layer (1 -> 1 -> 1, hidden pre-activation h = b1 exactly): first "
            "float h where dJ/dW1 comes back exactly 0"
        )
        hlines = []
        for h in hidden:
            zero = _cell(h.first_zero) if h.first_zero.found else "never"
            limit = _cell(h.representable_limit) if h.representable_limit.found else "never"
            early = ""
            if h.first_zero.found and h.representable_limit.found:
                if abs(h.first_zero.value) < abs(h.representable_limit.value):
                    early = "early"
            hlines.append(
                [
                    h.implementation,
                    h.dtype,
                    h.activation,
                    "h>0" if h.side == "positive" else "h<0",
                    zero,
                    limit,
                    early,
                ]
            )
        out += _table(
            [
                "implementation",
                "dtype",
                "hidden",
                "side",
                "returns 0 from",
                "exact rounds to 0 from",
                "",
            ],
            hlines,
        )
        notes.append("early = the returned gradient underflows before the dtype forces it to.")
    skipped = {d: why for r in results for d, why in r.skipped_dtypes.items()}
    notes.extend(f"{note}." for note in skipped_dtype_notes(skipped))
    return "\n".join([*out, "", *notes])
