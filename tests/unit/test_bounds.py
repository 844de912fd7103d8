"""The rounding floor against brute force: no correct summation order may exceed it.

Small networks are evaluated in float16 and float32 with *every* order of every sum (each
sum length gets each of its permutations), in both formulations (act' from h, and sigma',
tanh' from the outputs as autograd does). Every entry of every result must lie within the
bound of :func:`gradverify.engine.bounds.rounding_error_bounds` around the exact gradient.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradverify.engine.bounds import rounding_error_bounds, rounding_floors
from gradverify.engine.check import check_problem
from gradverify.engine.compare import error_beyond_floor
from gradverify.engine.implementations import fused_bce_backprop
from gradverify.engine.results import Verdict
from gradverify.exact.reference import reference_gradients
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.network import NetworkSpec, Problem


def _ordered_sum(terms: np.ndarray, order: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Sum ``terms`` over axis 0 in ``order``, rounding to ``dtype`` after every addition."""
    acc = terms[order[0]]
    for k in order[1:]:
        acc = (acc + terms[k]).astype(dtype)
    return acc


def _backprop_in_order(
    problem: Problem, orders: dict[int, tuple[int, ...]], formulation: str
) -> list[np.ndarray]:
    """dW_1, db_1, ... computed in the problem's dtype with the given sum orders."""
    dt = problem.dtype
    spec = problem.spec
    acts = [activation(a) for a in spec.activations]
    zs, hs = [problem.x], []
    for W, b, act in zip(problem.weights, problem.biases, acts, strict=True):
        # terms[j, r, c] = W[r, j] z[j, c], then the bias as the last term
        terms = np.concatenate(
            [
                (W.T[:, :, None] * zs[-1][:, None, :]).astype(dt),
                np.broadcast_to(b[None, :, None], (1, *b.shape, zs[-1].shape[1])),
            ]
        )
        h = _ordered_sum(terms, orders[terms.shape[0]], dt)
        hs.append(h)
        torch_forward = formulation == "autograd" and act.conventional_forward is not None
        zs.append(act.conventional_forward(h) if torch_forward else act.forward(h))
    y, n = problem.y, dt.type(problem.y.size)
    loss = loss_function(spec.loss)
    if not has_fused_delta(loss):
        act = acts[-1]
        slope = (
            act.conventional_derivative(hs[-1], zs[-1])
            if formulation == "autograd"
            else act.derivative(hs[-1])
        )
        delta = loss.naive_output_gradient(zs[-1], y) * slope / n
    else:
        delta = loss.output_delta(hs[-1], zs[-1], y) / n
    out: list[np.ndarray] = [np.empty(0)] * (2 * spec.depth)
    for i in reversed(range(spec.depth)):
        # dW[r, j] = sum_c delta[r, c] z[j, c]; db[r] = sum_c delta[r, c]
        out[2 * i] = _ordered_sum(
            (delta.T[:, :, None] * zs[i].T[:, None, :]).astype(dt), orders[delta.shape[1]], dt
        )
        out[2 * i + 1] = _ordered_sum(delta.T, orders[delta.shape[1]], dt)
        if i > 0:
            W = problem.weights[i]
            g = _ordered_sum((W[:, :, None] * delta[:, None, :]).astype(dt), orders[W.shape[0]], dt)
            act = acts[i - 1]
            slope = (
                act.conventional_derivative(hs[i - 1], zs[i])
                if formulation == "autograd"
                else act.derivative(hs[i - 1])
            )
            delta = g * slope
    return out


def _all_orders(lengths: set[int]):
    """Every combination of one permutation per sum length (length 1: the identity)."""
    lengths = sorted(lengths)
    for choice in itertools.product(*(itertools.permutations(range(n)) for n in lengths)):
        yield dict(zip(lengths, choice, strict=True))


