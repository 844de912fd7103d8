"""check_function: a loss and a gradient of a flat parameter vector, as scipy's check_grad takes.

The test function is the extended Rosenbrock function; its gradient is written out by hand
here, and an independent exact oracle evaluates that hand-written gradient in mpmath.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradverify.edges.adapters.plain import (
    check_function,
    flat_finite_differences,
    mp_reference_gradient,
)
from gradverify.engine.results import Verdict
from gradverify.exact.contexts import fresh_contexts, working_context
from gradverify.exact.rounding import round_to_float64

THETA = np.array([0.3, -1.2, 0.7, 1.5, 0.1, -0.45])


def rosenbrock(t):
    return float(np.sum(100.0 * (t[1:] - t[:-1] ** 2) ** 2 + (1 - t[:-1]) ** 2))


def rosenbrock_grad(t):
    g = np.zeros_like(t)
    g[:-1] += -400 * t[:-1] * (t[1:] - t[:-1] ** 2) - 2 * (1 - t[:-1])
    g[1:] += 200 * (t[1:] - t[:-1] ** 2)
    return g


def mp_rosenbrock(ctx, t):
    return ctx.fsum(100 * (t[i + 1] - t[i] ** 2) ** 2 + (1 - t[i]) ** 2 for i in range(len(t) - 1))


def exact_rosenbrock_grad(t):
    """The hand-derived gradient evaluated in mpmath at 200 bits, rounded to float64."""
    ctx = mpmath.MPContext()
    ctx.prec = 200
    x = [ctx.mpf(float(v)) for v in t]
    g = [ctx.zero] * len(x)
    for i in range(len(x) - 1):
        g[i] += -400 * x[i] * (x[i + 1] - x[i] ** 2) - 2 * (1 - x[i])
        g[i + 1] += 200 * (x[i + 1] - x[i] ** 2)
    return np.array([round_to_float64(v) for v in g], dtype=np.float64)


def wrong_in_one_entry(t):
    g = rosenbrock_grad(t)
    g[2] = g[2] * (1 + 1e-4)
    return g


def wrong_sign(t):
    return -rosenbrock_grad(t)


# --- the references ---------------------------------------------------------------------


def test_mp_reference_is_the_correctly_rounded_exact_gradient():
    hi, lo, value, precision = mp_reference_gradient(mp_rosenbrock, THETA)
    np.testing.assert_array_equal(hi, exact_rosenbrock_grad(THETA))
    assert np.all(np.abs(lo) <= np.abs(hi) * 2.0**-53)
    assert float(value) == pytest.approx(rosenbrock(THETA), rel=1e-15)
    assert precision >= 2 * (80 + 32)


def test_flat_finite_differences_are_within_their_error_estimates():
    exact = exact_rosenbrock_grad(THETA)
    fd = flat_finite_differences(rosenbrock, THETA)
    assert fd.evaluations == 6 * THETA.size + 1
    assert np.all(np.abs(fd.values - exact) <= fd.errors)
    assert np.all(fd.errors <= 1e-8 * np.abs(exact).max())


# --- verdicts ---------------------------------------------------------------------------


@pytest.mark.parametrize("mp_fun", [None, mp_rosenbrock], ids=["fd", "mpmath"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_correct_gradient_passes(mp_fun, dtype):
    result = check_function(rosenbrock, rosenbrock_grad, THETA, mp_fun=mp_fun, dtype=dtype)
    assert result.verdict is Verdict.PASS, str(result)
    assert result.reference == ("mpmath" if mp_fun else "finite differences")


@pytest.mark.parametrize("mp_fun", [None, mp_rosenbrock], ids=["fd", "mpmath"])
def test_a_wrong_entry_is_incorrect_and_named(mp_fun):
    result = check_function(rosenbrock, wrong_in_one_entry, THETA, mp_fun=mp_fun)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert result.worst[0].index == (2,)
    assert result.worst[0].relative_error == pytest.approx(1e-4, rel=1e-3)
    assert "theta[2]" in str(result)


@pytest.mark.parametrize("mp_fun", [None, mp_rosenbrock], ids=["fd", "mpmath"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_sign_error_is_incorrect(mp_fun, dtype):
    result = check_function(rosenbrock, wrong_sign, THETA, mp_fun=mp_fun, dtype=dtype)
    assert result.verdict is Verdict.INCORRECT
    assert result.normwise_error == pytest.approx(2.0, rel=1e-6)


def test_the_exact_reference_sees_errors_finite_differences_cannot():
    # a relative error of 1e-12 is far below what FD can resolve, but not below 32 u
    def slightly_off(t):
        return rosenbrock_grad(t) * (1 + 1e-12)

    assert check_function(rosenbrock, slightly_off, THETA).verdict is Verdict.PASS
    exact = check_function(rosenbrock, slightly_off, THETA, mp_fun=mp_rosenbrock)
    assert exact.verdict is Verdict.INCORRECT
    assert exact.fd_normwise_error is not None and exact.fd_normwise_error < 1e-8


def test_a_user_tolerance_is_honoured():
    result = check_function(
        rosenbrock, wrong_in_one_entry, THETA, mp_fun=mp_rosenbrock, tolerance=1e-3
    )
    assert result.verdict is Verdict.PASS
    assert result.tolerance == 1e-3


def test_grad_is_called_in_the_dtype_under_test():
    seen = []

    def recording(t):
        seen.append(t.dtype)
        return rosenbrock_grad(t)

    check_function(rosenbrock, recording, THETA, dtype="float32")
    assert seen == [np.dtype("float32")]


# --- errors -----------------------------------------------------------------------------


def _error_message(grad, **kwargs):
    result = check_function(rosenbrock, grad, THETA, **kwargs)
    assert result.verdict is Verdict.ERROR
    return result.message


def test_a_raising_gradient_is_an_error():
    def boom(t):
        raise RuntimeError("no gradient today")

    assert "raised RuntimeError: no gradient today" in _error_message(boom)


def test_wrong_shape_and_dtype_are_errors():
    assert "returned shape (5,); expected (6,)" in _error_message(lambda t: rosenbrock_grad(t)[:5])
    assert "returned float64; expected float32" in _error_message(
        lambda t: rosenbrock_grad(t).astype(np.float64), dtype="float32"
    )


def test_modifying_theta_in_place_is_an_error():
    def sneaky(t):
        g = rosenbrock_grad(t)
        t[0] = 0.0
        return g

    assert "modified its input theta in place" in _error_message(sneaky)


def test_nan_in_the_gradient_is_an_error():
    def nan(t):
        g = rosenbrock_grad(t)
        g[1] = np.nan
        return g

    assert "1 inf/NaN entries" in _error_message(nan, mp_fun=mp_rosenbrock)


def test_an_mp_fun_of_another_function_is_refused():
    def other(ctx, t):
        return mp_rosenbrock(ctx, t) + 1

    assert "fun and mp_fun disagree" in _error_message(rosenbrock_grad, mp_fun=other)


def _mp_bits(result):
    hi, lo, value, precision = result
    return hi.tobytes(), lo.tobytes(), value._mpf_, precision, value.context.prec


def test_the_reused_mpmath_context_gives_the_bits_of_a_fresh_one():
    with fresh_contexts():
        fresh = _mp_bits(mp_reference_gradient(mp_rosenbrock, THETA))
    assert _mp_bits(mp_reference_gradient(mp_rosenbrock, THETA)) == fresh
    assert _mp_bits(mp_reference_gradient(mp_rosenbrock, THETA)) == fresh


def test_an_mp_fun_that_changes_its_context_leaves_nothing_behind():
    expected = _mp_bits(mp_reference_gradient(mp_rosenbrock, THETA))

    def meddling(ctx, t):
        value = mp_rosenbrock(ctx, t)
        ctx.trap_complex, ctx.pretty = True, True
        return value

    mp_reference_gradient(meddling, THETA)
    assert _mp_bits(mp_reference_gradient(mp_rosenbrock, THETA)) == expected
    with working_context(64) as ctx:
        assert (ctx.prec, ctx.trap_complex, ctx.pretty) == (64, False, False)
