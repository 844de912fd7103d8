"""The pytest plugin, exercised on sample test suites run by pytester.

Subprocess runs (``runpytest_subprocess``) load the plugin through its ``pytest11`` entry
point exactly as a user's project does; in-process runs check option handling.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

IMPLEMENTATIONS = """
from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop, supports


@supports(losses=("bce",))
def sign_flipped(weights, biases, x, y, *, activations, loss):
    dw, db = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [-w for w in dw], [-b for b in db]
"""

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--gradverify-max-examples=10", "--gradverify-seed=1", "-p", "no:cacheprovider")


@pytest.fixture
def suite(pytester, monkeypatch):
    """A sample project with planted implementations; no example database (CI is set)."""
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(impls=IMPLEMENTATIONS)
    pytester.makeini("[pytest]\npythonpath = .\n")
    return pytester


def summary_lines(output: str) -> list[str]:
    """The lines of the gradverify section of the terminal summary."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ gradverify: \d+ check", line))
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("=") or not line.strip():
            break
        if not line.startswith("gradverify report"):
            out.append(line)
    return out


def test_pass_fail_diagnosis_and_summary(suite):
    suite.makepyfile(
        test_sample="""
        import pytest
        from impls import fused_bce_backprop, naive_bce_backprop, sign_flipped

        def test_fused(gradverify):
            result = gradverify.check(fused_bce_backprop, dtypes=("float32",))
            assert result.verdict == "pass"

        def test_sign_flipped(gradverify):
            gradverify.check(sign_flipped, activations=("sigmoid",), dtypes=("float64",))

        def test_naive(gradverify):
            gradverify.check(naive_bce_backprop, dtypes=("float32",))
    """
    )
    result = suite.runpytest_subprocess(*FAST)
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    # the failure message is the search's report: diagnosis, worst elements, reproduction
    failure = out[out.index("_ test_sign_flipped _") : out.index("_ test_naive _")]
    assert "sign_flipped -> INCORRECT (float64" in failure
    assert "the sign is flipped" in failure
    assert "worst elements:" in failure and "got -" in failure
    assert "reproduce with:" in failure and "from impls import sign_flipped" in failure
    assert "Traceback" not in failure and "pytrace" not in failure
    naive = out[out.index("_ test_naive _") :]
    assert "naive -> UNSTABLE (float32" in naive and "first fails at max |h| =" in naive

    lines = summary_lines(out)
    assert len(lines) == 3
    by_test = {line.split()[1]: line for line in lines}
    assert set(by_test) == {
        "test_sample.py::test_fused",
        "test_sample.py::test_sign_flipped",
        "test_sample.py::test_naive",
    }
    assert by_test["test_sample.py::test_fused"].startswith("PASS ")
    assert "fused" in by_test["test_sample.py::test_fused"]
    # a pass still says how much precision it loses beyond the stable formulation
    assert re.search(
        r"\[float32 pass, [0-9.]+ bits beyond stable\]", by_test["test_sample.py::test_fused"]
    )
    assert by_test["test_sample.py::test_sign_flipped"].startswith("INCORRECT ")
    assert "[float64 incorrect]" in by_test["test_sample.py::test_sign_flipped"]
    naive_line = by_test["test_sample.py::test_naive"]
    assert naive_line.startswith("UNSTABLE ")
    threshold = float(re.search(r"float32 unstable from max\|h\| ([0-9.]+)", naive_line)[1])
    # sigmoid(h) rounds to 1 in float32 once exp(-h) < 2**-25: h > 25 ln 2 ~ 17.3, so the
    # naive derivative cannot fail before max |h| ~ 8 and must fail before ~ 104 (float32 exp)
    assert 8 < threshold < 104
    for line in lines:
        assert re.search(r"worst [0-9.]+ bits", line)
        assert "policy autograd, tolerance 32x" in line


def test_a_problem_without_an_exact_reference_fails_with_the_reason(suite):
    suite.makepyfile(
        test_tail=f"""
        import sys
        import numpy as np
        from gradverify import supports
        sys.path.insert(0, {str(ROOT)!r})
        from tests.strategies import random_problem

        @supports(activations=("gelu", "sigmoid"))
        def zeros(weights, biases, x, y, *, activations, loss):
            return [np.zeros_like(w) for w in weights], [np.zeros_like(b) for b in biases]

        def test_deep_in_the_gelu_tail(gradverify):
            # hidden gelu units at h ~ -1e5: values near 2**-(7.6e9); Arb cannot settle the
            # gradients' signs, and exact integers would take about 1e11 bits
            problem = random_problem(
                (3, 4, 1), ("gelu", "sigmoid"), batch=4, seed=0, scale=1e5
            )
            gradverify.check(zeros, problem)
    """
    )
    result = suite.runpytest_subprocess(*FAST)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    reason = "gradverify: no exact reference for this problem: exact arithmetic on the activations"
    assert reason in out
    assert "a pre-activation deep in its activation's tail" in out
    assert "Traceback" not in out and "gradverify/exact" not in out