def _problem(seed: int, dtype: str) -> Problem:
    rng = np.random.default_rng(seed)
    loss = ["bce", "mse", "softmax_ce"][seed % 3]
    hidden = ["sigmoid", "tanh", "relu", "softplus", "identity"][seed % 5]
    out_act = {"bce": "sigmoid", "softmax_ce": "identity"}.get(loss, ["tanh", "sigmoid"][seed % 2])
    widths = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), 2 if loss == "softmax_ce" else 1)
    batch = int(rng.integers(1, 4))
    scale = float(rng.choice([0.5, 2.0, 6.0]))
    spec = NetworkSpec(widths, (hidden, out_act), loss)
    weights = [rng.standard_normal((widths[i + 1], widths[i])) * scale for i in range(2)]
    biases = [rng.standard_normal(widths[i + 1]) * scale for i in range(2)]
    x = rng.standard_normal((widths[0], batch))
    if loss == "softmax_ce":
        y = rng.dirichlet(np.ones(2), size=batch).T
    else:
        y = rng.uniform(0, 1, (1, batch))
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("formulation", ["stable", "autograd"])
def test_no_summation_order_exceeds_the_bound(dtype, formulation):
    checked = 0
    worst = 0.0
    for seed in range(12):
        problem = _problem(seed, dtype)
        exact = [t[1] + t[2] for t in reference_gradients(problem).tensors()]
        bounds = rounding_error_bounds(problem, formulation)
        spec = problem.spec
        lengths = {spec.widths[0] + 1, spec.widths[1] + 1, problem.batch_size, *spec.widths[1:]}
        with np.errstate(all="ignore"):
            for orders in _all_orders(lengths):
                result = _backprop_in_order(problem, orders, formulation)
                for value, ref, bound in zip(result, exact, bounds, strict=True):
                    a = value.astype(np.float64)
                    assert np.all(np.isfinite(a))
                    error = np.abs(a - ref)
                    assert np.all(error <= bound), (seed, orders, error, bound)
                    worst = max(worst, float(np.max(np.where(bound > 0, error / bound, 0))))
                checked += 1
    assert checked > 100
    # the bound is not vacuous: some order comes within a factor 50 of it
    assert worst > 0.02


def test_autograd_bound_allows_the_saturated_hidden_loss_that_stable_does_not():
    # one saturated sigmoid hidden unit (h = 12): z(1 - z) in float32 loses ~e^12 u
    spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
    problem = Problem.from_arrays(
        spec,
        [np.array([[12.0]]), np.array([[1.0]])],
        [np.array([0.0]), np.array([0.0])],
        np.array([[1.0]]),
        np.array([[1.0]]),
        "float32",
    )
    exact = reference_gradients(problem).tensors()
    autograd = _backprop_in_order(problem, {1: (0,), 2: (0, 1)}, "autograd")
    error = abs(float(autograd[0][0, 0]) - exact[0][1][0, 0])
    stable_bound = rounding_error_bounds(problem, "stable")[0][0, 0]
    autograd_bound = rounding_error_bounds(problem, "autograd")[0][0, 0]
    assert stable_bound < error <= autograd_bound


def test_an_exact_zero_accepts_an_error_at_the_scale_of_the_cancelled_terms():
    # two samples with logits t and -t and labels 1 and 0: their output deltas
    # sigmoid(t) - 1 and sigmoid(-t) cancel exactly, so db1 is exactly 0, while the fused
    # float form (which rounds sigmoid(t) before subtracting 1) leaves ~1e-17
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    problem = Problem.from_arrays(
        spec,
        [np.array([[2.5]])],
        [np.array([0.0])],
        np.array([[1.0, -1.0]]),
        np.array([[1.0, 0.0]]),
        "float64",
    )
    ref = reference_gradients(problem)
    assert ref.dbiases[0][0] == 0.0
    _, dbiases = fused_bce_backprop(
        list(problem.weights),
        list(problem.biases),
        problem.x,
        problem.y,
        activations=spec.activations,
        loss=spec.loss,
    )
    assert dbiases[0][0] != 0.0
    floor = rounding_error_bounds(problem, "stable")[1]
    # without a floor the tensor's relative error is infinite ...
    assert error_beyond_floor(dbiases[0], ref.dbiases[0], ref.dbiases_low[0], 0 * floor) == np.inf
    # ... with it, the rounding at the scale of the cancelled terms is excused
    assert error_beyond_floor(dbiases[0], ref.dbiases[0], ref.dbiases_low[0], floor) == 0.0
    assert floor[0] < 1e-15  # about 2 u (|delta_1| + |delta_2|), not more
    # a real error at that entry is not excused
    assert error_beyond_floor(np.array([1e-9]), ref.dbiases[0], ref.dbiases_low[0], floor) == np.inf
    result = check_problem(fused_bce_backprop, problem)
    assert result.verdict is Verdict.PASS, str(result)


