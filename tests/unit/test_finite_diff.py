"""Tests for gradverify.engine.finite_diff (with its stencil and directional mode) against an
independent mpmath oracle written here.

The oracle is a plain mpmath forward pass of J (using the ``mp_forward``/``mp_value`` forms
of functions.py) differentiated with ``mpmath.diff`` in a private context, one coordinate at
a time. It shares no code with finite_diff.py, stencil.py or directional.py beyond those
per-element definitions.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradverify.engine.directional import (
    directional_check,
    flatten_parameters,
    unflatten_parameters,
)
from gradverify.engine.finite_diff import finite_difference_gradients
from gradverify.engine.stencil import (
    KINK_RETRIES,
    KINK_STEP_SHRINK,
    STEP_FACTOR,
    richardson,
    step_sizes,
)
from gradverify.model.functions import ACTIVATIONS, LOSSES
from gradverify.model.network import NetworkSpec, Problem

PRECISION = 100  # bits for the oracle


# ---------------------------------------------------------------------------
# The mpmath oracle
# ---------------------------------------------------------------------------


def _to_mp(ctx: mpmath.MPContext, a: np.ndarray) -> np.ndarray:
    return np.frompyfunc(ctx.mpf, 1, 1)(np.asarray(a, dtype=np.float64))


def _mp_loss(ctx, spec: NetworkSpec, weights, biases, x, y):
    """J = mean over elements of the loss, in mpmath, on object arrays of mpf."""
    z = x
    for W, b, name in zip(weights, biases, spec.activations, strict=True):
        h = W.dot(z) + b[:, None]
        act = ACTIVATIONS[name]
        z = np.frompyfunc(lambda v, act=act: act.mp_forward(ctx, v), 1, 1)(h)
    per_element = LOSSES[spec.loss].mp_value(ctx, h, z, y)
    return ctx.fsum(per_element.ravel()) / y.size


def exact_partial(problem: Problem, kind: str, layer: int, index: tuple[int, ...]) -> float:
    """dJ/dtheta for one parameter (``kind`` is 'W' or 'b') by mpmath.diff at 100 bits."""
    ctx = mpmath.MPContext()
    ctx.prec = PRECISION
    weights = [_to_mp(ctx, w) for w in problem.weights]
    biases = [_to_mp(ctx, b) for b in problem.biases]
    x, y = _to_mp(ctx, problem.x), _to_mp(ctx, problem.y)
    target = weights if kind == "W" else biases

    def J(t):
        saved = target[layer][index]
        target[layer][index] = t
        try:
            return _mp_loss(ctx, problem.spec, weights, biases, x, y)
        finally:
            target[layer][index] = saved

    return float(ctx.diff(J, target[layer][index]))


def exact_gradient(problem: Problem) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Every partial derivative by the oracle (tiny networks only)."""
    dW = tuple(np.zeros(w.shape) for w in problem.weights)
    db = tuple(np.zeros(b.shape) for b in problem.biases)
    for i, w in enumerate(problem.weights):
        for index in np.ndindex(w.shape):
            dW[i][index] = exact_partial(problem, "W", i, index)
        for index in np.ndindex(problem.biases[i].shape):
            db[i][index] = exact_partial(problem, "b", i, index)
    return dW, db


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


def random_problem(widths, activations, loss, *, seed=0, batch=3, dtype="float64") -> Problem:
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(tuple(widths), tuple(activations), loss)
    weights = [
        rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i])
        for i in range(len(widths) - 1)
    ]
    biases = [0.5 * rng.standard_normal(widths[i + 1]) for i in range(len(widths) - 1)]
    x = rng.standard_normal((widths[0], batch))
    if loss == "bce":
        y = rng.integers(0, 2, (widths[-1], batch)).astype(float)
    elif loss == "softmax_ce":
        y = np.eye(widths[-1])[:, rng.integers(0, widths[-1], batch)]
    else:
        y = rng.standard_normal((widths[-1], batch))
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


SMOOTH_CASES = [
    ((3, 4, 2), ("tanh", "sigmoid"), "bce"),
    ((2, 3, 3, 2), ("softplus", "tanh", "identity"), "mse"),
    ((3, 4, 3), ("sigmoid", "identity"), "softmax_ce"),
    ((2, 3, 2), ("identity", "softplus"), "mse"),
]


@pytest.fixture(scope="module")
def smooth_results():
    """(problem, FD result, exact gradient) for each smooth case, computed once."""
    out = []
    for seed, (widths, acts, loss) in enumerate(SMOOTH_CASES):
        problem = random_problem(widths, acts, loss, seed=seed)
        out.append((problem, finite_difference_gradients(problem), exact_gradient(problem)))
    return out