def test_the_fixture_takes_labels_hard(suite):
    suite.makepyfile(
        test_labels="""
        from gradverify import supports
        from gradverify.engine.implementations import stable_backprop

        @supports(losses=("bce",), dtypes=("float64",))
        def thresholded(weights, biases, x, y, *, activations, loss):
            hard = (y >= 0.5).astype(y.dtype)
            return stable_backprop(weights, biases, x, hard, activations=activations, loss=loss)

        def test_hard(gradverify):
            gradverify.check(thresholded, labels="hard")

        def test_any(gradverify):
            gradverify.check(thresholded)
    """
    )
    result = suite.runpytest_subprocess(*FAST)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "_ test_hard _" not in out  # the one that passed
    failure = out[out.index("_ test_any _") :]
    assert "incorrect only with soft labels" in failure


def test_xdist_workers_send_every_check_to_the_controller_and_report(suite):
    pytest.importorskip("xdist")
    suite.makepyfile(
        test_a="""
        from impls import fused_bce_backprop, sign_flipped

        def test_a1(gradverify):
            gradverify.check(fused_bce_backprop, dtypes=("float32",))

        def test_a2(gradverify):
            gradverify.check(sign_flipped, activations=("sigmoid",), dtypes=("float64",))
    """,
        test_b="""
        from impls import fused_bce_backprop

        def test_b1(gradverify):
            gradverify.check(fused_bce_backprop, dtypes=("float64",))

        def test_b2(gradverify):
            gradverify.check(fused_bce_backprop, dtypes=("float32",))
            gradverify.check(fused_bce_backprop, dtypes=("float64",))
    """,
    )
    result = suite.runpytest_subprocess("-n", "2", *FAST, "--gradverify-report", "rep")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "2 workers" in out
    lines = summary_lines(out)
    assert [line.split()[1] for line in lines] == [
        "test_a.py::test_a1",
        "test_a.py::test_a2",
        "test_b.py::test_b1",
        "test_b.py::test_b2",
        "test_b.py::test_b2",
    ]
    assert [line.split()[0] for line in lines] == ["PASS", "INCORRECT", "PASS", "PASS", "PASS"]
    assert f"gradverify report written to {suite.path.resolve() / 'rep'}" in out
    doc = json.loads((suite.path / "rep" / "report.json").read_text())
    text = json.dumps(doc)
    assert "sign_flipped" in text and "fused" in text
    assert (suite.path / "rep" / "index.html").is_file()


