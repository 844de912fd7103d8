"""Diagnosis hints come from the numbers: factors, sign, transpose, which tensors, which layer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gradverify.engine.check import check_problem
from gradverify.engine.conditions import condition_hints
from gradverify.engine.diagnose import constant_factor, name_factor
from gradverify.engine.implementations import (
    epsilon_bce_backprop,
    fused_bce_backprop,
    stable_backprop,
)
from gradverify.engine.results import Verdict
from gradverify.model.functions import activation
from gradverify.model.network import NetworkSpec, Problem
from gradverify.model.rewrites import loss_variant
from tests.strategies import random_problem


def _fused(*args, activations, loss):
    return fused_bce_backprop(*args, activations=activations, loss=loss)


def test_constant_factor_fits_only_multiples():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(10)
    assert constant_factor(3 * r, r) == pytest.approx(3.0, rel=1e-15)
    assert constant_factor(r + rng.standard_normal(10), r) is None
    assert constant_factor(np.full(10, np.nan), r) is None


def test_name_factor():
    p = random_problem((2, 3, 3), ("tanh", "sigmoid"), batch=4)
    assert name_factor(4.0, p) == "the batch size (4)"
    assert name_factor(0.5, p) == "1/2"
    assert name_factor(1 / 3, p) == "1/(the number of outputs = 3)"
    assert name_factor(-12.0, p) == "minus the number of loss elements (batch x outputs) (12)"
    assert name_factor(1.7, p) == "1.7"


def test_transposed_weight_gradient_is_recognised():
    def transposed(weights, biases, x, y, *, activations, loss):
        dw, db = _fused(weights, biases, x, y, activations=activations, loss=loss)
        return [dw[0], dw[1].T, dw[2]], db  # z delta^T instead of delta z^T

    p = random_problem((3, 4, 4, 1), ("tanh", "tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(transposed, p)
    assert any("dW2 matches the transpose" in h for h in result.diagnosis), result.diagnosis
    assert any("only weight gradients are wrong" in h for h in result.diagnosis)


def test_bias_only_and_first_bad_layer():
    def bias_bug(weights, biases, x, y, *, activations, loss):
        dw, db = _fused(weights, biases, x, y, activations=activations, loss=loss)
        return dw, [db[0] + 1.0, db[1], db[2]]

    p = random_problem((3, 4, 4, 1), ("tanh", "tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(bias_bug, p)
    assert "only bias gradients are wrong; every weight gradient agrees" in result.diagnosis
    assert any(
        "layer 1 is the first whose gradient disagrees; layers 2..3 agree" in h
        for h in result.diagnosis
    ), result.diagnosis


def test_reduced_internal_precision_is_recognised():
    def half_precision(weights, biases, x, y, *, activations, loss):
        dw, db = _fused(
            [w.astype(np.float16) for w in weights],
            [b.astype(np.float16) for b in biases],
            x.astype(np.float16),
            y.astype(np.float16),
            activations=activations,
            loss=loss,
        )
        return [a.astype(np.float64) for a in dw], [a.astype(np.float64) for a in db]

    p = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(half_precision, p)
    assert result.verdict.value == "incorrect"
    assert any("float16 precision" in h for h in result.diagnosis), result.diagnosis


def test_no_factor_claim_from_a_single_entry_or_a_factor_near_one():
    from gradverify.model.network import NetworkSpec, Problem

    def slightly_off(weights, biases, x, y, *, activations, loss):
        dw, db = _fused(weights, biases, x, y, activations=activations, loss=loss)
        return [dw[0] * 0.9999, dw[1]], [db[0] * 0.9999, db[1]]

    spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
    p = Problem.from_arrays(
        spec,
        [np.array([[0.5]]), np.array([[1.0]])],
        [np.array([0.25]), np.array([0.5])],
        np.ones((1, 1)),
        np.zeros((1, 1)),
    )
    result = check_problem(slightly_off, p)
    assert result.verdict.value == "incorrect"
    assert not any("factor" in h for h in result.diagnosis), result.diagnosis
    assert any(
        "layer 1 is the first whose gradient disagrees; layer 2 agrees" in h
        for h in result.diagnosis
    ), result.diagnosis


# ---------------------------------------------------------------------------
# Every hint is true, or it is absent: each hint, and a near miss that must not get it
# ---------------------------------------------------------------------------


def _scaled(factor):
    def backprop(weights, biases, x, y, *, activations, loss):
        dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
        return [w * factor for w in dw], [b * factor for b in db]

    return backprop


def hidden_h_one_minus_h(weights, biases, x, y, *, activations, loss):
    """Hidden derivative written h(1 - h), with the pre-activation h, instead of z(1 - z)."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    delta = (zs[-1] - y) / y.size
    dw, db = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        dw[i], db[i] = delta @ zs[i].T, delta.sum(axis=1)
        if i > 0:
            delta = (weights[i].T @ delta) * (hs[i - 1] * (1 - hs[i - 1]))
    return dw, db