def _entries(result, exact):
    """Flattened (fd, error estimate, exact, unreliable) over every parameter."""
    fd = flatten_parameters(result.dweights, result.dbiases)
    err = flatten_parameters(result.dweights_error, result.dbiases_error)
    ref = flatten_parameters(*exact)
    bad = np.concatenate(
        [m.ravel() for m in (*result.dweights_unreliable, *result.dbiases_unreliable)]
    )
    return fd, err, ref, bad


# ---------------------------------------------------------------------------
# Accuracy and error estimates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", range(len(SMOOTH_CASES)), ids=[f"{'-'.join(a)}-{loss}" for _, a, loss in SMOOTH_CASES]
)
def test_agrees_with_mpmath_oracle(smooth_results, case):
    problem, result, exact = smooth_results[case]
    fd, err, ref, bad = _entries(result, exact)
    assert fd.size == problem.spec.parameter_count
    assert not bad.any(), "smooth networks have no kinks"
    # Relative to the entry, floored at 1e-3 of the largest entry so that a partial that
    # happens to be ~0 does not demand absolute accuracy beyond what float64 J can give.
    scale = np.maximum(np.abs(ref), 1e-3 * np.max(np.abs(ref)))
    relative = np.abs(fd - ref) / scale
    assert np.max(relative) < 1e-8, f"worst relative error {np.max(relative):.3g}"
    assert np.all(np.abs(fd - ref) <= 10 * err + 1e-300)


def test_error_estimates_are_honest_and_informative(smooth_results):
    """True error <= 10 x estimate on every entry, and the estimates are not vacuous."""
    for problem, result, exact in smooth_results:
        fd, err, ref, _ = _entries(result, exact)
        true_error = np.abs(fd - ref)
        worst = np.argmax(true_error / err)
        assert np.all(true_error <= 10 * err), (
            f"{problem.spec.describe()}: entry {worst} has error {true_error[worst]:.3g} "
            f"but estimate {err[worst]:.3g}"
        )
        # An estimate of 'anything goes' would pass the line above; it must also be small.
        assert np.all(err < 1e-9 * max(1.0, problem.loss64()))
        assert np.all(err > 0)


def test_evaluations_are_counted(smooth_results):
    for problem, result, _ in smooth_results:
        assert result.evaluations >= 6 * problem.spec.parameter_count + 1


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def test_steps_are_per_parameter_and_representable():
    problem = random_problem((2, 2, 1), ("tanh", "identity"), "mse", seed=3)
    weights = [w.copy() for w in problem.weights]
    weights[0][0, 0], weights[0][1, 1] = 1e3, 1e-3
    problem = problem.with_parameters(weights, problem.biases)
    result = finite_difference_gradients(problem)
    big, small = result.dweights_step[0][0, 0], result.dweights_step[0][1, 1]
    assert big != small
    assert big / small > 100  # the step follows |theta| above the typical scale 1
    assert 0.5 < big / (STEP_FACTOR * 1e3) < 2  # within rounding to a power of two
    assert 0.5 < small / STEP_FACTOR < 2  # |theta| < 1 uses the typical scale
    for theta, h in zip(
        (*problem.weights, *problem.biases),
        (*result.dweights_step, *result.dbiases_step),
        strict=True,
    ):
        theta = theta.astype(np.float64)
        np.testing.assert_array_equal((theta + h) - theta, h)
    np.testing.assert_array_equal(
        step_sizes(np.array([1e3, 1e-3, 0.0])), [big, small, step_sizes(np.array([0.0]))[0]]
    )


# ---------------------------------------------------------------------------
# Kinks
# ---------------------------------------------------------------------------


def _relu_problem_with_preactivation_near_zero(layer: int, offset: float) -> Problem:
    """relu hidden layers; pre-activation h_{layer+1}[1, 0] is set to ``offset`` via the bias."""
    problem = random_problem((3, 4, 3, 2), ("relu", "relu", "identity"), "mse", seed=11, batch=4)
    biases = [b.astype(np.float64).copy() for b in problem.biases]
    fp = problem.forward64()
    biases[layer][1] += offset - fp.h[layer][1, 0]
    return problem.with_parameters(problem.weights, biases)


