"""Does the search find hard bugs? A zoo of planted backprop bugs, each of a different kind.

Every planted implementation is the textbook recursion for a sigmoid output with BCE,

    delta_L = (z_L - y) / N,   delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1}),
    dW_i = delta_i z_{i-1}^T,  db_i = delta_i summed over the batch,

with exactly one mistake planted in it (the zoo: ``tests/quality/planted_zoo.py``). Each
must be found by the default search (default number of examples, a fixed seed), shrunk to a
small network, and named by the right hint.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop
from gradverify.engine.results import Verdict
from gradverify.exploration.search import DEFAULT_MAX_EXAMPLES, search
from tests.quality.planted_zoo import PLANTED, textbook_backprop

SEED = 20240607


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
