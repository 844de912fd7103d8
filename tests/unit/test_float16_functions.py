"""The new activations' float forms against their exact values on every float16, and the losses'
output gradients on a grid, with stated error bounds.

* stable forward and derivative (float64, rounded once): at most 0.501 ulp on every float16
  (measured: 0.500, i.e. correctly rounded);
* torch's backward forms (float32 compute, rounded to float16): within their term-magnitude
  bound ``conventional_error`` everywhere (measured: gelu 0.71 ulp, gelu_tanh 19.5 ulps, silu
  0.5 ulp), and the same bound holds in float32 and float64 on a dense sample; jax's ELU
  backward ``a (expm1(x) + 1)`` (computed in float16) within its bound too (measured: 2,043
  ulps at -8.32, and 0 from about -8.3 down to -9.7, where ``a e^x`` is still normal);
* the losses' d loss/dz (l1, huber) and fused deltas (softmax_ce with label smoothing, bce with
  soft labels) in float16 on a grid: see each test.

The full enumeration (63,488 finite float16 values) is ``slow``; the default run takes every
fourth one.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradverify.model.dtypes import ulp
from gradverify.model.functions import activation, loss_function

CTX = mpmath.MPContext()
CTX.prec = 80
EVERY_FLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
EVERY_FLOAT16 = EVERY_FLOAT16[np.isfinite(EVERY_FLOAT16)]
NEW = ("gelu", "gelu_tanh", "silu", "leaky_relu", "leaky_relu(0.2)", "elu", "elu(0.5)")
STABLE_ULPS = 0.501


def _exact(fn, h: np.ndarray) -> np.ndarray:
    return np.array([float(fn(CTX, CTX.mpf(float(v)))) for v in h])


def _ulps(got: np.ndarray, exact: np.ndarray, dtype: str) -> np.ndarray:
    return np.abs(got.astype(np.float64) - exact) / ulp(exact, dtype)


def _check_activation(name: str, h: np.ndarray) -> None:
    act = activation(name)
    h64 = h.astype(np.float64)
    value, slope = _exact(act.mp_forward, h64), _exact(act.mp_derivative, h64)
    representable = np.abs(value) <= 65504
    with np.errstate(all="ignore"):
        forward, derivative = act.forward(h), act.derivative(h)
        conventional = act.conventional_derivative(h, forward)
    assert forward.dtype == derivative.dtype == conventional.dtype == np.float16
    worst_f = _ulps(forward, value, "float16")[representable].max()
    worst_d = _ulps(derivative, slope, "float16").max()
    assert worst_f <= STABLE_ULPS and worst_d <= STABLE_ULPS, (name, worst_f, worst_d)
    if act.conventional_error is not None:
        bound = act.conventional_error(h64, np.dtype(np.float16)) + 2.0**-14
        error = np.abs(conventional.astype(np.float64) - slope)
        assert np.all(error <= bound), (name, h64[np.argmax(error - bound)])


@pytest.mark.parametrize("name", NEW)
def test_every_fourth_float16(name):
    _check_activation(name, EVERY_FLOAT16[::4])


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_every_float16(name):
    _check_activation(name, EVERY_FLOAT16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "elu", "elu(0.5)", "softplus"])
def test_error_bounds_from_term_magnitudes_hold_in_float32_and_float64(name, dtype):
    # near the roots of gelu' and silu' (-0.75, -1.28) the terms cancel; at -88.8 float32's
    # exp(-x) overflows in torch's SiLU backward; jax's ELU backward is 0 below -17.3;
    # torch's softplus is x, with slope 1, above 20
    rng = np.random.default_rng(0)
    mags = np.exp(rng.uniform(np.log(1e-6), np.log(120.0), 1500))
    roots = np.concatenate([r + rng.uniform(-1e-3, 1e-3, 200) for r in (-0.7518, -1.2785)])
    h = np.concatenate([mags, -mags, roots, [-88.5, -88.8, -103.0]]).astype(dtype)
    h64 = h.astype(np.float64)
    act = activation(name)
    slope = _exact(act.mp_derivative, h64)
    eta = float(np.finfo(dtype).tiny)
    with np.errstate(all="ignore"):
        conventional = act.conventional_derivative(h, None).astype(np.float64)
        stable = act.derivative(h).astype(np.float64)
    assert np.all(np.abs(conventional - slope) <= act.conventional_error(h64, h.dtype) + eta)
    if act.conventional_forward is not None:
        value = _exact(act.mp_forward, h64)
        with np.errstate(all="ignore"):
            forward = act.conventional_forward(h).astype(np.float64)
        finite = np.isfinite(value) & (np.abs(value) < float(np.finfo(dtype).max))
        bound = act.conventional_forward_error(h64, h.dtype) + eta
        assert np.all((np.abs(forward - value) <= bound)[finite])
    if act.derivative_error is not None:  # else the default 4 u |value| (tested on float16)
        assert np.all(np.abs(stable - slope) <= act.derivative_error(h64, h.dtype) + eta)


# --- losses on a float16 grid -------------------------------------------------

GRID = np.arange(-12.0, 12.01, 0.375).astype(np.float16)
LABELS = np.array([0.0, 0.25, 0.3, 0.5, 1.0], dtype=np.float16)


def _mp_array(a: np.ndarray) -> np.ndarray:
    return np.frompyfunc(CTX.mpf, 1, 1)(a.astype(np.float64))


@pytest.mark.parametrize("name", ["l1", "huber", "huber(2.5)", "mse"])
def test_elementwise_output_gradients_are_correctly_rounded_in_float16(name):
    loss = loss_function(name)
    z, y = np.meshgrid(GRID, LABELS)
    exact = loss.mp_output_gradient(CTX, _mp_array(z), _mp_array(y)).astype(np.float64)
    got = loss.naive_output_gradient(z, y)
    assert got.dtype == np.float16
    assert _ulps(got, exact, "float16").max() <= 0.5  # one rounding of z - y (then exact)


def test_bce_fused_delta_with_soft_labels_in_float16():
    # sigmoid(h) - y: within 1.5 ulps of the larger of |sigmoid(h)| and |y| (two roundings)
    loss = loss_function("bce")
    h, y = np.meshgrid(GRID, LABELS)
    exact = loss.mp_output_delta(CTX, _mp_array(h), None, _mp_array(y)).astype(np.float64)
    got = loss.output_delta(h, None, y)
    assert got.dtype == np.float16
    scale = np.maximum(np.abs(exact + y.astype(np.float64)), np.abs(y.astype(np.float64)))
    assert np.all(np.abs(got.astype(np.float64) - exact) <= 1.5 * ulp(scale, "float16"))


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_softmax_ce_delta_with_label_smoothing_in_float16(epsilon):
    # p sum(t) - t: within 8 ulps of the larger of p sum(t) and t (float16 log-softmax)
    loss = loss_function(f"softmax_ce({epsilon})")
    rng = np.random.default_rng(1)
    h = rng.choice(GRID, size=(3, 60)).astype(np.float16)
    y = np.zeros((3, 60), dtype=np.float16)
    y[rng.integers(0, 3, 60), np.arange(60)] = 1
    exact = loss.mp_output_delta(CTX, _mp_array(h), _mp_array(h), _mp_array(y)).astype(float)
    got = loss.output_delta(h, h, y)
    assert got.dtype == np.float16
    t = (1 - epsilon) * y.astype(np.float64) + epsilon / 3
    scale = np.maximum(np.abs(exact + t), t)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= 8 * ulp(scale, "float16"))