@pytest.mark.parametrize("layer", [0, 1])
def test_kink_straddle_marks_the_right_parameters(layer):
    problem = _relu_problem_with_preactivation_near_zero(layer, 1e-9)
    fp = problem.forward64()
    assert abs(fp.h[layer][1, 0]) < 1e-8
    others = np.abs(np.concatenate([h.ravel() for h in fp.h[:2]]))
    assert np.sum(others < 1e-3) == 1, "only the planted pre-activation is near the kink"
    result = finite_difference_gradients(problem)
    uw, ub = result.dweights_unreliable, result.dbiases_unreliable
    # The planted unit's bias, and its weights from inputs that are nonzero on that sample,
    # move it across 0; a weight whose input is 0 there (a dead relu below) does not.
    moves_it = fp.x[:, 0] != 0 if layer == 0 else fp.z[layer - 1][:, 0] != 0
    assert np.all(np.abs(fp.layer_input(layer)[moves_it, 0]) > 1e-2)
    np.testing.assert_array_equal(uw[layer][1, :], moves_it)
    assert ub[layer][1]
    # Flagged entries were retried down to the smallest step; the others kept the first.
    first = step_sizes(problem.weights[layer].astype(np.float64))
    np.testing.assert_array_equal(
        result.dweights_step[layer][1, moves_it] / first[1, moves_it],
        KINK_STEP_SHRINK**KINK_RETRIES,
    )
    np.testing.assert_array_equal(result.dweights_step[layer][1, ~moves_it], first[1, ~moves_it])
    # The other rows of that layer, and every later layer, do not touch it.
    rows = np.arange(uw[layer].shape[0]) != 1
    assert not uw[layer][rows].any() and not ub[layer][rows].any()
    for later in range(layer + 1, problem.spec.depth):
        assert not uw[later].any() and not ub[later].any()
    # Away from the kink the values are right: compare a few with the oracle.
    last = problem.spec.depth - 1
    for index in [(0, 0), (1, 2)]:
        exact = exact_partial(problem, "W", last, index)
        assert abs(result.dweights[last][index] - exact) <= 1e-8 * max(abs(exact), 1e-3)


def test_kink_within_the_first_step_is_resolved_by_a_smaller_step():
    probe = _relu_problem_with_preactivation_near_zero(0, 1.0)
    first = step_sizes(probe.biases[0].astype(np.float64))[1]
    # Straddled by the first bias step, not by the retried one (first * 2**-6).
    problem = _relu_problem_with_preactivation_near_zero(0, first / 8)
    result = finite_difference_gradients(problem)
    assert not result.dbiases_unreliable[0][1]
    assert result.dbiases_step[0][1] == first * KINK_STEP_SHRINK
    exact = exact_partial(problem, "b", 0, (1,))
    assert abs(result.dbiases[0][1] - exact) <= 10 * result.dbiases_error[0][1]
    assert abs(result.dbiases[0][1] - exact) <= 1e-7 * max(abs(exact), 1e-3)


def test_stencil_point_landing_exactly_on_the_kink_counts_as_a_straddle():
    problem = random_problem((2, 3, 1), ("relu", "identity"), "mse", seed=4, batch=3)
    weights = [w.astype(np.float64).copy() for w in problem.weights]
    biases = [b.astype(np.float64).copy() for b in problem.biases]
    weights[0][1, :] = 0.0  # then h_1[1, :] == b_1[1] exactly
    biases[0][1] = step_sizes(np.array([0.5]))[0]  # a power of two below 1 ...
    assert step_sizes(biases[0][1:2])[0] == biases[0][1]  # ... that is its own step
    problem = problem.with_parameters(weights, biases)
    result = finite_difference_gradients(problem)
    # The stencil point b - h is exactly 0 (relu's kink): the entry is retried with a
    # smaller step, which no longer touches the kink.
    assert result.dbiases_step[0][1] == biases[0][1] * KINK_STEP_SHRINK
    assert not result.dbiases_unreliable[0][1]


def test_richardson_removes_h2_and_h4_terms():
    """Synthetic differences D(h) = d + c2 h^2 + c4 h^4 extrapolate to d exactly."""
    steps = np.array([1e-3, 2e-2, 0.5])
    d, c2, c4 = np.array([0.3, -2.0, 7.0]), np.array([5.0, -1.0, 3.0]), np.array([2.0, 9.0, 1.0])
    hs = steps[:, None] / 2.0 ** np.arange(3)[None, :]
    differences = d[:, None] + c2[:, None] * hs**2 + c4[:, None] * hs**4
    value, error = richardson(differences, steps, 0.0)
    np.testing.assert_allclose(value, d, rtol=1e-13)
    # The estimate is the last correction, |R2 - R1(h/2)| = c4 h^4 / 64: the one-stage error.
    np.testing.assert_allclose(error, c4 * steps**4 / 64, rtol=1e-6, atol=1e-14)


def test_no_kink_flags_when_preactivations_are_far_from_zero():
    problem = _relu_problem_with_preactivation_near_zero(0, 0.3)
    assert min(np.min(np.abs(h)) for h in problem.forward64().h[:2]) > 1e-3
    assert finite_difference_gradients(problem).unreliable_count == 0


