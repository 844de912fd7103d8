"""float16 and bfloat16 judged at every float, by default: against brute force.

The default scan of a 16-bit dtype calls the implementation with many floats per call and
computes the exact gradients of a whole side in float64 with certified bounds. Everything
expected here comes from calling the implementation at one float at a time (N = 1, the
definition of a threshold) and from exact values written here with other formulas than the
scanner's (``-1/(1 + exp(h))``, ``1/cosh(h)**2``), at 250 bits.
"""

from __future__ import annotations

import math
from functools import cache

import mpmath
import numpy as np
import pytest

from gradverify.engine.implementations import (
    epsilon_bce_backprop,
    fused_bce_backprop,
    naive_bce_backprop,
    supports,
)
from gradverify.exploration.scan import format_scan_table, scan
from gradverify.exploration.scan.certified import (
    hidden_enclosure,
    judge_side,
    output_enclosure,
)
from gradverify.model.lattice import float_format, side_floats

CTX = mpmath.MPContext()
CTX.prec = 250
LEVELS = {"error_1e-3": 1e-3, "error_1e-1": 0.1, "error_1": 1.0}
OUTPUT_CRITERIA = ("nonfinite", *LEVELS)
IMPLEMENTATIONS = {
    "naive": naive_bce_backprop,
    "epsilon": epsilon_bce_backprop,
    "fused": fused_bce_backprop,
}
ml_dtypes = pytest.importorskip("ml_dtypes")
DTYPES = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


# ---------------------------------------------------------------------------
# The brute force: one call per float, judged exactly
# ---------------------------------------------------------------------------


def exact_output(h: float, y: float):
    """sigmoid(h) - y at 250 bits (for y = 1 as -1/(1 + e^h))."""
    hv = CTX.mpf(h)
    if y == 1.0:
        return -1 / (1 + CTX.exp(hv))
    return 1 / (1 + CTX.exp(-hv)) - y


def exact_hidden(act: str, h: float):
    """sigmoid(act(h)) act'(h), the 1 -> 1 -> 1 probe's dJ/dW1 with y = 0, at 250 bits."""
    hv = CTX.mpf(h)
    if act == "tanh":
        return 1 / (1 + CTX.exp(-CTX.tanh(hv))) / CTX.cosh(hv) ** 2
    s = 1 / (1 + CTX.exp(-hv))
    return 1 / (1 + CTX.exp(-s)) * s * (1 / (1 + CTX.exp(hv)))


def nearest(g, dtype: np.dtype) -> float:
    """The float of ``dtype`` nearest to mpf ``g``, ties to the even bit pattern."""
    with np.errstate(over="ignore"):
        c = np.array(float(g)).astype(dtype)[()]
    best = None
    for v in {c, np.nextafter(c, dtype.type(np.inf)), np.nextafter(c, dtype.type(-np.inf))}:
        if np.isfinite(v):
            key = (abs(CTX.mpf(float(v)) - g), int(np.array(v).view(np.uint16)) & 1)
            best = (key, float(v)) if best is None or key < best[0] else best
    return best[1]


def one_float(impl, h, y: float, dtype: np.dtype) -> tuple[float, float]:
    """(dJ/dW, dJ/db) of the one-layer probe called alone at ``h``."""
    with np.errstate(all="ignore"):
        dW, db = impl(
            [np.zeros((1, 1), dtype)],
            [np.array([h], dtype)],
            np.ones((1, 1), dtype),
            np.full((1, 1), y, dtype),
            activations=("sigmoid",),
            loss="bce",
        )
    return float(dW[0][0, 0]), float(db[0][0])


def bad_criteria(values, g, dtype: np.dtype) -> frozenset:
    correct = nearest(g, dtype)
    bad = set()
    for a in set(values):
        if not math.isfinite(a):
            bad |= {"nonfinite", *LEVELS}
        elif a != correct:
            rel = abs(CTX.mpf(a) - g) / abs(g)
            bad |= {k for k, t in LEVELS.items() if rel >= t}
    return frozenset(bad)


def brute_side(impl, dtype_name: str, y: float, negative: bool, last: int) -> list[frozenset]:
    """The criteria failed at every float of one side up to lattice index ``last``."""
    dtype = DTYPES[dtype_name]
    floats = side_floats(negative, float_format(dtype_name))[: last + 1]
    return [
        bad_criteria(one_float(impl, h, y, dtype), exact_output(float(h), y), dtype) for h in floats
    ]


def first_and_runs(flags: list[bool]) -> tuple[int | None, int]:
    """The first True, and how many runs of False follow it."""
    if True not in flags:
        return None, 0
    first = flags.index(True)
    runs = sum(1 for k in range(first + 1, len(flags)) if not flags[k] and flags[k - 1])
    return first, runs


@cache
def default_scan(name: str, dtype: str, labels: tuple[float, ...] = (0.0, 1.0)):
    return scan(
        IMPLEMENTATIONS[name], dtypes=[dtype], labels=labels, hidden_activations=(), sweep_points=0
    )