def _one_unit_problem(dtype="float64"):
    """1 -> 1 -> 1, batch 1: every gradient of a layer is a multiple of one number."""
    spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
    return Problem.from_arrays(
        spec,
        [np.array([[1.5]]), np.array([[-0.75]])],
        [np.array([0.5]), np.array([0.25])],
        np.array([[1.0]]),
        np.array([[0.0]]),
        dtype,
    )


def _factor_hints(diagnosis):
    return [
        h
        for h in diagnosis
        if "factor" in h or "times the exact gradient" in h or "sign is flipped" in h
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_true_factor_of_two_is_named(dtype):
    p = random_problem((3, 4, 3), ("tanh", "sigmoid"), batch=3, seed=2, dtype=dtype)
    result = check_problem(_scaled(2.0), p)
    assert result.verdict is Verdict.INCORRECT
    assert any(
        h.startswith("off by a constant factor: dW1, db1, dW2, db2 equal 2 times")
        for h in result.diagnosis
    ), result.diagnosis


def test_a_wrong_hidden_derivative_claims_no_factor():
    # one unit and one sample: dW1 and db1 are both (wrong delta_1) x (a known number), so
    # their ratios to the exact values agree, but they are one number, not a factor
    p = _one_unit_problem()
    result = check_problem(hidden_h_one_minus_h, p)
    assert result.verdict is Verdict.INCORRECT
    ref = result.worst[0].reference
    ratios = {w.tensor: w.value / w.reference for w in result.worst if w.tensor in ("dW1", "db1")}
    assert ratios["dW1"] == pytest.approx(ratios["db1"], rel=1e-12) and ref != 0
    assert abs(ratios["dW1"] - 1) > 0.5  # far from 1: a fit of the old kind would claim it
    assert _factor_hints(result.diagnosis) == [], result.diagnosis
    # a bigger network: the ratios differ from entry to entry
    p = random_problem((2, 3, 1), ("sigmoid", "sigmoid"), batch=3, seed=3)
    result = check_problem(hidden_h_one_minus_h, p)
    assert result.verdict is Verdict.INCORRECT
    assert _factor_hints(result.diagnosis) == [], result.diagnosis


def test_a_named_factor_needs_one_entry_a_fitted_one_needs_two():
    p = _one_unit_problem()
    flipped = check_problem(_scaled(-1.0), p)
    assert any(
        h.startswith("the sign is flipped: dW1, db1, dW2, db2") for h in flipped.diagnosis
    ), flipped.diagnosis
    arbitrary = check_problem(_scaled(-0.85), p)  # one number off: no factor to speak of
    assert arbitrary.verdict is Verdict.INCORRECT
    assert _factor_hints(arbitrary.diagnosis) == [], arbitrary.diagnosis
    wide = random_problem((3, 4, 2), ("tanh", "sigmoid"), batch=3, seed=2)
    assert any(
        "equal 0.85 times" in h or "equal -0.85 times" in h
        for h in check_problem(_scaled(-0.85), wide).diagnosis
    )


def test_constant_factor_needs_agreeing_ratios_in_the_small_entries_too():
    r = np.array([1.0, 1e-8, -2e-8])
    a = np.array([-19.05, 12e-8, -477 * -2e-8])  # ratios -19.05, 12, -477
    assert constant_factor(a, r, rounding=1e-15) is None
    assert constant_factor(-19.05 * r, r, rounding=1e-15) == pytest.approx(-19.05)
    assert constant_factor(np.array([3.0]), np.array([1.0])) is None  # one entry fits anything


def _computed_in_float32(weights, biases, x, y, *, activations, loss):
    f32 = np.float32
    dw, db = stable_backprop(
        [w.astype(f32) for w in weights],
        [b.astype(f32) for b in biases],
        x.astype(f32),
        y.astype(f32),
        activations=activations,
        loss=loss,
    )
    return [a.astype(np.float64) for a in dw], [a.astype(np.float64) for a in db]


def _rounded_to_float32_then_scaled(weights, biases, x, y, *, activations, loss):
    dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
    nudge = 1 + 2.0**-40  # no longer float32 numbers, still within a float32 ulp
    return (
        [a.astype(np.float32).astype(np.float64) * nudge for a in dw],
        [a.astype(np.float32).astype(np.float64) * nudge for a in db],
    )


def _precision_hints(diagnosis):
    return [h for h in diagnosis if "precision" in h]


def test_computing_in_float32_is_recognised():
    p = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(_computed_in_float32, p)
    assert result.verdict is Verdict.INCORRECT
    assert any(
        "look like float32 precision (24 bits), and every entry is a float32 number" in h
        for h in result.diagnosis
    ), result.diagnosis
    result = check_problem(_rounded_to_float32_then_scaled, p)
    assert any(
        "look like float32 precision (24 bits), and every entry is within one float32 "
        "ulp of the exact gradient rounded to float32" in h
        for h in result.diagnosis
    ), result.diagnosis


def test_a_bias_at_float32_level_is_not_called_float32_precision():
    # the epsilon form in float64 is biased by about epsilon / (s (1 - s)) ~ 2^-21 in the
    # interior: the level of float32 rounding, but a smooth bias, not rounding
    p = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(epsilon_bce_backprop, p)
    assert result.verdict is Verdict.INCORRECT
    assert all(20 <= -np.log2(t.normwise_error) <= 26 for t in result.tensors)  # the level
    assert _precision_hints(result.diagnosis) == [], result.diagnosis


def bce_only(weights, biases, x, y, *, activations, loss):
    """A sigmoid output and the fused BCE delta, whatever the loss asked for."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    zs[-1] = activation("sigmoid").forward(hs[-1])
    delta = (zs[-1] - y) / y.size
    dw, db = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        dw[i], db[i] = delta @ zs[i].T, delta.sum(axis=1)
        if i > 0:
            delta = (weights[i].T @ delta) * activation(activations[i - 1]).derivative(hs[i - 1])
    return dw, db


def _verdict_of(impl):
    return lambda problem: check_problem(impl, problem, finite_differences=False).verdict.value


def test_loss_variant_keeps_the_network_and_fits_the_labels():
    p = random_problem((2, 3, 2), ("tanh", "sigmoid"), "bce", batch=3, seed=4)
    ce = loss_variant(p, "softmax_ce")
    assert ce.spec == NetworkSpec((2, 3, 2), ("tanh", "identity"), "softmax_ce")
    assert np.array_equal(ce.weights[0], p.weights[0]) and np.array_equal(ce.x, p.x)
    assert np.allclose(ce.y.sum(axis=0), 1.0)
    mse = loss_variant(p, "mse")
    assert mse.spec.activations == ("tanh", "sigmoid") and np.array_equal(mse.y, p.y)
    assert loss_variant(p, "bce") is None
    one_output = random_problem((2, 3, 1), ("tanh", "sigmoid"), "bce", batch=3, seed=4)
    assert loss_variant(one_output, "softmax_ce") is None


def test_the_loss_a_failure_needs_is_named():
    p = random_problem((2, 3, 2), ("tanh", "identity"), "softmax_ce", batch=2, seed=4)
    hints = condition_hints(
        p, _verdict_of(bce_only), "incorrect", ("tanh",), losses=("bce", "softmax_ce")
    )
    assert "incorrect only with loss softmax_ce: the same network with loss bce passes" in hints
    hints = condition_hints(
        p, _verdict_of(bce_only), "incorrect", ("tanh",), losses=("bce", "mse", "softmax_ce")
    )
    assert (
        "incorrect with loss softmax_ce and with mse, but the same network with loss bce passes"
    ) in hints


def test_a_failure_with_every_loss_names_no_loss():
    p = random_problem((2, 3, 2), ("tanh", "identity"), "softmax_ce", batch=2, seed=4)
    hints = condition_hints(
        p, _verdict_of(_scaled(-1.0)), "incorrect", ("tanh",), losses=("bce", "mse", "softmax_ce")
    )
    assert not any("loss" in h for h in hints), hints


def _raises(weights, biases, x, y, *, activations, loss):
    raise RuntimeError("not written yet")


def _nan_at_ordinary_values(weights, biases, x, y, *, activations, loss):
    dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
    dw[0] = np.full_like(dw[0], np.nan)
    return dw, db


@pytest.mark.parametrize("impl", [_raises, _nan_at_ordinary_values])
def test_an_error_verdict_shows_no_bits_of_error(impl):
    p = random_problem((2, 3, 1), ("tanh", "sigmoid"), batch=2, seed=0, scale=0.5)
    result = check_problem(impl, p)
    assert result.verdict is Verdict.ERROR
    assert result.worst_bits is None
    assert not re.search(r"bits(?! \(backend)", str(result)), str(result)
    # near miss: a wrong gradient that was returned has its bits of error
    wrong = check_problem(_scaled(2.0), p)
    assert wrong.worst_bits > 0 and re.search(r"bits(?! \(backend)", str(wrong))
