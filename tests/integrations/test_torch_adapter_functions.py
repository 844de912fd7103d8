"""The torch adapter's names for the parametrised and newer activations and losses.

``nn.GELU()`` is ``gelu``, ``nn.GELU(approximate="tanh")`` ``gelu_tanh``, ``nn.SiLU``
``silu``, ``nn.LeakyReLU(a)`` ``leaky_relu(a)``, ``nn.ELU(a)`` ``elu(a)``; ``nn.L1Loss`` is
``l1``, ``nn.HuberLoss(delta=d)`` ``huber(d)`` and ``nn.CrossEntropyLoss(label_smoothing=e)``
``softmax_ce(e)``, with probability targets or (``targets="indices"``) class indices.
Each model passes the default search; each told a wrong name (a slope, a delta, a
smoothing, the other GELU) is ``incorrect``, so the names are what the checks rely on.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install gradverify[torch])"
)
nn = torch.nn

import gradverify  # noqa: E402
from gradverify.edges.adapters.torch import (  # noqa: E402
    activation_module,
    activation_name,
    from_module,
    loss_name,
    mlp_factory,
)
from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.implementations import capabilities_of, supports  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402
from tests.strategies import random_problem  # noqa: E402

DTYPES = ("float32", "float64")

# the torch module a user writes, and the name gradverify gives it
MODULES = [
    pytest.param(nn.GELU(), "gelu", id="GELU"),
    pytest.param(nn.GELU(approximate="tanh"), "gelu_tanh", id="GELU-tanh"),
    pytest.param(nn.SiLU(), "silu", id="SiLU"),
    pytest.param(nn.LeakyReLU(0.2), "leaky_relu(0.2)", id="LeakyReLU-0.2"),
    pytest.param(nn.ELU(0.5), "elu(0.5)", id="ELU-0.5"),
]


def fixed(module):
    """A factory whose hidden layers always use ``module`` (whatever name it is given)."""

    def build(widths, activations):
        layers = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(type(module)(**_arguments(module)))
        return nn.Sequential(*layers)

    return build


def _arguments(module):
    keys = {"GELU": "approximate", "LeakyReLU": "negative_slope", "ELU": "alpha"}
    key = keys.get(type(module).__name__)
    return {} if key is None else {key: getattr(module, key)}


def recording(impl, seen):
    """``impl`` with the same declaration, appending (activations, loss, y) of every call."""
    caps = capabilities_of(impl)

    @supports(**{f.name: getattr(caps, f.name) for f in dataclasses.fields(caps)})
    def wrapper(weights, biases, x, y, *, activations, loss):
        seen.append((tuple(activations), loss, y.copy()))
        return impl(weights, biases, x, y, activations=activations, loss=loss)

    return wrapper


def problem_with(spec, y, *, dtype="float64", seed=0, scale=1.0):
    """A random problem of ``spec`` with the labels ``y``."""
    acts, batch = spec.activations, y.shape[1]
    base = random_problem(spec.widths, acts, "mse", batch=batch, seed=seed, scale=scale)
    return Problem.from_arrays(spec, base.weights, base.biases, base.x, y, dtype)


def one_hot(classes, n):
    y = np.zeros((n, len(classes)))
    y[classes, np.arange(len(classes))] = 1.0
    return y


# --- the names ---------------------------------------------------------------------------


@pytest.mark.parametrize("module, name", MODULES)
def test_activation_modules_and_names_correspond(module, name):
    assert activation_name(module) == name
    built = activation_module(name)
    assert type(built) is type(module) and repr(built) == repr(module)


def test_default_parameters_are_the_bare_names():
    assert activation_name(nn.LeakyReLU()) == "leaky_relu"
    assert activation_name(nn.ELU()) == "elu"
    assert activation_name(nn.ELU(alpha=2)) == "elu(2.0)"
    assert loss_name(nn.HuberLoss()) == "huber"
    assert loss_name(nn.HuberLoss(delta=2)) == "huber(2.0)"
    assert loss_name(nn.CrossEntropyLoss()) == "softmax_ce"
    assert loss_name(nn.CrossEntropyLoss(label_smoothing=0.1)) == "softmax_ce(0.1)"
    assert loss_name(nn.L1Loss()) == "l1"


def test_unknown_modules_get_one_line_errors():
    with pytest.raises(ValueError, match=r"no activation for the torch module Hardswish\(\)"):
        activation_name(nn.Hardswish())
    with pytest.raises(ValueError, match="no activation for the torch module Softplus"):
        activation_name(nn.Softplus(beta=2.0))  # not gradverify's softplus
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_module("swish")
    with pytest.raises(ValueError, match="does not know which loss SoftMarginLoss computes"):
        from_module(nn.SoftMarginLoss())
    with pytest.raises(ValueError, match="weight every term alike"):
        from_module(nn.CrossEntropyLoss(weight=torch.ones(3)))
    with pytest.raises(ValueError, match="targets='indices'.*is for softmax_ce"):
        from_module(nn.HuberLoss(), targets="indices")
    with pytest.raises(ValueError) as info:
        from_module(nn.SoftMarginLoss())
    assert "\n" not in str(info.value)


def test_the_adapter_declares_what_the_modules_compute():
    assert capabilities_of(from_module(nn.HuberLoss(delta=2.0))).losses == ("huber(2.0)",)
    assert capabilities_of(from_module(nn.L1Loss())).losses == ("l1",)
    soft = capabilities_of(from_module(nn.CrossEntropyLoss(label_smoothing=0.1)))
    hard = capabilities_of(from_module(nn.CrossEntropyLoss(label_smoothing=0.1), targets="indices"))
    assert soft.losses == hard.losses == ("softmax_ce(0.1)",)
    assert soft.labels == "any" and hard.labels == "hard"


def test_mlp_factory_builds_the_named_modules():
    module = mlp_factory()((3, 4, 4, 4, 2), ("gelu_tanh", "leaky_relu(0.2)", "elu(0.5)", "silu"))
    assert [repr(m) for m in module if not isinstance(m, nn.Linear)] == [
        "GELU(approximate='tanh')",
        "LeakyReLU(negative_slope=0.2)",
        "ELU(alpha=0.5)",
        "SiLU()",
    ]


# --- hidden activations: the default search passes -------------------------------------


def search_hidden(name, *, max_examples, seed=0):
    seen = []
    impl = recording(
        from_module(nn.BCEWithLogitsLoss(), activations=(name, "sigmoid"), dtypes=DTYPES), seen
    )
    result = gradverify.search(
        impl, activations=(name,), max_examples=max_examples, seed=seed, database=None, depth=(2, 3)
    )
    assert {a for acts, _, _ in seen for a in acts[:-1]} == {name}  # every hidden layer
    return result


@pytest.mark.parametrize("module, name", MODULES)
def test_hidden_activation_passes_the_search(module, name):
    result = search_hidden(name, max_examples=15)
    assert result.verdict is Verdict.PASS, str(result)
    assert set(result.dtypes) == set(DTYPES)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("module, name", MODULES)
def test_hidden_activation_passes_longer_searches(module, name, seed):
    result = search_hidden(name, max_examples=100, seed=seed)
    assert result.verdict is Verdict.PASS, str(result)


# --- a wrong name is a logic bug ---------------------------------------------------------


# --- nn.Softplus: x and slope 1 above its threshold, 20 -----------------------------------


def softplus_counterexample(dtype):
    """[1, 1, 1]: the hidden softplus at h = 32, where torch returns the slope 1 and the
    exact slope is 1 - 1.3e-14 (114 ulps in float64): the search's shrunk counterexample
    before the bar knew torch's threshold."""
    spec = NetworkSpec((1, 1, 1), ("softplus", "sigmoid"), "bce")
    weights, biases = [np.array([[16.0]]), np.array([[1.0]])], [np.array([16.0]), np.array([1.0])]
    return Problem.from_arrays(spec, weights, biases, np.ones((1, 1)), np.zeros((1, 1)), dtype)


