"""The two exact reference backends (mpmath, Arb) give the same float64 bits, and the automatic
choice takes Arb where it certifies and mpmath everywhere else."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

flint = pytest.importorskip(
    "flint", reason="python-flint is not installed (pip install gradverify[fast])"
)

from gradverify.exact.precision import ExactReferenceError  # noqa: E402
from gradverify.exact.reference import (  # noqa: E402
    BACKENDS,
    describe_backend,
    reference_gradients,
)
from gradverify.exact.rounding import double_double  # noqa: E402
from gradverify.exploration.strategies import problems  # noqa: E402
from gradverify.model.functions import ACTIVATIONS, LOSSES  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402

MPMATH = f"mpmath-{mpmath.libmp.BACKEND}"
DTYPES = ["float16", "bfloat16", "float32", "float64"]


def _float_bits(ref) -> list[tuple[str, np.ndarray]]:
    """(name, uint64 bit patterns) of every float the reference returns: hi, lo, J."""
    out = [("J", np.float64(ref.loss).reshape(1).view(np.uint64))]
    for name, hi, lo, _ in ref.tensors():
        out.append((f"{name} hi", np.asarray(hi, np.float64).view(np.uint64)))
        out.append((f"{name} lo", np.asarray(lo, np.float64).view(np.uint64)))
    return out


def _differences(a, b) -> list[tuple[str, np.ndarray]]:
    """(name, flat indices) where the float64 bits of two references differ."""
    return [
        (name, np.flatnonzero(x != y))
        for (name, x), (_, y) in zip(_float_bits(a), _float_bits(b), strict=True)
        if not np.array_equal(x, y)
    ]


def _assert_same_floats_as_mpmath(problem: Problem, arb) -> None:
    """Arb's bits are mpmath's; or, where they differ, mpmath's pass sat on a rounding tie
    that only more bits resolve: mpmath at Arb's working precision then gives Arb's bits."""
    expected = reference_gradients(problem, backend="mpmath")
    differences = _differences(expected, arb)
    if not differences:
        return
    closer = reference_gradients(problem, backend="mpmath", bits=arb.precision)
    assert closer.precision > expected.precision
    for name, index in differences:
        mine = dict(_float_bits(closer))[name].flat[index]
        theirs = dict(_float_bits(arb))[name].flat[index]
        np.testing.assert_array_equal(mine, theirs, err_msg=name)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    problems(
        activations=list(ACTIVATIONS),
        losses=list(LOSSES),
        dtypes=DTYPES,
        max_width=4,
        max_batch=4,
        max_saturation=300.0,
    )
)
def test_arb_gives_the_float64_bits_of_mpmath(problem):
    try:
        arb = reference_gradients(problem, backend="flint", max_precision=4096)
    except ExactReferenceError:  # an exact zero by cancellation, a value on a kink
        arb = None
    auto = reference_gradients(problem)
    if arb is None:
        assert auto.backend == MPMATH
        assert not _differences(auto, reference_gradients(problem, backend="mpmath"))
        return
    assert arb.backend == auto.backend == "flint"
    assert not _differences(arb, auto)
    _assert_same_floats_as_mpmath(problem, arb)


def _saturated(activation: str, loss: str, dtype: str, shift: float, seed: int) -> Problem:
    rng = np.random.default_rng(seed)
    out = 2 if loss == "softmax_ce" else 1
    last = "identity" if loss == "softmax_ce" else "sigmoid"
    spec = NetworkSpec((3, 4, out), (activation, last), loss)
    weights = [rng.uniform(-1, 1, (4, 3)) * 8, rng.uniform(-1, 1, (out, 4))]
    biases = [rng.uniform(-1, 1, 4), rng.uniform(-1, 1, out) + shift]
    x = rng.uniform(-1, 1, (3, 3))
    y = rng.integers(0, 2, (out, 3)).astype(float)
    if loss == "softmax_ce":
        y = np.vstack([y[:1], 1 - y[:1]])
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("shift", [-300.0, 40.0])
def test_saturated_outputs_give_the_same_bits(dtype, loss, shift):
    for k, act in enumerate(sorted(ACTIVATIONS)):
        problem = _saturated(act, loss, dtype, shift, seed=k)
        assert problem.max_abs_logit() > 20
        auto = reference_gradients(problem)
        expected = reference_gradients(problem, backend="mpmath")
        if auto.backend == "flint":
            _assert_same_floats_as_mpmath(problem, auto)
        else:
            assert not _differences(auto, expected), act


def test_one_ulp_in_one_residual_is_a_difference():
    problem = _saturated("tanh", "bce", "float64", 40.0, seed=0)
    ref = reference_gradients(problem)
    lo = ref.dweights_low[0].copy()
    lo.flat[3] = np.nextafter(lo.flat[3], np.inf)
    changed = type(ref)(
        dweights=ref.dweights,
        dbiases=ref.dbiases,
        dweights_low=(lo, *ref.dweights_low[1:]),
        dbiases_low=ref.dbiases_low,
        loss=ref.loss,
        precision=ref.precision,
        agreed_bits=ref.agreed_bits,
        backend=ref.backend,
        exact_values=ref.exact_values,
    )
    assert [(name, list(index)) for name, index in _differences(ref, changed)] == [("dW1 lo", [3])]


# --- where Arb cannot certify, the automatic choice is mpmath -----------------------------


def _identical_units(activation: str) -> Problem:
    """Two identical hidden units with opposite outgoing weights: the next pre-activation is
    exactly 0, reached through sigmoid values that are not dyadic."""
    spec = NetworkSpec((1, 2, 1, 1), ("sigmoid", activation, "sigmoid"), "bce")
    weights = [np.array([[0.75], [0.75]]), np.array([[1.5, -1.5]]), np.array([[2.0]])]
    biases = [np.array([0.25, 0.25]), np.array([0.0]), np.array([0.5])]
    x, y = np.array([[1.0, -2.0]]), np.array([[1.0, 0.0]])
    return Problem.from_arrays(spec, weights, biases, x, y)


def _cancelling_softmax() -> Problem:
    """Equal outgoing weights into a 2-way softmax: the hidden deltas are exactly 0 (the two
    output deltas cancel), and so are dW1 and db1."""
    spec = NetworkSpec((2, 2, 2), ("tanh", "identity"), "softmax_ce")
    weights = [np.array([[0.5, -1.0], [0.25, 0.75]]), np.array([[0.5, -0.25], [0.5, -0.25]])]
    biases = [np.array([0.1, -0.2]), np.array([0.3, -0.3])]
    x, y = np.array([[1.0, 0.5], [-0.5, 2.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    return Problem.from_arrays(spec, weights, biases, x, y)


@pytest.mark.parametrize(
    "problem",
    [_cancelling_softmax(), _identical_units("relu"), _identical_units("leaky_relu")],
    ids=["zero by cancellation", "relu kink at 0", "leaky_relu kink at 0"],
)
def test_what_arb_cannot_certify_mpmath_decides(problem):
    with pytest.raises(ExactReferenceError, match="Arb reference could not certify"):
        reference_gradients(problem, backend="flint", max_precision=2048)
    auto = reference_gradients(problem)
    assert auto.backend == MPMATH
    assert not _differences(auto, reference_gradients(problem, backend="mpmath"))


def test_the_cancelled_gradient_is_exactly_zero():
    ref = reference_gradients(_cancelling_softmax())
    assert np.all(ref.dweights[0] == 0) and np.all(ref.dbiases[0] == 0)
    assert np.any(ref.dweights[1] != 0)


def test_registered_functions_use_mpmath(tmp_path):
    from gradverify.exact.registration import register_activation
    from gradverify.model import registry

    act = register_activation(
        "t_backend_square_plus",
        forward=lambda h: (h + np.sqrt(h * h + 4)) / 2,
        mp_forward=lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2,
    )
    try:
        spec = NetworkSpec((2, 2, 1), (act.name, "sigmoid"), "bce")
        problem = Problem.from_arrays(
            spec,
            [np.array([[0.5, -1.0], [1.5, 0.25]]), np.array([[1.0, -2.0]])],
            [np.array([0.1, 0.2]), np.array([0.3])],
            np.array([[1.0], [2.0]]),
            np.array([[1.0]]),
        )
        with pytest.raises(ExactReferenceError, match="built-in functions"):
            reference_gradients(problem, backend="flint")
        assert reference_gradients(problem).backend == MPMATH
    finally:
        registry.unregister("activation", "t_backend_square_plus")


def test_without_python_flint_the_reference_is_mpmath():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["flint"] = None  # python-flint not installed
        import numpy as np
        from gradverify.exact.reference import reference_gradients
        from gradverify.model.network import NetworkSpec, Problem
        spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
        p = Problem.from_arrays(
            spec, [np.ones((1, 1))], [np.zeros(1)], np.ones((1, 1)), np.ones((1, 1))
        )
        print(reference_gradients(p).backend)
        try:
            reference_gradients(p, backend="flint")
        except ImportError:
            print("ImportError")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [MPMATH, "ImportError"]


# --- names ---------------------------------------------------------------------------------


def test_the_backend_is_named_and_chosen():
    problem = _saturated("tanh", "bce", "float32", 3.0, seed=1)
    assert reference_gradients(problem).backend == "flint"
    assert reference_gradients(problem, backend="flint").backend == "flint"
    assert reference_gradients(problem, backend="mpmath").backend == MPMATH
    assert set(BACKENDS) == {"auto", "flint", "mpmath"}
    with pytest.raises(ValueError, match="backend must be one of"):
        reference_gradients(problem, backend="arb")
    assert "python-flint" in describe_backend("flint")
    assert "mpmath" in describe_backend(MPMATH)


def test_a_residual_below_the_accuracy_asked_for_is_zero():
    ctx = mpmath.MPContext()
    ctx.prec = 400
    one_third = ctx.mpf(1) / 3
    hi = float(one_third)
    assert double_double(one_third, 80) == (hi, float(one_third - hi))
    tiny = ctx.mpf(hi) + ctx.mpf(hi) * ctx.mpf(2) ** -81  # residual 2**-81 |hi|
    assert double_double(tiny, 80) == (hi, 0.0)
    assert double_double(tiny, 90) == (hi, float(ctx.mpf(hi) * ctx.mpf(2) ** -81))
