"""Each activation and loss: float form against its mpmath form, derivatives against mpmath.diff."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradverify.model.functions import ACTIVATIONS, LOSSES, activation, loss_function

CTX = mpmath.MPContext()
CTX.prec = 200
POINTS = np.array([-745.0, -300.0, -40.0, -3.5, -1.0, -1e-3, 0.0, 2e-8, 0.7, 5.0, 37.0, 710.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float_forms_match_mpmath_forms_in_float64(name):
    act = ACTIVATIONS[name]
    got_f, got_d = act.forward(POINTS), act.derivative(POINTS)
    for h, f, d in zip(POINTS, got_f, got_d, strict=True):
        for value, exact in (
            (f, act.mp_forward(CTX, CTX.mpf(h))),
            (d, act.mp_derivative(CTX, CTX.mpf(h))),
        ):
            exact_f = float(exact)
            if exact_f == 0.0 or abs(exact_f) < 1e-300:
                assert abs(value) <= 1e-300
            else:  # stable forms keep relative accuracy, even at |h| = 700
                assert abs(value - exact_f) <= 8 * np.finfo(float).eps * abs(exact_f), (h, value)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mp_derivative_is_the_derivative_of_mp_forward(name):
    act = ACTIVATIONS[name]
    for h in (-30.0, -2.5, -0.3, 0.4, 3.0, 25.0):  # away from the relu kink
        numeric = CTX.diff(lambda v: act.mp_forward(CTX, v), CTX.mpf(h))
        exact = act.mp_derivative(CTX, CTX.mpf(h))
        assert abs(numeric - exact) <= CTX.mpf(10) ** -40 * max(abs(exact), CTX.mpf(10) ** -30)


def test_relu_kink_and_subgradient_convention():
    relu = activation("relu")
    assert relu.kinks == (0.0,)
    assert relu.derivative(np.array([0.0]))[0] == 0.0
    assert relu.mp_derivative(CTX, CTX.zero) == 0
    kinked = {n for n in ACTIVATIONS if ACTIVATIONS[n].kinks}
    assert kinked == {"relu", "leaky_relu"}  # elu at its default alpha = 1 is C^1
    assert activation("elu(0.5)").kinks == (0.0,)


def test_float_forms_keep_the_dtype():
    h = np.array([-3.0, 0.5, 4.0], dtype=np.float16)
    for act in ACTIVATIONS.values():
        assert act.forward(h).dtype == np.float16
        assert act.derivative(h).dtype == np.float16


def test_stable_sigmoid_derivative_does_not_vanish_before_its_time():
    # s(1-s) would be exactly 0 at h = 40 in float64; the stable form is e^-40 to ~1 ulp
    d = activation("sigmoid").derivative(np.array([40.0]))[0]
    assert d == pytest.approx(np.exp(-40.0), rel=1e-14)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_float_form_matches_mpmath_form(name):
    loss = LOSSES[name]
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3, 4)) * 5
    out = activation(loss.output_activation or "tanh")
    z = out.forward(h)
    y = rng.random((3, 4))
    if name == "softmax_ce":
        y /= y.sum(axis=0)
    mp = np.frompyfunc(CTX.mpf, 1, 1)
    mz = np.frompyfunc(lambda v: out.mp_forward(CTX, v), 1, 1)(mp(h))
    exact = loss.mp_value(CTX, mp(h), mz, mp(y))
    got = loss.value(h, z, y)
    np.testing.assert_allclose(got, exact.astype(float), rtol=1e-13, atol=1e-15)


def test_bce_fused_delta_matches_the_chain_rule_exactly():
    # d/dh [softplus(h) - y h] = sigmoid(h) - y, checked by mpmath.diff of the mp loss
    loss = loss_function("bce")
    for h, y in ((-7.0, 1.0), (0.3, 0.0), (12.0, 1.0), (25.0, 0.25)):

        def value(v, y=y):
            return loss.mp_value(
                CTX, np.array([[v]], dtype=object), None, np.array([[CTX.mpf(y)]], dtype=object)
            )[0, 0]

        numeric = CTX.diff(value, CTX.mpf(h))
        exact = loss.mp_output_delta(
            CTX,
            np.array([[CTX.mpf(h)]], dtype=object),
            None,
            np.array([[CTX.mpf(y)]], dtype=object),
        )[0, 0]
        assert abs(numeric - exact) <= CTX.mpf(10) ** -40 * abs(exact)


def test_naive_bce_gradient_divides_by_zero_once_yhat_rounds_to_one():
    naive = loss_function("bce").naive_output_gradient
    with np.errstate(all="ignore"):
        assert np.isinf(naive(np.array([1.0]), np.array([0.0])))[0]
        assert np.isnan(naive(np.array([1.0]), np.array([1.0])))[0]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'; known activations: sigmoid"):
        activation("swish")
    with pytest.raises(ValueError, match="unknown loss 'hinge'; known losses: bce, mse"):
        loss_function("hinge")
