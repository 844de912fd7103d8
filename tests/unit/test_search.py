"""The search: reproducibility, bad implementations, failure kinds, results; the variants and
smaller problems it tries (gradverify.model.rewrites)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys

import numpy as np
import pytest
from hypothesis.database import InMemoryExampleDatabase

from gradverify.engine.conditions import condition_hints
from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop, supports
from gradverify.engine.repro import import_path, reproduction_snippet
from gradverify.engine.results import Verdict
from gradverify.exploration.checking import check
from gradverify.exploration.search import SearchResult, search
from gradverify.model.network import NetworkSpec, Problem
from gradverify.model.rewrites import (
    activation_variant,
    at_depth,
    hard_label_variant,
    shallower_variant,
    single_sample_variants,
    symmetric_variant,
    widened_variant,
    without_hidden_layer,
    without_sample,
    without_units,
)

F64 = {"losses": ("bce",), "dtypes": ("float64",)}


@pytest.fixture(autouse=True)
def _not_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def _fused(weights, biases, x, y, activations):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss="bce")


@supports(**F64, name="sign-flipped")
def sign_flipped(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations)
    return [-w for w in dw], [-b for b in db]


CALLS: list[int] = []


@supports(**F64, name="hangs")
def hangs(weights, biases, x, y, *, activations, loss):
    CALLS.append(1)
    while True:
        pass


@supports(**F64, name="hangs-when-deep")
def hangs_when_deep(weights, biases, x, y, *, activations, loss):
    CALLS.append(len(weights))
    while len(weights) >= 3:
        pass
    return _fused(weights, biases, x, y, activations)


@supports(**F64, name="noisy")
def noisy(weights, biases, x, y, *, activations, loss):
    dw, db = _fused(weights, biases, x, y, activations)
    noise = np.random.default_rng().normal(size=dw[0].shape) * 1e-9
    return [dw[0] * (1 + noise), *dw[1:]], db


@supports(**F64, name="deep-raises")
def deep_raises_else_sign_flipped(weights, biases, x, y, *, activations, loss):
    if len(weights) >= 3:
        raise RuntimeError("three layers are not supported")
    return sign_flipped(weights, biases, x, y, activations=activations, loss=loss)


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------


def _trace(result: SearchResult) -> list[tuple]:
    return [(s["dtype"], s["saturation"], s["bits"], s["verdict"]) for s in result.samples]


def test_a_seed_is_chosen_reported_and_replays_the_same_examples():
    first = search(fused_bce_backprop, dtypes=("float64",), max_examples=12, database=None)
    assert isinstance(first.seed, int) and not first.derandomize
    assert f"seed: {first.seed}" in str(first)
    again = search(
        fused_bce_backprop, dtypes=("float64",), max_examples=12, database=None, seed=first.seed
    )
    assert _trace(again) == _trace(first)
    other = search(
        fused_bce_backprop, dtypes=("float64",), max_examples=12, database=None, seed=first.seed + 1
    )
    assert _trace(other) != _trace(first)


def test_a_seed_draws_the_same_examples_whatever_other_modules_are_loaded(tmp_path):
    first = search(fused_bce_backprop, dtypes=("float64",), max_examples=30, database=None, seed=5)
    # a new local module full of literals Hypothesis would otherwise mix into its draws:
    # floats where the scales and bands are drawn, strings of the arrays' letters
    name = "gradverify_test_constants_module"
    floats = ", ".join(f"{0.01 + k / 17:.6f}" for k in range(100))
    strings = ", ".join(repr("0123456789:;<=>?@"[: 5 + k % 9]) for k in range(40))
    path = tmp_path / f"{name}.py"
    path.write_text(f"FLOATS = ({floats},)\nSTRINGS = ({strings},)\n")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        again = search(
            fused_bce_backprop, dtypes=("float64",), max_examples=30, database=None, seed=5
        )
    finally:
        sys.modules.pop(name, None)
    assert _trace(again) == _trace(first)


def test_ci_means_derandomized_and_no_database(monkeypatch):
    monkeypatch.setenv("CI", "true")
    runs = [search(fused_bce_backprop, dtypes=("float32",), max_examples=10) for _ in range(2)]
    for result in runs:
        assert result.derandomize and result.seed is None and result.database is None
        assert "derandomized" in str(result)
    assert _trace(runs[0]) == _trace(runs[1])


@supports(**F64, name="wrong-for-batches")
def wrong_for_batches(weights, biases, x, y, *, activations, loss):
    if x.shape[1] >= 2:
        return sign_flipped(weights, biases, x, y, activations=activations, loss=loss)
    return _fused(weights, biases, x, y, activations)


def test_the_example_database_is_configurable(tmp_path):
    memory = InMemoryExampleDatabase()
    result = search(wrong_for_batches, seed=1, max_examples=40, database=memory)
    assert result.verdict is Verdict.INCORRECT
    assert memory.data, "the failing example was not saved"
    fresh = search(wrong_for_batches, seed=2, max_examples=5, database=None)
    replay = search(wrong_for_batches, seed=2, max_examples=5, database=memory)
    assert fresh.samples[0]["verdict"] == "pass"
    assert replay.samples[0]["verdict"] == "incorrect"  # the saved failure comes first
    path = tmp_path / "examples"
    on_disk = search(sign_flipped, seed=1, max_examples=5, database=path)
    assert on_disk.database == str(path) and any(path.rglob("*"))
    assert (
        search(
            fused_bce_backprop, dtypes=("float64",), max_examples=5, database=None, seed=1
        ).database
        is None
    )


# ---------------------------------------------------------------------------
# Implementations that hang, are nondeterministic, or fail in several ways
# ---------------------------------------------------------------------------


def test_a_hanging_implementation_is_an_error_and_stops_the_search():
    CALLS.clear()
    result = search(hangs, timeout=0.2, seed=0, database=None)
    assert result.verdict is Verdict.ERROR
    assert "per-call time limit" in result.counterexample.message
    # stopped at the first hang: no shrinking, no second call
    assert len(CALLS) == 1 and result.examples == 1
    assert result.per_dtype["float64"].stopped_early


def test_an_implementation_that_hangs_on_some_inputs_stops_at_the_first_hang():
    CALLS.clear()
    result = search(hangs_when_deep, timeout=0.2, seed=0, database=None)
    assert result.verdict is Verdict.ERROR
    assert result.counterexample.spec.depth == 3
    assert sum(1 for depth in CALLS if depth >= 3) == 1  # never called on a deep one again
    assert any(s["verdict"] == "pass" for s in result.samples)


def test_a_nondeterministic_implementation_is_an_error():
    result = search(noisy, seed=0, max_examples=20, database=None)
    assert result.verdict is Verdict.ERROR
    assert "nondeterministic" in result.counterexample.message


def test_failure_kinds_are_kept_apart_and_each_shrunk():
    result = search(deep_raises_else_sign_flipped, seed=0, database=None)
    summary = result.per_dtype["float64"]
    assert set(summary.failures) == {"error", "incorrect"}
    error, incorrect = summary.failures["error"], summary.failures["incorrect"]
    assert error.verdict is Verdict.ERROR and "not supported" in error.message
    assert error.spec.depth == 3 and max(error.spec.widths) == 1
    assert incorrect.verdict is Verdict.INCORRECT and incorrect.spec.depth == 1
    assert result.verdict is Verdict.ERROR and result.counterexample is error
    assert any(h.startswith("error only at depth >= 3") for h in result.diagnosis)
    assert any(h.startswith("also incorrect") for h in result.diagnosis)


@supports(**F64, name="naive-and-deep-bug")
def naive_with_a_deep_bug(weights, biases, x, y, *, activations, loss):
    dw, db = naive_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    if len(weights) >= 3:
        dw[0] = dw[0] * 2
    return dw, db


def test_an_early_instability_does_not_hide_a_logic_bug():
    result = search(naive_with_a_deep_bug, seed=0, database=None)
    summary = result.per_dtype["float64"]
    assert set(summary.failures) == {"unstable", "incorrect"}
    assert result.verdict is Verdict.INCORRECT
    assert summary.failures["incorrect"].spec.depth == 3
    assert summary.failures["unstable"].spec.depth == 1
    assert summary.threshold_saturation is not None
    assert any(h.startswith("incorrect only at depth >= 3") for h in result.diagnosis)
    assert any(h.startswith("also unstable") for h in result.diagnosis)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sign_result():
    return search(sign_flipped, seed=3, database=None)


def test_the_failure_text_has_everything_the_plugin_prints(sign_result):
    text = str(sign_result)
    assert "-> INCORRECT" in text
    assert "diagnosis:" in text and "the sign is flipped" in text
    assert "worst elements:" in text
    assert "reproduce with:" in text and "gradverify.check_problem(impl, problem)" in text
    assert "seed: 3" in text
    assert sign_result.reproduction in text.replace("\n    ", "\n") or all(
        line.strip() in text for line in sign_result.reproduction.splitlines()
    )


def test_results_are_json_and_samples_are_finite(sign_result):
    naive = search(naive_bce_backprop, dtypes=("float32",), seed=0, database=None)
    for result in (sign_result, naive):
        data = json.loads(json.dumps(result.to_dict()))
        assert data["schema"] == "gradverify.search/2"
        assert data["verdict"] == result.verdict.value
        assert len(data["samples"]) == result.examples
        for sample in result.samples:
            assert set(sample) == {"dtype", "saturation", "bits", "verdict", "tensor"}
            assert math.isfinite(sample["bits"]) and 0 <= sample["bits"] <= 64
    threshold = naive.thresholds["float32"]
    lo, hi = naive.saturation_range
    assert threshold is not None and lo < threshold <= hi


def test_check_without_a_problem_runs_the_search_and_progress_is_reported():
    updates = []
    result = check(
        fused_bce_backprop,
        dtypes=("float64",),
        max_examples=8,
        seed=0,
        database=None,
        progress=lambda *a: updates.append(a),
    )
    assert isinstance(result, SearchResult) and result.verdict is Verdict.PASS
    assert len(updates) == result.examples == 8
    description, done, total = updates[-1]
    assert "float64" in description and done == 8 and total >= done


def test_check_calls_the_search_that_tests_patch(monkeypatch):
    # the CLI, the report and the pytest plugin are cut short by patching this one name
    search_module = importlib.import_module("gradverify.exploration.search")
    calls = []

    def cut_short(impl, **options):
        calls.append((impl, options))
        return "cut short"

    monkeypatch.setattr(search_module, "search", cut_short)
    assert check(fused_bce_backprop, seed=1, max_examples=2) == "cut short"
    assert calls == [(fused_bce_backprop, {"seed": 1, "max_examples": 2})]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_examples": 0}, ValueError, "max_examples must be a positive integer"),
        ({"dtypes": ["float8"]}, ValueError, "unknown dtype 'float8'"),
        ({"activations": ["swish"]}, ValueError, "unknown activation 'swish'"),
        ({"timeout": -1}, ValueError, "timeout must be positive"),
        ({"database": 42}, TypeError, "database must be None, a path"),
    ],
)
def test_bad_arguments_get_a_one_line_message(kwargs, error, message):
    with pytest.raises(error) as info:
        search(fused_bce_backprop, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_reproduction_snippet_says_when_the_implementation_cannot_be_imported():
    def local(weights, biases, x, y, *, activations, loss):
        return _fused(weights, biases, x, y, activations)

    assert import_path(local) is None
    assert import_path(naive_bce_backprop) == (
        "gradverify.engine.implementations",
        "naive_bce_backprop",
    )
    problem = _problem((1, 1), ("sigmoid",))
    text = reproduction_snippet(local, problem)
    assert "cannot be imported by name" in text and "raise SystemExit" in text
    with pytest.raises(SystemExit):
        exec(compile(text, "<snippet>", "exec"), {})  # noqa: S102


# ---------------------------------------------------------------------------
# The variants behind the condition hints, and the minimiser's smaller problems
# ---------------------------------------------------------------------------


def _problem(widths, activations, batch=3, seed=0, loss="bce"):
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(widths, activations, loss)
    weights = [rng.normal(size=(widths[i + 1], widths[i])) for i in range(spec.depth)]
    biases = [rng.normal(size=widths[i + 1]) for i in range(spec.depth)]
    x = rng.normal(size=(widths[0], batch))
    y = (rng.random((widths[-1], batch)) > 0.5).astype(float)
    return Problem.from_arrays(spec, weights, biases, x, y, "float64")


def test_widening_a_width_1_layer_keeps_the_function():
    problem = _problem((1, 1, 3, 1), ("tanh", "sigmoid", "sigmoid"))
    wide = widened_variant(problem, [1])
    assert wide.spec.widths == (1, 2, 3, 1)
    before, after = problem.forward64(), wide.forward64()
    for i in (1, 2):  # every layer after the widened one computes exactly the same h
        assert np.array_equal(before.h[i], after.h[i])
    everything = widened_variant(problem)
    assert everything.spec.widths == (2, 2, 3, 2)
    assert widened_variant(_problem((2, 2), ("sigmoid",))) is None


def test_dropping_first_layers_keeps_the_later_layers():
    problem = _problem((2, 3, 2, 1), ("relu", "softplus", "sigmoid"))
    shallow = shallower_variant(problem, 2)
    assert shallow.spec.widths == (2, 1) and shallow.spec.activations == ("sigmoid",)
    assert np.array_equal(shallow.forward64().h[0], problem.forward64().h[2])
    assert shallower_variant(problem, 3) is None


def test_other_variants():
    problem = _problem((2, 2, 2, 1), ("tanh", "tanh", "sigmoid"))
    singles = single_sample_variants(problem)
    assert [p.batch_size for p in singles] == [1, 1, 1]
    assert np.array_equal(singles[1].x[:, 0], problem.x[:, 1])
    sym = symmetric_variant(problem)
    assert np.array_equal(sym.weights[1], sym.weights[1].T)
    assert np.array_equal(sym.weights[0], problem.weights[0])  # W_1 is never back-propagated
    swapped = activation_variant(problem, "tanh", "relu")
    assert swapped.spec.activations == ("relu", "relu", "sigmoid")
    assert activation_variant(problem, "sigmoid", "relu") is None  # bce fixes the output


def test_the_hard_label_variant_rounds_only_soft_labels():
    base = _problem((2, 2, 2), ("tanh", "sigmoid"), batch=3)
    soft = Problem.from_arrays(
        base.spec, base.weights, base.biases, base.x,
        np.array([[0.25, 0.5, 1.0], [0.75, 0.0, 0.4999]]), "float32",
    )  # fmt: skip
    hard = hard_label_variant(soft)
    np.testing.assert_array_equal(hard.y, [[0, 1, 1], [1, 0, 0]])
    assert hard.dtype == soft.dtype and hard.spec == soft.spec
    np.testing.assert_array_equal(hard.weights[0], soft.weights[0])
    np.testing.assert_array_equal(hard.x, soft.x)
    assert hard_label_variant(hard) is None  # hard already
    assert hard_label_variant(_problem((2, 2), ("identity",), loss="mse")) is None
    ce = _problem((2, 3), ("identity",), batch=3, loss="softmax_ce")
    distributions = np.array([[0.2, 0.5, 0.0], [0.5, 0.5, 1.0], [0.3, 0.0, 0.0]])
    ce = Problem.from_arrays(ce.spec, ce.weights, ce.biases, ce.x, distributions, "float64")
    np.testing.assert_array_equal(  # the largest entry of each column; a tie: the first
        hard_label_variant(ce).y, [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    )


def test_condition_hints_name_soft_labels_only_when_hard_ones_pass():
    problem = _problem((1, 2, 1), ("tanh", "sigmoid"), batch=2)
    soft = Problem.from_arrays(
        problem.spec, problem.weights, problem.biases, problem.x, np.array([[0.3, 1.0]])
    )

    def fails_with_soft_labels(p):
        return "incorrect" if np.any((p.y > 0) & (p.y < 1)) else "pass"

    hints = condition_hints(soft, fails_with_soft_labels, "incorrect", ("tanh",))
    assert [h for h in hints if "soft labels" in h] == [
        "incorrect only with soft labels: with every label made hard (0 or 1) it passes; an "
        "implementation written for hard labels only can say so with "
        '@gradverify.supports(labels="hard") (or --labels hard, or labels = "hard" in '
        "[[tool.gradverify.implementations]]), and the search then generates only those"
    ]
    always = condition_hints(soft, lambda p: "incorrect", "incorrect", ("tanh",))
    assert not any("soft labels" in h for h in always)


def test_condition_hints_report_only_what_the_variants_show():
    problem = _problem((1, 1, 2, 1), ("tanh", "sigmoid", "sigmoid"), batch=2)

    # an implementation that is wrong exactly when the batch has 2 samples and tanh is used
    def verdict_of(p):
        return "incorrect" if p.batch_size > 1 and "tanh" in p.spec.activations else "pass"

    hints = condition_hints(problem, verdict_of, "incorrect", ("sigmoid", "tanh", "identity"))
    assert any(h.startswith("incorrect only at batch size > 1") for h in hints)
    assert any(h.startswith("incorrect only with tanh layers") for h in hints)
    assert not any("width is 1" in h or "symmetric" in h for h in hints)
    # a problem that does not fail gets no hints at all
    assert condition_hints(problem, lambda p: "pass", "incorrect", ("tanh",)) == []


def test_removing_a_unit_that_nothing_reads_keeps_the_function():
    problem = _problem((2, 3, 3, 1), ("tanh", "tanh", "sigmoid"))
    weights = [np.array(w) for w in problem.weights]
    weights[1][:, 2] = 0.0  # unit 2 of layer 1 feeds nothing
    problem = problem.with_parameters(weights, problem.biases)
    narrow = without_units(problem, {1: 2})
    assert narrow.spec.widths == (2, 2, 3, 1)
    np.testing.assert_array_equal(narrow.weights[0], problem.weights[0][:2])
    np.testing.assert_array_equal(narrow.biases[0], problem.biases[0][:2])
    np.testing.assert_allclose(narrow.forward64().h[-1], problem.forward64().h[-1], rtol=1e-15)
    # one unit from two layers of the same width at once: square stays square
    both = without_units(problem, {1: 0, 2: 0})
    assert both.spec.widths == (2, 2, 2, 1) and both.weights[1].shape == (2, 2)
    np.testing.assert_array_equal(both.weights[1], problem.weights[1][1:, 1:])
    assert without_units(problem, {3: 0}) is None  # the only output
    soft = _problem((2, 2), ("identity",), loss="softmax_ce")
    assert without_units(soft, {1: 0}) is None  # softmax_ce needs its outputs
    fewer_inputs = without_units(problem, {0: 1})
    np.testing.assert_array_equal(fewer_inputs.x, problem.x[:1])


def test_removing_an_identity_layer_keeps_the_function():
    problem = _problem((2, 3, 2, 1), ("identity", "tanh", "sigmoid"))
    merged = without_hidden_layer(problem, 1)
    assert merged.spec.widths == (2, 2, 1) and merged.spec.activations == ("tanh", "sigmoid")
    np.testing.assert_allclose(merged.forward64().h[-1], problem.forward64().h[-1], rtol=1e-12)
    assert without_hidden_layer(problem, 3) is None  # the output layer is not hidden
    assert without_hidden_layer(problem, 0) is None


def test_removing_a_sample_keeps_the_others_in_order():
    problem = _problem((2, 3, 1), ("tanh", "sigmoid"), batch=3)
    fewer = without_sample(problem, 1)
    np.testing.assert_array_equal(fewer.x, problem.x[:, [0, 2]])
    np.testing.assert_array_equal(fewer.y, problem.y[:, [0, 2]])
    assert fewer.spec == problem.spec
    assert without_sample(_problem((2, 1), ("sigmoid",), batch=1), 0) is None


def test_a_probe_at_another_depth_keeps_input_labels_loss_and_dtype():
    problem = _problem((2, 1), ("sigmoid",), batch=2).astype("float32")
    probe = at_depth(problem, 3, "relu")
    assert probe.spec == NetworkSpec((2, 3, 3, 1), ("relu", "relu", "sigmoid"), "bce")
    assert probe.dtype == problem.dtype
    np.testing.assert_array_equal(probe.x, problem.x)
    np.testing.assert_array_equal(probe.y, problem.y)
    assert all(np.all(np.abs(w) <= 1) for w in (*probe.weights, *probe.biases))
