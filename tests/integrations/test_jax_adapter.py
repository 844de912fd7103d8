"""The jax adapter: a loss function of parameters, gradients from jax.grad.

Findings checked here: a naive BCE (sigmoid, then ``-(y log p + (1 - y) log(1 - p))``) is
``unstable`` at saturation; the stable form on the logits (``log_sigmoid``, as optax's
``sigmoid_binary_cross_entropy`` writes it) passes.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install gradverify[jax])")
jnp = pytest.importorskip("jax.numpy")

from gradverify.edges.adapters.jax import from_function  # noqa: E402
from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.harness import call_backprop  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.model.network import Problem  # noqa: E402
from tests.strategies import random_problem  # noqa: E402

ACTIVATIONS = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "identity": lambda h: h,
}


def logits(params, x, activations):
    z = x
    for i, (W, b) in enumerate(params):
        h = W @ z + b[:, None]
        if i < len(params) - 1:
            z = ACTIVATIONS[activations[i]](h)
    return h


def naive_bce(params, x, y, *, activations, loss):
    p = jax.nn.sigmoid(logits(params, x, activations))
    return jnp.mean(-(y * jnp.log(p) + (1 - y) * jnp.log(1 - p)))


def stable_bce(params, x, y, *, activations, loss):
    h = logits(params, x, activations)
    return jnp.mean(-(y * jax.nn.log_sigmoid(h) + (1 - y) * jax.nn.log_sigmoid(-h)))


NAIVE = from_function(naive_bce, losses=("bce",))
STABLE = from_function(stable_bce, losses=("bce",))


def saturated_problem(dtype: str) -> Problem:
    """[3, 4, 1] tanh/sigmoid, batch 4, output logits near 60, every label 0."""
    p = random_problem(
        (3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, dtype=dtype, output_shift=60.0
    )
    return Problem.from_arrays(p.spec, p.weights, p.biases, p.x, np.zeros((1, 4)), dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_naive_bce_is_unstable_at_saturation(dtype):
    problem = saturated_problem(dtype)
    result = check_problem(NAIVE, problem)
    assert result.verdict is Verdict.UNSTABLE, str(result)
    assert result.interior_verdict is Verdict.PASS
    # sigmoid(60) rounds to 1, log(1 - p) = -inf, and its gradient is inf * 0 = NaN
    got = call_backprop(NAIVE, problem).dbiases[-1][0]
    assert not np.isfinite(got)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_stable_bce_passes_at_saturation(dtype):
    problem = saturated_problem(dtype)
    result = check_problem(STABLE, problem)
    assert result.verdict is Verdict.PASS, str(result)
    # every sample's dJ/dh_L is about +1/N, and the bias gradient sums 4 of them to about 1
    got = call_backprop(STABLE, problem).dbiases[-1][0]
    assert float(got) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "widths, activations",
    [
        ((3, 4, 1), ("tanh", "sigmoid")),
        ((4, 5, 3, 2), ("relu", "softplus", "sigmoid")),
    ],
)
@pytest.mark.parametrize("impl", [NAIVE, STABLE], ids=["naive", "stable"])
def test_both_pass_in_the_interior(impl, widths, activations, dtype):
    problem = random_problem(widths, activations, batch=5, dtype=dtype, seed=2)
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.PASS, str(result)


def test_float64_stays_float64():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=3)
    outcome = call_backprop(STABLE, problem)
    assert outcome.ok, outcome.error
    assert all(d.dtype == np.float64 for d in (*outcome.dweights, *outcome.dbiases))
    assert jax.config.read("jax_enable_x64")


def test_rows_layout_without_jit_and_sum_reduction():
    def rows_sum(params, x, y):
        h = jnp.tanh(x @ params[0][0].T + params[0][1]) @ params[1][0].T + params[1][1]
        return jnp.sum(jax.nn.softplus(h) - y * h)

    problem = random_problem((3, 4, 2), ("tanh", "sigmoid"), batch=4, seed=4)
    impl = from_function(rows_sum, losses=("bce",), layout="rows", reduction="sum", jit=False)
    assert check_problem(impl, problem).verdict is Verdict.PASS
    # the same function declared as a mean is off by N = 8: a logic bug
    wrong = from_function(rows_sum, losses=("bce",), layout="rows")
    result = check_problem(wrong, problem)
    assert result.verdict is Verdict.INCORRECT
    assert result.worst[0].value == pytest.approx(8 * result.worst[0].reference, rel=1e-12)


def test_a_raising_loss_function_is_an_error():
    def broken(params, x, y):
        return jnp.mean(params[5][0])

    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=2, seed=0)
    result = check_problem(from_function(broken, losses=("bce",)), problem)
    assert result.verdict is Verdict.ERROR
    assert "raised IndexError" in result.message


def test_search_drives_the_adapter():
    from gradverify.engine.implementations import supports
    from gradverify.exploration import search

    seen = []

    @supports(losses=("bce",), dtypes=("float32", "float64"), name="jax:naive_bce")
    def recording(weights, biases, x, y, *, activations, loss):
        seen.append((x.dtype.name, tuple(w.shape for w in weights), x.shape[1]))
        return NAIVE(weights, biases, x, y, activations=activations, loss=loss)

    result = search.search(recording, max_examples=6, seed=0, database=None)
    assert {s[0] for s in seen} == {"float32", "float64"}
    assert len({s[1] for s in seen}) > 1 and len({s[2] for s in seen}) > 1
    assert result.verdict is Verdict.UNSTABLE, str(result)
