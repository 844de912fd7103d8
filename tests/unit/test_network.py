"""The network spec and Problem: validation messages, dtype rounding, the interior companion."""

from __future__ import annotations

import numpy as np
import pytest

from gradverify.model.network import NetworkSpec, Problem, forward
from gradverify.model.rewrites import desaturated
from tests.strategies import random_problem


def test_spec_validation_messages():
    with pytest.raises(ValueError, match="needs a 'sigmoid' output layer"):
        NetworkSpec((2, 1), ("tanh",), "bce")
    with pytest.raises(ValueError, match="expected 2 activations"):
        NetworkSpec((2, 3, 1), ("sigmoid",), "bce")
    with pytest.raises(ValueError, match="every width must be at least 1"):
        NetworkSpec((2, 0, 1), ("tanh", "sigmoid"), "bce")
    with pytest.raises(ValueError, match="unknown activation"):
        NetworkSpec((2, 1), ("swish",), "mse")


def test_problem_validation_messages():
    spec = NetworkSpec((2, 3, 1), ("tanh", "sigmoid"), "bce")
    W = [np.zeros((3, 2)), np.zeros((1, 3))]
    b = [np.zeros(3), np.zeros(1)]
    x, y = np.zeros((2, 4)), np.zeros((1, 4))
    Problem.from_arrays(spec, W, b, x, y)
    with pytest.raises(ValueError, match=r"W_1 should have shape \(3, 2\); got \(2, 3\)"):
        Problem.from_arrays(spec, [W[0].T, W[1]], b, x, y)
    with pytest.raises(ValueError, match=r"y should have shape \(1, 4\)"):
        Problem.from_arrays(spec, W, b, x, np.zeros((1, 5)))
    with pytest.raises(ValueError, match="must be finite"):
        Problem.from_arrays(spec, W, b, x, y + np.inf)
    with pytest.raises(ValueError, match="must be finite"):  # 1e5 overflows float16
        Problem.from_arrays(spec, W, b, x + 1e5, y, dtype="float16")


def test_problem_arrays_are_read_only_copies():
    p = random_problem((2, 3, 1), ("tanh", "sigmoid"))
    with pytest.raises(ValueError):
        p.weights[0][0, 0] = 1.0


def test_round_trip_through_dict_is_exact():
    p = random_problem((2, 3, 1), ("tanh", "sigmoid"), dtype="float32", seed=3)
    q = Problem.from_dict(p.to_dict())
    assert q.dtype == p.dtype
    for a, b in zip(
        (*p.weights, *p.biases, p.x, p.y), (*q.weights, *q.biases, q.x, q.y), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale, shift", [(50.0, 0.0), (1.0, 300.0), (0.5, 0.0)])
def test_desaturated_problem_stays_in_the_interior(scale, shift):
    p = random_problem(
        (3, 4, 4, 1), ("sigmoid", "tanh", "sigmoid"), seed=2, scale=scale, output_shift=shift
    )
    q = desaturated(p, 1.0)
    assert q.max_abs_logit() <= 1.0 + 1e-12
    assert q.spec == p.spec and q.batch_size == p.batch_size
    np.testing.assert_array_equal(q.x, p.x)


def test_a_problem_already_in_the_interior_is_its_own_companion():
    p = random_problem((3, 4, 4, 1), ("sigmoid", "tanh", "sigmoid"), seed=2, scale=0.2)
    assert p.max_abs_logit() <= 1.0
    q = desaturated(p, 1.0)
    for a, b in zip((*p.weights, *p.biases), (*q.weights, *q.biases), strict=True):
        np.testing.assert_array_equal(a, b)


def test_loss64_matches_a_direct_formula():
    p = random_problem((2, 3, 1), ("tanh", "sigmoid"), seed=1)
    h1 = p.weights[0] @ p.x + p.biases[0][:, None]
    h2 = p.weights[1] @ np.tanh(h1) + p.biases[1][:, None]
    s = 1 / (1 + np.exp(-h2))
    expected = np.mean(-(p.y * np.log(s) + (1 - p.y) * np.log(1 - s)))
    assert p.loss64() == pytest.approx(expected, rel=1e-13)


def test_the_float64_forward_pass_is_computed_once_read_only_and_not_pickled():
    import pickle

    problem = Problem.from_arrays(
        NetworkSpec((2, 3, 1), ("tanh", "sigmoid"), "bce"),
        [np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]]), np.array([[1.0, -2.0, 0.5]])],
        [np.array([0.1, -0.2, 0.3]), np.array([-0.4])],
        np.array([[1.0, -1.0], [0.5, 2.0]]),
        np.array([[1.0, 0.0]]),
        "float32",
    )
    first = problem.forward64()
    assert problem.forward64() is first
    weights, biases, x, _ = problem.float64_arrays()
    fresh = forward(problem.spec, weights, biases, x)
    for cached, expected in zip((*first.h, *first.z), (*fresh.h, *fresh.z), strict=True):
        np.testing.assert_array_equal(cached, expected)
        with pytest.raises(ValueError):
            cached[...] = 0.0
    copy = pickle.loads(pickle.dumps(problem))
    assert "_forward64" not in copy.__dict__
    np.testing.assert_array_equal(copy.forward64().h[-1], first.h[-1])