def test_disabled_with_p_no_gradverify(suite):
    suite.makepyfile(
        test_off="""
        def test_uses_fixture(gradverify):
            pass

        def test_plain():
            pass
    """
    )
    result = suite.runpytest_subprocess("-p", "no:gradverify", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "fixture 'gradverify' not found" in out
    assert "INTERNALERROR" not in out
    assert "gradverify:" not in out.replace("fixture 'gradverify'", "")


def test_options_marker_ini_and_pyproject_precedence(suite):
    suite.makefile(
        ".toml",
        pyproject=textwrap.dedent("""
        [tool.gradverify]
        max-examples = 3
        seed = 11
        fail-on = "incorrect"
        tolerance-factor = 64
    """),
    )
    suite.makeini("[pytest]\npythonpath = .\ngradverify_seed = 22\n")
    suite.makepyfile(
        test_opts="""
        import pytest
        from impls import fused_bce_backprop, naive_bce_backprop

        def test_defaults(gradverify):
            s = gradverify.settings
            assert (s.max_examples, s.seed, s.fail_on) == (4, 22, "incorrect")
            assert s.tolerance_factor == 64.0
            result = gradverify.check(fused_bce_backprop, dtypes="float64")
            assert (result.max_examples, result.seed, result.dtypes) == (4, 22, ("float64",))

        @pytest.mark.gradverify(max_examples=2, dtypes="float32", fail_on="unstable")
        def test_marker(gradverify):
            s = gradverify.settings
            assert (s.max_examples, s.seed, s.dtypes) == (2, 22, ("float32",))
            assert s.fail_on == "unstable"
            result = gradverify.check(fused_bce_backprop)
            assert result.dtypes == ("float32",)

        def test_unstable_tolerated_under_fail_on_incorrect(gradverify):
            result = gradverify.check(naive_bce_backprop, dtypes=("float16",), max_examples=10)
            assert result.verdict == "unstable"

        @pytest.mark.gradverify(colour="blue")
        def test_bad_marker(gradverify):
            pass
    """
    )
    result = suite.runpytest_subprocess("--gradverify-max-examples", "4", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    assert "unknown argument 'colour' of the gradverify marker" in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (
            ["--gradverify-max-examples", "ten"],
            None,
            "gradverify: --gradverify-max-examples: expected an integer, got 'ten'",
        ),
        (["--gradverify-dtypes", "float8"], None, "gradverify: unknown dtype 'float8'"),
        (
            [],
            "[tool.gradverify]\nmax-exmaples = 10\n",
            "[tool.gradverify] unknown key 'max-exmaples' (did you mean 'max-examples'?)",
        ),
    ],
)
def test_bad_options_are_usage_errors(suite, args, config, message):
    if config:
        suite.makefile(".toml", pyproject=config)
    suite.makepyfile(test_x="def test_x():\n    pass\n")
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_ci_profile_is_kept_derandomized_without_database(suite):
    suite.makeconftest("""
        from hypothesis import settings
        settings.register_profile("mine", max_examples=7)
        settings.load_profile("mine")
    """)
    suite.makepyfile(
        test_ci="""
        from hypothesis import settings
        from impls import fused_bce_backprop

        def test_ci(gradverify):
            result = gradverify.check(fused_bce_backprop, dtypes=("float64",), max_examples=5)
            assert result.derandomize and result.seed is None
            assert result.database is None
            assert settings._current_profile == "mine"
            assert settings.default.max_examples == 7
    """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")  # CI=true from the fixture
    result.assert_outcomes(passed=1)


def test_loading_the_plugin_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys
        import gradverify.edges.pytest_plugin
        heavy = [m for m in ("numpy", "mpmath", "hypothesis", "matplotlib") if m in sys.modules]
        print(",".join(heavy) or "none")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"


def test_the_fixture_takes_a_fixed_architecture(suite):
    suite.makepyfile(
        two_layers="""
        from gradverify.engine.implementations import stable_backprop

        def two_layers(weights, biases, x, y, *, activations, loss):
            W1, W2 = weights
            return stable_backprop([W1, W2], list(biases), x, y, activations=activations,
                                   loss=loss)
    """
    )
    suite.makepyfile(
        test_arch="""
        from two_layers import two_layers

        def test_declared(gradverify):
            result = gradverify.check(two_layers, depth=2, dtypes=("float64",))
            assert result.verdict == "pass"
            assert result.counterexample is None

        def test_widths(gradverify):
            gradverify.check(two_layers, widths=(2, None, 1), batch=1, dtypes=("float64",))

        def test_undeclared(gradverify):
            gradverify.check(two_layers, dtypes=("float64",))
    """
    )
    result = suite.runpytest(*FAST)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    failure = out[out.index("_ test_undeclared _") :]
    assert "two_layers -> ERROR" in failure
    assert "it works with depth 2 but raised ValueError at depth 1" in failure
    assert "@gradverify.supports(depth=2)" in failure


REGISTERING_TESTS = '''
import numpy as np
import gradverify as gv
from gradverify.model.functions import activation, loss_function


def backprop(weights, biases, x, y, *, activations, loss, factor=1):
    """Textbook backprop through the name lookups (so, in a worker, through its registry)."""
    acts = [activation(a) for a in activations]
    hs, zs = [], [x]
    for W, b, act in zip(weights, biases, acts):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(act.forward(hs[-1]))
    delta = loss_function(loss).output_delta(hs[-1], zs[-1], y) / y.dtype.type(y.size)
    dW, db = [], []
    for i in reversed(range(len(weights))):
        dW.insert(0, delta @ zs[i].T)
        db.insert(0, delta.sum(axis=1))
        if i > 0:
            slope = acts[i - 1].derivative(hs[i - 1])
            delta = (weights[i].T @ delta) * (factor * slope)
    return dW, db


def doubled(weights, biases, x, y, *, activations, loss):
    return backprop(weights, biases, x, y, activations=activations, loss=loss, factor=2)


def register():
    return gv.register_activation(
        "plugin_sq", forward=lambda h: (h + np.sqrt(h * h + 4)) / 2,
        mp_forward=lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2)


def test_registered_by_object(gradverify):
    square_plus = register()
    result = gradverify.check(backprop, activations=(square_plus,), losses=("bce",), depth=2)
    assert result.verdict == "pass"


def test_registered_by_name_wrong_slope(gradverify):
    register()
    gradverify.check(doubled, activations=("plugin_sq",), losses=("bce",), depth=2)
'''


def test_fixture_checks_a_function_the_test_registers_in_a_worker(suite):
    # registered inside the tests, after the worker's server started: only the registry
    # sent with each worker's start-up can make "plugin_sq" known to the lookups there
    suite.makepyfile(test_registering=REGISTERING_TESTS)
    result = suite.runpytest_subprocess(*FAST, "--gradverify-dtypes=float64")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    failure = out[out.index("_ test_registered_by_name_wrong_slope _") :]
    assert "doubled -> INCORRECT (float64" in failure
    assert "plugin_sq" in failure
    assert "unknown activation" not in out