# ---------------------------------------------------------------------------
# The output layer
# ---------------------------------------------------------------------------


def test_naive_float16_thresholds_are_the_first_bad_floats_of_the_whole_side():
    # the 1e-3 threshold for y = 1, h > 0 is an isolated float far below the others, and
    # the 0.1 threshold is not monotone: bisection and samples missed both
    result = default_scan("naive", "float16", (1.0,))
    side = result.row("float16", 1.0).positive
    assert side.verification == "exhaustive" and side.checked_points == 0x7C00
    last = max(t.index for t in side.thresholds.values() if t.found)
    states = brute_side(naive_bce_backprop, "float16", 1.0, False, last)
    for criterion in OUTPUT_CRITERIA:
        first, _ = first_and_runs([criterion in s for s in states])
        assert side.thresholds[criterion].index == first, criterion
    assert side.thresholds["error_1e-3"].value < 0.25 < 5 < side.thresholds["error_1e-1"].value
    assert not side.thresholds["error_1e-1"].monotone
    assert side.thresholds["error_1e-3"].checked_below == side.thresholds["error_1e-3"].index


def test_the_isolated_first_float_of_naive_float16_is_in_the_default_table():
    table = format_scan_table([default_scan("naive", "float16")])
    assert "1.14551 0x3c95" in table  # y = 0, h > 0, relative error >= 1e-3
    assert "Checked on sampled floats" not in table


def recovery_runs(flags: list[bool], first: int) -> list[tuple[int, int]]:
    """The runs of good floats after ``first``: (first good, last good)."""
    runs, k = [], first
    while k < len(flags):
        if not flags[k]:
            start = k
            while k < len(flags) and not flags[k]:
                k += 1
            runs.append((start, k - 1))
        k += 1
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["naive", "epsilon", "fused"])
def test_every_threshold_and_its_monotonicity_match_brute_force_at_every_float(name, dtype):
    result = default_scan(name, dtype)
    fmt = float_format(dtype)
    for row in result.rows:
        for side in row.sides:
            negative = side.side == "negative"
            states = brute_side(IMPLEMENTATIONS[name], dtype, row.label, negative, fmt.max_index)
            assert side.verification == "exhaustive"
            for criterion in OUTPUT_CRITERIA:
                flags = [criterion in s for s in states]
                first, _ = first_and_runs(flags)
                t = side.thresholds[criterion]
                assert t.index == first, (row.label, side.side, criterion)
                if first is None:
                    continue
                runs = recovery_runs(flags, first)
                assert t.monotone == (not runs) and t.recovery_count <= len(runs)
                assert t.checked_below == first
                for start, end, refined in t.recoveries:  # exact where marked refined
                    if refined:
                        exact = [
                            (
                                float(side_floats(negative, fmt)[a]),
                                float(side_floats(negative, fmt)[b]),
                            )
                            for a, b in runs
                        ]
                        assert (start, end) in exact, (row.label, side.side, criterion)


# ---------------------------------------------------------------------------
# Batching is checked, not assumed
# ---------------------------------------------------------------------------


@supports(losses=("bce",), dtypes=("float16",), name="sums")
def sums_instead_of_mean(weights, biases, x, y, *, activations, loss):
    """fused at one float, but the loss is a sum: batched results are not scaled by 1/N."""
    dW, db = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    n = y.dtype.type(y.size)
    return [w * n for w in dW], [b * n for b in db]


def test_an_implementation_that_batching_changes_is_scanned_one_float_at_a_time():
    result = scan(sums_instead_of_mean, labels=(1.0,), hidden_activations=(), sweep_points=0)
    for side in result.rows[0].sides:
        assert side.verification == "sampled"
        assert not side.thresholds["nonfinite"].found
    # alone it is fused: z - 1 rounds to 0 from h = 7.625 on (0x47a0), a monotone threshold
    assert result.row("float16", 1.0).positive.thresholds["error_1"].bits == "0x47a0"
    assert "Checked on sampled floats (float16)" in format_scan_table([result])


@supports(losses=("bce",), dtypes=("float16",), widths=(1, 1), name="one-output")
def one_output(weights, biases, x, y, *, activations, loss):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def test_a_declared_output_width_of_one_leaves_no_room_to_batch():
    result = scan(one_output, labels=(1.0,), hidden_activations=(), sweep_points=0)
    assert {s.verification for s in result.rows[0].sides} == {"sampled"}


@supports(losses=("bce",), dtypes=("float16",), name="raises-above-65000")
def raises_far_out(weights, biases, x, y, *, activations, loss):
    # 16 float16 values lie above 65000: fewer than MAX_FAILING_ALONE, so every float is judged
    if np.any(biases[-1].astype(np.float64) > 65000):
        raise RuntimeError("logit too large")
    return naive_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def test_floats_that_fail_alone_are_found_inside_failing_batches():
    result = scan(raises_far_out, labels=(0.0,), hidden_activations=(), sweep_points=0)
    positive, negative = result.rows[0].sides
    t = positive.thresholds["raises"]
    assert positive.verification == "exhaustive" and positive.raises_anywhere
    assert t.value == float(np.nextafter(np.float16(65000), np.float16(np.inf)))
    assert t.status == "error" and "logit too large" in t.message and t.monotone
    assert not negative.raises_anywhere and not negative.thresholds["raises"].found


