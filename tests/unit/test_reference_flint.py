"""The optional Arb (python-flint) reference against the mpmath reference."""

from __future__ import annotations

import numpy as np
import pytest

flint = pytest.importorskip(
    "flint", reason="python-flint is not installed (pip install gradverify[fast])"
)

from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.exact.precision import ExactReferenceError, agree_to_bits  # noqa: E402
from gradverify.exact.reference import reference_gradients  # noqa: E402
from gradverify.exact.reference_flint import (  # noqa: E402
    Unsettled,
    flint_reference_gradients,
)
from tests.strategies import random_problem  # noqa: E402

PROBLEMS = [
    dict(widths=(3, 4, 1), activations=("tanh", "sigmoid")),
    dict(widths=(4, 5, 3, 2), activations=("relu", "softplus", "sigmoid"), seed=3),
    dict(widths=(4, 5, 3), activations=("tanh", "identity"), loss="softmax_ce", seed=3),
    dict(widths=(4, 5, 3), activations=("sigmoid", "tanh"), loss="mse", dtype="float32"),
    dict(widths=(3, 4, 1), activations=("tanh", "sigmoid"), output_shift=700.0),
    dict(widths=(2, 3, 1), activations=("sigmoid", "sigmoid"), scale=300.0, dtype="float16"),
]


@pytest.mark.parametrize("kwargs", PROBLEMS)
def test_flint_reference_equals_the_mpmath_reference(kwargs):
    kwargs = dict(kwargs)
    problem = random_problem(
        kwargs.pop("widths"),
        kwargs.pop("activations"),
        kwargs.pop("loss", "bce"),
        batch=5,
        **kwargs,
    )
    expected = reference_gradients(problem, backend="mpmath")
    got = flint_reference_gradients(problem)
    assert got.backend == "flint"
    assert np.float64(got.loss).view(np.uint64) == np.float64(expected.loss).view(np.uint64)
    for (name, hi, lo, exact), (_, hi_f, lo_f, exact_f) in zip(
        expected.tensors(), got.tensors(), strict=True
    ):
        # both give the correctly rounded double-double: the same float64 bits, residuals too
        np.testing.assert_array_equal(hi_f.view(np.uint64), hi.view(np.uint64), err_msg=name)
        np.testing.assert_array_equal(lo_f.view(np.uint64), lo.view(np.uint64), err_msg=name)
        # the exact values agree to the 80 bits both certify
        assert all(agree_to_bits(a, b, 78) for a, b in zip(exact_f.flat, exact.flat, strict=True))


def test_flint_precision_is_restored():
    before = flint.ctx.prec
    flint_reference_gradients(random_problem((3, 4, 1), ("tanh", "sigmoid")))
    assert flint.ctx.prec == before


@pytest.mark.parametrize("shift, verdict", [(0.0, Verdict.PASS), (60.0, Verdict.UNSTABLE)])
def test_check_problem_accepts_the_flint_reference(shift, verdict):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1, output_shift=shift)
    reference = flint_reference_gradients(problem)
    result = check_problem(naive_bce_backprop, problem, reference=reference)
    assert result.verdict is verdict
    assert result.reference_backend == "flint"
    assert check_problem(fused_bce_backprop, problem, reference=reference).passed


def test_a_pass_that_cannot_separate_a_zero_says_so():
    # two identical hidden units with opposite outgoing weights: h_2 = 0 exactly, through
    # sigmoid balls that are not points, so the relu above cannot tell its side
    spec_problem = _identical_units_problem("relu")
    with pytest.raises(ExactReferenceError, match=Unsettled.STUCK.value):
        flint_reference_gradients(spec_problem, max_stuck_passes=2)


def _identical_units_problem(activation: str):
    from gradverify.model.network import NetworkSpec, Problem

    spec = NetworkSpec((1, 2, 1, 1), ("sigmoid", activation, "sigmoid"), "bce")
    weights = [np.array([[0.75], [0.75]]), np.array([[1.5, -1.5]]), np.array([[2.0]])]
    biases = [np.array([0.25, 0.25]), np.array([0.0]), np.array([0.5])]
    x, y = np.array([[1.0, -2.0]]), np.array([[1.0, 0.0]])
    return Problem.from_arrays(spec, weights, biases, x, y)