@pytest.mark.parametrize("dtype", ["float16", *DTYPES])
def test_nn_softplus_passes_under_autograd_and_its_lost_bits_fail_only_strict(dtype):
    impl = from_module(nn.BCEWithLogitsLoss(), activations=("softplus", "sigmoid"))
    assert check_problem(impl, softplus_counterexample(dtype)).verdict is Verdict.PASS
    strict = check_problem(impl, softplus_counterexample(dtype), policy="strict")
    if dtype == "float64":  # in float32, 1 is sigmoid(32) correctly rounded
        assert strict.verdict is Verdict.UNSTABLE, str(strict)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_the_conventional_softplus_forms_are_what_torch_computes(dtype):
    from gradverify.model.functions import activation

    act = activation("softplus")
    x = torch.linspace(-60.0, 60.0, 4801, dtype=torch.float64).to(dtype).requires_grad_(True)
    value = torch.nn.functional.softplus(x)
    (slope,) = torch.autograd.grad(value.sum(), x)
    h = x.detach().numpy()
    model_value, model_slope = act.conventional_forward(h), act.conventional_derivative(h, None)
    h64 = h.astype(np.float64)
    for got, model, bound in [
        (value.detach().numpy(), model_value, act.conventional_forward_error(h64, h.dtype)),
        (slope.numpy(), model_slope, act.conventional_error(h64, h.dtype)),
    ]:
        assert got.dtype == model.dtype == h.dtype
        above = h64 > 20  # x and 1 there, exactly
        assert np.array_equal(got[above], model[above])
        assert np.all(np.abs(got.astype(np.float64) - model.astype(np.float64)) <= 2 * bound)
    assert not np.array_equal(slope.numpy(), act.derivative(h))  # not the stable form


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "module, told, true",
    [
        (nn.LeakyReLU(0.1), "leaky_relu(0.2)", "leaky_relu(0.1)"),
        (nn.ELU(0.5), "elu", "elu(0.5)"),
        (nn.GELU(approximate="tanh"), "gelu", "gelu_tanh"),
        (nn.GELU(), "gelu_tanh", "gelu"),
        (nn.SiLU(), "gelu", "silu"),
    ],
    ids=["leaky_relu", "elu", "gelu", "gelu_tanh", "silu"],
)
def test_a_model_told_the_wrong_activation_is_incorrect(module, told, true, dtype):
    # the same model, named truly and falsely: only the name differs
    y = np.random.default_rng(1).integers(0, 2, (1, 6)).astype(float)
    results = {}
    for name in (true, told):
        spec = NetworkSpec((3, 5, 1), (name, "sigmoid"), "bce")
        problem = problem_with(spec, y, dtype=dtype, seed=2, scale=3.0)
        impl = from_module(nn.BCEWithLogitsLoss(), fixed(module), activations=(name, "sigmoid"))
        results[name] = check_problem(impl, problem)
    assert results[true].verdict is Verdict.PASS, str(results[true])
    assert results[told].verdict is Verdict.INCORRECT, str(results[told])


