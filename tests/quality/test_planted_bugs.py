"""Does the search find hard bugs? A zoo of planted backprop bugs, each of a different kind.

Every planted implementation is the textbook recursion for a sigmoid output with BCE,

    delta_L = (z_L - y) / N,   delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1}),
    dW_i = delta_i z_{i-1}^T,  db_i = delta_i summed over the batch,

with exactly one mistake planted in it. Each must be found by the default search (default
number of examples, a fixed seed), shrunk to a small network, and named by the right hint.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop, supports
from gradverify.engine.results import Verdict
from gradverify.exploration.search import DEFAULT_MAX_EXAMPLES, search
from gradverify.model.functions import activation

SEED = 20240607
DECLARED = {"losses": ("bce",), "dtypes": ("float64",)}


# ---------------------------------------------------------------------------
# The zoo
# ---------------------------------------------------------------------------


def _derivative(name, h):
    return activation(name).derivative(h)


def _textbook(
    weights,
    biases,
    x,
    y,
    activations,
    *,
    output_delta=None,
    back=None,
    derivative=_derivative,
    weight_grad=None,
    bias_grad=None,
    hidden_delta=None,
):
    """The correct recursion; each keyword replaces one step (that is where a bug goes)."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    depth = len(weights)
    delta = (zs[-1] - y) / y.size if output_delta is None else output_delta(zs[-1], y)
    pre = delta
    dweights, dbiases = [None] * depth, [None] * depth
    for i in reversed(range(depth)):
        dweights[i] = delta @ zs[i].T if weight_grad is None else weight_grad(delta, zs[i])
        dbiases[i] = delta.sum(axis=1) if bias_grad is None else bias_grad(delta, pre)
        if i > 0:
            pre = weights[i].T @ delta if back is None else back(weights[i], delta)
            if hidden_delta is not None:
                delta = hidden_delta(i, depth, pre, hs, zs, activations)
            else:
                delta = pre * derivative(activations[i - 1], hs[i - 1])
    return dweights, dbiases


@supports(**DECLARED, name="textbook")
def textbook_backprop(weights, biases, x, y, *, activations, loss):
    """No bug: the control."""
    return _textbook(weights, biases, x, y, activations)


@supports(**DECLARED, name="sign")
def sign_flip_backprop(weights, biases, x, y, *, activations, loss):
    """Output delta written as (y - z)/N: every gradient has the wrong sign."""
    return _textbook(weights, biases, x, y, activations, output_delta=lambda z, y: (y - z) / y.size)


@supports(**DECLARED, name="scale")
def sum_not_mean_backprop(weights, biases, x, y, *, activations, loss):
    """Forgets the 1/N of the mean: the gradient of the summed loss."""
    return _textbook(weights, biases, x, y, activations, output_delta=lambda z, y: z - y)


@supports(**DECLARED, name="transpose")
def square_transpose_backprop(weights, biases, x, y, *, activations, loss):
    """Back-propagates through W_i instead of W_i^T; only square layers get past the shapes."""

    def back(W, delta):
        return (W if W.shape[0] == W.shape[1] else W.T) @ delta

    return _textbook(weights, biases, x, y, activations, back=back)


@supports(**DECLARED, name="no-derivative")
def missing_derivative_backprop(weights, biases, x, y, *, activations, loss):
    """Forgets the act'(h_{i-1}) factor of the hidden deltas."""
    return _textbook(weights, biases, x, y, activations, derivative=lambda name, h: np.ones_like(h))


@supports(**DECLARED, name="deep")
def deep_layers_backprop(weights, biases, x, y, *, activations, loss):
    """Below the last hidden layer, evaluates act' at z_{i-1} instead of h_{i-1}."""

    def hidden_delta(i, depth, pre, hs, zs, acts):
        at = hs[i - 1] if i == depth - 1 else zs[i]
        return pre * _derivative(acts[i - 1], at)

    return _textbook(weights, biases, x, y, activations, hidden_delta=hidden_delta)


@supports(**DECLARED, name="width-1")
def single_unit_backprop(weights, biases, x, y, *, activations, loss):
    """A 'scalar' fast path for one-unit hidden layers that skips act'(h)."""

    def hidden_delta(i, depth, pre, hs, zs, acts):
        if pre.shape[0] == 1:
            return pre
        return pre * _derivative(acts[i - 1], hs[i - 1])

    return _textbook(weights, biases, x, y, activations, hidden_delta=hidden_delta)


@supports(**DECLARED, name="batch")
def batch_sum_first_backprop(weights, biases, x, y, *, activations, loss):
    """Sums over the batch before the outer product: (sum delta)(sum z)^T, not delta z^T."""
    return _textbook(
        weights,
        biases,
        x,
        y,
        activations,
        weight_grad=lambda delta, z: np.outer(delta.sum(axis=1), z.sum(axis=1)),
    )


@supports(**DECLARED, name="tanh")
def tanh_typo_backprop(weights, biases, x, y, *, activations, loss):
    """tanh'(h) written as 1 - tanh(h) (the square is missing); other activations are right."""

    def derivative(name, h):
        return 1 - np.tanh(h) if name == "tanh" else _derivative(name, h)

    return _textbook(weights, biases, x, y, activations, derivative=derivative)


@supports(**DECLARED, name="bias")
def bias_before_derivative_backprop(weights, biases, x, y, *, activations, loss):
    """Hidden bias gradients summed from W^T delta before the act' factor is applied."""
    return _textbook(weights, biases, x, y, activations, bias_grad=lambda delta, pre: pre.sum(1))


