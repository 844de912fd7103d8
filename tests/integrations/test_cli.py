"""The gradverify command line: every exit code with its cause, and the CI outputs.

Most runs are in-process through ``gradverify.edges.cli.main(argv)``; a few run the installed
console script. Searches are kept small (one dtype, few examples, fixed seed).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradverify.edges import cli
from gradverify.edges.cli import main
from gradverify.exploration.search import search as real_search
from tests.cli_helpers import one_line_error, run

FAST = ["--max-examples", "10", "--seed", "3"]

PLANTED = '''
from gradverify.engine.implementations import fused_bce_backprop


def good(weights, biases, x, y, *, activations, loss):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def sign_flipped(weights, biases, x, y, *, activations, loss):
    dw, db = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [-w for w in dw], [-b for b in db]


def raises(weights, biases, x, y, *, activations, loss):
    raise RuntimeError("not implemented yet")


def rows(weights, biases, x, y, *, activations, loss):
    """Takes x as (batch, n_0) and y as (batch, n_L)."""
    return fused_bce_backprop(weights, biases, x.T, y.T, activations=activations, loss=loss)


NOT_CALLABLE = 42
'''


_SEARCHES: dict = {}


def _search(impl, **kwargs):
    """gradverify.exploration.search.search, run once per distinct call in this module.

    These tests judge the CLI, not the search: a result is reused only for exactly the same
    implementation object and arguments (the seed is always fixed here).
    """
    key = (id(impl), impl, repr(sorted(kwargs.items())))
    if key not in _SEARCHES:
        _SEARCHES[key] = real_search(impl, **kwargs)
    return _SEARCHES[key]


def _memoized_search(monkeypatch: pytest.MonkeyPatch) -> None:
    search_module = importlib.import_module("gradverify.exploration.search")

    monkeypatch.setattr(search_module, "search", _search)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory with a module of planted implementations, as the current directory."""
    _memoized_search(monkeypatch)
    (tmp_path / "planted.py").write_text(PLANTED, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "planted", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CI", "true")  # no Hypothesis example database: same seed, same run
    yield tmp_path
    sys.modules.pop("planted", None)


# ---------------------------------------------------------------------------
# Exit 0 and 1
# ---------------------------------------------------------------------------


def test_exit_0_when_every_verdict_passes(project, capsys):
    code, out, _ = run(
        capsys, "check", "planted:good", "--losses", "bce", "--dtypes", "float64", *FAST
    )
    assert code == 0
    assert "gradverify search: planted:good -> PASS (float64" in out
    assert out.rstrip().splitlines()[-1].startswith("gradverify check: 1 implementation(s): 1 pass")


def test_exit_1_for_an_incorrect_implementation(project, capsys):
    code, out, _ = run(
        capsys, "check", "planted:sign_flipped", "--losses", "bce", "--dtypes", "float64", *FAST
    )
    assert code == 1
    assert "planted:sign_flipped -> INCORRECT" in out
    assert "worst elements:" in out and "reproduce with:" in out
    assert "1 incorrect" in out.splitlines()[-1] and "FAILED" in out.splitlines()[-1]


def test_exit_1_for_an_error_verdict(project, capsys):
    code, out, _ = run(
        capsys, "check", "planted:raises", "--dtypes", "float64", *FAST, "--junit-xml", "junit.xml"
    )
    assert code == 1
    assert "-> ERROR" in out and "not implemented yet" in out
    (case,) = ET.parse("junit.xml").getroot().iter("testcase")
    assert case.find("failure").get("type") == "error"
    assert "not implemented yet" in case.find("failure").text


def test_annotations_point_at_the_implementation_source(project, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "summary.md"))
    code, out, _ = run(
        capsys, "check", "planted:sign_flipped", "--losses", "bce", "--dtypes", "float64", *FAST
    )
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("::error ")]
    source_line = (
        PLANTED.splitlines().index("def sign_flipped(weights, biases, x, y, *, activations, loss):")
        + 1
    )
    assert line.startswith(f"::error file=planted.py,line={source_line},title=")
    assert "sign_flipped is INCORRECT at float64" in line
    assert (
        "| planted:sign_flipped | float64 | **INCORRECT** |" in (project / "summary.md").read_text()
    )


