"""Every hint is true, or it is absent.

A hint that is not true costs more than no hint. For each hint the search gives, one planted
implementation must get it, and a near miss (the same symptom at first sight) must not:

* a constant factor: a true x2 bug, against a wrong hidden derivative h(1 - h) whose
  one-unit counterexample has a single ratio that looks like a factor;
* a lower working precision: a computation done in float32, against the epsilon form in
  float64, whose bias is at the level of float32 rounding;
* the loss a failure needs: a BCE-only implementation searched with softmax_ce allowed,
  against one that is wrong for every loss;
* soft labels: implementations written for hard labels (bce labels thresholded at 0.5,
  softmax_ce labels read as class indices), against bugs that show with hard labels too;
* each fact once: a search over two dtypes states each dtype's threshold once;
* no bits of error on an ``error`` verdict, in any output.

Short seeded searches keep each test to a few seconds.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from gradverify.edges.ci_outputs import junit_xml, step_summary
from gradverify.engine.implementations import (
    capabilities_of,
    epsilon_bce_backprop,
    naive_bce_backprop,
    stable_backprop,
    supports,
)
from gradverify.engine.results import Verdict
from gradverify.exploration.search import search
from gradverify.model.functions import activation

pytest_plugins = ["pytester"]

SEED = 20240607
FAST = {"seed": SEED, "max_examples": 20, "database": None}
BITS = re.compile(r"bits(?! \(backend)")  # bits of error, not the reference's precision


def _layers(weights, biases, x, activations, output=None):
    hs, zs = [], [x]
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        hs.append(W @ zs[-1] + b[:, None])
        last = output if output is not None and i == len(weights) - 1 else activations[i]
        zs.append(activation(last).forward(hs[-1]))
    return hs, zs


def _backward(weights, hs, zs, delta, derivative):
    dw, db = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        dw[i], db[i] = delta @ zs[i].T, delta.sum(axis=1)
        if i > 0:
            delta = (weights[i].T @ delta) * derivative(i - 1)
    return dw, db


@supports(activations=("sigmoid", "tanh"), losses=("bce",), dtypes=("float64",), name="times-two")
def times_two(weights, biases, x, y, *, activations, loss):
    dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [2 * w for w in dw], [2 * b for b in db]


@supports(activations=("sigmoid",), losses=("bce",), dtypes=("float64",), name="h(1-h)")
def h_one_minus_h(weights, biases, x, y, *, activations, loss):
    """sigmoid'(h) written h(1 - h), with the pre-activation, instead of z(1 - z)."""
    hs, zs = _layers(weights, biases, x, activations)
    return _backward(weights, hs, zs, (zs[-1] - y) / y.size, lambda i: hs[i] * (1 - hs[i]))


@supports(losses=("bce",), dtypes=("float64",), name="float32-inside")
def float32_inside(weights, biases, x, y, *, activations, loss):
    """Computes in float32 and returns float64."""
    f32 = np.float32
    dw, db = stable_backprop(
        [w.astype(f32) for w in weights],
        [b.astype(f32) for b in biases],
        x.astype(f32),
        y.astype(f32),
        activations=activations,
        loss=loss,
    )
    return [a.astype(x.dtype) for a in dw], [a.astype(x.dtype) for a in db]


@supports(activations=("sigmoid", "tanh"), dtypes=("float64",), name="bce-only")
def bce_only(weights, biases, x, y, *, activations, loss):
    """A sigmoid output and the fused BCE delta, whatever loss was asked for."""
    hs, zs = _layers(weights, biases, x, activations, output="sigmoid")
    return _backward(
        weights,
        hs,
        zs,
        (zs[-1] - y) / y.size,
        lambda i: activation(activations[i]).derivative(hs[i]),
    )


@supports(activations=("sigmoid", "tanh"), dtypes=("float64",), name="negated")
def negated(weights, biases, x, y, *, activations, loss):
    """Wrong for every loss: the exact gradient's negative."""
    dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [-w for w in dw], [-b for b in db]


