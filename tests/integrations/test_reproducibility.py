"""A seed reproduces: the same seed gives byte-identical results, timings apart, run after run.

Each run is a fresh process in the same working directory, outside CI, so Hypothesis's
default example database (``.hypothesis/examples``) would be there to replay the previous
run's failures first: with a given seed it must not be. The implementation is the naive
built-in, which fails, so that shrinking, the threshold bisection and the hints all run.
Only the ``elapsed_seconds`` values are masked before the bytes are compared.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SEED = "7"
MAX_EXAMPLES = "8"
DTYPES = ("float16",)
TIMINGS = re.compile(rb'("elapsed_seconds": )[-+0-9.eE]+')


def masked(data: bytes) -> bytes:
    """The JSON text with every timing replaced by 0; it must contain timings to mask."""
    out, count = TIMINGS.subn(rb"\g<1>0", data)
    assert count > 0, "no elapsed_seconds in the output: update the mask"
    return out


def assert_same(first: bytes, second: bytes) -> None:
    """Byte-identical after masking; otherwise fail showing the first lines that differ."""
    a, b = masked(first), masked(second)
    if a != b:
        diff = difflib.unified_diff(
            a.decode().splitlines(),
            b.decode().splitlines(),
            "first run",
            "second run",
            lineterm="",
            n=1,
        )
        pytest.fail("the same seed gave different results:\n" + "\n".join(list(diff)[:40]))


def local_env() -> dict[str, str]:
    """The environment of a developer's machine: not CI, so the example database is on."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")
    }


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=local_env(),
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_cli_check_with_a_seed_writes_the_same_json_twice(tmp_path):
    outputs = []
    for name in ("first.json", "second.json"):
        proc = run(
            [
                "-m",
                "gradverify",
                "check",
                "naive",
                "--seed",
                SEED,
                "--max-examples",
                MAX_EXAMPLES,
                "--dtypes",
                ",".join(DTYPES),
                "--json",
                name,
            ],
            tmp_path,
        )
        assert proc.returncode == 1, proc.stderr.decode()  # naive is unstable
        outputs.append((tmp_path / name).read_bytes())
    assert b'"verdict": "unstable"' in outputs[0] and b'"database": null' in outputs[0]
    assert_same(*outputs)


API_SCRIPT = textwrap.dedent(f"""
    import json, sys
    import gradverify
    from gradverify.engine.implementations import naive_bce_backprop

    for out in sys.argv[1:]:  # several searches in one process: each the same
        result = gradverify.check(naive_bce_backprop, seed={SEED}, max_examples={MAX_EXAMPLES},
                                  dtypes={DTYPES!r})
        with open(out, "w") as f:
            json.dump(result.to_dict(), f, indent=2, allow_nan=False)
""")


def test_api_search_with_a_seed_gives_the_same_result_in_and_across_processes(tmp_path):
    (tmp_path / "search_twice.py").write_text(API_SCRIPT, encoding="utf-8")
    names = [["a1.json", "a2.json"], ["b1.json", "b2.json"]]
    for pair in names:
        proc = run(["search_twice.py", *pair], tmp_path)
        assert proc.returncode == 0, proc.stderr.decode()
    first, *others = [(tmp_path / n).read_bytes() for pair in names for n in pair]
    assert b'"verdict": "unstable"' in first
    for other in others:
        assert_same(first, other)


PLUGIN_TEST = textwrap.dedent(f"""
    import json, os
    from gradverify.engine.implementations import naive_bce_backprop

    def test_naive(gradverify):
        result = gradverify.check(naive_bce_backprop, dtypes={DTYPES!r}, fail_on="incorrect")
        with open(os.environ["GRADVERIFY_RESULT_FILE"], "w") as f:
            json.dump(result.to_dict(), f, indent=2, allow_nan=False)
""")


def test_plugin_fixture_with_a_seed_gives_the_same_result_twice(pytester, monkeypatch):
    for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_sample=PLUGIN_TEST)
    outputs = []
    for name in ("first.json", "second.json"):
        monkeypatch.setenv("GRADVERIFY_RESULT_FILE", str(pytester.path / name))
        result = pytester.runpytest_subprocess(
            f"--gradverify-seed={SEED}",
            f"--gradverify-max-examples={MAX_EXAMPLES}",
            "-p",
            "no:cacheprovider",
        )
        result.assert_outcomes(passed=1)
        outputs.append((pytester.path / name).read_bytes())
    assert b'"verdict": "unstable"' in outputs[0]
    assert_same(*outputs)
