"""Hostile implementations against the harness, the worker processes, the CLI and pytest.

Each test names the exact outcome: the verdict, the kind of call failure and what the
message says. Time limits are a second or less, so the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest

import gradverify
from gradverify.engine.check import check_problem
from gradverify.engine.harness import CallFailure, call_backprop
from gradverify.engine.isolation import IsolationError, isolated
from gradverify.engine.results import Verdict
from gradverify.exploration.scan import ScanAborted, scan
from gradverify.model.network import NetworkSpec, Problem
from tests.hostile import backprops

HERE = Path(__file__).parent
GRADVERIFY = [sys.executable, "-m", "gradverify"]  # the command, as the console script runs it
FAST_SEARCH = ("--max-examples", "5", "--seed", "1")


@pytest.fixture
def problem() -> Problem:
    spec = NetworkSpec((2, 1), ("sigmoid",), "bce")
    return Problem.from_arrays(
        spec,
        [np.array([[0.5, -0.25]])],
        [np.array([0.125])],
        np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]),
        np.array([[1.0, 0.0, 1.0]]),
        "float64",
    )


def error_of(impl, problem, **options):
    """check_problem's error verdict: (call_failure, message)."""
    result = check_problem(impl, problem, **options)
    assert result.verdict is Verdict.ERROR, str(result)
    return result.call_failure, result.message


# ---------------------------------------------------------------------------
# Ending the process: an error verdict naming what happened, never the end of the run
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [False, True])
def test_sys_exit_is_an_error_verdict(problem, isolate):
    failure, message = error_of(backprops.calls_sys_exit, problem, isolate=isolate)
    assert failure == CallFailure.RAISED
    assert "raised SystemExit(0) (sys.exit)" in message
    assert "backprops.py" in message  # where it was raised


@pytest.mark.parametrize(
    ("impl", "expected"),
    [
        (backprops.calls_os_exit, "it exited with code 0 (os._exit, or an exit from C code)"),
        (backprops.segfaults, "it was killed by signal SIGSEGV (Segmentation fault)"),
        (backprops.kills_itself, "it was killed by signal SIGKILL (Killed)"),
    ],
)
def test_a_dead_worker_is_an_error_verdict_naming_the_exit_or_the_signal(problem, impl, expected):
    failure, message = error_of(impl, problem, isolate=True)
    assert failure == CallFailure.CRASHED
    assert message == (
        f"tests.hostile.backprops:{impl.__name__} crashed the worker process "
        f"running it: {expected} during the call"
    )


@pytest.mark.parametrize("isolate", [False, True])
def test_keyboard_interrupt_raised_by_the_code_is_an_error_not_an_abort(problem, isolate):
    failure, message = error_of(backprops.raises_keyboard_interrupt, problem, isolate=isolate)
    assert failure == CallFailure.RAISED
    assert "raised KeyboardInterrupt (at " in message


def test_a_real_ctrl_c_during_an_in_process_call_still_stops(problem):
    with pytest.raises(KeyboardInterrupt):
        check_problem(backprops.presses_ctrl_c, problem)


def test_a_real_ctrl_c_while_a_worker_hangs_stops_and_kills_the_worker(
    problem, tmp_path, monkeypatch
):
    started = tmp_path / "started"
    monkeypatch.setenv(backprops.STARTED, str(started))  # the worker's environment is ours
    with isolated(backprops.pauses_in_c) as proxy:
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                call_backprop(proxy, problem, timeout=20)
        finally:
            timer.cancel()
    assert_gone(int(started.read_text()))


def assert_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still there")


# ---------------------------------------------------------------------------
# Hanging: killed at the per-call time limit, even in C code
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "impl",
    [backprops.locks_a_mutex_twice, backprops.pauses_in_c, backprops.swallows_the_time_limit],
)
def test_a_hang_ends_at_the_time_limit_as_an_error(problem, impl):
    start = time.perf_counter()
    failure, message = error_of(impl, problem, isolate=True, timeout=0.5)
    assert time.perf_counter() - start < 5
    assert failure == CallFailure.TIMED_OUT
    assert message.endswith(
        "the call did not return within 0.5 s (per-call time limit); its worker process was killed"
    )