def test_exit_1_for_unstable_under_the_default_fail_on(project, capsys):
    code, out, _ = run(capsys, "check", "naive", "--dtypes", "float32", *FAST)
    assert code == 1
    assert "naive -> UNSTABLE" in out
    assert "[fail-on unstable] -> FAILED" in out


def test_exit_0_for_unstable_with_fail_on_incorrect(project, capsys):
    code, out, _ = run(
        capsys, "check", "naive", "--dtypes", "float32", "--fail-on", "incorrect", *FAST
    )
    assert code == 0
    assert "naive -> UNSTABLE" in out
    assert "1 unstable [fail-on incorrect] -> ok" in out


def test_fail_on_from_the_config_and_the_command_line_wins(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.gradverify]\nfail-on = "incorrect"\nmax-examples = 10\nseed = 3\n'
    )
    assert run(capsys, "check", "naive", "--dtypes", "float32")[0] == 0
    assert run(capsys, "check", "naive", "--dtypes", "float32", "--fail-on", "unstable")[0] == 1


def test_layout_rows_declares_the_row_layout(project, capsys):
    args = ["check", "planted:rows", "--losses", "bce", "--dtypes", "float64", *FAST]
    code, out, _ = run(capsys, *args, "--layout", "rows")
    assert code == 0, out
    code, out, _ = run(capsys, *args)  # given columns, it transposes them: wrong shapes
    assert code == 1
    assert "-> PASS" not in out


def test_check_uses_the_implementations_listed_in_the_config(project, capsys):
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.gradverify]
        max-examples = 10
        seed = 3
        dtypes = ["float64"]

        [[tool.gradverify.implementations]]
        target = "planted:good"
        name = "the good one"
        losses = ["bce"]
    """)
    )
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert "gradverify search: the good one -> PASS (float64;" in out


def test_the_default_scan_of_an_implementation_without_bce_exits_2(project, capsys):
    # the default scan is of the sigmoid + BCE output; --losses mse would scan mse instead
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [[tool.gradverify.implementations]]
        target = "planted:good"
        losses = ["mse"]
    """)
    )
    code, out, err = run(capsys, "scan")
    assert code == 2
    line = one_line_error(err)
    assert line.startswith("gradverify scan: error: ")
    assert "the scan needs a sigmoid output with loss bce" in line
    assert out == ""


def test_exit_zero_turns_findings_and_errors_into_0(project, capsys):
    code, out, _ = run(
        capsys,
        "check",
        "planted:sign_flipped",
        "--losses",
        "bce",
        "--dtypes",
        "float64",
        "--exit-zero",
        *FAST,
    )
    assert code == 0
    assert "FAILED (exit code 0: --exit-zero)" in out
    code, _, err = run(capsys, "check", "no_such_module:fn", "--exit-zero")
    assert code == 0
    assert "no module named 'no_such_module'" in err


# ---------------------------------------------------------------------------
# Exit 2: usage, import and config errors, each with a one-line reason
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["check"], "no implementation to check"),
        (["check", "nocolon"], "'nocolon' is not MODULE:ATTR"),
        (["check", "planted:"], "'planted:' is not MODULE:ATTR"),
        (["check", "no_such_module:fn"], "cannot import 'no_such_module'"),
        (["check", "planted:missing"], "'planted' has no attribute 'missing'"),
        (["check", "planted:NOT_CALLABLE"], "planted:NOT_CALLABLE is a int, not a callable"),
        (["check", "planted:good", "--activations", "swish"], "unknown activation 'swish'"),
        (["check", "planted:good", "--dtypes", "float8"], "unknown dtype 'float8'"),
        (["check", "planted:good", "--config", "missing.toml"], "missing.toml: no such file"),
    ],
)
def test_exit_2_with_a_one_line_reason(project, capsys, argv, reason):
    code, out, err = run(capsys, *argv)
    assert code == 2
    line = one_line_error(err)
    assert line.startswith(f"gradverify {argv[0]}: error: ")
    assert reason in line
    assert out == ""


