"""The mpmath backend of the exact reference against an independent derivative (mpmath.diff
of a plain forward pass), and its reused private contexts. The Arb backend and the automatic
choice between them: test_reference_backends.py."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from gradverify.exact.contexts import fresh_contexts, working_context
from gradverify.exact.precision import MAX_PRECISION, working_precisions
from gradverify.exact.reference import Dyadic, ExactReferenceError
from gradverify.exact.reference import reference_gradients as any_reference_gradients
from gradverify.exact.rounding import round_to_float64, split_to_float64
from gradverify.model.network import NetworkSpec, Problem
from tests.strategies import random_problem

reference_gradients = functools.partial(any_reference_gradients, backend="mpmath")

# --- an independent forward pass: textbook formulas at a very high precision -------------

_ACT = {
    "sigmoid": lambda c, h: 1 / (1 + c.exp(-h)),
    "tanh": lambda c, h: c.tanh(h),
    "softplus": lambda c, h: c.log(1 + c.exp(h)),
    "relu": lambda c, h: h if h > 0 else c.zero,
    "identity": lambda c, h: h,
}


def _independent_loss(ctx, problem: Problem, coordinate, value):
    """J with one parameter replaced by ``value``; plain loops, textbook loss formulas."""
    spec = problem.spec
    W = [[[ctx.mpf(float(v)) for v in row] for row in w] for w in problem.weights]
    b = [[ctx.mpf(float(v)) for v in bias] for bias in problem.biases]
    kind, layer, index = coordinate
    if kind == "W":
        W[layer][index[0]][index[1]] = value
    else:
        b[layer][index[0]] = value
    batch = problem.batch_size
    total = ctx.zero
    for j in range(batch):
        z = [ctx.mpf(float(v)) for v in problem.x[:, j]]
        for i, name in enumerate(spec.activations):
            h = [
                ctx.fsum(W[i][r][c] * z[c] for c in range(len(z))) + b[i][r]
                for r in range(len(W[i]))
            ]
            z = [_ACT[name](ctx, v) for v in h]
        y = [ctx.mpf(float(v)) for v in problem.y[:, j]]
        if spec.loss == "bce":
            total += ctx.fsum(
                -(yk * ctx.log(zk) + (1 - yk) * ctx.log(1 - zk))
                for zk, yk in zip(z, y, strict=True)
            )
        elif spec.loss == "mse":
            total += ctx.fsum((zk - yk) ** 2 for zk, yk in zip(z, y, strict=True))
        else:  # softmax_ce over the column
            norm = ctx.fsum(ctx.exp(v) for v in z)
            total += ctx.fsum(
                -yk * ctx.log(ctx.exp(zk) / norm) for zk, yk in zip(z, y, strict=True)
            )
    return total / problem.y.size


def _coordinates(problem: Problem, rng: np.random.Generator, count: int):
    coords = []
    for layer in range(problem.spec.depth):
        w = problem.weights[layer]
        coords.append(("W", layer, tuple(int(v) for v in rng.integers(0, w.shape))))
        coords.append(("b", layer, (int(rng.integers(0, problem.biases[layer].shape[0])),)))
    rng.shuffle(coords)
    return coords[:count]


def _assert_matches_mpmath_diff(problem: Problem, digits: int = 30, count: int = 6, seed: int = 0):
    ref = reference_gradients(problem)
    ctx = mpmath.MPContext()
    # enough bits for the textbook forms to survive |h| up to ~1000 without cancellation
    ctx.prec = 400 + int(1.5 * problem.max_abs_logit())
    rng = np.random.default_rng(seed)
    for kind, layer, index in _coordinates(problem, rng, count):
        base = problem.weights[layer][index] if kind == "W" else problem.biases[layer][index]
        expected = ctx.diff(
            lambda v, c=(kind, layer, index): _independent_loss(ctx, problem, c, v),
            ctx.mpf(float(base)),
        )
        exact = (ref.exact_dweights if kind == "W" else ref.exact_dbiases)[layer][index]
        if expected == 0:
            assert exact == 0
            continue
        rel = abs(ctx.mpf(exact) - expected) / abs(expected)
        assert rel < ctx.mpf(10) ** -digits, (kind, layer, index, exact, expected)


@pytest.mark.parametrize(
    "widths, activations, loss",
    [
        ((3, 4, 1), ("tanh", "sigmoid"), "bce"),
        ((2, 3, 3, 2), ("softplus", "sigmoid", "sigmoid"), "bce"),
        ((3, 2, 2), ("sigmoid", "identity"), "mse"),
        ((2, 4, 3), ("tanh", "identity"), "softmax_ce"),
        ((2, 3, 1), ("relu", "tanh"), "mse"),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_independent_derivative(widths, activations, loss, seed):
    problem = random_problem(widths, activations, loss, batch=3, seed=seed, scale=1.5)
    _assert_matches_mpmath_diff(problem, seed=seed)


@pytest.mark.parametrize("loss", ["bce", "mse"])
@pytest.mark.parametrize("output_shift", [1000.0, -1000.0])
def test_reference_exact_at_logits_of_1000(output_shift, loss):
    # output logits near +-1000 with labels on the same side: every gradient is ~e^-1000, and
    # 1 - sigmoid(h) must not cancel to 0. Then mixed labels.
    for seed in (3, 4):
        problem = random_problem(
            (2, 3, 1), ("tanh", "sigmoid"), loss, batch=3, seed=seed, output_shift=output_shift
        )
        assert problem.max_abs_logit() > 990
        _assert_matches_mpmath_diff(problem, count=6)
        same_side = np.full(problem.y.shape, 1.0 if output_shift > 0 else 0.0)
        problem = Problem.from_arrays(
            problem.spec, problem.weights, problem.biases, problem.x, same_side
        )
        _assert_matches_mpmath_diff(problem, count=6)


def test_reference_exact_for_saturated_softmax():
    problem = random_problem((2, 3), ("identity",), "softmax_ce", batch=2, seed=2, scale=900.0)
    assert problem.max_abs_logit() > 300
    _assert_matches_mpmath_diff(problem, count=6)


def test_reference_exact_with_saturated_hidden_layer():
    problem = random_problem((2, 3, 1), ("sigmoid", "sigmoid"), "bce", batch=2, seed=4, scale=700.0)
    assert problem.max_abs_logit() > 300
    _assert_matches_mpmath_diff(problem, count=6)


def test_output_gradient_stays_exact_at_logit_ten_thousand():
    # one-layer network, h = b exactly: dJ/db = (sigmoid(h) - y) / N, closed form e^-h/(1+e^-h) - 0
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    for h, y in ((1e4, 1.0), (-1e4, 0.0), (700.0, 1.0)):
        problem = Problem.from_arrays(
            spec, [np.zeros((1, 1))], [np.array([h])], np.ones((1, 1)), np.array([[y]])
        )
        ref = reference_gradients(problem)
        ctx = mpmath.MPContext()
        ctx.prec = 200
        e = ctx.exp(-abs(ctx.mpf(h)))
        expected = -e / (1 + e) if y == 1.0 else e / (1 + e)
        got = ref.exact_dbiases[0][0]
        assert got != 0
        assert abs(got - expected) <= abs(expected) * ctx.mpf(2) ** -80


def test_precision_is_raised_until_two_precisions_agree():
    problem = random_problem((2, 2, 1), ("sigmoid", "sigmoid"), "bce", batch=2, seed=5)
    ref = reference_gradients(problem, bits=300)
    assert ref.agreed_bits == 300
    assert ref.precision >= 2 * (300 + 53 + 32)  # the residual's 53 bits and 32 guard bits


def test_reference_refuses_when_precisions_cannot_agree():
    problem = random_problem((2, 2, 1), ("sigmoid", "sigmoid"), "bce", batch=2, seed=5)
    with pytest.raises(ExactReferenceError, match="did not agree"):
        reference_gradients(problem, bits=200, max_precision=300)


def test_working_precisions_double_from_the_first_and_never_pass_the_cap():
    assert list(working_precisions(100, 1000)) == [100, 200, 400, 800]
    assert list(working_precisions(100, 800)) == [100, 200, 400, 800]
    assert list(working_precisions(2000, 1000)) == [2000]  # the first pass always runs
    last = list(working_precisions(96))[-1]  # the default cap
    assert last <= MAX_PRECISION < 2 * last


def test_reference_never_touches_the_global_mpmath_context():
    before = mpmath.mp.prec
    reference_gradients(random_problem((2, 2, 1), ("tanh", "sigmoid"), seed=1))
    assert mpmath.mp.prec == before


def test_reference_records_the_backend():
    ref = reference_gradients(random_problem((2, 2, 1), ("tanh", "sigmoid"), seed=1))
    assert ref.backend == f"mpmath-{mpmath.libmp.BACKEND}"


def test_low_precision_inputs_are_taken_exactly():
    # a float16 problem: the reference must use the float16 values, not the float64 originals
    p16 = random_problem((2, 3, 1), ("tanh", "sigmoid"), seed=7, dtype="float16")
    p64 = p16.astype("float64")
    a, b = reference_gradients(p16), reference_gradients(p64)
    for x, y in zip(a.dweights + a.dbiases, b.dweights + b.dbiases, strict=True):
        np.testing.assert_array_equal(x, y)


def test_dyadic_arithmetic_is_exact():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)) * np.array([1e-300, 1.0, 1e300, 3.0])
    b = rng.standard_normal((4, 2))
    c = rng.standard_normal((3, 1)) * 1e-200
    result = Dyadic.from_floats(a) @ Dyadic.from_floats(b) + Dyadic.from_floats(c)
    for i in range(3):
        for j in range(2):
            exact = sum(Fraction(a[i, k]) * Fraction(b[k, j]) for k in range(4)) + Fraction(c[i, 0])
            assert Fraction(int(result.ints[i, j])) * Fraction(2) ** result.exponent == exact


def test_round_to_float64_handles_exponents_far_outside_float64():
    ctx = mpmath.MPContext()
    ctx.prec = 100
    assert round_to_float64(ctx.exp(-ctx.mpf(3e38))) == 0.0
    assert round_to_float64(-ctx.exp(ctx.mpf(3e38))) == -np.inf
    assert round_to_float64(ctx.mpf(2) ** -1076 * 3) == 5e-324  # 0.75 x smallest subnormal
    assert round_to_float64(ctx.mpf(2) ** -1075 * 3) == 1e-323  # 1.5 x: ties to even


@pytest.mark.parametrize("value", [0.1, 1 / 3, 5e-324, 2.5e-308, 1.7e308, -7.0, 0.0])
def test_round_to_float64_is_correct_rounding(value):
    ctx = mpmath.MPContext()
    ctx.prec = 300
    x = ctx.mpf(value)
    assert round_to_float64(x) == value
    # a value just above a midpoint between two floats rounds up
    nxt = np.nextafter(value, np.inf)
    if np.isfinite(nxt) and value != 0.0:
        mid = (ctx.mpf(value) + ctx.mpf(float(nxt))) / 2
        assert round_to_float64(mid + abs(mid) * ctx.mpf(2) ** -200) == nxt


@pytest.mark.parametrize("value", ["0.1", "1e-310", "-2.5e-320", "1e300", "-3.3", "7e-5"])
def test_split_to_float64_is_a_double_double(value):
    ctx = mpmath.MPContext()
    ctx.prec = 300
    x = ctx.mpf(value)
    hi, lo = split_to_float64(x)
    assert hi == round_to_float64(x)
    assert lo == round_to_float64(x - ctx.mpf(hi))  # the residual, itself correctly rounded
    assert abs(lo) <= abs(hi) * 2.0**-52 or hi == 0 or abs(hi) < 1e-300


def test_exact_loss_keeps_its_tiny_value_at_extreme_saturation():
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    problem = Problem.from_arrays(
        spec, [np.zeros((1, 1))], [np.array([700.0])], np.ones((1, 1)), np.array([[1.0]])
    )
    ref = reference_gradients(problem)
    ctx = mpmath.MPContext()
    ctx.prec = 200
    expected = ctx.log1p(ctx.exp(-ctx.mpf(700)))  # -log(sigmoid(700))
    assert abs(ref.exact_loss - expected) <= expected * ctx.mpf(2) ** -80


# --- reused private contexts: bit-identical to a fresh context per pass -------------------

_REUSE_CASES = [
    # (widths, activations, loss, dtype, output_shift): saturated logits included
    ((3, 4, 1), ("tanh", "sigmoid"), "bce", "float64", 0.0),
    ((3, 4, 1), ("gelu", "sigmoid"), "bce", "float32", 60.0),
    ((2, 3, 2), ("softplus", "identity"), "softmax_ce", "float16", -30.0),
    ((3, 3, 1), ("silu", "tanh"), "mse", "bfloat16", 25.0),
    ((2, 4, 1), ("elu", "sigmoid"), "huber", "float32", -40.0),
    ((3, 2, 1), ("leaky_relu", "identity"), "l1", "float64", 3.0),
    ((2, 3, 3, 1), ("gelu_tanh", "relu", "sigmoid"), "bce", "float64", -700.0),
]


def _reuse_problems():
    return [
        random_problem(w, a, loss, dtype=dtype, seed=seed, output_shift=shift, batch=3)
        for seed, (w, a, loss, dtype, shift) in enumerate(_REUSE_CASES)
    ]


def _bits(ref):
    """Everything a reference returns, as exact bits (floats by their bit patterns)."""
    floats = [*ref.dweights, *ref.dbiases, *ref.dweights_low, *ref.dbiases_low]
    exact = [*ref.exact_dweights, *ref.exact_dbiases]
    return (
        [np.asarray(a, np.float64).view(np.uint64).tolist() for a in floats],
        [[v._mpf_ for v in a.flat] for a in exact],
        np.float64(ref.loss).view(np.uint64).item(),
        ref.exact_loss._mpf_,
        ref.precision,
    )


def test_reused_contexts_give_the_bits_of_a_fresh_context_per_pass():
    problems = _reuse_problems()
    with fresh_contexts():
        fresh = [_bits(reference_gradients(p)) for p in problems]
    reused = [_bits(reference_gradients(p)) for p in problems]
    again = [_bits(reference_gradients(p)) for p in reversed(problems)][::-1]
    for k, (a, b, c) in enumerate(zip(fresh, reused, again, strict=True)):
        assert a == b == c, _REUSE_CASES[k]
    assert len({f[-1] for f in fresh}) > 2  # several working precisions were exercised


def test_returned_values_keep_their_precision_after_other_computations():
    first, second = _reuse_problems()[:2]
    ref = reference_gradients(first)
    reference_gradients(second, bits=200)
    with working_context(40):
        values = [*ref.exact_dweights[0].flat, ref.exact_loss]
        assert {v.context.prec for v in values} == {ref.precision}
    assert values[0].context is not mpmath.mp


def test_a_change_to_the_global_precision_does_not_reach_the_reference():
    problem = _reuse_problems()[1]
    expected = _bits(reference_gradients(problem))
    saved = mpmath.mp.prec
    try:
        mpmath.mp.prec = 12
        assert _bits(reference_gradients(problem)) == expected
        assert mpmath.mp.prec == 12
    finally:
        mpmath.mp.prec = saved


def test_interleaved_computations_at_two_precisions_do_not_disturb_each_other():
    problem_a, problem_b = _reuse_problems()[2:4]
    with fresh_contexts():
        expected_a = _bits(reference_gradients(problem_a, bits=80))
        expected_b = _bits(reference_gradients(problem_b, bits=200))
    third = mpmath.MPContext()
    third.prec = 100
    with working_context(100) as low:
        x = low.mpf(1) / 3
        with working_context(400) as high:
            assert high is not low
            y = high.mpf(1) / 3
            assert _bits(reference_gradients(problem_b, bits=200)) == expected_b
            assert (low.prec, high.prec) == (100, 400)
            assert (low.mpf(1) / 3)._mpf_ == x._mpf_ == (third.mpf(1) / 3)._mpf_
        assert _bits(reference_gradients(problem_a, bits=80)) == expected_a
        assert low.prec == 100 and (low.mpf(1) / 3)._mpf_ == x._mpf_
    third.prec = 400
    assert y._mpf_ == (third.mpf(1) / 3)._mpf_


def test_threads_at_different_precisions_get_the_bits_of_fresh_contexts():
    problems = _reuse_problems()
    jobs = [(p, 80 if k % 2 else 160) for k, p in enumerate(problems)] * 2
    with fresh_contexts():
        expected = [_bits(reference_gradients(p, bits=b)) for p, b in jobs]
    barrier = threading.Barrier(4)

    def run(job):
        barrier.wait(timeout=30)
        return [_bits(reference_gradients(p, bits=b)) for p, b in job]

    chunks = [jobs[k::4] for k in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, chunks))
    for k, got in enumerate(results):
        assert got == expected[k::4]


def test_code_given_the_context_cannot_leave_its_settings_behind():
    problem = _reuse_problems()[0]
    expected = _bits(reference_gradients(problem))
    with working_context(64) as ctx:
        ctx.prec, ctx.trap_complex, ctx.pretty = 9, True, True
    with working_context(64) as again:
        assert again is ctx and (again.prec, again.trap_complex, again.pretty) == (64, False, False)
    assert _bits(reference_gradients(problem)) == expected


# --- values deep in a tail: a clear error, not exhausted memory ----------------------------


def _widest_exact_array(monkeypatch, problem: Problem) -> int:
    """The most bits any exact activation array of ``problem``'s reference takes, counted
    on the integers themselves (``int.bit_length``)."""
    import gradverify.exact.reference_mpmath as backend

    widest = [0]
    make = backend.Dyadic.from_mpf.__func__

    def counting(cls, a, what="these values"):
        made = make(cls, a, what)
        widest[0] = max(widest[0], sum(abs(int(n)).bit_length() for n in made.ints.flat))
        return made

    with monkeypatch.context() as patch:
        patch.setattr(backend.Dyadic, "from_mpf", classmethod(counting))
        reference_gradients(problem)
    return widest[0]


def test_the_limit_on_exact_integers_is_exact(monkeypatch):
    import gradverify.exact.reference_mpmath as backend

    # gelu at |h| ~ 3e3: values down to about 2**-(6.5e6) widen every integer of the array
    problem = random_problem((3, 4, 1), ("gelu", "sigmoid"), batch=4, seed=0, scale=3e3)
    widest = _widest_exact_array(monkeypatch, problem)
    assert 10**7 < widest < backend.MAX_EXACT_BITS
    monkeypatch.setattr(backend, "MAX_EXACT_BITS", widest)
    assert reference_gradients(problem).backend.startswith("mpmath")
    monkeypatch.setattr(backend, "MAX_EXACT_BITS", widest - 1)
    reason = r"exact arithmetic on the activations of layer 1 would take [0-9,]+ bits"
    with pytest.raises(ExactReferenceError, match=reason):
        reference_gradients(problem)


def test_a_value_too_deep_in_a_tail_is_an_error_not_exhausted_memory(tmp_path):
    # gelu at |h| ~ 1e5 asks for about 1e11 bits (more than 20 GB without the limit); run
    # in a process limited to 3 GiB, so that a missing limit fails instead of swapping
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from gradverify.exact.reference import ExactReferenceError, reference_gradients
        from tests.strategies import random_problem

        problem = random_problem((3, 4, 1), ("gelu", "sigmoid"), batch=4, seed=0, scale=1e5)
        try:
            reference_gradients(problem)
        except ExactReferenceError as exc:
            print("refused:", exc)
        """
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: exact arithmetic on the activations of layer 1 would take" in done.stdout
    assert "more than the limit of 2,147,483,648" in done.stdout


def test_outputs_deep_in_the_tail_are_not_made_exact_integers():
    # the outputs feed no layer: sigmoid(-3e9) and sigmoid(-3e6) side by side would span
    # 4.3e9 bits, over MAX_EXACT_BITS; with y = 1 the output deltas are about -1/2 each
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    x = np.array([[1.0, 1e-3]])
    problem = Problem.from_arrays(spec, [np.array([[-3e9]])], [np.zeros(1)], x, np.ones((1, 2)))
    result = reference_gradients(problem)
    # dJ/dW = mean((sigmoid(h) - 1) x) = -(1 + x_2)/2 + O(e^-3e6): correctly rounded
    assert result.dweights[0][0, 0] == float(-(1 + Fraction(x[0, 1])) / 2)
    assert result.dbiases[0][0] == -1.0