def test_a_swallowed_time_limit_in_process_is_still_a_time_out(problem, monkeypatch):
    """In-process the alarm is caught by the code; the call is late all the same."""

    def slow_then_right(weights, biases, x, y, *, activations, loss):
        try:
            time.sleep(1)
        except BaseException:  # noqa: BLE001, S110 - the alarm, swallowed
            pass
        return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    failure, message = error_of(slow_then_right, problem, timeout=0.2)
    assert failure == CallFailure.TIMED_OUT
    assert "did not return within 0.2 s" in message


def test_the_worker_is_started_again_after_a_crash(problem, tmp_path):
    marker = tmp_path / "crashed once"

    def crashes_once(weights, biases, x, y, *, activations, loss):
        if not marker.exists():
            marker.touch()
            os._exit(3)
        return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    with isolated(crashes_once) as proxy:
        first = call_backprop(proxy, problem)
        assert first.failure == CallFailure.CRASHED and "exited with code 3" in first.error
        assert call_backprop(proxy, problem, repeat=2).ok  # in a new worker


def test_code_sent_by_value_keeps_its_file_in_messages_and_warnings(problem):
    def closure(weights, biases, x, y, *, activations, loss):
        warnings.warn("a closure's warning", UserWarning, stacklevel=1)
        raise ValueError("from a closure")

    failure, message = error_of(closure, problem, isolate=True)
    assert failure == CallFailure.RAISED
    assert f"raised ValueError: from a closure (at {__file__}:" in message
    result = check_problem(closure, problem, isolate=True)
    assert [Path(w.filename).name for w in result.warnings] == ["test_isolation.py"]


def test_an_isolated_implementation_may_start_processes_of_its_own(problem):
    def uses_a_process_pool(weights, biases, x, y, *, activations, loss):
        import concurrent.futures
        import multiprocessing

        with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("fork")
        ) as pool:
            assert pool.submit(abs, -2).result() == 2
        return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    assert check_problem(uses_a_process_pool, problem, isolate=True).verdict is Verdict.PASS


def test_a_left_behind_thread_dies_with_the_worker(problem):
    before = threading.active_count()
    result = check_problem(backprops.leaves_a_thread, problem, isolate=True)
    assert result.verdict is Verdict.PASS
    assert threading.active_count() == before


# ---------------------------------------------------------------------------
# Global state: none of it reaches the next check or gradverify's own arithmetic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [False, True])
def test_global_state_changed_by_the_code_is_put_back(problem, isolate):
    cwd, errstate, filters = os.getcwd(), np.geterr(), list(warnings.filters)
    prec = mpmath.mp.prec
    result = check_problem(backprops.changes_global_state, problem, isolate=isolate)
    assert result.verdict is Verdict.PASS, str(result)
    assert (os.getcwd(), np.geterr(), warnings.filters, mpmath.mp.prec) == (
        cwd,
        errstate,
        filters,
        prec,
    )
    assert check_problem(gradverify.naive_bce_backprop, problem).verdict is Verdict.PASS


def test_numpy_raise_set_by_the_caller_changes_no_verdict(problem):
    options = {"max_examples": 10, "seed": 3, "dtypes": ("float16",), "database": None}
    expected = [
        gradverify.search(impl, **options).verdict
        for impl in (gradverify.naive_bce_backprop, gradverify.fused_bce_backprop)
    ]
    assert expected == [Verdict.UNSTABLE, Verdict.PASS]
    with np.errstate(all="raise"):
        got = [
            gradverify.search(impl, **options).verdict
            for impl in (gradverify.naive_bce_backprop, gradverify.fused_bce_backprop)
        ]
        # gradverify's own float16 rounding of a value that underflows
        tiny = Problem.from_arrays(
            problem.spec, [np.array([[1e-30, 1.0]])], [np.zeros(1)], problem.x, problem.y, "float16"
        )
        assert tiny.weights[0][0, 0] == 0
    assert got == expected


def test_the_callers_numpy_error_state_is_the_codes_own(problem):
    """The code sees the caller's np.seterr, in-process and in a worker alike."""

    def overflows(weights, biases, x, y, *, activations, loss):
        np.exp(np.full(2, 1000.0))
        return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    for isolate in (False, True):
        with np.errstate(over="raise"):
            failure, message = error_of(overflows, problem, isolate=isolate)
        assert failure == CallFailure.RAISED
        assert "raised FloatingPointError: overflow encountered in exp" in message