def test_a_wrong_name_is_caught_by_the_search():
    impl = from_module(
        nn.BCEWithLogitsLoss(), fixed(nn.LeakyReLU(0.1)), activations=("leaky_relu(0.2)",)
    )
    result = gradverify.search(
        impl, dtypes=("float64",), max_examples=30, seed=0, database=None, depth=2
    )
    assert result.verdict is Verdict.INCORRECT, str(result)


# --- losses ------------------------------------------------------------------------------


def search_loss(loss_module, *, max_examples=20, seed=0, **options):
    seen = []
    # an identity output reaches residuals beyond huber's delta; tanh saturates
    acts = ("tanh", "identity")
    impl = recording(from_module(loss_module, activations=acts, dtypes=DTYPES, **options), seen)
    result = gradverify.search(impl, max_examples=max_examples, seed=seed, database=None)
    return result, seen


@pytest.mark.parametrize(
    "loss, name",
    [(nn.HuberLoss(delta=2.0), "huber(2.0)"), (nn.L1Loss(), "l1"), (nn.HuberLoss(), "huber")],
    ids=["huber-2", "l1", "huber"],
)
def test_elementwise_losses_pass_the_search(loss, name):
    result, seen = search_loss(loss)
    assert result.verdict is Verdict.PASS, str(result)
    assert {s[1] for s in seen} == {name}


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("loss_class", [nn.HuberLoss, nn.L1Loss])
def test_sum_reductions_of_the_new_losses_are_converted(loss_class, reduction):
    spec = NetworkSpec((3, 4, 2), ("tanh", "tanh"), "l1" if loss_class is nn.L1Loss else "huber")
    problem = problem_with(spec, np.random.default_rng(0).random((2, 5)) * 4 - 2, seed=3)
    assert check_problem(from_module(loss_class(reduction=reduction)), problem).verdict is (
        Verdict.PASS
    )


