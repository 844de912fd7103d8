"""Output safety: nothing gradverify writes can delete a user's file, land somewhere else, fail
after the checks ran, or let a broken run exit 0.

Most runs are in-process through ``gradverify.edges.cli.main(argv)`` with tiny searches; two run
a subprocess, where file descriptors and the real stdout matter.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradverify.report import render_report
from gradverify.report.atomic import (
    MANIFEST,
    OutputDirectoryError,
    OutputPathError,
    check_output_directory,
    check_output_file,
    write_file_atomic,
)
from tests.cli_helpers import one_line_error, run

pytest_plugins = ["pytester"]

FAST = ["--max-examples", "5", "--seed", "3"]

PLANTED = """
import os
import sys

from gradverify.engine.implementations import fused_bce_backprop, supports

pathlib_flag = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imported.flag")
open(pathlib_flag, "w").close()  # proves whether gradverify imported this module


@supports(losses=("bce",), dtypes=("float64",))
def good(weights, biases, x, y, *, activations, loss):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


@supports(losses=("bce",), dtypes=("float64",))
def chatty(weights, biases, x, y, *, activations, loss):
    print("chatty says hi")
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


@supports(losses=("bce",), dtypes=("float64",))
def exits(weights, biases, x, y, *, activations, loss):
    sys.exit(0)


@supports(losses=("bce",), dtypes=("float64",))
def sabotages_output(weights, biases, x, y, *, activations, loss):
    os.makedirs(os.environ["SABOTAGED_PATH"], exist_ok=True)
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory with a module of planted implementations, as the current directory."""
    (tmp_path / "planted.py").write_text(PLANTED, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("planted", "exits_on_import"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CI", "true")  # no Hypothesis example database
    yield tmp_path.resolve()
    for name in ("planted", "exits_on_import"):
        sys.modules.pop(name, None)


@pytest.fixture
def no_search(monkeypatch):
    """Fails the test if any search starts (the run must stop before checking anything)."""
    search_module = importlib.import_module("gradverify.exploration.search")

    def refuse(*args, **kwargs):
        raise AssertionError("a search ran")

    monkeypatch.setattr(search_module, "search", refuse)


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and directory (None) below ``directory``, by relative path."""
    return {
        str(p.relative_to(directory)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(directory.rglob("*"))
    }


def small_report(out: Path, title: str = "previous") -> Path:
    checks = [
        {
            "implementation": "x",
            "verdict": "pass",
            "dtype": "float64",
            "spec": None,
            "saturation": 1.0,
            "message": "",
            "diagnosis": [],
            "tensors": [],
            "worst": [],
        }
    ]
    return render_report(out, check_results=checks, title=title, progress=False)


# ---------------------------------------------------------------------------
# Never delete what we did not write
# ---------------------------------------------------------------------------


def test_report_out_dot_in_a_project_refuses_and_keeps_every_file(project, capsys, no_search):
    (project / "impls.py").write_text("def backprop(): ...\n")
    (project / "src").mkdir()
    (project / "src" / "model.py").write_text("W = 1\n")
    (project / "report.json").write_text("{}")  # a file of that name proves nothing
    (project / "planted.py").unlink()
    before = tree(project)
    code, out, err = run(capsys, "report", "fused", "--out", ".")
    assert code == 2
    assert out == ""
    assert one_line_error(err) == (
        f"gradverify report: error: refusing to replace {project}: it holds files gradverify "
        "did not write (impls.py, report.json, src/); choose a new or empty directory"
    )
    assert tree(project) == before


def test_a_previous_report_is_replaced_and_its_manifest_lists_what_was_written(tmp_path):
    out = tmp_path / "reports"
    assert small_report(out, "first") == out
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == {
        "tool": "gradverify",
        "manifest": "gradverify.manifest/1",
        "schema": "gradverify.report/1",
        "complete": True,
        "files": ["index.html", "report.json", "summary.md"],
    }
    small_report(out, "second")
    assert "second" in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


@pytest.mark.parametrize("extra", ["notes.txt", "sub/"])
def test_a_previous_report_with_anything_added_is_refused(tmp_path, extra):
    out = tmp_path / "reports"
    small_report(out)
    if extra.endswith("/"):
        (out / extra).mkdir()
    else:
        (out / extra).write_text("mine")
    before = tree(out)
    with pytest.raises(OutputDirectoryError) as info:
        small_report(out, "second")
    assert str(info.value) == (
        f"refusing to replace {out}: it holds files gradverify did not "
        f"write ({extra}); choose a new or empty directory"
    )
    assert tree(out) == before


def test_a_listed_name_that_is_not_a_regular_file_is_refused(tmp_path):
    out = tmp_path / "reports"
    small_report(out)
    (out / "index.html").unlink()
    (out / "index.html").mkdir()  # the name is listed, but it is now a directory
    with pytest.raises(OutputDirectoryError, match=r"did not write \(index\.html/\)"):
        small_report(out, "second")
    assert (out / "index.html").is_dir()


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("not json", "is not one gradverify wrote (not valid JSON)"),
        (
            '{"tool": "other", "manifest": "gradverify.manifest/1", "files": []}',
            "is not one gradverify wrote",
        ),
        (
            '{"tool": "gradverify", "manifest": "gradverify.manifest/1", "files": ["../x"]}',
            "does not list plain file names",
        ),
    ],
)
def test_a_forged_or_broken_manifest_is_refused(tmp_path, manifest, reason):
    out = tmp_path / "reports"
    out.mkdir()
    (out / MANIFEST).write_text(manifest)
    (out / "index.html").write_text("keep")
    with pytest.raises(OutputDirectoryError) as info:
        small_report(out)
    assert str(info.value) == (
        f"refusing to replace {out}: its {MANIFEST} {reason}, and it "
        f"holds {MANIFEST}, index.html; choose a new or empty directory"
    )
    assert (out / "index.html").read_text() == "keep"