# ---------------------------------------------------------------------------
# Warnings: collected, and shown once per source location with a count
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [False, True])
def test_warnings_are_counted_per_location(problem, isolate):
    result = check_problem(backprops.warns_on_overflow, problem, isolate=isolate)
    assert result.verdict is Verdict.PASS
    [w] = result.warnings
    assert (w.category, w.message, Path(w.filename).name, w.count) == (
        "RuntimeWarning",
        "overflow encountered in exp",
        "backprops.py",
        2,
    )  # repeat=2
    text = str(result)
    assert text.count("overflow encountered in exp") == 1
    assert f"backprops.py:{w.lineno}: RuntimeWarning: overflow encountered in exp (2 times)" in text
    assert result.to_dict()["warnings"] == [w.to_dict()]


def test_a_search_sums_the_warnings_of_every_check():
    result = gradverify.search(backprops.warns_on_overflow, max_examples=5, seed=1, database=None)
    [w] = result.warnings
    assert w.count >= 2 * result.examples  # two calls per example, more to shrink
    assert str(result).count("overflow encountered in exp") == 1
    assert result.to_dict()["warnings"][0]["count"] == w.count


# ---------------------------------------------------------------------------
# Malformed answers and changed inputs: blamed on the right thing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [False, True])
@pytest.mark.parametrize(
    ("impl", "expected"),
    [
        (
            backprops.returns_masked_arrays,
            "expected dweights[0] to be a plain numpy array; got a masked array",
        ),
        (
            backprops.appends_to_weights,
            "modified its input list weights in place: appended to it "
            "(1 arrays before the call, 2 after)",
        ),
        (
            backprops.clears_biases,
            "modified its input list biases in place: emptied it (1 arrays "
            "before the call, 0 after)",
        ),
        (
            backprops.replaces_a_weight,
            "modified its input list weights in place: replaced weights[0]",
        ),
        (backprops.zeroes_y, "modified its input y in place"),
        (
            backprops.answers_at_random,
            "is nondeterministic: two calls on the same input returned different dweights[0]",
        ),
    ],
)
def test_malformed_answers_name_what_is_wrong(problem, impl, expected, isolate):
    failure, message = error_of(impl, problem, isolate=isolate)
    assert failure == CallFailure.MALFORMED
    assert expected in message


def test_x_and_y_the_same_array(problem):
    spec = NetworkSpec((2, 2), ("identity",), "mse")
    x = np.array([[0.5, -1.0], [0.25, 2.0]])
    same = Problem.from_arrays(spec, [np.eye(2) / 2], [np.zeros(2)], x, x)

    def writes_x(weights, biases, x, y, *, activations, loss):
        x += 1
        return [np.zeros((2, 2))], [np.zeros(2)]

    failure, message = error_of(writes_x, same)
    assert failure == CallFailure.MALFORMED
    assert message.endswith(
        "test_x_and_y_the_same_array.<locals>.writes_x modified its input x in place"
    )
    ok = check_problem(gradverify.engine.implementations.stable_backprop, same)
    assert ok.verdict is Verdict.PASS


# ---------------------------------------------------------------------------
# The worker process itself
# ---------------------------------------------------------------------------


def test_breakpoint_in_a_worker_says_how_to_debug(problem):
    failure, message = error_of(backprops.calls_breakpoint, problem, isolate=True)
    assert failure == CallFailure.RAISED
    assert "breakpoint() was called in the implementation" in message
    assert "--no-isolate" in message


def test_an_implementation_that_cannot_be_sent_to_a_worker(problem):
    lock = threading.Lock()

    def holds_a_lock(weights, biases, x, y, *, activations, loss):
        with lock:
            return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    with pytest.raises(
        IsolationError,
        match=r"cannot run .*holds_a_lock in a worker process: "
        r".*lock.*; pass isolate=False",
    ):
        check_problem(holds_a_lock, problem, isolate=True)
    assert check_problem(holds_a_lock, problem).verdict is Verdict.PASS


def test_the_isolated_wrapper_is_a_backprop(problem):
    with isolated(backprops.right) as proxy:
        assert (
            gradverify.engine.implementations.implementation_name(proxy)
            == "tests.hostile.backprops:right"
        )
        dw, db = proxy(
            [*problem.weights],
            [*problem.biases],
            problem.x,
            problem.y,
            activations=("sigmoid",),
            loss="bce",
        )
        expected = backprops.right(
            [*problem.weights],
            [*problem.biases],
            problem.x,
            problem.y,
            activations=("sigmoid",),
            loss="bce",
        )
        assert np.array_equal(dw[0], expected[0][0]) and np.array_equal(db[0], expected[1][0])