@supports(losses=("bce",), dtypes=("float16",), name="fails-alone-near-minus-ten")
def fails_alone_near_minus_ten(weights, biases, x, y, *, activations, loss):
    """naive, but a call with one output unit raises for h in [-10, -9.9] (floats whose
    batched results are subnormal, so the scan calls them alone)."""
    b = biases[-1].astype(np.float64)
    if b.size == 1 and -10 <= b[0] <= -9.9:
        raise RuntimeError("alone near -10")
    return naive_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def test_a_float_that_fails_alone_but_not_batched_is_scanned_one_float_at_a_time():
    """The scan neither walks to such a float forever nor judges it from its batch: the
    label is scanned one float at a time, where the failure is an error."""
    result = scan(fails_alone_near_minus_ten, labels=(0.0,), hidden_activations=(), sweep_points=0)
    positive, negative = result.rows[0].sides
    assert (positive.verification, negative.verification) == ("sampled", "sampled")
    assert negative.raises_anywhere and not positive.raises_anywhere


# ---------------------------------------------------------------------------
# The hidden layer
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_hidden_first_zero_is_the_first_float_returning_zero_of_the_whole_side(act):
    result = scan(naive_bce_backprop, dtypes=["float16"], hidden_activations=(act,), sweep_points=0)
    dtype = DTYPES["float16"]
    for row in result.hidden:
        negative = row.side == "negative"
        t = row.first_zero
        assert row.verification == "exhaustive" and t.found
        floats = side_floats(negative, float_format("float16"))[: t.index + 1]
        zeros = [
            i
            for i, h in enumerate(floats)
            if float(
                naive_bce_backprop(
                    [np.zeros((1, 1), dtype), np.ones((1, 1), dtype)],
                    [np.array([h], dtype), np.zeros(1, dtype)],
                    np.ones((1, 1), dtype),
                    np.zeros((1, 1), dtype),
                    activations=(act, "sigmoid"),
                    loss="bce",
                )[0][0][0, 0]
            )
            == 0.0
        ]
        assert zeros[0] == t.index, (act, row.side)
        limit = row.representable_limit.index
        for i, expect in ((limit - 1, False), (limit, True)):
            h = float(side_floats(negative, float_format("float16"))[i])
            assert (nearest(exact_hidden(act, h), dtype) == 0.0) == expect


# ---------------------------------------------------------------------------
# The certified exact values
# ---------------------------------------------------------------------------


def _encloses(dtype: str, step: int) -> None:
    fmt = float_format(dtype)
    for negative in (False, True):
        h = side_floats(negative, fmt).astype(np.float64)[::step]
        for y in (0.0, 1.0, 0.25):
            enc = output_enclosure(h, y)
            for k, hv in enumerate(h):
                g = exact_output(float(hv), y)
                assert CTX.mpf(enc.lo[k]) <= g <= CTX.mpf(enc.hi[k]), (dtype, hv, y)
        for act in ("sigmoid", "tanh"):
            enc = hidden_enclosure(act, h)
            for k, hv in enumerate(h):
                g = exact_hidden(act, float(hv))
                assert CTX.mpf(enc.lo[k]) <= g <= CTX.mpf(enc.hi[k]), (dtype, hv, act)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_enclosures_hold_the_exact_gradient_on_a_sample_of_every_side(dtype):
    _encloses(dtype, 97)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_enclosures_hold_the_exact_gradient_at_every_float(dtype):
    _encloses(dtype, 1)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_judging_a_whole_side_agrees_with_judging_one_float_exactly(dtype):
    fmt = float_format(dtype)
    dt = DTYPES[dtype]
    h = side_floats(False, fmt).astype(np.float64)[::41]
    y = 1.0
    exact = [exact_output(float(v), y) for v in h]
    rounded = np.array([nearest(g, dt) for g in exact])
    # returned values around every decision: correct, one float off, 0, the error levels
    # met exactly (as closely as the dtype allows), NaN
    candidates = [rounded, np.nextafter(rounded.astype(dt), dt.type(0)).astype(np.float64)]
    candidates += [np.zeros_like(rounded), np.full_like(rounded, np.nan)]
    for t in LEVELS.values():
        candidates.append((rounded * (1 + t)).astype(dt).astype(np.float64))
    enc = output_enclosure(h, y)
    for values in candidates:
        column = values[:, None]
        judged = judge_side(column, np.ones(len(h), bool), enc, fmt, lambda i: exact[i])
        for k in range(len(h)):
            mine = {c for c, flags in judged.bad.items() if flags[k]}
            assert mine == bad_criteria((float(values[k]),), exact[k], dt), (h[k], values[k])
