"""Parametrised names (``leaky_relu(0.2)``, ``huber(2.0)``...), registered names, the
``labels`` capability, and the defaults that keep the original search unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from gradverify.engine.implementations import Capabilities, supports
from gradverify.exploration.strategies import labels, problems
from gradverify.model import names
from gradverify.model.functions import ACTIVATIONS, LOSSES, activation, loss_function
from gradverify.model.names import canonical_name, parse_name, validate_names
from gradverify.model.network import NetworkSpec


@pytest.mark.parametrize(
    ("kind", "given_name", "canonical"),
    [
        ("activation", "leaky_relu", "leaky_relu"),
        ("activation", "leaky_relu(0.01)", "leaky_relu"),
        ("activation", "leaky_relu(0.2)", "leaky_relu(0.2)"),
        ("activation", "leaky_relu(-0.5)", "leaky_relu(-0.5)"),
        ("activation", "elu(1)", "elu"),
        ("activation", "elu(.5)", "elu(0.5)"),
        ("activation", "elu(2e0)", "elu(2.0)"),
        ("loss", "huber(2)", "huber(2.0)"),
        ("loss", "huber(1.0)", "huber"),
        ("loss", "softmax_ce(0)", "softmax_ce"),
        ("loss", "softmax_ce(0.1)", "softmax_ce(0.1)"),
        ("loss", "softmax_ce(1)", "softmax_ce(1.0)"),
        ("activation", "tanh", "tanh"),
    ],
)
def test_canonical_spelling(kind, given_name, canonical):
    assert canonical_name(kind, given_name) == canonical
    lookup = activation if kind == "activation" else loss_function
    assert lookup(given_name).name == canonical
    assert lookup(given_name) is lookup(canonical)  # built once, cached


def test_parse_name_gives_the_base_and_the_parameter():
    assert parse_name("activation", "leaky_relu(0.2)") == ("leaky_relu", 0.2)
    assert parse_name("activation", "elu") == ("elu", 1.0)
    assert parse_name("loss", "softmax_ce") == ("softmax_ce", 0.0)
    assert parse_name("activation", "gelu") == ("gelu", None)
    assert parse_name("dtype", "float32") == ("float32", None)


@pytest.mark.parametrize(
    ("kind", "bad", "message"),
    [
        ("activation", "leaky_relu(abc)", "activation 'leaky_relu(abc)': negative_slope must be"),
        ("activation", "leaky_relu()", "negative_slope must be a number"),
        ("activation", "leaky_relu(inf)", "negative_slope must be finite"),
        ("activation", "elu(-1)", "activation 'elu(-1)': alpha must be > 0; got -1.0"),
        ("activation", "elu(0)", "alpha must be > 0"),
        ("loss", "huber(0)", "loss 'huber(0)': delta must be > 0; got 0.0"),
        ("loss", "softmax_ce(-0.1)", "epsilon must be >= 0"),
        ("loss", "softmax_ce(1.5)", "epsilon must be <= 1"),
        ("activation", "sigmoid(2.0)", "activation 'sigmoid' takes no parameter"),
        ("activation", "swish(1.0)", "unknown activation 'swish(1.0)'; known activations:"),
        ("loss", "huber(1.0", "unknown loss 'huber(1.0'"),
    ],
)
def test_malformed_names_are_refused_in_one_line(kind, bad, message):
    for call in (
        lambda: validate_names(kind, [bad]),
        lambda: (activation if kind == "activation" else loss_function)(bad),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)


def test_every_surface_takes_parametrised_names_and_keeps_the_canonical_one():
    caps = Capabilities(activations=("leaky_relu(0.20)", "elu(1)"), losses=("huber(2)",))
    assert caps.activations == ("leaky_relu(0.2)", "elu")
    assert caps.losses == ("huber(2.0)",)
    spec = NetworkSpec((2, 3, 1), ("elu(0.5)", "leaky_relu(0.01)"), "huber(2)")
    assert spec.activations == ("elu(0.5)", "leaky_relu") and spec.loss == "huber(2.0)"
    assert NetworkSpec((2, 2), ("identity",), "softmax_ce(0.0)").loss == "softmax_ce"

    @supports(losses=["softmax_ce(0.1)"])
    def impl(weights, biases, x, y, *, activations, loss): ...

    assert impl.__gradverify_capabilities__.losses == ("softmax_ce(0.1)",)


def test_registered_names_are_accepted_everywhere_through_extra_names(monkeypatch):
    custom = ACTIVATIONS["tanh"].__class__(**{**ACTIVATIONS["tanh"].__dict__, "name": "mytanh"})
    monkeypatch.setitem(names.EXTRA_NAMES["activation"], "mytanh", custom)
    assert names.known_names("activation")[-1] == "mytanh"
    assert validate_names("activation", ["mytanh"]) == ("mytanh",)
    assert activation("mytanh") is custom
    assert NetworkSpec((1, 1), ("mytanh",), "mse").activations == ("mytanh",)
    with pytest.raises(ValueError, match="'mytanh' takes no parameter"):
        activation("mytanh(2.0)")
    monkeypatch.delitem(names.EXTRA_NAMES["activation"], "mytanh")
    with pytest.raises(ValueError, match="unknown activation 'mytanh'"):
        activation("mytanh")


def test_the_defaults_are_the_original_functions():
    caps = Capabilities()
    assert caps.activations == ("sigmoid", "tanh", "relu", "softplus", "identity")
    assert caps.losses == ("bce", "mse", "softmax_ce")
    assert caps.labels == "any"
    assert len(ACTIVATIONS) == 10 and len(LOSSES) == 5


def test_labels_capability_is_validated_and_carried():
    assert Capabilities(labels="hard").restricted(dtypes=("float64",)).labels == "hard"
    assert Capabilities(labels="hard").to_dict()["labels"] == "hard"
    with pytest.raises(ValueError, match="labels must be 'any' or 'hard'; got 'soft'"):
        Capabilities(labels="soft")


def _is_hard(problem) -> bool:
    y = problem.y.astype(np.float64)
    if not np.all((y == 0) | (y == 1)):
        return False
    return loss_function(problem.spec.loss).labels != "distribution" or bool(
        np.all(y.sum(axis=0) == 1)
    )


@settings(max_examples=60, deadline=None, database=None)
@given(problems(Capabilities(losses=("softmax_ce(0.1)", "bce", "huber"), labels="hard")))
def test_hard_label_capability_draws_only_hard_labels(problem):
    assert _is_hard(problem)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_any_labels_draws_soft_ones_too():
    found = []

    @settings(max_examples=80, deadline=None, database=None)
    @given(labels("softmax_ce(0.1)", 3, 2))
    def collect(y):
        found.append(not np.all((y == 0) | (y == 1)))

    collect()
    assert any(found)
    with pytest.raises(ValueError, match="labels kind must be 'any' or 'hard'"):
        labels("bce", 1, 1, "soft").example()