def test_error_beyond_floor_is_normwise_over_what_the_floor_leaves():
    ref = np.array([3.0, 4.0])
    value = np.array([3.5, 4.0])
    assert error_beyond_floor(value, ref, np.zeros(2), np.zeros(2)) == pytest.approx(0.1)
    assert error_beyond_floor(value, ref, np.zeros(2), np.array([0.25, 0.0])) == pytest.approx(0.05)
    assert error_beyond_floor(value, ref, np.zeros(2), np.array([0.5, 0.0])) == 0.0
    assert error_beyond_floor(np.array([np.nan, 4.0]), ref, np.zeros(2), np.ones(2)) == np.inf


def test_unknown_formulation_is_refused():
    problem = _problem(0, "float32")
    with pytest.raises(ValueError, match="formulation"):
        rounding_error_bounds(problem, "textbook")
    with pytest.raises(ValueError, match="formulation"):
        rounding_floors(problem, ("stable", "textbook"))


@pytest.mark.parametrize("seed", range(10))
def test_floors_are_the_largest_bound_of_each_formulation_bit_for_bit(seed):
    # shared work (one forward pass; one set of forward errors unless an activation has a
    # conventional forward form, as gelu and silu do) must not change a single bit
    problem = _new_problem(seed, "float32")
    stable = rounding_error_bounds(problem, "stable")
    autograd = rounding_error_bounds(problem, "autograd")
    both = rounding_floors(problem, ("stable", "autograd"))
    for floor, a, b in zip(both, stable, autograd, strict=True):
        np.testing.assert_array_equal(floor, np.maximum(a, b))
    for floor, a in zip(rounding_floors(problem, ("stable",)), stable, strict=True):
        np.testing.assert_array_equal(floor, a)


NEW_HIDDEN = ["gelu", "gelu_tanh", "silu", "leaky_relu(0.2)", "elu(0.5)"]
NEW_LOSSES = ["huber(0.5)", "l1", "softmax_ce(0.1)", "bce", "mse"]


def _new_problem(seed: int, dtype: str) -> Problem:
    """A two-layer problem with a new hidden activation, a new (or smoothed) loss."""
    rng = np.random.default_rng(100 + seed)
    loss = NEW_LOSSES[seed % 5]
    hidden = NEW_HIDDEN[seed % 5] if seed < 5 else NEW_HIDDEN[(seed + 2) % 5]
    out_act = {"bce": "sigmoid", "softmax_ce(0.1)": "identity"}.get(loss, NEW_HIDDEN[seed % 3])
    widths = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), 2 if "softmax" in loss else 1)
    batch = int(rng.integers(1, 4))
    scale = float(rng.choice([0.5, 2.0, 6.0]))
    spec = NetworkSpec(widths, (hidden, out_act), loss)
    weights = [rng.standard_normal((widths[i + 1], widths[i])) * scale for i in range(2)]
    biases = [rng.standard_normal(widths[i + 1]) * scale for i in range(2)]
    x = rng.standard_normal((widths[0], batch))
    if "softmax" in loss:
        y = np.eye(2)[:, rng.integers(0, 2, batch)]
    else:
        y = rng.uniform(0, 1, (1, batch))
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("formulation", ["stable", "autograd"])
def test_no_summation_order_exceeds_the_bound_with_the_new_functions(dtype, formulation):
    # the autograd formulation runs torch's GELU and SiLU forward and backward formulas,
    # whose cancellation the bound takes from the magnitudes of their terms
    checked = 0
    for seed in range(10):
        problem = _new_problem(seed, dtype)
        exact = [t[1] + t[2] for t in reference_gradients(problem).tensors()]
        bounds = rounding_error_bounds(problem, formulation)
        spec = problem.spec
        lengths = {spec.widths[0] + 1, spec.widths[1] + 1, problem.batch_size, *spec.widths[1:]}
        with np.errstate(all="ignore"):
            for orders in _all_orders(lengths):
                result = _backprop_in_order(problem, orders, formulation)
                for value, ref, bound in zip(result, exact, bounds, strict=True):
                    error = np.abs(value.astype(np.float64) - ref)
                    assert np.all(error <= bound), (seed, spec.describe(), error, bound)
                checked += 1
    assert checked > 50
