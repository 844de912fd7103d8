"""gelu, gelu_tanh, silu, leaky_relu, elu, l1, huber, label smoothing and soft-label bce.

The exact (mpmath) forms are checked against an independent oracle: ``mpmath.diff`` of a plain
mpmath forward written differently (``ncdf`` for the Gaussian cdf, ``exp(x) - 1`` for ELU,
``1/(1 + exp(-x))``) at 30 digits, over ordinary and extreme arguments.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradverify.model.functions import activation, loss_function

CTX = mpmath.MPContext()
CTX.prec = 200
ORACLE = mpmath.MPContext()
ORACLE.dps = 30
POINTS = (-700.0, -30.0, -3.0, -0.5, -1e-8, 1e-8, 0.5, 3.0, 30.0, 700.0)


def _oracle_gelu(x):
    return x * ORACLE.ncdf(x)


def _oracle_gelu_tanh(x):
    u = ORACLE.sqrt(2 / ORACLE.pi) * (x + ORACLE.mpf("0.044715") * x**3)
    return x * ORACLE.exp(u) / (ORACLE.exp(u) + ORACLE.exp(-u))


def _oracle_silu(x):
    return x / (1 + ORACLE.exp(-x))


def _oracle_leaky(slope):
    return lambda x: x if x > 0 else ORACLE.mpf(slope) * x


def _oracle_elu(alpha):
    def elu(x):
        if x > 0:
            return x
        with ORACLE.extradps(50):  # exp(x) - 1 cancels for tiny x: extra digits, plainly
            return ORACLE.mpf(alpha) * (ORACLE.exp(x) - 1)

    return elu


ORACLES = {
    "gelu": _oracle_gelu,
    "gelu_tanh": _oracle_gelu_tanh,
    "silu": _oracle_silu,
    "leaky_relu": _oracle_leaky(0.01),
    "leaky_relu(0.2)": _oracle_leaky(0.2),
    "elu": _oracle_elu(1.0),
    "elu(0.5)": _oracle_elu(0.5),
}


def _close(a, b, rel=1e-24):
    a, b = ORACLE.mpf(a), ORACLE.mpf(b)
    if b == 0:
        return a == 0
    return abs(a - b) <= rel * abs(b)


@pytest.mark.parametrize("name", sorted(ORACLES))
@pytest.mark.parametrize("x", POINTS)
def test_exact_value_and_derivative_agree_with_an_independent_oracle(name, x):
    act, oracle = activation(name), ORACLES[name]
    mx = CTX.mpf(x)
    # 30 digits, except that the plain forms cancel at -700 (exp(x) - 1 is -1 + e^-700)
    with ORACLE.workdps(30 if abs(x) < 100 else 400):
        value = oracle(ORACLE.mpf(x))
        slope = ORACLE.diff(oracle, ORACLE.mpf(x))
    assert _close(act.mp_forward(CTX, mx), value), (name, x)
    assert _close(act.mp_derivative(CTX, mx), slope), (name, x)


def test_derivatives_at_the_kink_follow_torch():
    assert activation("leaky_relu").mp_derivative(CTX, CTX.zero) == CTX.mpf(0.01)
    assert activation("leaky_relu(0.2)").derivative(np.array([0.0]))[0] == 0.2
    assert activation("elu(0.5)").mp_derivative(CTX, CTX.zero) == CTX.mpf(0.5)
    assert activation("elu(0.5)").derivative(np.array([0.0]))[0] == 0.5
    assert activation("leaky_relu").kinks == (0.0,) and activation("elu(2.0)").kinks == (0.0,)
    assert activation("elu").kinks == ()


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu"])
def test_torch_backward_forms_cancel_where_the_stable_forms_do_not(name):
    act = activation(name)
    h = np.array([-9.0], dtype=np.float32)
    exact = float(act.mp_derivative(CTX, CTX.mpf(-9.0)))
    stable = float(act.derivative(h)[0])
    conventional = float(act.conventional_derivative(h, act.forward(h))[0])
    assert abs(stable - exact) <= 2**-24 * abs(exact)
    bound = float(act.conventional_error(np.array([-9.0]), np.dtype(np.float32))[0])
    assert abs(conventional - exact) <= bound
    if name != "silu":  # 1 + erf and 1 + tanh cancel in float32 at -9; SiLU's s (1 + x (1 - s)) not
        assert abs(conventional - exact) > 2**-10 * abs(exact)


def test_silu_torch_backward_is_zero_once_exp_overflows_and_the_bound_knows():
    act = activation("silu")
    h = np.array([-100.0], dtype=np.float32)
    assert act.conventional_derivative(h, act.forward(h))[0] == 0.0
    exact = float(act.mp_derivative(CTX, CTX.mpf(-100.0)))
    assert exact < -1e-42
    assert act.conventional_error(h.astype(np.float64), np.dtype(np.float32))[0] >= abs(exact)


# --- losses -------------------------------------------------------------------


def _mp(a):
    return np.frompyfunc(CTX.mpf, 1, 1)(np.asarray(a, dtype=np.float64))


def _loss_oracle(name, delta):
    def l1(z, y):
        return abs(z - y)

    def huber(z, y):
        d = abs(z - y)
        return d * d / 2 if d < delta else delta * (d - ORACLE.mpf(delta) / 2)

    def mse(z, y):
        return (z - y) ** 2

    return {"l1": l1, "huber": huber, "mse": mse}[name]


@pytest.mark.parametrize(
    ("name", "delta"), [("l1", None), ("huber", 1.0), ("huber(2.5)", 2.5), ("mse", None)]
)
@pytest.mark.parametrize("d", [-700.0, -3.0, -1.2, -0.5, -1e-8, 1e-8, 0.5, 1.2, 3.0, 700.0])
def test_elementwise_loss_value_and_gradient_agree_with_an_oracle(name, delta, d):
    loss = loss_function(name)
    oracle = _loss_oracle(name.split("(")[0], delta)
    z, y = np.array([[0.25 + d]]), np.array([[0.25]])
    with ORACLE.workdps(30):
        value = oracle(ORACLE.mpf(z[0, 0]), ORACLE.mpf(0.25))
        slope = ORACLE.diff(lambda v: oracle(v, ORACLE.mpf(0.25)), ORACLE.mpf(z[0, 0]))
    assert _close(loss.mp_value(CTX, None, _mp(z), _mp(y))[0, 0], value)
    assert _close(loss.mp_output_gradient(CTX, _mp(z), _mp(y))[0, 0], slope)
    assert float(loss.naive_output_gradient(z, y)[0, 0]) == pytest.approx(float(slope), rel=1e-15)


def test_l1_gradient_is_zero_where_z_equals_y_as_torch():
    loss = loss_function("l1")
    assert loss.naive_output_gradient(np.array([[0.5]]), np.array([[0.5]]))[0, 0] == 0.0
    assert loss.mp_output_gradient(CTX, _mp([[0.5]]), _mp([[0.5]]))[0, 0] == 0


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("column", [(3.0, -1.0, 0.5), (40.0, -40.0, 0.0), (700.0, 0.0, -700.0)])
def test_label_smoothing_delta_is_the_derivative_of_torchs_loss(epsilon, column):
    # torch: (1 - eps) * CE(y) + eps * mean_k(-log p_k), for index and probability targets
    loss = loss_function(f"softmax_ce({epsilon})")
    y = np.array([[0.0], [1.0], [0.0]])
    h = np.array(column)[:, None]

    def torch_loss(*hs):
        top = max(hs)
        log_total = ORACLE.log(ORACLE.fsum(ORACLE.exp(v - top) for v in hs))
        logp = [v - top - log_total for v in hs]
        ce = -ORACLE.fsum(ORACLE.mpf(t) * lp for t, lp in zip(y[:, 0], logp, strict=True))
        return (1 - ORACLE.mpf(epsilon)) * ce - ORACLE.mpf(epsilon) * ORACLE.fsum(logp) / 3

    exact = loss.mp_output_delta(CTX, _mp(h), _mp(h), _mp(y))
    value = loss.mp_value(CTX, _mp(h), _mp(h), _mp(y))
    with ORACLE.workdps(1500):  # the saturated columns' deltas are as small as e^-1400
        point = [ORACLE.mpf(v) for v in column]
        assert _close(CTX.fsum(value[:, 0]), torch_loss(*point), 1e-25)
        for k in range(3):
            order = tuple(int(j == k) for j in range(3))
            assert _close(exact[k, 0], ORACLE.diff(torch_loss, point, order), 1e-20)


@pytest.mark.parametrize("label", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("h", [-700.0, -30.0, -0.5, 0.0, 0.4, 30.0, 700.0])
def test_bce_with_soft_labels_value_and_fused_delta(label, h):
    loss = loss_function("bce")

    def plain(v):
        s = 1 / (1 + ORACLE.exp(-v))
        y = ORACLE.mpf(label)
        return -(y * ORACLE.log(s) + (1 - y) * ORACLE.log(1 - s))

    with ORACLE.workdps(700):  # 1 - s at h = 700 needs 304 digits plainly
        value = plain(ORACLE.mpf(h))
        slope = ORACLE.diff(plain, ORACLE.mpf(h))
    hh, yy = _mp([[h]]), _mp([[label]])
    assert _close(loss.mp_value(CTX, hh, None, yy)[0, 0], value, 1e-25)
    assert _close(loss.mp_output_delta(CTX, hh, None, yy)[0, 0], slope, 1e-20)
    fused = float(loss.output_delta(np.array([h]), None, np.array([label]))[0])
    # sigmoid(h) - y: relative accuracy, except where sigmoid(h) rounds near y (absolute)
    assert fused == pytest.approx(float(slope), rel=1e-15, abs=2**-53)


def test_huber_and_l1_kinks_are_visible_to_finite_differences():
    z, y = np.array([[0.5, 2.0, -1.0]]), np.array([[0.5, 0.0, 0.0]])
    assert loss_function("l1").kink_sides(None, z, y)[0].tolist() == [[0.0, 1.0, -1.0]]
    assert loss_function("huber").kink_sides(None, z, y)[0].tolist() == [[-1.0, 1.0, 0.0]]
    assert loss_function("mse").kink_sides is None
