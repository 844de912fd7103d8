"""Declared architectures (depth, widths, batch) and implementations that break the protocol.

An implementation written for one architecture declares it, and the search, the minimiser,
the diagnostic variants and the scanner stay inside it; an undeclared one gets an ``error``
that says how to declare it. An implementation that does not follow the protocol at all
gets its ``error`` after a call or two, not after a whole search.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradverify
from gradverify.engine.conditions import condition_hints
from gradverify.engine.implementations import (
    Capabilities,
    capabilities_of,
    naive_bce_backprop,
    stable_backprop,
    supports,
)
from gradverify.engine.results import Verdict
from gradverify.exploration.scan import scan
from gradverify.exploration.search import search
from gradverify.model.network import NetworkSpec, Problem

FAST = {"seed": 0, "max_examples": 15, "database": None, "dtypes": ("float64",)}


@pytest.fixture(autouse=True)
def _not_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def two_layers(weights, biases, x, y, *, activations, loss):
    """Hand-written for exactly two layers, as tutorials write it."""
    W1, W2 = weights
    b1, b2 = biases
    return stable_backprop([W1, W2], [b1, b2], x, y, activations=activations, loss=loss)


declared_two_layers = supports(depth=2)(
    lambda weights, biases, x, y, *, activations, loss: two_layers(
        weights, biases, x, y, activations=activations, loss=loss
    )
)


class Recorder:
    """A backprop that records the widths and batch of every problem it is called on."""

    def __init__(self, impl, **declared):
        self.impl, self.seen = impl, []
        gradverify.supports(**declared)(self)

    def __call__(self, weights, biases, x, y, *, activations, loss):
        self.seen.append(((x.shape[0], *(w.shape[0] for w in weights)), x.shape[1]))
        return self.impl(weights, biases, x, y, activations=activations, loss=loss)


def sign_flipped(weights, biases, x, y, *, activations, loss):
    dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [-w for w in dw], [-b for b in db]


# ---------------------------------------------------------------------------
# The declaration
# ---------------------------------------------------------------------------


def test_a_declaration_is_normalised_to_ranges():
    caps = Capabilities(depth=2, batch=(1, 8))
    assert caps.depth == (2, 2) and caps.batch == (1, 8) and caps.depth_range == (2, 2)
    widths = Capabilities(widths=[784, None, 10])
    assert widths.widths == (784, None, 10) and widths.depth_range == (2, 2)
    assert Capabilities(depth=(2, 3)).depth_range == (2, 3)
    assert Capabilities().depth_range is None and not Capabilities().fixes_architecture
    assert capabilities_of(declared_two_layers).depth == (2, 2)


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"depth": 0}, "depth must be a positive integer or a (min, max) pair"),
        ({"depth": (3, 2)}, "depth range (3, 2) is empty"),
        ({"depth": (1, 2, 3)}, "depth must be a positive integer or a (min, max) pair"),
        ({"depth": 2.0}, "got 2.0"),
        ({"depth": True}, "got True"),
        ({"batch": -1}, "batch must be a positive integer"),
        ({"widths": (3,)}, "at least 2 entries"),
        ({"widths": (3, 0, 1)}, "entry 1 is 0"),
        ({"widths": "3,4,1"}, "widths lists the input width"),
        ({"widths": (784, 30, 10), "depth": 3}, "a network of depth 2"),
        (
            {"widths": (3, 1), "losses": ("bce", "softmax_ce")},
            "'softmax_ce' needs at least 2 outputs",
        ),
    ],
)
def test_a_contradictory_declaration_is_a_clear_error(declared, message):
    with pytest.raises(ValueError) as info:
        supports(**declared)
    assert message in str(info.value)


def test_an_output_width_of_one_leaves_softmax_out_of_the_default_losses():
    assert "softmax_ce" not in Capabilities(widths=(3, 1)).losses
    assert "softmax_ce" in Capabilities(widths=(3, 2)).losses


def test_outside_names_the_reason():
    caps = Capabilities(widths=(3, None, 1), batch=(2, 3))
    assert caps.admits((3, 7, 1), 2)
    assert "depth 1 is outside the declared depth 2" in caps.outside((3, 1), 2)
    assert "width 2 at position 0" in caps.outside((2, 7, 1), 2)
    assert "batch 1 is outside the declared batch 2 to 3" in caps.outside((3, 7, 1), 1)


# ---------------------------------------------------------------------------
# The search stays inside it
# ---------------------------------------------------------------------------


def test_a_declared_two_layer_implementation_passes():
    result = search(declared_two_layers, **FAST)
    assert result.verdict is Verdict.PASS, str(result)
    assert result.examples >= 10


def test_the_search_argument_declares_it_too():
    assert search(two_layers, depth=2, **FAST).verdict is Verdict.PASS


def test_an_undeclared_two_layer_implementation_is_told_how_to_declare_it():
    result = search(two_layers, **FAST)
    assert result.verdict is Verdict.ERROR
    message = result.counterexample.message
    assert "not enough values to unpack" in message
    assert (
        "it works with depth 2 but raised ValueError at depth 1: if it handles only some "
        "architectures, declare them with @gradverify.supports(depth=2) (or --depth 2, or "
        "depth = 2 in [[tool.gradverify.implementations]])"
    ) in message
    assert "@gradverify.supports(depth=2)" in str(result)


def test_no_declaration_hint_when_no_other_depth_works():
    def always_raises(weights, biases, x, y, *, activations, loss):
        raise RuntimeError("not yet")

    result = search(always_raises, **FAST)
    assert result.verdict is Verdict.ERROR
    assert "not yet" in result.counterexample.message
    assert "supports(" not in result.counterexample.message


def test_a_range_of_working_depths_is_suggested_as_a_range():
    def at_least_two(weights, biases, x, y, *, activations, loss):
        if len(weights) < 2:
            raise ValueError("needs a hidden layer")
        return stable_backprop(weights, biases, x, y, activations=activations, loss=loss)

    message = search(at_least_two, **FAST).counterexample.message
    assert "it works with depths 2 to 3 but raised ValueError at depth 1" in message
    assert (
        "@gradverify.supports(depth=(2, 3)) (or --depth 2,3, or depth = [2, 3] in "
        "[[tool.gradverify.implementations]])"
    ) in message


def test_every_problem_run_has_the_declared_widths_and_batch():
    """Generated, shrunk, minimised and diagnostic problems alike (incorrect: all of them run)."""
    recorder = Recorder(sign_flipped, widths=(3, 5, 1), batch=(2, 3))
    result = search(recorder, **FAST)
    assert result.verdict is Verdict.INCORRECT
    assert result.counterexample.spec.widths == (3, 5, 1)
    assert 2 <= result.counterexample.problem.batch_size <= 3
    assert len(recorder.seen) > 30
    assert {widths for widths, _ in recorder.seen} == {(3, 5, 1)}
    assert {batch for _, batch in recorder.seen} <= {2, 3}


def test_a_declared_depth_range_is_kept_by_minimiser_and_hints():
    recorder = Recorder(sign_flipped, depth=(2, 3))
    result = search(recorder, **FAST)
    assert result.verdict is Verdict.INCORRECT
    depths = {len(widths) - 1 for widths, _ in recorder.seen}
    assert depths <= {2, 3} and 2 in depths
    assert result.counterexample.spec.depth == 2
    assert not any("depth >= " in hint for hint in result.diagnosis)


def test_condition_variants_outside_the_declaration_are_skipped():
    spec = NetworkSpec((1, 1, 1), ("tanh", "sigmoid"), "bce")
    problem = Problem.from_arrays(
        spec, [np.ones((1, 1))] * 2, [np.zeros(1)] * 2, np.ones((1, 2)), np.zeros((1, 2)), "float64"
    )
    caps = Capabilities(widths=(1, 1, 1), batch=2)
    checked = []

    def verdict_of(p):
        checked.append(p)
        return "incorrect"

    condition_hints(
        problem,
        verdict_of,
        "incorrect",
        ("tanh", "relu"),
        admits=lambda p: caps.admits(p.spec.widths, p.batch_size),
    )
    assert len(checked) > 1  # the activation variant ran
    assert all(p.spec.widths == (1, 1, 1) and p.batch_size == 2 for p in checked)


def test_large_declared_widths_run_in_reasonable_time():
    recorder = Recorder(stable_backprop, widths=(784, 30, 10), losses=("bce",))
    result = search(recorder, seed=0, max_examples=4, database=None, dtypes=("float32",))
    assert result.verdict is Verdict.PASS, str(result)
    assert {widths for widths, _ in recorder.seen} == {(784, 30, 10)}
    assert result.elapsed < 60


# ---------------------------------------------------------------------------
# The scanner builds its probe networks inside it
# ---------------------------------------------------------------------------

SCAN = {
    "dtypes": ("float16",),
    "labels": (0.0,),
    "sweep_points": 0,
    "check_points": 8,
    "neighbourhood": 2,
}


def test_the_scanner_probes_inside_the_declared_architecture():
    recorder = Recorder(naive_bce_backprop, losses=("bce",), widths=(2, 3, 2), batch=(2, 4))
    declared = scan(recorder, **SCAN)
    assert {widths for widths, _ in recorder.seen} == {(2, 3, 2)}
    assert {batch for _, batch in recorder.seen} == {2}
    plain = scan(naive_bce_backprop, **SCAN)
    for side in ("positive", "negative"):  # the output-layer thresholds do not move
        for criterion in ("nonfinite", "error_1"):
            got = declared.rows[0].threshold(side, criterion)
            want = plain.rows[0].threshold(side, criterion)
            assert got.to_dict()["value"] == want.to_dict()["value"]
    assert declared.hidden and not any(h.error_points for h in declared.hidden)


def test_a_declared_depth_of_one_skips_the_hidden_scan_or_says_why():
    recorder = Recorder(naive_bce_backprop, losses=("bce",), depth=1)
    result = scan(recorder, **SCAN)
    assert result.hidden == [] and {len(w) for w, _ in recorder.seen} == {2}
    with pytest.raises(ValueError, match="hidden-layer scan needs a network of depth 2"):
        scan(recorder, hidden_activations=("tanh",), **SCAN)


# ---------------------------------------------------------------------------
# Protocol errors fail fast
# ---------------------------------------------------------------------------


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, weights, biases, x, y, *, activations, loss):
        self.calls += 1
        return self.fn(weights, biases, x, y, activations=activations, loss=loss)


def _gradients(weights, biases, x, y, activations, loss):
    return stable_backprop(weights, biases, x, y, activations=activations, loss=loss)


def returns_a_dict(weights, biases, x, y, *, activations, loss):
    dw, db = _gradients(weights, biases, x, y, activations, loss)
    return {"dweights": dw, "dbiases": db}


def returns_one_too_many(weights, biases, x, y, *, activations, loss):
    dw, db = _gradients(weights, biases, x, y, activations, loss)
    return [*dw, dw[-1]], db


def returns_wrong_shapes(weights, biases, x, y, *, activations, loss):
    dw, db = _gradients(weights, biases, x, y, activations, loss)
    return [np.zeros((w.shape[0] + 1, w.shape[1]), w.dtype) for w in dw], db


@pytest.mark.parametrize(
    "fn, message",
    [
        (returns_a_dict, "expected (dweights, dbiases): two sequences"),
        (returns_one_too_many, "arrays in dweights (one per layer); got"),
        (returns_wrong_shapes, "expected dweights[0] to have shape"),
    ],
)
def test_a_protocol_error_stops_the_search_at_once(fn, message):
    counted = Counting(fn)
    result = search(counted, seed=0, max_examples=100, database=None)  # float32 and float64
    assert result.verdict is Verdict.ERROR
    assert message in result.counterexample.message
    assert all(s.stopped_early for s in result.per_dtype.values())
    assert result.examples == 2  # one example per dtype
    assert counted.calls <= 8  # with at most two probes of other depths per dtype


def test_a_signature_that_does_not_take_the_protocol_arguments_stops_at_once():
    calls = []

    def positional_only(weights, biases, x, y):
        calls.append(1)

    result = search(positional_only, **FAST)
    assert result.verdict is Verdict.ERROR and result.examples == 1 and not calls
    assert "cannot be called as the protocol calls it" in result.counterexample.message
    assert "unexpected keyword argument 'activations'" in result.counterexample.message


def test_a_protocol_error_after_good_calls_is_searched_and_shrunk_as_usual():
    def wrong_count_when_deep(weights, biases, x, y, *, activations, loss):
        dw, db = _gradients(weights, biases, x, y, activations, loss)
        return (dw[:2], db[:2]) if len(dw) == 3 else (dw, db)

    result = search(wrong_count_when_deep, **FAST)
    assert result.verdict is Verdict.ERROR
    assert not result.per_dtype["float64"].stopped_early
    assert "expected 3 arrays in dweights (one per layer); got 2" in result.counterexample.message
    assert "it works with depths 1 to 2 but fails at depth 3" in result.counterexample.message