@supports(losses=("bce",), dtypes=("float32",), name="not-written")
def not_written(weights, biases, x, y, *, activations, loss):
    raise NotImplementedError("backprop is not written yet")


def _factor_hints(diagnosis):
    return [
        h
        for h in diagnosis
        if "factor" in h or "times the exact gradient" in h or "sign is flipped" in h
    ]


# --- a constant factor --------------------------------------------------------------------


def test_a_true_factor_of_two_is_named():
    result = search(times_two, **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert any(
        h.startswith("off by a constant factor") and re.search(r"equal (2|.*\(2\)) times", h)
        for h in result.diagnosis
    ), "\n".join(result.diagnosis)


@pytest.mark.parametrize("seed", [SEED, 1])
def test_a_wrong_hidden_derivative_claims_no_constant_factor(seed):
    result = search(h_one_minus_h, **{**FAST, "seed": seed})
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert any("layer 1 is the first whose gradient disagrees" in h for h in result.diagnosis)
    assert _factor_hints(result.diagnosis) == [], "\n".join(result.diagnosis)


# --- a lower working precision ------------------------------------------------------------


def test_a_computation_in_float32_gets_the_precision_hint():
    result = search(float32_inside, **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert any("look like float32 precision" in h for h in result.diagnosis), str(result)


def test_the_epsilon_form_in_float64_gets_no_precision_hint():
    result = search(epsilon_bce_backprop, dtypes=("float64",), **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert not any("precision" in h for h in result.diagnosis), "\n".join(result.diagnosis)


# --- the loss a failure needs -------------------------------------------------------------


def test_a_bce_only_implementation_is_told_it_fails_only_with_softmax_ce():
    result = search(bce_only, losses=("bce", "softmax_ce"), **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert result.counterexample.spec.loss == "softmax_ce"
    assert (
        "incorrect only with loss softmax_ce: the same network with loss bce passes"
        in result.diagnosis
    ), "\n".join(result.diagnosis)


def test_a_failure_with_every_loss_names_no_loss():
    result = search(negated, losses=("bce", "softmax_ce"), **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert not any("with loss" in h or "only with" in h for h in result.diagnosis), "\n".join(
        result.diagnosis
    )


# --- soft labels ---------------------------------------------------------------------------


@supports(activations=("sigmoid", "tanh"), losses=("bce",), dtypes=("float64",), name="0/1 only")
def thresholded_labels(weights, biases, x, y, *, activations, loss):
    """Written for labels in {0, 1}: any label from 0.5 up is taken as 1, below as 0."""
    hard = (y >= 0.5).astype(y.dtype)
    return stable_backprop(weights, biases, x, hard, activations=activations, loss=loss)


@supports(activations=("tanh",), losses=("softmax_ce",), dtypes=("float64",), name="indices")
def class_indices(weights, biases, x, y, *, activations, loss):
    """Written for class indices: each label column is read as the index of its largest entry."""
    one_hot = np.zeros_like(y)
    one_hot[np.argmax(y, axis=0), np.arange(y.shape[1])] = 1.0
    return stable_backprop(weights, biases, x, one_hot, activations=activations, loss=loss)


def _label_hints(diagnosis):
    return [h for h in diagnosis if "soft labels" in h]


@pytest.mark.parametrize(
    "impl, made", [(thresholded_labels, "(0 or 1)"), (class_indices, "(one-hot)")]
)
def test_an_implementation_for_hard_labels_is_told_it_fails_only_with_soft_ones(impl, made):
    result = search(impl, **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    y = result.counterexample.problem.y
    assert np.any((y > 0) & (y < 1))  # the counterexample has a soft label
    assert _label_hints(result.diagnosis) == [
        f"incorrect only with soft labels: with every label made hard {made} it passes; "
        "an implementation written for hard labels only can say so with "
        '@gradverify.supports(labels="hard") (or --labels hard, or labels = "hard" in '
        "[[tool.gradverify.implementations]]), and the search then generates only those"
    ], "\n".join(result.diagnosis)

    # and what the hint says to do works: declared for hard labels only, it passes
    def declared(*args, **kwargs):
        return impl(*args, **kwargs)

    declared.__gradverify_capabilities__ = dataclasses.replace(capabilities_of(impl), labels="hard")
    assert search(declared, **FAST).verdict is Verdict.PASS
    assert search(impl, labels="hard", **FAST).verdict is Verdict.PASS  # the same, as an option
    with pytest.raises(ValueError, match="labels must be 'any' or 'hard'; got 'soft'"):
        search(impl, labels="soft", **FAST)


@pytest.mark.parametrize("impl", [times_two, h_one_minus_h, negated])
def test_bugs_that_show_with_hard_labels_get_no_label_hint(impl):
    result = search(impl, **FAST)
    assert result.verdict is Verdict.INCORRECT, str(result)
    assert _label_hints(result.diagnosis) == [], "\n".join(result.diagnosis)


# --- each fact once -----------------------------------------------------------------------


def test_each_dtype_threshold_is_stated_once():
    result = search(
        naive_bce_backprop, dtypes=("float32", "float64"), seed=SEED, max_examples=40, database=None
    )
    text = str(result)
    thresholds = {d: s.threshold_saturation for d, s in result.per_dtype.items()}
    assert all(t is not None for t in thresholds.values()), text
    for dtype, t in thresholds.items():
        assert text.count(f"fails at max |h| = {t:.6g}") == 1, (dtype, text)
        assert not any(h.startswith(f"{dtype}:") for h in result.diagnosis), result.diagnosis
    assert "first at max |h|" not in text and "first fails" not in "\n".join(result.diagnosis)


# --- no bits of error on an error verdict -------------------------------------------------


def test_an_error_verdict_shows_no_bits_of_error_anywhere():
    result = search(not_written, **FAST)
    assert result.verdict is Verdict.ERROR
    assert result.worst_bits is None and result.per_dtype["float32"].worst_bits is None
    data = result.to_dict()
    assert data["worst_bits"] is None and data["per_dtype"]["float32"]["worst_bits"] is None
    assert not BITS.search(str(result)), str(result)
    assert not BITS.search(junit_xml([result], fail_on="incorrect"))
    assert "| **ERROR** | " in step_summary([result], fail_on="incorrect")
    assert "| - | - |" in step_summary([result], fail_on="incorrect")
    # near miss: a wrong gradient that was returned is measured in bits
    wrong = search(times_two, **FAST)
    assert wrong.worst_bits > 0 and "bits of error" in str(wrong)
    assert "worst error" in junit_xml([wrong], fail_on="incorrect")


def test_the_pytest_summary_line_shows_no_bits_for_an_error(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(
        test_sample="""
        import numpy as np
        from gradverify.engine.implementations import stable_backprop, supports

        @supports(losses=("bce",), dtypes=("float64",))
        def not_written(weights, biases, x, y, *, activations, loss):
            raise NotImplementedError("backprop is not written yet")

        @supports(losses=("bce",), dtypes=("float64",))
        def doubled(weights, biases, x, y, *, activations, loss):
            dw, db = stable_backprop(weights, biases, x, y, activations=activations, loss=loss)
            return [2 * w for w in dw], [2 * b for b in db]

        def test_error(gradverify):
            gradverify.check(not_written)

        def test_incorrect(gradverify):
            gradverify.check(doubled)
    """
    )
    result = pytester.runpytest_inprocess(
        "--gradverify-max-examples=5", f"--gradverify-seed={SEED}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=2)
    lines = [
        line
        for line in result.outlines
        if line.startswith(("ERROR ", "INCORRECT ")) and "test_sample.py::" in line
    ]
    by_verdict = {line.split()[0]: line for line in lines}
    assert set(by_verdict) == {"ERROR", "INCORRECT"}, lines
    assert "bits" not in by_verdict["ERROR"]
    assert re.search(r"worst [0-9.]+ bits", by_verdict["INCORRECT"])