def test_an_empty_or_missing_directory_is_fine_and_a_link_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert (small_report(tmp_path / "empty") / "report.json").is_file()
    assert (small_report(tmp_path / "new" / "nested") / "report.json").is_file()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(OutputDirectoryError, match="it is a symbolic link"):
        check_output_directory(tmp_path / "link")


def test_report_directory_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = small_report(tmp_path / "r")
        written = write_file_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o640}
    assert stat.S_IMODE(written.stat().st_mode) == 0o640


# ---------------------------------------------------------------------------
# Output paths checked before anything runs
# ---------------------------------------------------------------------------


def _sys_is_unwritable() -> bool:
    try:
        check_output_file("/sys/x.json")
    except OutputPathError:
        return True
    return False


@pytest.mark.skipif(not _sys_is_unwritable(), reason="/sys accepts files here")
@pytest.mark.parametrize("flag", ["--json", "--junit-xml"])
def test_an_unwritable_output_exits_2_before_any_check(project, capsys, no_search, flag):
    code, out, err = run(capsys, "check", "planted:good", flag, "/sys/x.json")
    assert code == 2
    assert out == ""
    assert one_line_error(err).startswith(
        f"gradverify check: error: {flag} /sys/x.json: cannot create files in /sys: "
    )
    assert not (project / "imported.flag").exists()  # the implementation was not even loaded


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("afile/sub.json", "{project}/afile/sub.json: {project}/afile is not a directory"),
        ("adir", "{project}/adir: is a directory; give a file path"),
        (
            "/dev/null",
            "/dev/null: exists and is not a regular file; gradverify replaces only regular files",
        ),
    ],
)
def test_unusable_output_paths_exit_2_naming_the_resolved_path(
    project, capsys, no_search, path, reason
):
    (project / "afile").write_text("x")
    (project / "adir").mkdir()
    code, _, err = run(capsys, "check", "planted:good", "--json", path)
    assert code == 2
    assert one_line_error(err) == (
        "gradverify check: error: --json " + reason.format(project=project)
    )
    assert (project / "afile").read_text() == "x" and (project / "adir").is_dir()
    assert not (project / "imported.flag").exists()


