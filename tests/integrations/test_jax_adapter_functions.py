"""The jax adapter with the newer activations: jax.nn.gelu, silu, leaky_relu and elu.

``loss_fn`` computes the network itself. Written with ``jax.nn`` directly, each model
passes when named as gradverify names it (``jax.nn.gelu(h, approximate=False)`` is
``gelu``, ``jax.nn.leaky_relu(h, 0.2)`` is ``leaky_relu(0.2)``); jax's default GELU is the
tanh form, so a model calling ``jax.nn.gelu(h)`` and named ``gelu`` is ``incorrect``.
:func:`activation_function` maps the names onto the same functions.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install gradverify[jax])")
jnp = pytest.importorskip("jax.numpy")

import gradverify  # noqa: E402
from gradverify.edges.adapters.jax import activation_function, from_function  # noqa: E402
from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.implementations import capabilities_of  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402
from tests.strategies import random_problem  # noqa: E402

DTYPES = ("float32", "float64")

# written as a user writes them, without the adapter's table
JAX_HIDDEN = {
    "gelu": lambda h: jax.nn.gelu(h, approximate=False),
    "gelu_tanh": jax.nn.gelu,  # jax's default: the tanh approximation
    "silu": jax.nn.silu,
    "leaky_relu(0.2)": lambda h: jax.nn.leaky_relu(h, negative_slope=0.2),
    "leaky_relu": jax.nn.leaky_relu,  # jax's default slope is 0.01, as gradverify's
    "elu(0.5)": lambda h: jax.nn.elu(h, alpha=0.5),
}
NAMES = ["gelu", "gelu_tanh", "silu", "leaky_relu(0.2)", "elu(0.5)"]


def with_hidden(hidden):
    """``loss_fn`` of a network whose hidden layers use ``hidden``, stable BCE on the logits."""

    def loss_fn(params, x, y):
        z = x
        for W, b in params[:-1]:
            z = hidden(W @ z + b[:, None])
        W, b = params[-1]
        h = W @ z + b[:, None]
        return jnp.mean(-(y * jax.nn.log_sigmoid(h) + (1 - y) * jax.nn.log_sigmoid(-h)))

    return loss_fn


def named(name, *, hidden=None):
    fn = with_hidden(JAX_HIDDEN[name] if hidden is None else hidden)
    return from_function(fn, losses=("bce",), activations=(name, "sigmoid"), dtypes=DTYPES)


def problem(name, dtype, seed=0):
    """[3, 5, 1], batch 6, hidden layer ``name``; weights scaled so that h takes both signs."""
    p = random_problem((3, 5, 1), (name, "sigmoid"), batch=6, seed=seed, scale=3.0)
    h = p.weights[0] @ p.x + p.biases[0][:, None]
    assert (h < -0.5).any() and (h > 0.5).any()
    return Problem.from_arrays(p.spec, p.weights, p.biases, p.x, p.y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_jax_nn_activations_pass(name, dtype):
    result = check_problem(named(name), problem(name, dtype))
    assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "told, true", [("gelu", "gelu_tanh"), ("leaky_relu(0.2)", "leaky_relu"), ("elu", "elu(0.5)")]
)
def test_a_wrong_name_is_incorrect(told, true, dtype):
    # jax.nn.gelu(h) is the tanh form: named "gelu" (the erf form) it is a logic bug
    result = check_problem(named(told, hidden=JAX_HIDDEN[true]), problem(told, dtype))
    assert result.verdict is Verdict.INCORRECT, str(result)


# --- jax's ELU derivative cancels: the autograd bar is jax's own form ---------------------


def elu_counterexample(dtype):
    """[1, 1, 1]: the hidden ELU at h = -6, where a (expm1(h) + 1) keeps 7 fewer bits in
    float32 than a exp(h) (the search's shrunk counterexample before the bar knew it)."""
    spec = NetworkSpec((1, 1, 1), ("elu(0.5)", "sigmoid"), "bce")
    weights, biases = [np.array([[3.0]]), np.array([[1.0]])], [np.array([-9.0]), np.array([1.0])]
    return Problem.from_arrays(spec, weights, biases, np.ones((1, 1)), np.zeros((1, 1)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_elu_passes_under_autograd_and_its_lost_bits_fail_only_strict(dtype):
    impl = named("elu(0.5)")
    assert check_problem(impl, elu_counterexample(dtype)).verdict is Verdict.PASS
    strict = check_problem(impl, elu_counterexample(dtype), policy="strict")
    if dtype == "float32":
        assert strict.verdict is Verdict.UNSTABLE, str(strict)
        assert "at saturation" in strict.message


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_the_conventional_elu_derivative_is_what_jax_computes(dtype):
    from gradverify.model.functions import activation

    jax.config.update("jax_enable_x64", True)
    act = activation("elu(0.5)")
    h = -np.geomspace(1e-4, 60.0, 4001).astype(dtype)
    got = np.asarray(jax.vmap(jax.grad(JAX_HIDDEN["elu(0.5)"]))(jnp.asarray(h)))
    model = act.conventional_derivative(h, None)
    assert got.dtype == model.dtype == dtype
    # where expm1(h) rounds to -1 both are 0 (exp(h) is not: float32 below -17.3); elsewhere
    # they differ by no more than jax's expm1 from numpy's (most are equal)
    assert np.array_equal(got == 0, model == 0)
    assert (dtype == np.float64) or (model == 0).any()
    bound = act.conventional_error(h.astype(np.float64), np.dtype(dtype))
    assert np.all(np.abs(got.astype(np.float64) - model.astype(np.float64)) <= 2 * bound)
    stable = act.derivative(h)
    assert np.mean(got == stable) < 0.9  # jax's form is not the stable one


# --- jax's tanh GELU in float16: NaN gradients from |h| = 147.9 ----------------------------


def test_jax_tanh_gelu_in_float16_is_judged_by_what_jax_returns():
    # jax computes float16 in float16: from |h| = 147.9 an intermediate of the backward pass
    # overflows and is multiplied by 1 - tanh**2 = 0. The exact gradient there is 1 (or ~0).
    h = np.float16(264.0)
    jax_slope = float(jax.grad(JAX_HIDDEN["gelu_tanh"])(jnp.float16(h)))
    spec = NetworkSpec((1, 1, 1), ("gelu_tanh", "sigmoid"), "bce")
    weights, biases = [np.array([[1.0]]), np.array([[1.0]])], [np.array([263.0]), np.zeros(1)]
    p = Problem.from_arrays(spec, weights, biases, np.ones((1, 1)), np.zeros((1, 1)), "float16")
    impl = from_function(
        with_hidden(JAX_HIDDEN["gelu_tanh"]),
        losses=("bce",),
        activations=("gelu_tanh", "sigmoid"),
        dtypes=("float16",),
    )
    result = check_problem(impl, p)
    if np.isnan(jax_slope):  # jax 0.10: as described above
        assert result.verdict is Verdict.UNSTABLE, str(result)
        assert "inf/NaN entries at saturation" in result.message
    else:  # a jax that keeps it finite must be judged on its numbers
        assert jax_slope == 1.0
        assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.parametrize("name", [*NAMES, "leaky_relu"])
def test_activation_function_is_the_jax_nn_function(name):
    h = jnp.linspace(-4.0, 4.0, 33)
    np.testing.assert_array_equal(np.asarray(activation_function(name)(h)), JAX_HIDDEN[name](h))


def test_activation_function_with_the_names_it_is_given():
    def loss_fn(params, x, y, *, activations, loss):
        z = x
        for (W, b), name in zip(params, activations, strict=True):
            h = W @ z + b[:, None]
            z = activation_function(name)(h)
        return jnp.mean(jnp.abs(z - y))

    impl = from_function(loss_fn, losses=("l1",), activations=("elu(0.5)", "silu"))
    spec = NetworkSpec((3, 5, 2), ("elu(0.5)", "silu"), "l1")
    p = random_problem(spec.widths, spec.activations, "mse", batch=4, seed=1, scale=3.0)
    result = check_problem(impl, Problem.from_arrays(spec, p.weights, p.biases, p.x, p.y))
    assert result.verdict is Verdict.PASS, str(result)


def test_unknown_names_get_one_line_errors():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_function("swish")
    with pytest.raises(ValueError, match="takes no parameter"):
        activation_function("silu(1.0)")


# --- the search, one architecture (one jit compilation per dtype) by default -------------


def search(name, *, max_examples, seed=0, **architecture):
    impl, options = named(name), {"max_examples": max_examples, "seed": seed, "database": None}
    return gradverify.search(impl, activations=(name,), **options, **architecture)


@pytest.mark.parametrize("name", NAMES)
def test_search_passes_on_one_architecture(name):
    result = search(name, max_examples=8, widths=(3, 4, 1), batch=4)
    assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_search_passes(name):
    result = search(name, max_examples=40, depth=(2, 3))
    assert result.verdict is Verdict.PASS, str(result)


def test_loss_names_in_any_spelling():
    def loss_fn(params, x, y):
        (W, b), delta = params[0], 2.0
        r = jnp.abs(W @ x + b[:, None] - y)
        return jnp.mean(jnp.where(r < delta, 0.5 * r * r, delta * (r - 0.5 * delta)))

    impl = from_function(loss_fn, losses=("huber(2)",), activations=("identity",))
    assert capabilities_of(impl).losses == ("huber(2.0)",)
    spec = NetworkSpec((3, 2), ("identity",), "huber(2.0)")
    p = random_problem(spec.widths, spec.activations, "mse", batch=5, seed=2, scale=4.0)
    result = check_problem(impl, Problem.from_arrays(spec, p.weights, p.biases, p.x, p.y))
    assert result.verdict is Verdict.PASS, str(result)
    # named huber (delta 1), the same function is a logic bug where 1 < |r| < 2
    wrong = from_function(loss_fn, losses=("huber",), activations=("identity",))
    spec = NetworkSpec((3, 2), ("identity",), "huber")
    result = check_problem(wrong, Problem.from_arrays(spec, p.weights, p.biases, p.x, p.y))
    assert result.verdict is Verdict.INCORRECT, str(result)
