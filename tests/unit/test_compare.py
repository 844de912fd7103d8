"""Error measures: ULP spacing by enumeration, bits of error, normwise error, tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from gradverify.engine.compare import elementwise_errors, normwise_error, tolerance
from gradverify.model.dtypes import available_dtypes, resolve_dtype, ulp, unit_roundoff


def test_ulp_matches_numpy_spacing_for_every_float16():
    values = np.arange(0, 0x7BFF, dtype=np.uint16).view(np.float16)  # all finite >= 0 but max
    expected = np.spacing(values).astype(np.float64)
    np.testing.assert_array_equal(ulp(values.astype(np.float64), "float16"), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ulp_matches_numpy_spacing(dtype):
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    info = np.finfo(dt)
    values = np.concatenate(
        [
            np.abs(rng.standard_normal(1000)) * 10.0 ** rng.integers(-30, 30, 1000),
            [0.0, float(info.tiny), float(info.smallest_subnormal) * 7, 1.0, 2.0],
        ]
    ).astype(dt)
    np.testing.assert_array_equal(
        ulp(values.astype(np.float64), dtype), np.spacing(values).astype(np.float64)
    )


@pytest.mark.skipif("bfloat16" not in available_dtypes(), reason="ml_dtypes is not installed")
def test_ulp_for_every_bfloat16():
    bf = resolve_dtype("bfloat16")
    values = np.arange(0, 0x7F7F, dtype=np.uint16).view(bf).astype(np.float64)
    nxt = np.arange(1, 0x7F80, dtype=np.uint16).view(bf).astype(np.float64)
    np.testing.assert_array_equal(ulp(values, "bfloat16"), nxt - values)


def test_bits_of_error():
    hi = np.array([1.0, 1.0, 1.0, 0.0, 2.0])
    lo = np.zeros_like(hi)
    value = np.array([1.0, 1.0 + 2.0**-52, np.nan, 0.0, 2.0 + 3 * 2.0**-51], dtype=np.float64)
    e = elementwise_errors(value, hi, lo, "float64")
    np.testing.assert_array_equal(e.ulps, [0.0, 1.0, np.inf, 0.0, 3.0])
    np.testing.assert_array_equal(e.bits, [0.0, 1.0, 64.0, 0.0, 2.0])
    np.testing.assert_array_equal(e.nonfinite, [False, False, True, False, False])


def test_double_double_reference_measures_below_float64_rounding():
    # exact value 1 + 2^-60: the float64 answer 1.0 is 2^-60 away, i.e. 1/256 ulp
    e = elementwise_errors(np.array([1.0]), np.array([1.0]), np.array([2.0**-60]), "float64")
    assert e.ulps[0] == 2.0**-8


def test_normwise_error_edge_cases():
    z = np.zeros(3)
    assert normwise_error(z, z, z) == 0.0
    assert normwise_error(np.ones(3), z, z) == np.inf
    assert normwise_error(np.array([np.nan, 0, 0]), np.ones(3), z) == np.inf
    tiny = np.full(3, 1e-320)
    assert normwise_error(2 * tiny, tiny, z) == pytest.approx(1.0)
    huge = np.full(3, 1e308)
    assert normwise_error(huge * 0.5, huge, z) == pytest.approx(0.5)


def test_tolerance_scales_the_baseline_and_floors_at_unit_roundoff():
    assert tolerance(0.0, "float32", 32) == 32 * unit_roundoff("float32")
    assert tolerance(1e-3, "float32", 10) == pytest.approx(1e-2)