def test_an_unusable_report_directory_exits_2_before_any_check(project, capsys, no_search):
    (project / "afile").write_text("x")
    code, _, err = run(capsys, "report", "planted:good", "--out", "afile/rep")
    assert code == 2
    assert one_line_error(err) == (
        f"gradverify report: error: --out {project}/afile/rep: {project}/afile is not a directory"
    )
    (project / "pyproject.toml").write_text('[tool.gradverify]\nreport-dir = "afile/r"\n')
    code, _, err = run(capsys, "report", "planted:good")
    assert code == 2
    assert one_line_error(err) == (
        f"gradverify report: error: report-dir (pyproject.toml) "
        f"{project}/afile/r: {project}/afile is not a directory"
    )
    (project / "pyproject.toml").write_text('[tool.gradverify]\nreport-dir = "src"\n')
    (project / "src").mkdir()
    (project / "src" / "a.py").write_text("")
    code, _, err = run(capsys, "report", "planted:good")
    assert code == 2
    assert one_line_error(err) == (
        f"gradverify report: error: refusing to replace "
        f"{project}/src: it holds files gradverify did not write "
        "(a.py); choose a new or empty directory"
    )
    assert not (project / "imported.flag").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "planted:good", "--json", ""],
        ["check", "planted:good", "--junit-xml", ""],
        ["scan", "fused", "--json", ""],
        ["report", "fused", "--out", ""],
    ],
)
def test_an_empty_output_path_is_a_usage_error(project, capsys, no_search, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"gradverify {argv[0]}: error: argument {argv[-2]}: expected a path, got an empty string"
    )


def test_json_and_junit_xml_cannot_be_the_same_file(project, capsys, no_search):
    code, _, err = run(capsys, "check", "planted:good", "--json", "o.x", "--junit-xml", "./o.x")
    assert code == 2
    assert one_line_error(err) == (
        f"gradverify check: error: --json and --junit-xml name the same file {project}/o.x"
    )


def test_json_dash_writes_only_the_document_to_stdout(project, capsys):
    code, out, err = run(capsys, "check", "planted:chatty", *FAST, "--json", "-")
    assert code == 0
    doc = json.loads(out)  # stdout is the JSON document and nothing else
    assert doc["schema"] == "gradverify.check/2" and doc["failed"] is False
    assert [r["verdict"] for r in doc["results"]] == ["pass"]
    assert "chatty says hi" not in out  # printed by the implementation: stderr (see below)
    assert "gradverify check: 1 implementation(s): 1 pass" in err


