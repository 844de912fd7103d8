"""examples/external_project: a user's project checked by the plugin and by `gradverify check`.

The example is copied to a temporary directory and run there as its own project (its own
pyproject.toml, rootdir and [tool.gradverify]), in subprocesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradverify.edges.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "external_project"


@pytest.fixture
def example(tmp_path):
    dest = tmp_path / "external_project"
    shutil.copytree(
        EXAMPLE,
        dest,
        ignore=shutil.ignore_patterns(
            ".hypothesis", "__pycache__", ".pytest_cache", "*.xml", "gradverify.json"
        ),
    )
    return dest


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    env["CI"] = "true"  # derandomized searches, no example database in the copy
    return env


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradverify", "check", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_example_is_a_separate_project_depending_on_gradverify():
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert project["project"]["name"] != "gradverify"
    deps = [
        *project["project"].get("dependencies", []),
        *sum(project["project"].get("optional-dependencies", {}).values(), []),
    ]
    assert any(d.split(">")[0].split("=")[0].strip() == "gradverify" for d in deps)
    config = load_config(EXAMPLE / "pyproject.toml")
    assert [e.target for e in config.implementations] == ["mlp_backprop:backprop"]
    assert "import gradverify" not in (EXAMPLE / "mlp_backprop.py").read_text()


WORKFLOW = EXAMPLE / ".github" / "workflows" / "gradient-check.yml"


def test_the_workflow_runs_gradverify_check():
    lines = [line.strip() for line in WORKFLOW.read_text().splitlines()]
    assert any(line.startswith("run: gradverify check") for line in lines)
    assert "run: python -m pytest" in lines


def test_the_workflow_is_valid_yaml_with_the_steps():
    yaml = pytest.importorskip("yaml", reason="PyYAML parses the workflow file")
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = [s.get("run", "") for s in steps]
    assert any(r.startswith("gradverify check") for r in runs)
    assert any("pytest" in r for r in runs)
    assert any(s.get("uses", "").startswith("actions/checkout") for s in steps)


def test_example_tests_pass_with_the_fixture(example):
    proc = run_pytest(example, "--gradverify-max-examples", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert "gradverify: 2 check(s)" in proc.stdout
    assert (
        "PASS      tests/test_gradients.py::test_backprop_matches_exact_gradients  "
        "mlp_backprop:backprop" in proc.stdout
    )


def test_gradverify_check_uses_the_example_config(example):
    proc = run_check(example, "--max-examples", "10", "--junit-xml", "junit.xml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gradverify search: mlp_backprop:backprop -> PASS (float32, float64;" in proc.stdout
    cases = ET.parse(example / "junit.xml").getroot().iter("testcase")
    assert sorted(c.get("name") for c in cases) == ["float32", "float64"]


def test_a_bug_planted_in_the_example_is_caught_by_both(example):
    source = example / "mlp_backprop.py"
    text = source.read_text()
    buggy = text.replace(
        "delta = (weights[i].T @ delta) * derivative(hs[i - 1])",
        "delta = (weights[i].T @ delta)  # derivative forgotten",
    )
    assert buggy != text
    source.write_text(buggy)
    proc = run_pytest(example, "--gradverify-max-examples", "10", "-k", "matches_exact")
    assert proc.returncode == 1
    assert "mlp_backprop:backprop -> INCORRECT" in proc.stdout
    assert "reproduce with:" in proc.stdout
    proc = run_check(example, "--max-examples", "10")
    assert proc.returncode == 1
    assert "mlp_backprop:backprop -> INCORRECT" in proc.stdout
