"""The textbook adapter: Nielsen-style ``Network`` objects (columns, biases (n, 1), one sample).

The classes below are written the way chapter 2 of *Neural Networks and Deep Learning*
writes its ``Network``: ``backprop(x, y)`` takes one column sample and returns
``(nabla_b, nabla_w)`` for that sample's cost, summed over the output units.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradverify.edges.adapters.textbook import from_network
from gradverify.engine.check import check_problem
from gradverify.engine.harness import call_backprop
from gradverify.engine.results import Verdict
from tests.strategies import random_problem


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    """Sigmoid layers and the cross-entropy cost, whose output delta is ``a - y``."""

    def __init__(self, sizes):
        rng = np.random.default_rng(0)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [
            rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:], strict=True)
        ]

    def output_delta(self, a, y, z):
        return a - y

    def hidden_derivative(self, z):
        return sigmoid_prime(z)

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights, strict=True):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.output_delta(activations[-1], y, zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            z = zs[-l]
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * self.hidden_derivative(z)
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


class MissingSigmoidPrime(Network):
    """The bug: the hidden layers' delta forgets the factor sigmoid'(z)."""

    def hidden_derivative(self, z):
        return np.ones_like(z)


class QuadraticCostNetwork(Network):
    """Chapter 2's cost ||a - y||^2 / 2: delta = (a - y) sigmoid'(z)."""

    def output_delta(self, a, y, z):
        return (a - y) * sigmoid_prime(z)


class MeanNetwork(Network):
    """Returns the gradient of the mean over the output units instead of their sum."""

    def backprop(self, x, y):
        nabla_b, nabla_w = super().backprop(x, y)
        n = y.shape[0]
        return [b / n for b in nabla_b], [w / n for w in nabla_w]


class BatchedNetwork(Network):
    """The matrix version: x and y hold the whole batch as columns; gradients are summed."""

    def backprop(self, x, y):
        nabla_b, nabla_w = super().backprop(x, y)  # the same algebra works on column blocks
        return [b.sum(axis=1, keepdims=True) for b in nabla_b], nabla_w


SIGMOID_NETWORKS = [
    ((3, 4, 1), ("sigmoid", "sigmoid")),
    ((4, 5, 3, 2), ("sigmoid", "sigmoid", "sigmoid")),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("widths, activations", SIGMOID_NETWORKS)
@pytest.mark.parametrize("seed", [0, 1])
def test_nielsen_network_with_cross_entropy_passes(widths, activations, dtype, seed):
    impl = from_network(Network)
    problem = random_problem(widths, activations, batch=5, dtype=dtype, seed=seed)
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.PASS, str(result)


def test_an_instance_is_used_and_its_parameters_are_set():
    net = Network([3, 4, 1])
    impl = from_network(net)
    problem = random_problem((3, 4, 1), ("sigmoid", "sigmoid"), batch=3, seed=2)
    assert check_problem(impl, problem).verdict is Verdict.PASS
    np.testing.assert_array_equal(net.weights[1], problem.weights[1])
    assert net.biases[0].shape == (4, 1)
    np.testing.assert_array_equal(net.biases[0][:, 0], problem.biases[0])


def test_adapter_gradients_equal_the_mean_of_per_sample_gradients():
    # Independent of the adapter: call the object by hand, sample by sample.
    problem = random_problem((2, 3, 2), ("sigmoid", "sigmoid"), batch=4, seed=3)
    outcome = call_backprop(from_network(Network), problem)
    assert outcome.ok, outcome.error
    net = Network([2, 3, 2])
    net.weights = [w.copy() for w in problem.weights]
    net.biases = [b.reshape(-1, 1).copy() for b in problem.biases]
    expected_w = sum(net.backprop(problem.x[:, [j]], problem.y[:, [j]])[1][0] for j in range(4))
    np.testing.assert_allclose(outcome.dweights[0], expected_w / problem.y.size, rtol=1e-14)


def test_missing_sigmoid_prime_in_a_hidden_layer_is_incorrect():
    impl = from_network(MissingSigmoidPrime)
    problem = random_problem((3, 4, 1), ("sigmoid", "sigmoid"), batch=4, seed=1)
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.INCORRECT, str(result)
    # the output layer is right; the hidden layer's gradients are named as the bad ones
    failed = {t.name for t in result.failed_tensors()}
    assert failed == {"dW1", "db1"}
    assert result.worst and result.worst[0].tensor in ("dW1", "db1")


def test_quadratic_cost_with_cost_factor_checks_as_mse():
    impl = from_network(QuadraticCostNetwork, losses=("mse",), cost_factor=0.5)
    problem = random_problem((3, 4, 2), ("sigmoid", "sigmoid"), "mse", batch=4, seed=4)
    assert check_problem(impl, problem).verdict is Verdict.PASS
    # Without the factor the gradients are half the gradient of gradverify's mse: a bug.
    wrong = from_network(QuadraticCostNetwork, losses=("mse",))
    result = check_problem(wrong, problem)
    assert result.verdict is Verdict.INCORRECT
    assert result.worst[0].value == pytest.approx(result.worst[0].reference / 2, rel=1e-12)


def test_reduction_mean_is_converted_and_a_wrong_declaration_is_caught():
    problem = random_problem((3, 4, 2), ("sigmoid", "sigmoid"), batch=4, seed=5)
    assert (
        check_problem(from_network(MeanNetwork, reduction="mean"), problem).verdict is Verdict.PASS
    )
    # declared "sum" while it returns means: off by the number of outputs (2)
    result = check_problem(from_network(MeanNetwork, reduction="sum"), problem)
    assert result.verdict is Verdict.INCORRECT
    assert result.worst[0].value == pytest.approx(result.worst[0].reference / 2, rel=1e-12)


def test_batched_objects_get_the_whole_batch():
    problem = random_problem((3, 4, 2), ("sigmoid", "sigmoid"), batch=6, seed=6)
    assert (
        check_problem(from_network(BatchedNetwork, batched=True), problem).verdict is Verdict.PASS
    )


def test_a_malformed_return_is_an_error_with_a_clear_message():
    class WrongShape(Network):
        def backprop(self, x, y):
            nabla_b, nabla_w = super().backprop(x, y)
            nabla_b[0] = nabla_b[0].ravel()  # (n,) instead of (n, 1)
            return nabla_b, nabla_w

    problem = random_problem((3, 4, 1), ("sigmoid", "sigmoid"), batch=2, seed=0)
    result = check_problem(from_network(WrongShape), problem)
    assert result.verdict is Verdict.ERROR
    assert "nabla_b[0] of shape (4,); expected (4, 1)" in result.message


def test_a_loss_it_does_not_compute_is_refused_by_name():
    problem = random_problem((3, 4, 2), ("sigmoid", "sigmoid"), "mse", batch=2, seed=0)
    result = check_problem(from_network(Network), problem)
    assert result.verdict is Verdict.ERROR
    assert "'bce'" in result.message and "'mse'" in result.message


def test_bad_adapter_arguments_are_rejected():
    with pytest.raises(ValueError, match="reduction must be"):
        from_network(Network, reduction="average")
    with pytest.raises(ValueError, match="unsupported dtype"):
        from_network(Network, dtypes=("float128",))
