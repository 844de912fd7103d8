"""Diagnosis hints come from the numbers: factors, sign, transpose, which tensors, which layer."""

from __future__ import annotations

import numpy as np
import pytest

from gradverify.check import check_problem
from gradverify.diagnose import constant_factor, name_factor
from gradverify.implementations import fused_bce_backprop
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
    assert any("layer 1 is the first whose gradient disagrees; layers 2..3 agree" in h
               for h in result.diagnosis), result.diagnosis


def test_reduced_internal_precision_is_recognised():
    def half_precision(weights, biases, x, y, *, activations, loss):
        dw, db = _fused([w.astype(np.float16) for w in weights],
                        [b.astype(np.float16) for b in biases], x.astype(np.float16),
                        y.astype(np.float16), activations=activations, loss=loss)
        return [a.astype(np.float64) for a in dw], [a.astype(np.float64) for a in db]

    p = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=1)
    result = check_problem(half_precision, p)
    assert result.verdict.value == "incorrect"
    assert any("float16 precision" in h for h in result.diagnosis), result.diagnosis


def test_no_factor_claim_from_a_single_entry_or_a_factor_near_one():
    from gradverify.network import NetworkSpec, Problem

    def slightly_off(weights, biases, x, y, *, activations, loss):
        dw, db = _fused(weights, biases, x, y, activations=activations, loss=loss)
        return [dw[0] * 0.9999, dw[1]], [db[0] * 0.9999, db[1]]

    spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
    p = Problem.from_arrays(spec, [np.array([[0.5]]), np.array([[1.0]])],
                            [np.array([0.25]), np.array([0.5])], np.ones((1, 1)),
                            np.zeros((1, 1)))
    result = check_problem(slightly_off, p)
    assert result.verdict.value == "incorrect"
    assert not any("factor" in h for h in result.diagnosis), result.diagnosis
    assert any("layer 1 is the first whose gradient disagrees; layer 2 agrees" in h
               for h in result.diagnosis), result.diagnosis