def test_preactivation_exactly_at_kink_is_flagged():
    problem = _relu_problem_with_preactivation_near_zero(0, 0.0)
    assert problem.forward64().h[0][1, 0] == 0.0
    result = finite_difference_gradients(problem)
    assert result.dbiases_unreliable[0][1]


# ---------------------------------------------------------------------------
# Directional mode
# ---------------------------------------------------------------------------


def test_directional_check_accepts_exact_and_rejects_wrong_gradient(smooth_results):
    problem, _, (dW, db) = smooth_results[0]
    check = directional_check(problem, dW, db, directions=5, seed=1)
    assert check.directions == 5 and check.projected_fd.shape == (5,)
    assert not check.unreliable.any()
    assert check.max_relative_discrepancy() < 1e-8
    assert np.all(
        np.abs(check.projected_gradient - check.projected_fd) <= 10 * check.projected_fd_error
    )

    wrong = [w.copy() for w in dW]
    wrong[1][0, 2] += 0.5
    bad = directional_check(problem, wrong, db, directions=5, seed=1)
    assert bad.max_relative_discrepancy() > 1e-2
    np.testing.assert_array_equal(bad.projected_fd, check.projected_fd)  # same seed, same v


def test_directional_check_directions_depend_on_seed(smooth_results):
    problem, _, (dW, db) = smooth_results[1]
    a = directional_check(problem, dW, db, directions=3, seed=0)
    b = directional_check(problem, dW, db, directions=3, seed=0)
    c = directional_check(problem, dW, db, directions=3, seed=7)
    np.testing.assert_array_equal(a.projected_gradient, b.projected_gradient)
    assert not np.allclose(a.projected_gradient, c.projected_gradient)
    # v^T g for unit v cannot exceed ||g||.
    assert np.all(np.abs(a.projected_gradient) <= np.linalg.norm(flatten_parameters(dW, db)))


def test_directional_check_flags_kinks():
    problem = _relu_problem_with_preactivation_near_zero(0, 0.0)
    zeros_w = [np.zeros(w.shape) for w in problem.weights]
    zeros_b = [np.zeros(b.shape) for b in problem.biases]
    check = directional_check(problem, zeros_w, zeros_b, directions=3)
    assert check.unreliable.all()
    assert np.isnan(check.max_relative_discrepancy())


def test_directional_check_rejects_wrong_shapes(smooth_results):
    problem, _, (dW, db) = smooth_results[0]
    with pytest.raises(ValueError, match="dW_1"):
        directional_check(problem, [dW[0].T, dW[1]], db)


# ---------------------------------------------------------------------------
# Dtypes, limits, helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_low_precision_problems_use_their_exact_values_in_float64(dtype):
    problem = random_problem((3, 3, 2), ("tanh", "sigmoid"), "bce", seed=5, dtype=dtype)
    result = finite_difference_gradients(problem)
    assert all(d.dtype == np.float64 for d in (*result.dweights, *result.dbiases))
    # Exactly what FD gives on the same values stored as float64 ...
    same = finite_difference_gradients(problem.astype("float64"))
    for a, b in zip(
        (*result.dweights, *result.dbiases), (*same.dweights, *same.dbiases), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # ... and float64-accurate against the oracle on those values.
    for index in [(0, 0), (1, 2)]:
        exact = exact_partial(problem, "W", 0, index)
        assert abs(result.dweights[0][index] - exact) <= max(1e-9 * abs(exact), 1e-12)


def test_max_parameters_refuses_large_problems_and_points_to_directional_mode():
    problem = random_problem((3, 4, 2), ("tanh", "sigmoid"), "bce")
    count = problem.spec.parameter_count
    with pytest.raises(ValueError, match=rf"{count} parameters.*directional_check"):
        finite_difference_gradients(problem, max_parameters=count - 1)
    finite_difference_gradients(problem, max_parameters=count)


def test_flatten_and_unflatten_round_trip_in_documented_order():
    problem = random_problem((2, 3, 2), ("tanh", "identity"), "mse")
    flat = flatten_parameters(problem.weights, problem.biases)
    W1, W2 = problem.weights
    b1, b2 = problem.biases
    np.testing.assert_array_equal(flat, np.concatenate([W1.ravel(), W2.ravel(), b1, b2]))
    weights, biases = unflatten_parameters(flat, problem.spec)
    for a, b in zip((*weights, *biases), (*problem.weights, *problem.biases), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected 17 parameters"):
        unflatten_parameters(flat[:-1], problem.spec)