def test_a_scan_stops_after_three_crashes():
    with pytest.raises(ScanAborted, match="segfaults crashed its worker process on 3 calls"):
        scan(backprops.segfaults, dtypes="float16", isolate=True)


# ---------------------------------------------------------------------------
# The command line: the parent owns the exit status and every output file
# ---------------------------------------------------------------------------


def cli(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GRADVERIFY, *args], cwd=HERE, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def test_cli_os_exit_is_exit_1_with_an_error_verdict_in_json(tmp_path):
    out = tmp_path / "out.json"
    proc = cli(
        "check", "backprops:calls_os_exit", "backprops:right", *FAST_SEARCH, "--json", str(out)
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    assert [r["verdict"] for r in doc["results"]] == ["error", "pass"]
    failure = doc["results"][0]["counterexample"]
    assert failure["call_failure"] == "crashed"
    assert "exited with code 0" in failure["message"]
    assert "1 pass, 1 error" in proc.stdout
    # replaying the crash runs it in a worker too, so it cannot take the reader's
    # interpreter down: the snippet's verdict comes back as the same error
    snippet = doc["results"][0]["reproduction"]
    assert "isolate=True" in snippet and 'if __name__ == "__main__":' in snippet
    script = tmp_path / "replay.py"
    script.write_text(snippet)
    env = {**os.environ, "PYTHONPATH": str(HERE)}  # where the snippet imports backprops
    replay = subprocess.run(
        [sys.executable, str(script)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert replay.returncode == 0, replay.stderr
    assert "-> ERROR" in replay.stdout and "exited with code 0" in replay.stdout


def test_cli_c_level_hang_is_an_error_at_the_time_limit(tmp_path):
    out = tmp_path / "out.json"
    start = time.perf_counter()
    proc = cli(
        "check", "backprops:locks_a_mutex_twice", *FAST_SEARCH, "--timeout", "1", "--json", str(out)
    )
    assert time.perf_counter() - start < 60
    assert proc.returncode == 1, proc.stderr
    [result] = json.loads(out.read_text())["results"]
    assert result["verdict"] == "error"
    assert result["counterexample"]["call_failure"] == "timed_out"
    assert "did not return within 1 s (per-call time limit)" in proc.stdout


@pytest.mark.parametrize("mode", ["--isolate", "--no-isolate"])
def test_cli_left_behind_thread_does_not_block_exit(mode):
    proc = cli("check", "backprops:leaves_a_thread", *FAST_SEARCH, mode, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 pass" in proc.stdout


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import sys\nsys.exit(0)", "it called sys.exit(0) while being imported"),
        ("import os\nos._exit(0)", "the worker process loading it exited with code 0"),
    ],
)
def test_cli_module_that_exits_at_import_is_a_usage_error(tmp_path, code, expected):
    (tmp_path / "exits_on_import.py").write_text(code + "\n\ndef backprop(*a, **k):\n    pass\n")
    proc = subprocess.run(
        [*GRADVERIFY, "check", "exits_on_import:backprop", "--json", "o.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_real_ctrl_c_exits_130_and_leaves_no_worker(tmp_path):
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [
            *GRADVERIFY,
            "check",
            "backprops:pauses_in_c",
            *FAST_SEARCH,
            "--timeout",
            "60",
            "--json",
            str(tmp_path / "o.json"),
        ],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, backprops.STARTED: str(started)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the implementation was never called"
        time.sleep(0.2)  # the pid is written
        worker = int(started.read_text())
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in err
    assert not (tmp_path / "o.json").exists()
    assert_gone(worker)


# ---------------------------------------------------------------------------
# pytest and pytest-xdist
# ---------------------------------------------------------------------------

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(backprops=(HERE / "backprops.py").read_text())
    pytester.makeini("[pytest]\npythonpath = .\n")
    return pytester


def test_pytest_n2_hangs_end_at_the_time_limit_and_a_crash_keeps_finished_checks(suite):
    """One ``pytest -n 2`` run: a C-level hang is an error at the 1 s time limit, and the
    worker that crashes (in test_b, after test_a's check) loses nothing test_a found.

    xdist sends the first two tests to one worker and the next two to the other."""
    pytest.importorskip("xdist")
    suite.makepyfile(
        test_1_crash="""
        import os
        import backprops

        def test_a(gradverify):
            gradverify.check(backprops.right)

        def test_b_crashes_the_worker():
            os._exit(1)
    """,
        test_2_hang="""
        import backprops

        def test_hangs(gradverify):
            gradverify.check(backprops.locks_a_mutex_twice)

        def test_right(gradverify):
            gradverify.check(backprops.right)
    """,
    )
    start = time.perf_counter()
    result = suite.runpytest_subprocess(
        "-n",
        "2",
        "--gradverify-timeout=1",
        "--gradverify-max-examples=3",
        "--gradverify-seed=1",
        "--gradverify-report",
        "rep",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    assert time.perf_counter() - start < 60
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "did not return within 1 s (per-call time limit); its worker process was killed" in out
    summary = [line for line in out.splitlines() if line.split()[:1] in (["PASS"], ["ERROR"])]
    assert [line.split()[:2] for line in summary] == [
        ["PASS", "test_1_crash.py::test_a"],
        ["ERROR", "test_2_hang.py::test_hangs"],
        ["PASS", "test_2_hang.py::test_right"],
        ["ERROR", "test_1_crash.py::test_b_crashes_the_worker"],
    ]
    assert "crashed while running 'test_1_crash.py::test_b_crashes_the_worker'" in summary[-1]
    doc = json.loads((suite.path / "rep" / "report.json").read_text())
    assert len(doc["results"]["searches"]) == 3


def test_numpy_raise_in_a_conftest_leaves_every_verdict_identical(suite):
    """The built-ins' verdicts (fused passes, naive is unstable in float16) under a conftest
    that makes numpy raise on every floating-point error, in the test process and before
    any gradverify import."""
    suite.makeconftest("import numpy as np\nnp.seterr(all='raise')\n")
    suite.makepyfile(
        test_builtins="""
        import numpy as np
        import pytest
        from gradverify import fused_bce_backprop, naive_bce_backprop

        @pytest.mark.parametrize("impl", [naive_bce_backprop, fused_bce_backprop])
        def test_builtin(gradverify, impl):
            assert np.geterr()["under"] == "raise"
            gradverify.check(impl, dtypes=("float16",))
    """
    )
    result = suite.runpytest_subprocess(
        "--gradverify-max-examples=5", "--gradverify-seed=2", "-p", "no:cacheprovider", timeout=300
    )
    lines = result.stdout.str().splitlines()
    verdicts = [
        line.split()[:2]
        for line in lines
        if line.split()[:1] in (["PASS"], ["UNSTABLE"], ["INCORRECT"], ["ERROR"])
    ]
    assert verdicts == [
        ["PASS", "test_builtins.py::test_builtin[fused_bce_backprop]"],
        ["UNSTABLE", "test_builtins.py::test_builtin[naive_bce_backprop]"],
    ]
    result.assert_outcomes(passed=1, failed=1)  # naive: unstable fails under the default


def test_a_report_that_cannot_be_written_at_the_end_fails_the_session(suite):
    suite.makepyfile(
        test_breaks_the_report="""
        import shutil
        import backprops

        def test_right(gradverify):
            gradverify.check(backprops.right)
            shutil.rmtree("out")
            with open("out", "w") as f:  # the report's parent is now a file
                f.write("in the way")
    """
    )
    (suite.path / "out").mkdir()
    result = suite.runpytest_subprocess(
        "--gradverify-max-examples=3",
        "--gradverify-seed=1",
        "--gradverify-report",
        "out/rep",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    result.assert_outcomes(passed=1)
    assert result.ret != 0
    assert "gradverify report failed:" in result.stdout.str()


def test_fixture_isolates_unless_told_or_debugging(suite):
    suite.makepyfile(
        test_default="""
        import sys

        def test_default(gradverify):
            assert gradverify.isolate is True
            sys.settrace(lambda *a: None)  # what a debugger does
            try:
                assert gradverify.isolate is False
            finally:
                sys.settrace(None)
    """,
        test_marked="""
        import pytest

        @pytest.mark.gradverify(isolate=False)
        def test_marked(gradverify):
            assert gradverify.isolate is False
    """,
    )
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    off = suite.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gradverify-no-isolate", "-k", "default"
    )
    off.assert_outcomes(failed=1)  # isolate is False from the start there
    assert "assert False is True" in off.stdout.str()