def huber_problem(dtype="float64"):
    """tanh output, residuals |z - y| spread over (0, 3): some beyond 1, some beyond 2."""
    spec = NetworkSpec((3, 4, 2), ("tanh", "tanh"), "huber(2.0)")
    y = np.array([[2.5, -2.0, 0.3, 1.8, -1.2, 0.0], [-2.9, 1.5, 2.2, -0.1, 0.9, -1.7]])
    return problem_with(spec, y, dtype=dtype, seed=4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huber_delta_matters(dtype):
    problem = huber_problem(dtype)
    (W1, W2), (b1, b2) = problem.weights, problem.biases
    z = np.tanh(W2 @ np.tanh(W1 @ problem.x + b1[:, None]) + b2[:, None])
    residual = np.abs(z - problem.y)
    assert ((residual > 1) & (residual < 2)).any() and (residual > 2).any()
    assert check_problem(from_module(nn.HuberLoss(delta=2.0)), problem).verdict is Verdict.PASS
    wrong = from_module(nn.HuberLoss(delta=1.0), losses=("huber(2.0)",))
    assert check_problem(wrong, problem).verdict is Verdict.INCORRECT


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_class_indices_and_label_smoothing(dtype):
    y = one_hot([0, 2, 1, 2, 0], 3)
    problems = {
        loss: problem_with(NetworkSpec((3, 4, 3), ("tanh", "identity"), loss), y, dtype=dtype)
        for loss in ("softmax_ce(0.1)", "softmax_ce")
    }
    smoothing = nn.CrossEntropyLoss(label_smoothing=0.1)
    for targets in ("indices", "probabilities"):
        result = check_problem(from_module(smoothing, targets=targets), problems["softmax_ce(0.1)"])
        assert result.verdict is Verdict.PASS, str(result)
    # the same model named without its smoothing: the target of every class moves by 0.1/3
    wrong = from_module(smoothing, losses=("softmax_ce",), targets="indices")
    assert check_problem(wrong, problems["softmax_ce"]).verdict is Verdict.INCORRECT


def test_class_indices_refuse_soft_labels():
    spec = NetworkSpec((3, 4, 3), ("tanh", "identity"), "softmax_ce")
    y = np.full((3, 2), 1 / 3)
    problem = problem_with(spec, y)
    result = check_problem(from_module(nn.CrossEntropyLoss(), targets="indices"), problem)
    assert result.verdict is Verdict.ERROR
    assert "one-hot label columns" in result.message


@pytest.mark.parametrize("smoothing, name", [(0.1, "softmax_ce(0.1)"), (0.0, "softmax_ce")])
def test_cross_entropy_with_class_indices_passes_the_search(smoothing, name):
    result, seen = search_loss(
        nn.CrossEntropyLoss(label_smoothing=smoothing), targets="indices", max_examples=15
    )
    assert result.verdict is Verdict.PASS, str(result)
    assert {s[1] for s in seen} == {name}
    # labels="hard": every call had one-hot label columns
    for _, _, y in seen:
        assert set(np.unique(y)) <= {0.0, 1.0} and (y.sum(axis=0) == 1).all()


def test_cross_entropy_with_soft_labels_and_smoothing_passes_the_search():
    result, seen = search_loss(nn.CrossEntropyLoss(label_smoothing=0.1), max_examples=15)
    assert result.verdict is Verdict.PASS, str(result)
    assert any(not set(np.unique(y)) <= {0.0, 1.0} for _, _, y in seen)  # soft labels too