@supports(**DECLARED, name="half-precision")
def float16_inside_backprop(weights, biases, x, y, *, activations, loss):
    """Computes everything in float16 and returns float64 (a silent precision loss)."""
    half = np.float16
    dw, db = _textbook(
        [w.astype(half) for w in weights],
        [b.astype(half) for b in biases],
        x.astype(half),
        y.astype(half),
        activations,
    )
    return [g.astype(x.dtype) for g in dw], [g.astype(x.dtype) for g in db]


# kind -> (implementation, a phrase the diagnosis must contain)
PLANTED = {
    "sign": (sign_flip_backprop, "the sign is flipped"),
    "scale factor": (sum_not_mean_backprop, "off by a constant factor"),
    "W instead of W^T": (square_transpose_backprop, "uses W_i where W_i^T belongs"),
    "missing derivative": (missing_derivative_backprop, "suspect an activation derivative"),
    "depth >= 3 only": (deep_layers_backprop, "only at depth >= 3"),
    "width-1 only": (single_unit_backprop, "only where a width is 1 (layer"),
    "batch > 1 only": (batch_sum_first_backprop, "only at batch size > 1"),
    "tanh only": (tanh_typo_backprop, "only with tanh layers"),
    "bias only": (bias_before_derivative_backprop, "only bias gradients are wrong"),
    "reduced precision": (float16_inside_backprop, "look like float16 precision"),
}


def test_the_zoo_has_ten_kinds_and_a_correct_control():
    assert len(PLANTED) >= 10
    assert len({impl for impl, _ in PLANTED.values()}) == len(PLANTED)
    result = search(textbook_backprop, seed=SEED, database=None)
    assert result.verdict is Verdict.PASS, str(result)
    assert result.examples >= DEFAULT_MAX_EXAMPLES


@pytest.mark.parametrize("kind", list(PLANTED))
def test_planted_bug_is_found_shrunk_named_and_reproduced(kind):
    impl, phrase = PLANTED[kind]
    result = search(impl, seed=SEED, database=None)  # the default search
    assert result.verdict is Verdict.INCORRECT, str(result)
    ce = result.counterexample
    assert ce is not None and ce.verdict is Verdict.INCORRECT
    # shrunk: a handful of units, at most the depth the bug needs, batch at most 2
    assert ce.problem.batch_size <= 2, str(result)
    assert max(ce.spec.widths) <= 2 and ce.spec.depth <= 3, str(result)
    assert ce.spec.parameter_count <= 12, str(result)
    assert any(phrase in hint for hint in result.diagnosis), "\n".join(result.diagnosis)
    text = str(result)
    assert "INCORRECT" in text and phrase in text and f"seed: {SEED}" in text
    # the snippet, run in a fresh namespace, rebuilds the same problem and fails the same way
    namespace: dict = {}
    exec(compile(result.reproduction, "<reproduction>", "exec"), namespace)  # noqa: S102
    reproduced = namespace["result"]
    assert reproduced.verdict is Verdict.INCORRECT
    assert reproduced.problem.spec == ce.spec
    for mine, theirs in zip(
        (
            *reproduced.problem.weights,
            *reproduced.problem.biases,
            reproduced.problem.x,
            reproduced.problem.y,
        ),
        (*ce.problem.weights, *ce.problem.biases, ce.problem.x, ce.problem.y),
        strict=True,
    ):
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize(
    "seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3, 4))]
)
def test_fused_bce_has_zero_failures(seed):
    result = search(fused_bce_backprop, dtypes=("float32", "float64"), seed=seed, database=None)
    assert result.verdict is Verdict.PASS, str(result)
    assert all(s["verdict"] == "pass" for s in result.samples)
    assert result.examples == 2 * DEFAULT_MAX_EXAMPLES
    # the search did go into saturation, where the naive form breaks
    assert result.saturation_range[1] > 100


def _sigmoid_rounds_to_one_from(dtype) -> float:
    """Brute force on the float lattice: the first h > 0 where 1/(1+exp(-h)) rounds to 1."""
    one = dtype(1)
    ints = np.int32 if dtype is np.float32 else np.int64
    lo, hi = (int(np.array(v, dtype=dtype).view(ints)) for v in (1.0, 100.0))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        h = np.array(mid, dtype=ints).view(dtype)
        if one / (one + np.exp(-h)) == one:
            hi = mid
        else:
            lo = mid
    first = np.array(hi, dtype=ints).view(dtype)
    if dtype is np.float32:  # every float32 in the next 10% rounds to 1 as well
        span = np.arange(
            hi, int(np.array(first * dtype(1.1), dtype=dtype).view(ints)), dtype=ints
        ).view(dtype)
        assert np.all(one / (one + np.exp(-span)) == one)
    return float(first)


def test_naive_bce_is_unstable_with_the_lattice_threshold(tmp_path):
    naive_result = search(
        naive_bce_backprop, dtypes=("float32", "float64"), seed=SEED, database=None
    )
    assert naive_result.verdict is Verdict.UNSTABLE, str(naive_result)
    for name, dtype in (("float32", np.float32), ("float64", np.float64)):
        summary = naive_result.per_dtype[name]
        assert summary.verdict is Verdict.UNSTABLE
        assert "incorrect" not in summary.failures
        first = _sigmoid_rounds_to_one_from(dtype)
        # the gradient is exact until the sigmoid rounds to 1, then 0/0 = NaN
        assert first * (1 - 1e-6) <= summary.threshold_saturation <= first * (1 + 1e-3), name
        assert summary.counterexample.interior_verdict is Verdict.PASS
    assert any("wrong only at saturation" in h for h in naive_result.diagnosis)

    # the reproduction snippet runs on its own, in a fresh interpreter
    script = tmp_path / "reproduce.py"
    script.write_text(naive_result.reproduction)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "-> UNSTABLE" in done.stdout
