"""Verdicts of check_problem: pass, incorrect (logic bugs), unstable (saturation), error."""

from __future__ import annotations

import numpy as np
import pytest

import gradverify
from gradverify.engine.check import check_problem
from gradverify.engine.implementations import (
    epsilon_bce_backprop,
    fused_bce_backprop,
    naive_bce_backprop,
    stable_backprop,
    supports,
)
from gradverify.engine.results import Verdict
from gradverify.model.dtypes import unit_roundoff
from tests.strategies import random_problem

NETWORKS = [
    ((3, 4, 1), ("tanh", "sigmoid")),
    ((4, 5, 5, 2), ("sigmoid", "softplus", "sigmoid")),
    ((2, 1, 3, 1), ("relu", "tanh", "sigmoid")),
    ((5, 3, 1), ("identity", "sigmoid")),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("widths, activations", NETWORKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_passes_on_random_networks(dtype, widths, activations, seed):
    problem = random_problem(widths, activations, batch=3, seed=seed, dtype=dtype, scale=2.0)
    result = check_problem(fused_bce_backprop, problem)
    assert result.verdict is Verdict.PASS, str(result)
    # independent of the baseline-derived tolerance: within 2^8 unit roundoffs, normwise
    for t in result.tensors:
        assert t.normwise_error <= 256 * unit_roundoff(dtype), str(result)


# --- planted logic bugs ------------------------------------------------------------------


def _fused(weights, biases, x, y, activations, loss):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def sign_flip(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    return [-a for a in dw], [-a for a in db]


def sum_instead_of_mean(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    n = y.dtype.type(y.size)
    return [a * n for a in dw], [a * n for a in db]


def missing_activation_derivative(weights, biases, x, y, *, activations, loss):
    """Backprop that forgets act'(h) in the hidden layers."""
    from gradverify.model.functions import activation

    zs, hs = [x], []
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(activations[i]).forward(hs[-1]))
    delta = (zs[-1] - y) / y.dtype.type(y.size)
    dw, db = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        dw[i] = delta @ zs[i].T
        db[i] = delta.sum(axis=1)
        if i > 0:
            delta = weights[i].T @ delta  # missing (.) act'(h_{i-1})
    return dw, db


@pytest.mark.parametrize(
    "impl, hint",
    [
        (sign_flip, "sign is flipped"),
        (sum_instead_of_mean, "off by a constant factor"),
        (missing_activation_derivative, "layer 1 is the first whose gradient disagrees"),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planted_bugs_are_incorrect_with_worst_elements(impl, hint, dtype):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=5, dtype=dtype)
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert result.worst, "the worst elements must be named"
    text = str(result)
    w = result.worst[0]
    assert f"{w.tensor}[{', '.join(map(str, w.index))}]" in text
    assert any(hint in h for h in result.diagnosis), result.diagnosis
    # the named element really is wrong: its value differs from the exact reference
    assert abs(w.value - w.reference) > 1e-3 * abs(w.reference)


def test_sum_instead_of_mean_names_the_factor():
    problem = random_problem((3, 4, 2), ("tanh", "sigmoid"), batch=3, seed=5)
    result = check_problem(sum_instead_of_mean, problem)
    assert any("number of loss elements (batch x outputs) (6)" in h for h in result.diagnosis)


# --- naive: pass in the interior, unstable at saturation --------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_naive_passes_on_an_unsaturated_network(dtype):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, dtype=dtype)
    assert problem.max_abs_logit() < 3
    result = check_problem(naive_bce_backprop, problem)
    assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_naive_is_unstable_on_a_saturated_network(dtype):
    problem = random_problem(
        (3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, dtype=dtype, output_shift=60.0
    )
    result = check_problem(naive_bce_backprop, problem)
    assert result.verdict is Verdict.UNSTABLE, str(result)
    assert result.interior_verdict is Verdict.PASS
    assert sum(t.nonfinite for t in result.tensors) > 0
    assert "saturation" in result.message


def test_epsilon_biases_float64_gradients_at_ordinary_values():
    # eps = 1e-7 shifts the gradient by ~eps/(s(1-s)) relative: far beyond float64 rounding
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1)
    result = check_problem(epsilon_bce_backprop, problem)
    assert result.verdict is Verdict.INCORRECT
    assert 1e-8 < result.worst[0].relative_error < 1e-5


def test_fused_passes_where_naive_breaks():
    problem = random_problem(
        (3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, dtype="float32", output_shift=60.0
    )
    assert check_problem(fused_bce_backprop, problem).verdict is Verdict.PASS


# --- broken implementations get `error` with a clear message -----------------------------


def raises(weights, biases, x, y, *, activations, loss):
    raise RuntimeError("boom")


def wrong_shape(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    return [a.T for a in dw], db


def wrong_dtype(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    return [a.astype(np.float64) for a in dw], [a.astype(np.float64) for a in db]


def wrong_count(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    return dw[:-1], db


def not_a_pair(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    return {"dweights": dw, "dbiases": db}


def modifies_input(weights, biases, x, y, *, activations, loss):
    result = _fused(weights, biases, x, y, activations, loss)
    x *= 2
    return result


def returns_nan(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    dw[0][0, 0] = np.nan
    return dw, db


_calls = {"n": 0}


def nondeterministic(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations, loss)
    _calls["n"] += 1
    return [a + _calls["n"] * np.finfo(a.dtype).eps * a for a in dw], db


def hangs(weights, biases, x, y, *, activations, loss):
    while True:
        pass


@pytest.mark.parametrize(
    "impl, message",
    [
        (raises, "raised RuntimeError: boom"),
        (wrong_shape, "expected dweights[0] to have shape (4, 3); got shape (3, 4)"),
        (wrong_dtype, "expected dweights[0] in float32 (the dtype it was given); got float64"),
        (wrong_count, "expected 2 arrays in dweights (one per layer); got 1"),
        (
            not_a_pair,
            "expected (dweights, dbiases): two sequences of 2 arrays each, in float32; got a dict",
        ),
        (modifies_input, "modified its input x in place"),
        (returns_nan, "inf/NaN entries at ordinary values"),
        (nondeterministic, "is nondeterministic"),
    ],
)
def test_broken_implementations_get_error(impl, message):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=2, dtype="float32")
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.ERROR
    assert message in result.message, result.message
    assert message in str(result)


def test_hanging_implementation_is_stopped():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=2)
    result = check_problem(hangs, problem, timeout=0.3)
    assert result.verdict is Verdict.ERROR
    assert "did not return within 0.3 s" in result.message


def test_row_layout_is_honoured():
    @supports(layout="rows", losses=("bce",))
    def rows_backprop(weights, biases, x, y, *, activations, loss):
        assert x.shape[0] == y.shape[0] == 3  # (batch, n)
        return _fused(
            weights, biases, np.ascontiguousarray(x.T), np.ascontiguousarray(y.T), activations, loss
        )

    problem = random_problem((2, 4, 1), ("tanh", "sigmoid"), batch=3, seed=3)
    assert check_problem(rows_backprop, problem).verdict is Verdict.PASS


@pytest.mark.parametrize(
    "loss, activations",
    [
        ("mse", ("tanh", "sigmoid")),
        ("softmax_ce", ("tanh", "identity")),
        ("mse", ("relu", "identity")),
    ],
)
def test_stable_baseline_passes_every_loss(loss, activations):
    problem = random_problem((3, 4, 3), activations, loss, batch=3, seed=4)
    result = check_problem(stable_backprop, problem)
    assert result.verdict is Verdict.PASS, str(result)


def test_assert_gradients_match_raises_with_the_report():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=5)
    gradverify.assert_gradients_match(fused_bce_backprop, problem)
    with pytest.raises(AssertionError) as info:
        gradverify.assert_gradients_match(sign_flip, problem)
    text = str(info.value)
    assert "INCORRECT" in text and "worst elements" in text and "sign is flipped" in text
    # the message names elements, it does not print whole arrays
    assert "[[" not in text


def test_result_is_json_serialisable():
    import json

    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=5, output_shift=80)
    data = check_problem(naive_bce_backprop, problem).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert '"verdict": "unstable"' in text


def test_finite_differences_are_shown_beside_the_reference():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=5)
    result = check_problem(sign_flip, problem, finite_differences=True)
    w = result.worst[0]
    assert w.fd is not None and w.fd_error is not None
    assert abs(w.fd - w.reference) <= max(10 * w.fd_error, 1e-9 * abs(w.reference))
    assert all(t.fd_max_error is not None and t.fd_max_error < 1e-6 for t in result.tensors)


def test_large_networks_get_a_directional_second_opinion():
    problem = random_problem((40, 40, 1), ("tanh", "sigmoid"), batch=2, seed=6)
    assert problem.spec.parameter_count > 1_000
    result = check_problem(sign_flip, problem, finite_differences="directional")
    assert result.fd_directional_discrepancy is not None
    assert result.fd_directional_discrepancy < 1e-6
    assert "random directions" in str(result)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_check_passes_correct_and_flags_wrong_gradients(dtype):
    problem = random_problem((4, 5, 1), ("tanh", "sigmoid"), batch=3, seed=8, dtype=dtype)
    assert gradverify.fast_check(fused_bce_backprop, problem).verdict is Verdict.PASS
    for bug in (sign_flip, sum_instead_of_mean, missing_activation_derivative):
        result = gradverify.fast_check(bug, problem)
        assert result.verdict is Verdict.INCORRECT, str(result)
        assert "random directions disagree" in result.message
    assert gradverify.fast_check(raises, problem).verdict is Verdict.ERROR


def test_worst_bits_count_only_error_beyond_the_stable_baseline():
    # all labels 1 at h ~ 60: the exact gradients are ~e^-60, which fused (z - y = 0) and the
    # stable baseline both lose entirely; that is not fused's fault, and naive's NaN is
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, output_shift=60.0)
    problem = problem.astype("float64")
    from gradverify.model.network import Problem

    ones = Problem.from_arrays(
        problem.spec, problem.weights, problem.biases, problem.x, np.ones_like(problem.y)
    )
    fused = check_problem(fused_bce_backprop, ones)
    assert fused.verdict is Verdict.PASS
    assert max(t.max_bits for t in fused.tensors) > 40  # raw error against the exact value
    assert fused.worst_bits < 4
    naive = check_problem(naive_bce_backprop, ones)
    assert naive.verdict is Verdict.UNSTABLE
    assert naive.worst_bits > 60