def test_exit_2_when_the_module_raises_on_import(project, capsys):
    (project / "broken_mod.py").write_text("raise ImportError('needs a GPU')\n")
    code, _, err = run(capsys, "check", "broken_mod:fn")
    assert code == 2
    assert "importing 'broken_mod' failed: ImportError: needs a GPU" in one_line_error(err)
    sys.modules.pop("broken_mod", None)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "naive", "--max-examples", "ten"],
        ["check", "naive", "--fail-on", "sometimes"],
        ["check", "naive", "--no-such-flag"],
        ["frobnicate"],
    ],
)
def test_exit_2_for_bad_command_lines(project, capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error:" in err.splitlines()[-1]


def test_a_typo_in_a_config_key_exits_2_and_names_the_key(project, capsys):
    (project / "pyproject.toml").write_text("[tool.gradverify]\nmax-exmaples = 10\n")
    code, _, err = run(capsys, "check", "naive")
    assert code == 2
    assert one_line_error(err) == (
        "gradverify check: error: pyproject.toml: [tool.gradverify] unknown key "
        "'max-exmaples' (did you mean 'max-examples'?)"
    )
    other = project / "other.toml"
    other.write_text('[tool.gradverify]\nseed = "x"\n')
    code, _, err = run(capsys, "check", "naive", "--config", str(other))
    assert code == 2
    assert f"{other}: [tool.gradverify] 'seed' must be an integer" in one_line_error(err)


# ---------------------------------------------------------------------------
# Exit 3 and 130
# ---------------------------------------------------------------------------


def test_exit_3_for_an_internal_error_without_a_traceback(project, capsys, monkeypatch):
    search_module = importlib.import_module("gradverify.exploration.search")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(search_module, "search", broken)
    code, _, err = run(capsys, "check", "naive", *FAST)
    assert code == 3
    assert "gradverify check: internal error: RuntimeError: boom" in err
    assert "This is a bug in gradverify" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "check", "naive", "--debug", *FAST)
    assert code == 3
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err


