"""Registering activations and losses: the API, its derivations and its one-line errors.

Oracles are closed forms evaluated in mpmath at far more precision than the values checked
(square_plus' = (1 + h / sqrt(h^2 + 4)) / 2; log_cosh' = tanh(z - y)), never the code under
test.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import gradverify
from gradverify.model import registry
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.names import known_names, validate_names


def _sp(h):
    return (h + np.sqrt(h * h + 4)) / 2


def _mp_sp(ctx, h):
    return (h + ctx.sqrt(h * h + 4)) / 2


def _relu(h):
    return np.maximum(h, np.zeros_like(h))


def _mp_relu(ctx, h):
    return h if h > 0 else ctx.zero


def _mp_sp_slope(h: float, prec: int = 400) -> mpmath.mpf:
    """The closed form of square_plus' at the float ``h``."""
    ctx = mpmath.MPContext()
    ctx.prec = prec
    x = ctx.mpf(h)
    return (1 + x / ctx.sqrt(x * x + 4)) / 2


@pytest.fixture
def square_plus():
    registered = gradverify.register_activation("t_square_plus", forward=_sp, mp_forward=_mp_sp)
    yield registered
    registry.unregister("activation", "t_square_plus")


@pytest.fixture
def cleanup():
    names: list[tuple[str, str]] = []
    yield names
    for kind, name in names:
        registry.unregister(kind, name)


def test_five_lines_make_a_name_known_everywhere(square_plus):
    assert square_plus.name == "t_square_plus"
    assert activation("t_square_plus") is square_plus
    assert "t_square_plus" in known_names("activation")
    assert validate_names("activation", ["tanh", "t_square_plus"]) == ("tanh", "t_square_plus")
    caps = gradverify.Capabilities(activations=("t_square_plus",))
    assert caps.activations == ("t_square_plus",)
    registry.unregister("activation", "t_square_plus")
    with pytest.raises(ValueError, match="unknown activation 't_square_plus'"):
        activation("t_square_plus")


@pytest.mark.parametrize("prec", [64, 113, 300])
@pytest.mark.parametrize("h", [-7.5, -2.0, -1e-300, 0.0, 0.3, 3.0, 1e10, 1e300])
def test_derived_exact_derivative_is_certified_to_the_working_precision(square_plus, h, prec):
    ctx = mpmath.MPContext()
    ctx.prec = prec
    got = square_plus.mp_derivative(ctx, ctx.mpf(h))
    exact = _mp_sp_slope(h)
    assert abs(got - exact) <= 2.0 ** (1 - prec) * abs(exact)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_derived_float_derivative_is_the_exact_one_rounded(square_plus, dtype):
    h = np.array([[-3.0, -0.5, 0.0, 0.7], [2.0, 10.0, -40.0, 1e4]], dtype=dtype)
    got = square_plus.derivative(h)
    assert got.dtype == h.dtype and got.shape == h.shape
    for g, v in zip(got.flat, h.astype(np.float64).flat, strict=True):
        in_float64 = float(_mp_sp_slope(float(v)))  # mpmath's float() rounds to nearest
        assert g == np.asarray(in_float64).astype(dtype)


def test_derived_derivative_at_a_kink_is_the_left_one_and_one_sided_next_to_it(cleanup):
    relu = gradverify.register_activation("t_relu", _relu, _mp_relu, kinks=(0,))
    cleanup.append(("activation", "t_relu"))
    ctx = mpmath.MPContext()
    ctx.prec = 113
    values = [relu.mp_derivative(ctx, ctx.mpf(h)) for h in (-1e-300, 0.0, 1e-300, 5e-324, 2.0)]
    assert values == [0, 0, 1, 1, 1]
    assert relu.kinks == (0.0,)


def test_given_forms_are_kept(cleanup):
    slope = lambda h: (1 + h / np.sqrt(h * h + 4)) / 2  # noqa: E731
    mp_slope = lambda ctx, h: (1 + h / ctx.sqrt(h * h + 4)) / 2  # noqa: E731
    act = gradverify.register_activation(
        "t_sp_given", _sp, _mp_sp, derivative=slope, mp_derivative=mp_slope, saturates=False
    )
    cleanup.append(("activation", "t_sp_given"))
    assert act.derivative is slope and act.mp_derivative is mp_slope


def test_registering_again_is_a_no_op_and_other_functions_an_error(square_plus):
    again = gradverify.register_activation("t_square_plus", forward=_sp, mp_forward=_mp_sp)
    assert again is square_plus
    with pytest.raises(ValueError, match="already registered with other functions"):
        gradverify.register_activation("t_square_plus", np.tanh, lambda ctx, h: ctx.tanh(h))
    replaced = gradverify.register_activation(
        "t_square_plus", np.tanh, lambda ctx, h: ctx.tanh(h), replace=True
    )
    assert activation("t_square_plus") is replaced is not square_plus


def test_a_function_defined_again_counts_as_the_same():
    def make():
        return lambda h: (h + np.sqrt(h * h + 4)) / 2

    assert registry.same_inputs([("f", make())], [("f", make())])
    offset = [lambda h, c=c: h + c for c in (1, 2)]
    assert not registry.same_inputs([("f", offset[0])], [("f", offset[1])])


