"""The float lattice: bit patterns as ordered integers; and exact one-step rounding of mpf
values to it (:mod:`gradverify.exact.rounding`).

Every expectation here comes from numpy/ml_dtypes or from enumeration, never from the
module under test.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from gradverify.exact.rounding import round_mpf
from gradverify.model.lattice import (
    bit_pattern,
    float_format,
    index_at_least,
    lattice_index,
    lattice_values,
    shortest_decimal,
)

CTX = mpmath.MPContext()
CTX.prec = 300

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    BF16 = None

needs_bfloat16 = pytest.mark.skipif(BF16 is None, reason="bfloat16 needs ml_dtypes")


def test_format_parameters_match_numpy_finfo():
    for name in ("float16", "float32", "float64"):
        fmt = float_format(name)
        info = np.finfo(np.dtype(name))
        assert fmt.max_finite == float(info.max)
        assert fmt.min_subnormal == float(info.smallest_subnormal)
        assert math.ldexp(1.0, fmt.emin) == float(info.smallest_normal)
        assert fmt.precision == info.nmant + 1
        # the largest finite float is the last index; the next pattern is +inf
        assert float(lattice_values(fmt.max_index, False, fmt)) == fmt.max_finite
        inf_bits = np.array([fmt.max_index + 1], dtype=fmt.uint).view(fmt.dtype)
        assert np.isposinf(inf_bits[0])


@needs_bfloat16
def test_bfloat16_format_matches_ml_dtypes():
    fmt = float_format("bfloat16")
    info = ml_dtypes.finfo(BF16)
    assert fmt.max_finite == float(info.max)
    assert fmt.min_subnormal == float(info.smallest_subnormal)
    assert fmt.max_index == 0x7F7F
    assert bit_pattern(1.0, fmt) == "0x3f80"


def test_float16_lattice_is_every_finite_float_in_order():
    fmt = float_format("float16")
    positive = lattice_values(np.arange(fmt.max_index + 1), False, fmt).astype(np.float64)
    negative = lattice_values(np.arange(fmt.max_index + 1), True, fmt).astype(np.float64)
    everything = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
    finite = everything[np.isfinite(everything)]
    assert len(finite) == 2 * (fmt.max_index + 1) == 63488
    # together the two sides are exactly the finite floats (0 and -0 both present)
    assert sorted(np.concatenate([positive, negative]).tolist()) == sorted(finite.tolist())
    # moving outward one index is moving to the next float: strictly increasing |h|
    assert np.all(np.diff(positive) > 0) and np.all(np.diff(-negative) > 0)
    assert np.array_equal(
        np.nextafter(positive[:-1].astype(np.float16), np.float16(np.inf)),
        positive[1:].astype(np.float16),
    )


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_lattice_index_counts_ulps_outward_on_each_side(name):
    fmt = float_format(name)
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 1 << (fmt.width - 1), size=2000, dtype=np.uint64)
    bits = raw.astype(fmt.uint) | (
        rng.integers(0, 2, size=2000).astype(fmt.uint) << fmt.uint.type(fmt.width - 1)
    )
    values = bits.view(fmt.dtype)
    values = values[np.isfinite(values)]
    located = [lattice_index(v, fmt) for v in values]
    for negative in (False, True):
        side = [
            (abs(float(v)), index)
            for v, (index, neg) in zip(values, located, strict=True)
            if neg == negative and v != 0
        ]
        side.sort()
        assert all(a[1] < b[1] for a, b in zip(side, side[1:], strict=False))
    for v, (index, negative) in zip(values[:300], located[:300], strict=True):
        assert float(lattice_values(index, negative, fmt).astype(np.float64)) == float(v)
        if abs(v) == fmt.max_finite:
            continue
        away = np.nextafter(v, fmt.dtype.type(-np.inf if negative else np.inf))
        assert lattice_index(away, fmt) == (index + 1, negative) or (v == 0 and away != 0)


def test_lattice_index_rejects_values_off_the_lattice():
    fmt = float_format("float16")
    with pytest.raises(ValueError, match="not exactly representable in float16"):
        lattice_index(0.1, fmt)
    with pytest.raises(ValueError, match="not a finite float16"):
        lattice_index(math.inf, fmt)
    with pytest.raises(ValueError, match="outside"):
        lattice_values(fmt.max_index + 1, False, fmt)
    assert lattice_index(-7.625, fmt) == (0x47A0, True)


def test_index_at_least():
    fmt = float_format("float16")
    assert index_at_least(7.625, fmt) == 0x47A0
    assert index_at_least(7.626, fmt) == 0x47A1  # the next float up
    assert index_at_least(0.0, fmt) == 0
    assert index_at_least(1e9, fmt) == fmt.max_index


def test_bit_patterns_and_shortest_decimals():
    f16, f32, f64 = float_format("float16"), float_format("float32"), float_format("float64")
    assert bit_pattern(7.625, f16) == "0x47a0"
    assert bit_pattern(-2.0, f16) == "0xc000"
    assert bit_pattern(1.0, f32) == "0x3f800000"
    assert bit_pattern(1.0, f64) == "0x3ff0000000000000"
    x32 = float(np.float32(0.1))
    assert shortest_decimal(x32, f32) == "0.1"
    assert shortest_decimal(65504.0, f16) == "6.55e+04"  # 65500 rounds to 65504 in float16
    rng = np.random.default_rng(3)
    for v in rng.standard_normal(200).astype(np.float32):
        text = shortest_decimal(v, f32)
        assert np.float32(float(text)) == v


def _nearest_by_enumeration(x, floats16: np.ndarray) -> float:
    """The nearest float16 to mpf ``x`` by exact distance; ties to the even bit pattern."""
    best = None
    mid = int(np.searchsorted(floats16, float(x)))
    for j in range(max(0, mid - 2), min(len(floats16), mid + 3)):
        v = float(floats16[j])
        d = abs(CTX.mpf(v) - x)
        odd = int(np.array(v, np.float16).view(np.uint16)) & 1
        key = (d, odd)
        if best is None or key < best[0]:
            best = (key, v)
    return best[1]


def test_round_mpf_float16_matches_enumeration_including_ties_and_subnormals():
    fmt = float_format("float16")
    floats16 = np.sort(lattice_values(np.arange(fmt.max_index + 1), False, fmt).astype(np.float64))
    rng = np.random.default_rng(11)
    samples = []
    for e in rng.uniform(-27, 16, size=400):  # subnormal range and beyond, up to 65504
        samples.append(CTX.mpf(2) ** CTX.mpf(e))
    for k in rng.integers(0, fmt.max_index, size=300):  # exact midpoints: ties
        a, b = float(floats16[k]), float(floats16[k + 1])
        samples.append((CTX.mpf(a) + CTX.mpf(b)) / 2)
    for x in samples:
        expected = _nearest_by_enumeration(x, floats16)
        if float(x) > fmt.max_finite:
            continue
        assert round_mpf(x, fmt) == expected, x
        assert round_mpf(-x, fmt) == -expected, x


def test_round_mpf_overflow_and_underflow_edges():
    fmt = float_format("float16")
    half_ulp_at_max = CTX.mpf(2) ** (fmt.emax - fmt.precision)
    assert round_mpf(CTX.mpf(fmt.max_finite) + half_ulp_at_max, fmt) == math.inf
    assert round_mpf(CTX.mpf(fmt.max_finite) + half_ulp_at_max * 0.999, fmt) == fmt.max_finite
    assert round_mpf(-(CTX.mpf(fmt.max_finite) + half_ulp_at_max), fmt) == -math.inf
    tiny = CTX.mpf(fmt.min_subnormal)
    assert round_mpf(tiny / 2, fmt) == 0.0  # a tie rounds to the even neighbour, 0
    assert round_mpf(tiny / 2 * (1 + CTX.mpf(2) ** -200), fmt) == fmt.min_subnormal
    assert round_mpf(tiny / 3, fmt) == 0.0
    f64 = float_format("float64")
    assert round_mpf(CTX.mpf(2) ** -5000, f64) == 0.0  # far beyond float64 exponents
    assert round_mpf(CTX.mpf(2) ** -1074, f64) == 5e-324
    assert round_mpf(CTX.mpf(2) ** 5000, f64) == math.inf
    assert math.copysign(1.0, round_mpf(-(CTX.mpf(2) ** -5000), f64)) == -1.0


@pytest.mark.parametrize(
    "name", ["float16", "float32", pytest.param("bfloat16", marks=needs_bfloat16)]
)
def test_round_mpf_agrees_with_the_dtype_conversion_of_exact_float64_values(name):
    # numpy and ml_dtypes round a float64 to these dtypes correctly (one rounding), so
    # for values that are exact float64s the two must agree everywhere, subnormals included.
    fmt = float_format(name)
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.standard_normal(500) * np.exp2(rng.uniform(-160, 130, 500)),
            rng.standard_normal(200) * fmt.min_subnormal * 4,
        ]
    )
    with np.errstate(over="ignore"):
        expected = values.astype(fmt.dtype).astype(np.float64)
    for v, e in zip(values.tolist(), expected.tolist(), strict=True):
        assert round_mpf(CTX.mpf(v), fmt) == e, (v, e)


# ---------------------------------------------------------------------------
# Every float of a side, and rounding float64 to a 16-bit format in one step
# ---------------------------------------------------------------------------


def test_side_floats_are_every_finite_float_in_lattice_order():
    from gradverify.model.lattice import side_floats

    pytest.importorskip("ml_dtypes")
    for name, count in (("float16", 0x7C00), ("bfloat16", 0x7F80)):
        fmt = float_format(name)
        for negative in (False, True):
            floats = side_floats(negative, fmt).astype(np.float64)
            assert len(floats) == count == fmt.max_index + 1
            assert np.all(np.isfinite(floats))
            magnitudes = np.abs(floats)
            assert magnitudes[0] == 0 and np.all(np.diff(magnitudes) > 0)
            assert np.all(np.signbit(floats) == negative)
            assert magnitudes[-1] == fmt.max_finite and magnitudes[1] == fmt.min_subnormal


def test_round_to_format_is_numpys_float16_rounding():
    from gradverify.model.lattice import round_to_format

    fmt = float_format("float16")
    rng = np.random.default_rng(7)
    values = rng.standard_normal(100_000) * 10.0 ** rng.integers(-10, 6, 100_000)
    # ties and the ends: half the smallest subnormal, the overflow boundary, signed zeros
    special = [2.0**-25, 3 * 2.0**-25, 65504.0, 65519.99, 65520.0, 0.0, -0.0, np.inf, -np.inf]
    values = np.concatenate([values, special, -np.array(special)])
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).astype(np.float64)  # numpy rounds once
    got = round_to_format(values, fmt)
    assert np.array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert np.isnan(round_to_format(np.array([np.nan]), fmt)[0])


def test_round_to_format_gives_the_nearest_bfloat16_with_ties_to_even():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from gradverify.model.lattice import round_to_format, side_floats

    fmt = float_format("bfloat16")
    lattice = side_floats(False, fmt).astype(np.float64)
    # midpoints between neighbours (ties) and points a float64 ulp either side of them,
    # where rounding through float32 first can land on the wrong neighbour
    mid = (lattice[:-1] + lattice[1:]) / 2
    for values in (mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf)):
        got = round_to_format(values, fmt)
        below, above = lattice[:-1], lattice[1:]
        nearest = np.where(values - below < above - values, below, above)
        tie = values - below == above - values
        even = np.where(np.arange(len(below)) % 2 == 0, below, above)  # even bit pattern
        assert np.array_equal(got, np.where(tie, even, nearest))
    assert np.all(round_to_format(lattice, fmt) == lattice)
    assert np.dtype(ml_dtypes.bfloat16).itemsize == 2
