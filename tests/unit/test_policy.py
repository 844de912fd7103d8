"""The accuracy policy: one option, one spelling in the API, the CLI, the config, the fixture."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from gradverify.edges.cli import main
from gradverify.edges.config import load_config
from gradverify.edges.options import POLICY_CHOICES
from gradverify.engine.check import check_problem
from gradverify.engine.compare import POLICIES
from gradverify.engine.implementations import conventional_backprop, stable_backprop
from gradverify.engine.results import Verdict
from gradverify.model.network import NetworkSpec, Problem

pytest_plugins = ["pytester"]


def _saturated_hidden_problem(dtype: str = "float32") -> Problem:
    """One sigmoid hidden unit at h = 12: z(1 - z) from the output loses ~e^12 u there."""
    spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
    return Problem.from_arrays(
        spec,
        [np.array([[12.0]]), np.array([[1.0]])],
        [np.array([0.0]), np.array([0.0])],
        np.array([[1.0]]),
        np.array([[1.0]]),
        dtype,
    )


def test_the_option_table_and_the_engine_know_the_same_policies():
    assert tuple(POLICIES) == POLICY_CHOICES == ("autograd", "strict")


def test_autograd_accuracy_passes_by_default_and_fails_under_strict():
    problem = _saturated_hidden_problem()
    default = check_problem(conventional_backprop, problem)
    strict = check_problem(conventional_backprop, problem, policy="strict")
    assert default.verdict is Verdict.PASS, str(default)
    assert default.policy == "autograd" and "as accurate as framework autograd" in str(default)
    assert strict.verdict is Verdict.UNSTABLE, str(strict)
    assert strict.to_dict()["policy"] == "strict"
    # the stable formulation passes either way
    assert check_problem(stable_backprop, problem, policy="strict").verdict is Verdict.PASS


def test_a_pass_reports_the_precision_lost_beyond_the_stable_formulation():
    result = check_problem(conventional_backprop, _saturated_hidden_problem())
    bits, tensor = result.precision_beyond_stable()
    assert bits > 10 and tensor in ("dW1", "db1")
    assert f"loses up to {bits:.1f} bits beyond the stable formulation ({tensor}" in str(result)
    assert result.to_dict()["beyond_stable"]["tensor"] == tensor


def test_an_unknown_policy_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown policy 'lenient'; known policies: autograd"):
        check_problem(stable_backprop, _saturated_hidden_problem(), policy="lenient")


def test_cli_policy_flag_reaches_the_check(tmp_path):
    out = tmp_path / "out.json"
    target = "gradverify.engine.implementations:conventional_backprop"
    status = main(
        [
            "check",
            target,
            "--policy",
            "strict",
            "--max-examples",
            "10",
            "--seed",
            "0",
            "--dtypes",
            "float32",
            "--json",
            str(out),
        ]
    )
    doc = json.loads(out.read_text())
    assert doc["settings"]["policy"] == "strict"
    assert doc["results"][0]["policy"] == "strict"
    assert status in (0, 1)


def test_cli_rejects_an_unknown_policy(capsys):
    try:
        status = main(["check", "fused", "--policy", "lenient"])
    except SystemExit as exc:  # argparse's own usage error
        status = exc.code
    assert status == 2
    assert "--policy" in capsys.readouterr().err


def test_config_key_policy(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        textwrap.dedent("""
        [tool.gradverify]
        policy = "strict"
    """)
    )
    assert load_config(path).values["policy"] == "strict"
    path.write_text('[tool.gradverify]\npolicy = "lenient"\n')
    with pytest.raises(Exception, match="policy"):
        load_config(path)


def test_fixture_policy(pytester):
    pytester.makepyfile(
        test_policy_fixture="""
        import numpy as np
        from gradverify.engine.implementations import conventional_backprop
        from gradverify.model.network import NetworkSpec, Problem

        def _problem():
            spec = NetworkSpec((1, 1, 1), ("sigmoid", "sigmoid"), "bce")
            return Problem.from_arrays(spec, [np.array([[12.0]]), np.array([[1.0]])],
                                       [np.array([0.0]), np.array([0.0])],
                                       np.array([[1.0]]), np.array([[1.0]]), "float32")

        def test_default(gradverify):
            gradverify.check(conventional_backprop, _problem())

        def test_strict(gradverify):
            gradverify.check(conventional_backprop, _problem(), policy="strict")
    """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_strict*", "*UNSTABLE*"])
    strict_flag = pytester.runpytest(
        "-p", "no:cacheprovider", "--gradverify-policy", "strict", "-k", "default"
    )
    strict_flag.assert_outcomes(failed=1)


@pytest.mark.parametrize("factor", [float("inf"), float("nan"), 0.0, -1.0])
def test_the_api_refuses_a_tolerance_factor_that_would_pass_anything(factor):
    from gradverify.exploration.search import search

    with pytest.raises(ValueError, match="tolerance_factor must be finite and positive"):
        check_problem(stable_backprop, _saturated_hidden_problem(), tolerance_factor=factor)
    with pytest.raises(ValueError, match="tolerance_factor must be finite and positive"):
        search(stable_backprop, tolerance_factor=factor, max_examples=1)