def test_json_dash_keeps_stdout_clean_at_the_file_descriptor_level(project):
    (project / "noisy.py").write_text(
        textwrap.dedent("""
        import os
        from gradverify.engine.implementations import fused_bce_backprop, supports

        @supports(losses=("bce",), dtypes=("float64",))
        def noisy(weights, biases, x, y, *, activations, loss):
            os.write(1, b"raw bytes on fd 1\\n")
            print("a print")
            return fused_bce_backprop(weights, biases, x, y, activations=activations,
                                      loss=loss)
    """)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "gradverify", "check", "noisy:noisy", *FAST, "--json", "-"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["failed"] is False
    assert "raw bytes on fd 1" in proc.stderr and "a print" in proc.stderr


def test_outputs_stay_where_they_were_named_when_the_working_directory_changes(
    project, capsys, monkeypatch
):
    search_module = importlib.import_module("gradverify.exploration.search")

    real_search = search_module.search

    def wandering_search(impl, **kwargs):  # as an implementation run in-process could
        os.chdir("/")
        return real_search(impl, **kwargs)

    monkeypatch.setattr(search_module, "search", wandering_search)
    code, out, _ = run(
        capsys, "check", "planted:good", *FAST, "--json", "out/r.json", "--junit-xml", "j.xml"
    )
    assert code == 0, out
    assert os.getcwd() == "/"  # it did move
    assert json.loads((project / "out" / "r.json").read_text())["failed"] is False
    assert (project / "j.xml").is_file()
    assert not Path("/out/r.json").exists() and not Path("/j.xml").exists()


def test_json_and_xml_files_follow_the_umask(project, capsys):
    old = os.umask(0o002)
    try:
        code, _, _ = run(
            capsys, "check", "planted:good", *FAST, "--json", "r.json", "--junit-xml", "r.xml"
        )
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((project / "r.json").stat().st_mode) == 0o664
    assert stat.S_IMODE((project / "r.xml").stat().st_mode) == 0o664


# ---------------------------------------------------------------------------
# No exit 0 without a pass
# ---------------------------------------------------------------------------


def test_a_module_that_exits_while_imported_is_a_usage_error(project, capsys):
    (project / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    code, out, err = run(capsys, "check", "exits_on_import:backprop")
    assert code == 2
    assert out == ""
    assert one_line_error(err) == (
        "gradverify check: error: importing 'exits_on_import' failed: it called sys.exit(0) "
        "while being imported (guard the script part with if __name__ == '__main__':)"
    )


def test_an_implementation_calling_sys_exit_0_does_not_make_the_run_pass(project, capsys):
    code, out, err = run(capsys, "check", "planted:exits", *FAST, "--json", "r.json")
    assert code == 1, (out, err)
    if (project / "r.json").exists():  # judged an error verdict, not a crash
        assert json.loads((project / "r.json").read_text())["failed"] is True


def test_an_output_sabotaged_during_the_run_fails_the_run(project, capsys, monkeypatch):
    monkeypatch.setenv("SABOTAGED_PATH", str(project / "r.json"))
    code, out, err = run(capsys, "check", "planted:sabotages_output", *FAST, "--json", "r.json")
    assert "1 pass" in out  # the verdict itself was a pass...
    assert code == 2  # ...but the output could not be written: not a green run
    assert one_line_error(err) == (
        f"gradverify check: error: --json {project}/r.json: is a directory; give a file path"
    )


def test_an_empty_implementation_list_is_not_a_pass(project, capsys, no_search):
    (project / "pyproject.toml").write_text("[tool.gradverify]\nimplementations = []\n")
    code, _, err = run(capsys, "check")
    assert code == 2
    assert "no implementation to check" in one_line_error(err)


def test_report_exits_1_when_a_verdict_fails(project, capsys):
    code, out, _ = run(
        capsys,
        "report",
        "naive",
        "--dtypes",
        "float16",
        "--max-examples",
        "5",
        "--seed",
        "1",
        "--out",
        "rep",
    )
    assert code == 1
    assert out.splitlines()[0] == f"gradverify report: written to {project}/rep"
    assert out.splitlines()[1] == (
        "gradverify report: 1 of 1 implementation(s) not passing "
        "[fail-on unstable]: naive (unstable) -> FAILED"
    )
    assert (project / "rep" / "report.json").is_file()


def test_scan_exits_1_when_calls_fail(project, capsys):
    (project / "raising.py").write_text(
        textwrap.dedent("""
        from gradverify.engine.implementations import supports

        @supports(losses=("bce",))
        def raises(weights, biases, x, y, *, activations, loss):
            raise RuntimeError("not implemented yet")
    """)
    )
    code, out, _ = run(capsys, "scan", "raising:raises", "--dtypes", "float16")
    assert code == 1
    assert out.splitlines()[-1] == (
        "gradverify scan: 1 implementation(s), 1 with failed calls -> FAILED"
    )
    sys.modules.pop("raising", None)


@pytest.mark.parametrize("command", ["check", "scan", "report"])
def test_exit_zero_is_the_only_way_to_0_after_a_failure(project, capsys, command):
    assert run(capsys, command, "no_such_module:fn")[0] == 2
    assert run(capsys, command, "no_such_module:fn", "--exit-zero")[0] == 0


# ---------------------------------------------------------------------------
# The pytest plugin's --gradverify-report
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--gradverify-report", "."],
            "refusing to replace {path}: it holds files gradverify did "
            "not write (test_x.py); choose a new or empty directory",
        ),
        (
            ["--gradverify-report", "test_x.py/rep"],
            "--gradverify-report {path}/test_x.py/rep: {path}/test_x.py is not a directory",
        ),
    ],
)
def test_the_plugin_checks_its_report_directory_before_the_session(pytester, args, reason):
    pytester.makepyfile(test_x="def test_never_runs():\n    raise AssertionError\n")
    result = pytester.runpytest_inprocess(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    path = pytester.path.resolve()
    assert f"gradverify: {reason.format(path=path)}" in result.stderr.str()
    assert "test_never_runs" not in result.stdout.str()


# ---------------------------------------------------------------------------
# Reproduction snippets: a name cannot inject code
# ---------------------------------------------------------------------------

INJECTED = "os import path\nimport subprocess\nsubprocess.run(['touch', 'pwned'])\nfrom os"


class EvilStr(str):
    def __repr__(self) -> str:
        return "'x')\nimport subprocess\n('"


def _tiny_problem():
    import numpy as np

    from gradverify.model.network import NetworkSpec, Problem

    spec = NetworkSpec(widths=(2, 1), activations=("sigmoid",), loss="bce")
    return Problem.from_arrays(
        spec,
        [np.array([[0.5, -0.25]])],
        [np.array([0.125])],
        np.array([[1.0], [2.0]]),
        np.array([[1.0]]),
        dtype="float64",
    )


def _statements(snippet: str) -> tuple[set[str], set[str]]:
    """(modules imported, names used) anywhere in the snippet's syntax tree."""
    tree = ast.parse(snippet)
    imported, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return imported, names


def _backprop(weights, biases, x, y, *, activations, loss):
    raise AssertionError("never called")


@pytest.mark.parametrize(
    "where", ["qualname", "module", "registered module", "name", "comment", "repr"]
)
def test_a_hostile_name_never_becomes_a_statement_of_the_snippet(monkeypatch, where):
    import functools
    import types

    from gradverify.engine.repro import reproduction_snippet

    impl = functools.wraps(_backprop)(lambda *a, **k: _backprop(*a, **k))
    hostile = "f\n" + INJECTED + "\r\n'\"\\\u2028\x00"
    kwargs: dict = {}
    if where == "qualname":
        impl.__qualname__ = hostile
    elif where == "module":
        impl.__module__ = hostile
    elif where == "registered module":  # importable under that name, so an import is tempting
        module = types.ModuleType(INJECTED)
        module.f = impl
        monkeypatch.setitem(sys.modules, INJECTED, module)
        impl.__module__, impl.__qualname__ = INJECTED, "f"
    elif where == "name":
        kwargs["name"] = hostile
    elif where == "comment":
        kwargs["comment"] = hostile
    else:
        kwargs["name"] = EvilStr("plain")
    snippet = reproduction_snippet(impl, _tiny_problem(), **kwargs)
    compile(snippet, "<snippet>", "exec")
    imported, names = _statements(snippet)
    assert imported <= {"numpy", "gradverify", "gradverify.model.network"}, snippet
    assert "subprocess" not in names, snippet
    assert "\x00" not in snippet
    if where == "name":
        (call,) = [
            n
            for n in ast.walk(ast.parse(snippet))
            if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "check_problem"
        ]
        assert {k.arg: k.value.value for k in call.keywords}["name"] == hostile
    if where == "repr":
        assert "name='plain'" in snippet


def test_a_snippet_of_an_importable_implementation_still_imports_it():
    from gradverify.engine.implementations import fused_bce_backprop
    from gradverify.engine.repro import reproduction_snippet

    snippet = reproduction_snippet(fused_bce_backprop, _tiny_problem())
    imported, _ = _statements(snippet)
    assert "gradverify.engine.implementations" in imported
    namespace: dict = {}
    exec(compile(snippet, "<snippet>", "exec"), namespace)  # runs on its own
    assert namespace["result"].verdict == "pass"


def test_the_plugin_fails_the_session_when_its_report_cannot_be_written(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(
        test_y="""
        from pathlib import Path
        from gradverify.engine.implementations import fused_bce_backprop

        def test_checks_then_puts_a_file_in_the_report_directory(gradverify):
            gradverify.check(fused_bce_backprop, dtypes=("float64",))
            Path("rep").mkdir()
            Path("rep", "notes.txt").write_text("mine")
    """
    )
    result = pytester.runpytest_inprocess(
        "--gradverify-report",
        "rep",
        "-p",
        "no:cacheprovider",
        "--gradverify-max-examples=5",
        "--gradverify-seed=1",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # every test passed, the report did not
    assert (
        f"gradverify report failed: OutputDirectoryError: refusing to replace "
        f"{pytester.path.resolve() / 'rep'}: it holds files gradverify did not write "
        "(notes.txt)"
    ) in result.stdout.str()
    assert (pytester.path / "rep" / "notes.txt").read_text() == "mine"
