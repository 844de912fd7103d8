"""The examples in README.md run as written, parsed and evaluated by Sybil.

Python blocks run top to bottom in one namespace, as a reader runs them; ``bash`` blocks run
in a scratch project directory with this environment's ``gradverify`` first on PATH, and a
``toml`` block becomes that project's ``pyproject.toml``. Names a block leaves to the reader
(``loss_fn``, ``Network``, ...) are defined in ``<!-- invisible-code-block: python -->``
comments just before it, with the helpers below. A block that cannot run in the suite is
marked in the README itself with Sybil's ``<!-- skip: next "reason" -->``; the blocks that
run for minutes are skipped only outside ``pytest -m slow`` (``if(not slow_examples, ...)``).

The README is one test, not one per block: the blocks build on each other, and pytest-xdist
would send separate items to separate workers. It runs in a fresh interpreter, as a reader
runs it: nothing another test imported or configured (jax's float64 switch, submodules
already loaded) leaks in. Every failing block is reported, with its README line.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import traceback
import unittest
from pathlib import Path
from typing import Any

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

README = Path(__file__).resolve().parents[2] / "README.md"
PYTEST_MAX_EXAMPLES = 20  # for the plugin example's session (the examples set no budget)
REPORT_START = "=== README examples ==="


def _environment() -> dict[str, str]:
    """This interpreter's scripts (``gradverify``, ``python``) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class _Project:
    """The scratch directory the shell and configuration examples run in."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write_file(self, name: str, text: str) -> None:
        """Write ``text`` to ``name`` inside the project (for invisible setup blocks)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def run_shell(self, example: Example) -> str | None:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", example.parsed],
            cwd=self.path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            return (
                f"exit code {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
                f"\n--- stderr\n{proc.stderr[-3000:]}"
            )
        return None

    def write_pyproject(self, example: Example) -> None:
        from gradverify.edges.config import load_config

        self.write_file("pyproject.toml", example.parsed)
        load_config(self.path / "pyproject.toml")  # a wrong key fails here, naming it

    def run_as_pytest(self, *tests: Any, setup: str = "") -> None:
        """Run test functions defined by a README block in a real pytest session."""
        sources = [textwrap.dedent(inspect.getsource(test)) for test in tests]
        self.write_file(
            "test_readme_example.py", "\n\n".join(["import pytest", setup, *sources]) + "\n"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                f"--gradverify-max-examples={PYTEST_MAX_EXAMPLES}",
                "test_readme_example.py",
            ],
            cwd=self.path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"{len(tests)} passed" in proc.stdout, proc.stdout[-3000:]


def _evaluate_readme(project: _Project, *, slow_examples: bool) -> tuple[list[str], list[str]]:
    """Evaluate every README example in order: (failures, skips), each naming its line."""
    sybil = Sybil(
        parsers=[
            PythonCodeBlockParser(),
            CodeBlockParser("bash", project.run_shell),
            CodeBlockParser("toml", project.write_pyproject),
            SkipParser(),
        ]
    )
    document = sybil.parse(README)
    document.namespace.update(
        slow_examples=slow_examples,
        write_file=project.write_file,
        run_as_pytest=project.run_as_pytest,
    )
    failures, skips = [], []
    examples = list(document.examples())
    assert len(examples) >= 10, "Sybil found too few README examples: is the parser set up?"
    for example in examples:
        try:
            example.evaluate()
        except unittest.SkipTest as skip:
            skips.append(f"README.md line {example.line}: {skip}")
        except Exception as exc:  # noqa: BLE001 - every failing block is reported
            detail = "".join(traceback.format_exception(exc))
            failures.append(f"README.md line {example.line}:\n{detail}")
    return failures, skips


def _check_readme(tmp_path: Path, *, slow: bool) -> None:
    """Run this file as a script on the README, in ``tmp_path``; fail with its report."""
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), *(["--slow"] if slow else [])],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    report = proc.stdout[proc.stdout.find(REPORT_START) :] if REPORT_START in proc.stdout else ""
    print(report)
    if proc.returncode != 0 or not report:
        pytest.fail(f"{report or proc.stdout[-5000:]}\n{proc.stderr[-5000:]}", pytrace=False)


def test_readme_examples_run(tmp_path):
    _check_readme(tmp_path, slow=False)


@pytest.mark.slow
def test_readme_examples_run_with_the_slow_ones(tmp_path):
    _check_readme(tmp_path, slow=True)


if __name__ == "__main__":  # python tests/test_readme.py PROJECT_DIR [--slow]
    project = Path(sys.argv[1])
    os.chdir(project)  # whatever an example writes lands here
    failures, skips = _evaluate_readme(_Project(project), slow_examples="--slow" in sys.argv)
    print("\n".join([REPORT_START, "skipped README examples:", *skips]))
    if failures:
        print(f"{len(failures)} README example(s) failed:\n\n" + "\n\n".join(failures))
    sys.exit(1 if failures else 0)
