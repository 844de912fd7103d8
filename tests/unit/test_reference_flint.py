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
from gradverify.exact.precision import agree_to_bits  # noqa: E402
from gradverify.exact.reference import reference_gradients  # noqa: E402
from gradverify.exact.reference_flint import flint_reference_gradients  # noqa: E402
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
    expected = reference_gradients(problem)
    got = flint_reference_gradients(problem)
    assert got.backend == "flint"
    for name, (_, hi, lo, exact), (_, hi_f, lo_f, exact_f) in zip(
        [t[0] for t in expected.tensors()], expected.tensors(), got.tensors(), strict=True
    ):
        # both are correctly rounded: the float64 values are identical
        np.testing.assert_array_equal(hi_f, hi, err_msg=name)
        # the residuals and exact values agree to the 80 bits both certify
        np.testing.assert_allclose(lo_f, lo, rtol=0, atol=float(np.max(np.abs(hi))) * 2.0**-78)
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