BAD_ACTIVATIONS = [
    ({"name": "tanh"}, "activation name 'tanh' is a built-in activation"),
    ({"name": "leaky_relu"}, "activation name 'leaky_relu' is a built-in activation"),
    ({"name": "my act"}, "malformed activation name 'my act'"),
    ({"name": "f(2)"}, "malformed activation name 'f(2)'"),
    ({"name": "pkg:f"}, "malformed activation name 'pkg:f'"),
    ({"kinks": (float("nan"),)}, "every kink must be a finite number; got nan"),
    ({"kinks": ("0",)}, "every kink must be a finite number; got '0'"),
    (
        {"forward": lambda h: h.astype(np.float64)},
        "forward returned float64 for a float16 array; it must compute in the dtype",
    ),
    ({"forward": lambda h: h - h.mean()}, "forward is not elementwise"),
    ({"forward": lambda h: float(h.sum())}, "forward returned a float, not a numpy array"),
    ({"forward": lambda h: h.ravel()}, "forward returned shape (8,) for an array of shape"),
    ({"forward": "tanh"}, "forward must be callable"),
    (
        {"mp_forward": lambda ctx, h: (h - ctx.sqrt(h * h + 4)) / 2},
        "forward and mp_forward disagree at -2",
    ),
    ({"mp_forward": lambda ctx, h: ctx.nope(h)}, "mp_forward raised AttributeError"),
    (
        {"derivative": lambda h: 1 + h / np.sqrt(h * h + 4)},
        "derivative and the mpmath derivative disagree at -2",
    ),
    (
        {"mp_derivative": lambda ctx, h: 1 + h / ctx.sqrt(h * h + 4)},
        "mp_derivative disagrees with the derivative of mp_forward at -2",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_ACTIVATIONS)
def test_a_bad_registration_names_its_problem_in_one_line(change, message):
    given = {"name": "t_bad", "forward": _sp, "mp_forward": _mp_sp, **change}
    with pytest.raises(ValueError) as info:
        gradverify.register_activation(**given)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert "t_bad" not in known_names("activation")


def _log_cosh(h, z, y):
    d = z - y
    return np.logaddexp(d, -d) - np.log(np.asarray(2, dtype=z.dtype))


def _mp_log_cosh(ctx, h, z, y):
    return ctx.log(ctx.cosh(z - y))


def test_a_loss_for_any_output_layer_gets_an_exact_dloss_dz(cleanup):
    loss = gradverify.register_loss("t_log_cosh", _log_cosh, _mp_log_cosh)
    cleanup.append(("loss", "t_log_cosh"))
    assert loss_function("t_log_cosh") is loss and not has_fused_delta(loss)
    ctx = mpmath.MPContext()
    ctx.prec = 113
    z = np.array([[ctx.mpf(0.5), ctx.mpf(-3)]], dtype=object)
    y = np.array([[ctx.mpf(0), ctx.mpf(1)]], dtype=object)
    got = loss.mp_output_gradient(ctx, z, y)
    for g, zv, yv in zip(got.flat, z.flat, y.flat, strict=True):
        assert abs(g - ctx.tanh(zv - yv)) <= 2.0**-110 * abs(ctx.tanh(zv - yv))
    floats = loss.naive_output_gradient(np.array([[0.5, -3.0]]), np.array([[0.0, 1.0]]))
    assert floats.tolist() == [[float(np.tanh(0.5)), float(np.tanh(-4.0))]]


def test_a_fused_loss_gets_an_exact_dloss_dh(cleanup):
    def value(h, z, y):
        return np.logaddexp(np.zeros_like(h), h) - y * h

    def mp_value(ctx, h, z, y):
        return ctx.log1p(ctx.exp(h)) - y * h

    loss = gradverify.register_loss("t_bce", value, mp_value, output_activation="sigmoid")
    cleanup.append(("loss", "t_bce"))
    assert has_fused_delta(loss) and loss.output_activation == "sigmoid"
    h, y = np.array([[-2.0, 0.0, 30.0]]), np.array([[0.0, 1.0, 1.0]])
    expected = [1 / (1 + np.exp(2.0)), -0.5, -float(mpmath.exp(-30) / (1 + mpmath.exp(-30)))]
    assert loss.output_delta(h, None, y)[0].tolist() == pytest.approx(expected, rel=1e-15)


BAD_LOSSES = [
    ({"name": "mse"}, "loss name 'mse' is a built-in loss"),
    ({"output_activation": "swish"}, "output_activation: unknown activation 'swish'"),
    ({"mp_value": lambda ctx, h, z, y: (z - y) ** 2}, "value and mp_value disagree"),
    ({"value": lambda h, z, y: (z - y).astype(np.float64)}, "value returned float64"),
    ({"kinks": (float("inf"),)}, "every kink must be a finite number; got inf"),
    ({"labels": "soft"}, "labels must be one of any, probability, distribution"),
    ({"output_delta": lambda h, z, y: z - y}, "output_delta does not apply to a loss without"),
    (
        {"mp_output_gradient": lambda ctx, z, y: ctx.sinh(z - y)},
        "mp_output_gradient and the derivative of mp_value disagree",
    ),
    ({"output_gradient": lambda z, y: z - y}, "output_gradient and mp_output_gradient disagree"),
]


@pytest.mark.parametrize(("change", "message"), BAD_LOSSES)
def test_a_bad_loss_names_its_problem_in_one_line(change, message):
    given = {"name": "t_bad_loss", "value": _log_cosh, "mp_value": _mp_log_cosh, **change}
    with pytest.raises(ValueError) as info:
        gradverify.register_loss(**given)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "t_bad_loss" not in known_names("loss")