def test_interrupt_exits_130_and_writes_no_output_file(project, capsys, monkeypatch):
    search_module = importlib.import_module("gradverify.exploration.search")

    calls = []

    def interrupted(impl, **kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_search(impl, **kwargs)

    real_search = search_module.search
    monkeypatch.setattr(search_module, "search", interrupted)
    previous = project / "previous.json"
    previous.write_text("{}")
    code, _, err = run(
        capsys,
        "check",
        "fused",
        "naive",
        "--dtypes",
        "float64",
        *FAST,
        "--json",
        "previous.json",
        "--junit-xml",
        "junit.xml",
        "--exit-zero",
    )
    assert code == 130
    assert "interrupted; no output files written" in err
    assert previous.read_text() == "{}"
    assert not (project / "junit.xml").exists()
    assert sorted(p.name for p in project.iterdir() if p.suffix in (".tmp", ".xml")) == []


# ---------------------------------------------------------------------------
# Outputs: JSON, JUnit XML, GitHub Actions
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """One check of naive (unstable) and fused (pass) at float16 and float32, under GitHub."""
    tmp = tmp_path_factory.mktemp("ci")
    summary = tmp / "summary.md"
    summary.write_text("# earlier step\n")
    with pytest.MonkeyPatch.context() as mp:
        _memoized_search(mp)
        mp.chdir(tmp)
        mp.setenv("CI", "true")
        mp.setenv("GITHUB_ACTIONS", "true")
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        import io
        from contextlib import redirect_stderr, redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            code = main(
                [
                    "check",
                    "naive",
                    "fused",
                    "--dtypes",
                    "float16,float32",
                    "--max-examples",
                    "10",
                    "--seed",
                    "5",
                    "--json",
                    "out/check.json",
                    "--junit-xml",
                    "out/junit.xml",
                ]
            )
    return {"code": code, "out": out.getvalue(), "dir": tmp, "summary": summary}


def test_ci_run_fails_on_the_unstable_implementation(ci_run):
    assert ci_run["code"] == 1


def test_json_output(ci_run):
    doc = json.loads((ci_run["dir"] / "out" / "check.json").read_text())
    assert doc["schema"] == "gradverify.check/2"
    assert doc["failed"] is True
    assert doc["settings"]["fail_on"] == "unstable"
    assert doc["settings"]["max_examples"] == 10
    by_name = {r["implementation"]: r for r in doc["results"]}
    assert by_name["naive"]["verdict"] == "unstable"
    assert by_name["fused"]["verdict"] == "pass"
    assert set(by_name["naive"]["per_dtype"]) == {"float16", "float32"}


def test_junit_xml_has_one_case_per_implementation_and_dtype(ci_run):
    root = ET.parse(ci_run["dir"] / "out" / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    cases = {(c.get("classname"), c.get("name")): c for c in suites[0].findall("testcase")}
    assert set(cases) == {
        ("gradverify.naive", "float16"),
        ("gradverify.naive", "float32"),
        ("gradverify.fused", "float16"),
        ("gradverify.fused", "float32"),
    }
    for dtype in ("float16", "float32"):
        failure = cases[("gradverify.naive", dtype)].find("failure")
        assert failure is not None
        assert failure.get("type") == "unstable"
        assert f"naive is UNSTABLE at {dtype}" in failure.get("message")
        assert "Reproduce with:" in failure.text
        assert cases[("gradverify.fused", dtype)].find("failure") is None
    assert suites[0].get("tests") == "4" and suites[0].get("failures") == "2"
    assert root.get("tests") == "4" and root.get("failures") == "2"


def test_github_annotations_and_step_summary(ci_run):
    lines = ci_run["out"].splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 2
    assert not [line for line in lines if line.startswith(("::warning", "::notice"))]
    for line in errors:
        head, message = line.split("::", 2)[1:]
        assert "title=gradverify%3A naive float" in head
        assert "\n" not in message and "%0A" in message  # multi-line, escaped
        assert message.startswith("naive is UNSTABLE at float")
    summary = ci_run["summary"].read_text()
    assert summary.startswith("# earlier step\n## gradverify check: 2 of 4 case(s) failing")
    assert "| naive | float32 | **UNSTABLE** |" in summary
    assert "| fused | float16 | pass |" in summary
    assert "<details><summary>naive float32: unstable</summary>" in summary


def test_no_annotations_outside_github_actions(project, capsys):
    code, out, _ = run(capsys, "check", "naive", "--dtypes", "float32", *FAST)
    assert code == 1
    assert "::error" not in out


def test_annotations_are_capped_with_a_notice(ci_run):
    """GitHub shows 10 errors and 10 warnings per step; the rest are counted in a notice."""
    import dataclasses

    from gradverify.edges.ci_outputs import check_cases, github_annotations

    # the very search the CLI ran in ci_run (memoized): naive at float16 and float32
    naive = _search(
        cli.load_target("naive"),
        name="naive",
        dtypes=("float16", "float32"),
        max_examples=10,
        seed=5,
        tolerance_factor=32.0,
    )
    assert naive.verdict == "unstable"
    assert [c.verdict for c in check_cases([naive], "unstable")] == ["unstable", "unstable"]
    many = [dataclasses.replace(naive, implementation=f"copy{i}") for i in range(7)]  # 14 cases
    lines = github_annotations(many, fail_on="unstable")
    assert sum(line.startswith("::error ") for line in lines) == 10
    assert lines[-1].startswith("::notice ") and "4 more gradverify finding(s)" in lines[-1]
    assert len(lines) == 11
    lines = github_annotations(many, fail_on="incorrect")  # tolerated: warnings
    assert sum(line.startswith("::warning ") for line in lines) == 10
    assert "4 more" in lines[-1] and len(lines) == 11


# ---------------------------------------------------------------------------
# Scan and report subcommands
# ---------------------------------------------------------------------------


def test_scan_prints_the_table_and_writes_versioned_json(project, capsys):
    code, out, _ = run(capsys, "scan", "naive", "--dtypes", "float16", "--json", "scan.json")
    assert code == 0
    assert "naive" in out and "float16" in out and "inf/NaN" in out
    doc = json.loads((project / "scan.json").read_text())
    assert doc["schema"] == "gradverify.scan/1"
    assert [s["implementation"] for s in doc["scans"]] == ["naive"]


# ---------------------------------------------------------------------------
# The installed console script
# ---------------------------------------------------------------------------


def _console_script() -> str:
    found = shutil.which("gradverify")
    if found is None:
        pytest.skip("the gradverify console script is not on PATH (package not installed?)")
    return found


def test_console_script_exit_codes(project):
    script = _console_script()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["CI"] = "true"
    ok = subprocess.run(
        [script, "check", "fused", "--dtypes", "float64", *FAST],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "fused -> PASS" in ok.stdout
    bad = subprocess.run(
        [script, "check", "planted:missing"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert one_line_error(bad.stderr) == (
        "gradverify check: error: planted:missing: 'planted' has no attribute 'missing'"
    )


def test_python_m_gradverify(project):
    proc = subprocess.run(
        [sys.executable, "-m", "gradverify", "--version"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("gradverify ")


def test_write_file_atomic_replaces_whole_files(tmp_path):
    from gradverify.report.atomic import write_file_atomic

    target = tmp_path / "sub" / "out.json"
    write_file_atomic(target, "first")
    write_file_atomic(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_outputs_are_relative_to_the_current_directory(project, capsys):
    code, _, _ = run(
        capsys, "check", "fused", "--dtypes", "float64", *FAST, "--json", "nested/dir/r.json"
    )
    assert code == 0
    assert json.loads(Path("nested/dir/r.json").read_text())["failed"] is False


def test_report_writes_the_report_and_refuses_an_unrelated_directory(project, capsys):
    args = ["report", "fused", "--dtypes", "float32", "--max-examples", "5", "--seed", "1"]
    code, out, _ = run(capsys, *args, "--out", "rep", "--title", "CLI <report>")
    assert code == 0
    assert out.strip() == f"gradverify report: written to {(project / 'rep').resolve()}"
    html = (project / "rep" / "index.html").read_text()
    assert "CLI &lt;report&gt;" in html
    doc = json.loads((project / "rep" / "report.json").read_text())
    assert "fused" in json.dumps(doc)
    (project / "mine").mkdir()
    (project / "mine" / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, *args, "--out", "mine")
    assert code == 2
    assert one_line_error(err).startswith("gradverify report: error: ")
    assert (project / "mine" / "notes.txt").read_text() == "keep me"


def test_scan_exhaustive_flag_reaches_the_scanner(monkeypatch, capsys):
    scan_module = importlib.import_module("gradverify.exploration.scan")
    from gradverify.edges.cli import main

    seen = {}
    real_scan = scan_module.scan

    def recording_scan(impl, **kwargs):
        seen.update(kwargs)
        return real_scan(impl, **{**kwargs, "exhaustive": False, "sweep_points": 8})

    monkeypatch.setattr(scan_module, "scan", recording_scan)
    # naive: the quickest built-in to scan (the flag's way to the scanner is the point)
    assert main(["scan", "naive", "--dtypes", "float16", "--exhaustive"]) == 0
    assert seen["exhaustive"] is True
    assert "naive" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# A fixed architecture: --depth/--widths/--batch and the config entry
# ---------------------------------------------------------------------------

TWO_LAYERS = """
from gradverify.engine.implementations import stable_backprop


def two_layers(weights, biases, x, y, *, activations, loss):
    W1, W2 = weights
    b1, b2 = biases
    return stable_backprop([W1, W2], [b1, b2], x, y, activations=activations, loss=loss)


def three_in_two_out(weights, biases, x, y, *, activations, loss):
    if x.shape[0] != 3 or y.shape[0] != 2:
        raise ValueError(f"written for 3 inputs and 2 outputs; got {x.shape[0]}, {y.shape[0]}")
    return two_layers(weights, biases, x, y, activations=activations, loss=loss)
"""


def _with_module(project, monkeypatch, name: str, source: str):
    """``project`` with a module ``name`` of ``source`` in it, imported fresh by each test."""
    (project / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield project
    sys.modules.pop(name, None)


@pytest.fixture
def two_layer_project(project, monkeypatch):
    yield from _with_module(project, monkeypatch, "twolayer", TWO_LAYERS)


def test_depth_flag_declares_a_two_layer_implementation(two_layer_project, capsys):
    code, out, _ = run(
        capsys, "check", "twolayer:two_layers", "--depth", "2", "--dtypes", "float64", *FAST
    )
    assert code == 0, out
    assert "twolayer:two_layers -> PASS" in out


def test_an_undeclared_two_layer_implementation_is_told_how(two_layer_project, capsys):
    code, out, _ = run(capsys, "check", "twolayer:two_layers", "--dtypes", "float64", *FAST)
    assert code == 1
    assert "-> ERROR" in out and "not enough values to unpack" in out
    assert (
        "declare them with @gradverify.supports(depth=2) (or --depth 2, or depth = 2 in "
        "[[tool.gradverify.implementations]])"
    ) in out


def test_depth_from_the_config_entry(two_layer_project, capsys):
    (two_layer_project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.gradverify]
        max-examples = 10
        seed = 3
        dtypes = ["float64"]

        [[tool.gradverify.implementations]]
        target = "twolayer:two_layers"
        depth = 2
    """)
    )
    code, out, _ = run(capsys, "check")
    assert code == 0, out
    assert "twolayer:two_layers -> PASS" in out


def test_widths_flag_fixes_every_width(two_layer_project, capsys):
    args = ["check", "twolayer:three_in_two_out", "--dtypes", "float64", *FAST]
    code, out, _ = run(capsys, *args)
    assert code == 1 and "written for 3 inputs and 2 outputs" in out
    code, out, _ = run(capsys, *args, "--widths", "3,any,2", "--json", "out.json")
    assert code == 0, out
    doc = json.loads((two_layer_project / "out.json").read_text())
    assert doc["settings"]["widths"] == [3, None, 2]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--depth", "0"], "argument --depth: depth must be a positive integer"),
        (["--depth", "2,x"], "argument --depth: expected an integer, got 'x'"),
        (["--widths", "3,none?,1"], "argument --widths: expected widths such as 784,30,10"),
        (["--widths", "3,4,1", "--depth", "3"], "has 3 entries, which is a network of depth 2"),
        (["--widths", "3,1", "--losses", "softmax_ce"], "'softmax_ce' needs at least 2 outputs"),
    ],
)
def test_bad_architecture_flags_exit_2(two_layer_project, capsys, argv, reason):
    code, _, err = run(capsys, "check", "twolayer:two_layers", *argv, *FAST)
    assert code == 2
    assert "Traceback" not in err
    assert reason in err.splitlines()[-1]  # after argparse's usage lines, if any


# ---------------------------------------------------------------------------
# Hard labels only: --labels and the config entry
# ---------------------------------------------------------------------------

HARD_LABELS = """
from gradverify.engine.implementations import stable_backprop


def thresholded(weights, biases, x, y, *, activations, loss):
    '''Written for labels in {0, 1}: a label from 0.5 up is taken as 1, below as 0.'''
    hard = (y >= 0.5).astype(y.dtype)
    return stable_backprop(weights, biases, x, hard, activations=activations, loss=loss)
"""

HARD_ARGS = ["check", "hardlabels:thresholded", "--losses", "bce", "--dtypes", "float64", *FAST]


@pytest.fixture
def hard_label_project(project, monkeypatch):
    yield from _with_module(project, monkeypatch, "hardlabels", HARD_LABELS)


def test_labels_hard_declares_an_implementation_for_hard_labels(hard_label_project, capsys):
    code, out, _ = run(capsys, *HARD_ARGS)
    assert code == 1
    assert "incorrect only with soft labels: with every label made hard (0 or 1) it passes" in out
    code, out, _ = run(capsys, *HARD_ARGS, "--labels", "hard", "--json", "out.json")
    assert code == 0, out
    assert "hardlabels:thresholded -> PASS" in out
    doc = json.loads((hard_label_project / "out.json").read_text())
    assert doc["settings"]["labels"] == "hard"


def test_labels_from_the_config_entry(hard_label_project, capsys):
    entry = """
        [tool.gradverify]
        max-examples = 10
        seed = 3
        dtypes = ["float64"]

        [[tool.gradverify.implementations]]
        target = "hardlabels:thresholded"
        losses = ["bce"]
        labels = "{}"
    """
    (hard_label_project / "pyproject.toml").write_text(textwrap.dedent(entry.format("hard")))
    code, out, _ = run(capsys, "check")
    assert code == 0, out
    (hard_label_project / "pyproject.toml").write_text(textwrap.dedent(entry.format("soft")))
    code, _, err = run(capsys, "check")
    assert code == 2
    assert one_line_error(err).endswith("'labels' must be one of any, hard; got 'soft'")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (
            ["check", "good", "--labels", "soft"],
            "argument --labels: expected one of any, hard; got 'soft'",
        ),
        (["scan", "good", "--labels", "hard"], "unrecognized arguments: --labels hard"),
    ],
)
def test_bad_labels_flags_exit_2(project, capsys, argv, reason):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err
    assert reason in err.splitlines()[-1]
