"""README command 1 leaves the checkout clean: ``gradverify report`` with its default output
writes where git ignores it, and the committed sample report (``reports/``) is not touched.

Each test builds a git repository from this working tree's files (``.gitignore`` and the
committed sample; for the slow run every tracked file), commits them, runs the report
command there with no ``--out`` and asks ``git status --porcelain``. Git runs with no global
or system configuration, so a user's own ignore rules cannot hide a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gradverify.report
from gradverify.report import render_report
from gradverify.report.writer import DEFAULT_OUT_DIR
from tests.cli_helpers import run

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "reports"
DEFAULT_OUT = "gradverify-report"  # as the README names it


def _git_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    return env


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=_git_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout


def tracked(*paths: str) -> list[str]:
    """This checkout's tracked files (under ``paths``); skip outside a git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        listing = git(ROOT, "ls-files", "-z", "--", *paths)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"not a git checkout: {exc.stderr.strip()}")
    return [p for p in listing.split("\0") if p and (ROOT / p).is_file()]


def committed_copy(repo: Path, files: list[str]) -> Path:
    """A new repository at ``repo`` holding ``files`` as this working tree has them, committed."""
    for name in files:
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sample")
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    return repo


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_the_readme_names_the_default_output_and_how_the_sample_is_regenerated():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert DEFAULT_OUT_DIR == DEFAULT_OUT
    assert f"`{DEFAULT_OUT}/index.html`" in readme
    assert f"`{DEFAULT_OUT}/` is in `.gitignore`" in readme
    assert f"`gradverify report --out {SAMPLE}`" in readme


def test_the_report_command_writes_its_default_output_where_git_ignores_it(
    tmp_path, monkeypatch, capsys
):
    sample = tracked(SAMPLE)
    assert any(name.endswith("index.html") for name in sample), "no committed sample report"
    repo = committed_copy(tmp_path / "checkout", [".gitignore", *sample])
    before = snapshot(repo / SAMPLE)

    def small_report(out_dir, implementations=None, **kwargs):
        """The report command's run cut short: a real report of one precomputed check."""
        check = {
            "implementation": next(iter(implementations or {"fused": None})),
            "verdict": "pass",
            "dtype": "float64",
            "spec": None,
            "saturation": 1.0,
            "message": "",
            "diagnosis": [],
            "tensors": [],
            "worst": [],
        }
        return render_report(out_dir, check_results=[check], progress=False)

    monkeypatch.setattr(gradverify.report, "write_report", small_report)
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "report", "fused")
    assert code == 0, out
    written = repo / DEFAULT_OUT
    assert out.splitlines()[0] == f"gradverify report: written to {written.resolve()}"
    assert (written / "index.html").is_file() and (written / "report.json").is_file()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert snapshot(repo / SAMPLE) == before  # the committed sample is not rewritten


@pytest.mark.slow
def test_readme_command_1_leaves_a_fresh_checkout_clean(tmp_path):
    """The full default run (``gradverify report``, no option), as README command 1 runs it
    after installing, in a committed copy of every tracked file."""
    repo = committed_copy(tmp_path / "checkout", tracked())
    before = snapshot(repo / SAMPLE)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "gradverify"), "report"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # two built-ins fail on purpose
    assert f"written to {(repo / DEFAULT_OUT).resolve()}" in proc.stdout
    assert (repo / DEFAULT_OUT / "index.html").is_file()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert snapshot(repo / SAMPLE) == before
