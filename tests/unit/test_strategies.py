"""The strategies: valid problems in the capabilities, saturation on purpose, shrinking."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, seed, settings
from hypothesis import strategies as st

from gradverify.engine.implementations import Capabilities
from gradverify.exploration.strategies import (
    DEFAULT_MAX_SATURATION,
    batch_sizes,
    dtypes,
    inputs,
    labels,
    logit_bands,
    network_specs,
    parameters,
    problems,
    saturation_scales,
)
from gradverify.model.dtypes import available_dtypes
from gradverify.model.network import Problem, forward

FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FIND = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@FAST
@given(network_specs(Capabilities(activations=("tanh", "relu"), losses=("mse", "bce"))))
def test_specs_respect_the_capabilities(spec):
    assert spec.loss in ("mse", "bce")
    assert set(spec.activations[:-1]) <= {"tanh", "relu"}
    if spec.loss == "bce":
        assert spec.activations[-1] == "sigmoid"  # required by the loss
    else:
        assert spec.activations[-1] in ("tanh", "relu")
    assert 1 <= spec.depth <= 3 and all(1 <= w <= 4 for w in spec.widths)


@FAST
@given(network_specs(losses=["softmax_ce"], activations=["sigmoid"]))
def test_softmax_specs_have_identity_output_and_two_classes(spec):
    assert spec.activations[-1] == "identity"
    assert set(spec.activations[:-1]) <= {"sigmoid"}
    assert spec.widths[-1] >= 2


def _valid_and_finite_in_each_dtype(dtype, chosen_settings):
    @chosen_settings
    @given(problems(dtypes=[dtype], losses=["bce", "mse", "softmax_ce"]))
    def check(problem):
        assert isinstance(problem, Problem)
        assert problem.dtype_name == dtype
        # the forward pass in the dtype itself stays finite
        fp = forward(problem.spec, problem.weights, problem.biases, problem.x)
        assert all(np.all(np.isfinite(h.astype(np.float64))) for h in fp.h)
        assert problem.max_abs_logit() <= DEFAULT_MAX_SATURATION
        if problem.spec.loss == "softmax_ce":
            np.testing.assert_allclose(problem.y.astype(np.float64).sum(axis=0), 1.0, rtol=1e-2)
        else:
            y = problem.y.astype(np.float64)
            assert np.all((0 <= y) & (y <= 1))

    check()


@pytest.mark.parametrize("dtype", available_dtypes())
def test_problems_are_valid_and_finite_in_each_dtype(dtype):
    _valid_and_finite_in_each_dtype(dtype, FAST)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", available_dtypes())
@pytest.mark.parametrize("hypothesis_seed", range(4))
def test_problems_are_valid_and_finite_in_each_dtype_over_many_examples(dtype, hypothesis_seed):
    # relu networks with equal weights and a band shift cancel logits of ~6e4 down to the
    # band; rounded to float16 they once left max |h| = 1047 > 1024 or a value out of range
    many = settings(FAST, max_examples=1500, derandomize=False)
    _valid_and_finite_in_each_dtype(dtype, lambda f: seed(hypothesis_seed)(many(f)))


def test_problems_respect_the_capabilities():
    caps = Capabilities(activations=("relu",), losses=("mse",), dtypes=("float32",))

    @FAST
    @given(problems(caps))
    def check(problem):
        assert problem.dtype_name == "float32"
        assert problem.spec.loss == "mse"
        assert set(problem.spec.activations) == {"relu"}

    check()


def test_problems_reach_saturation_and_the_interior():
    saturations: list[float] = []

    @seed(0)
    @settings(
        max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(problems())
    def collect(problem):
        saturations.append(problem.max_abs_logit())

    collect()
    sat = np.array(saturations)
    assert np.mean(sat > 30) >= 0.1  # past float64's sigmoid threshold (~36.7) often enough
    assert np.mean(sat > 300) >= 0.02
    assert np.mean(sat <= 4) >= 0.2  # and ordinary values too


def test_shrinks_a_saturated_problem_to_one_unit_near_the_threshold():
    minimal = find(problems(), lambda p: p.max_abs_logit() > 30, settings=FIND, random=Random(0))
    # one layer, one input, the fewest outputs the loss allows (softmax needs 2)
    assert minimal.spec.depth == 1 and minimal.spec.widths[0] == 1
    assert minimal.spec.widths[1] == (2 if minimal.spec.loss == "softmax_ce" else 1)
    assert minimal.batch_size == 1
    # saturation shrinks toward the smallest value that still satisfies the property
    assert 30 < minimal.max_abs_logit() < 40


def test_shrinks_toward_fewer_layers_and_narrower_widths():
    deep = find(
        problems(max_depth=4, max_width=2, max_batch=2, losses=["bce"]),
        lambda p: p.spec.depth >= 3,
        settings=FIND,
        random=Random(0),
    )
    assert deep.spec.depth == 3 and deep.spec.widths == (1, 1, 1, 1)
    assert deep.batch_size == 1
    # simpler weights: every entry shrinks to 1.0 (the scale to 2**0)
    assert all(np.all(w == 1.0) for w in deep.weights)
    wide = find(
        problems(losses=["bce"], max_width=3, max_batch=2),
        lambda p: max(p.spec.widths[1:-1], default=0) >= 3,
        settings=FIND,
        random=Random(1),
    )
    assert wide.spec.depth == 2 and wide.spec.widths == (1, 3, 1)


def test_batch_sizes_include_one_and_labels_include_hard_and_soft():
    assert find(batch_sizes(4), lambda b: True, settings=FIND) == 1
    hard = find(labels("bce", 2, 3), lambda y: True, settings=FIND)
    assert set(np.unique(hard)) <= {0.0, 1.0}
    soft = find(labels("bce", 1, 1), lambda y: 0 < y[0, 0] < 1, settings=FIND)
    assert 0 < soft[0, 0] < 1
    onehot = find(labels("softmax_ce", 3, 2), lambda y: True, settings=FIND)
    assert np.all(onehot.sum(axis=0) == 1) and set(np.unique(onehot)) <= {0.0, 1.0}


@FAST
@given(st.data())
def test_parameters_put_output_logits_in_the_band(data):
    spec = data.draw(network_specs(losses=["bce"], max_depth=2))
    x = data.draw(inputs(spec.widths[0], 3))
    weights, biases = data.draw(parameters(spec, x, max_saturation=64.0))
    assert [w.shape for w in weights] == [
        (spec.widths[i + 1], spec.widths[i]) for i in range(spec.depth)
    ]
    h = forward(spec, weights, biases, x).h
    assert max(float(np.max(np.abs(layer))) for layer in h) <= 64.0 * (1 + 1e-12)


def test_scales_and_bands_shrink_to_none():
    assert find(saturation_scales(), lambda s: True, settings=FIND) == 1.0
    assert find(logit_bands(), lambda t: True, settings=FIND) is None
    # log2 of the band shrinks to the simplest float above log2(100): an integer, 7
    assert 100 < find(logit_bands(), lambda t: t is not None and t > 100, settings=FIND) <= 128


def test_array_entries_are_uniform_in_the_unit_interval_with_full_precision():
    entries: list[np.ndarray] = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(inputs(4, 4))
    def collect(x):
        entries.append(x.ravel())

    collect()
    x = np.concatenate(entries)
    assert np.all((-1 <= x) & (x <= 1))
    # uniform: every eighth of [-1, 1] holds about an eighth of the entries
    counts, _ = np.histogram(x, bins=8, range=(-1.0, 1.0))
    assert np.all(np.abs(counts / x.size - 1 / 8) < 0.04), counts
    # not on a coarse grid: most entries use more than 40 bits of their significand
    fine = x[np.abs(x) > 2**-8]
    significand = np.frexp(fine)[0] * 2.0**40
    assert np.mean(significand != np.round(significand)) > 0.9


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: network_specs(activations=["swish"]), "unknown activation 'swish'"),
        (lambda: network_specs(losses=["hinge"]), "unknown loss 'hinge'"),
        (lambda: network_specs(max_depth=0), "min_depth <= max_depth"),
        (lambda: problems(max_saturation=1e6), "max_saturation must be in [1, 6e4]"),
        (lambda: problems(max_batch=0), "max_batch must be at least 1"),
        (lambda: dtypes(names=["float8"]), "unknown dtype 'float8'"),
    ],
)
def test_bad_arguments_get_a_one_line_message(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# Declared architectures: only the free parts are drawn, and shrinking keeps them
# ---------------------------------------------------------------------------


@FAST
@given(problems(widths=(3, 5, 1), losses=["bce", "mse"]))
def test_declared_widths_fix_every_drawn_problem(problem):
    assert problem.spec.widths == (3, 5, 1)
    assert problem.weights[0].shape == (5, 3) and problem.x.shape[0] == 3


@FAST
@given(network_specs(Capabilities(widths=(2, None, 3), losses=("mse",))))
def test_declared_widths_fix_the_specs_with_free_entries_drawn(spec):
    assert spec.depth == 2 and spec.widths[0] == 2 and spec.widths[2] == 3
    assert 1 <= spec.widths[1] <= 4


def test_shrunk_problems_keep_the_declared_widths_and_batch():
    caps = Capabilities(widths=(3, 5, 1), batch=(2, 3), losses=("bce",))
    seen: list[Problem] = []

    def saturated(problem):
        seen.append(problem)
        return problem.max_abs_logit() > 30

    minimal = find(problems(caps), saturated, settings=FIND, random=Random(0))
    assert len(seen) > 10  # generation and shrinking
    assert {p.spec.widths for p in seen} == {(3, 5, 1)}
    assert {p.batch_size for p in seen} <= {2, 3}
    assert minimal.spec.widths == (3, 5, 1) and minimal.batch_size == 2
    assert 30 < minimal.max_abs_logit() < 64  # values still shrink inside the architecture


def test_a_declared_depth_range_is_drawn_whole_and_shrinks_to_its_minimum():
    seen: set[int] = set()

    @FAST
    @given(problems(depth=(2, 3), losses=["bce"]))
    def collect(problem):
        seen.add(problem.spec.depth)

    collect()
    assert seen == {2, 3}
    minimal = find(
        problems(depth=(2, 3), losses=["bce"]),
        lambda p: p.max_abs_logit() > 30,
        settings=FIND,
        random=Random(0),
    )
    assert minimal.spec.depth == 2 and minimal.spec.widths == (1, 1, 1)


def test_large_declared_widths_are_drawn_whole_and_stay_in_range():
    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(problems(widths=(784, 30, 10), losses=["bce"], dtypes=["float32"]))
    def check(problem):
        w = problem.weights[0].astype(np.float64) / max(1.0, np.abs(problem.weights[0]).max())
        assert problem.spec.widths == (784, 30, 10)
        assert np.all(np.abs(w) <= 1) and np.unique(w).size > 100  # not one repeated value
        assert set(np.unique(problem.y)) <= {0.0, 1.0} or np.all(
            (0 <= problem.y) & (problem.y <= 1)
        )

    check()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: problems(widths=(3, 1), losses=["softmax_ce"]), "needs at least 2 outputs"),
        (lambda: problems(depth=0), "depth must be a positive integer"),
        (lambda: problems(widths=(3, 4, 1), depth=3), "a network of depth 2"),
        (lambda: batch_sizes(4, min_batch=5), "min_batch <= max_batch"),
    ],
)
def test_bad_architectures_get_a_one_line_message(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
