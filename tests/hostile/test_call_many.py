"""Hostile implementations against many calls in a row (call_backprop_many, the scan's groups).

An implementation misbehaves on one marked problem of a list (``tests.strategies.MARK``): what it
does there is that call's outcome alone, a crash or a hang ends the list at that call, and
the calls after it work again (in a new worker). Time limits are a second or less.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from gradverify.engine.harness import CallFailure, call_backprop_many
from gradverify.engine.isolation import isolated
from gradverify.exploration.scan import ScanAborted, scan
from gradverify.model.network import Problem
from tests.hostile import backprops
from tests.hostile.test_isolation import assert_gone
from tests.strategies import called_directly
from tests.strategies import marked_problems as problems


def assert_right(outcome, problem: Problem) -> None:
    """The outcome holds the right gradients, from calling backprops.right directly."""
    assert outcome.ok, outcome.error
    dw, db = called_directly(backprops.right, problem)
    for got, expected in zip((*outcome.dweights, *outcome.dbiases), (*dw, *db), strict=True):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("marked", [0, 2, 5])
def test_an_exit_on_the_kth_call_ends_the_list_there_and_the_rest_runs_again(marked):
    batch = problems(6, marked)
    with isolated(backprops.exits_when_marked) as proxy:
        outcomes = call_backprop_many(proxy, batch, timeout=10)
        assert len(outcomes) == marked + 1
        for outcome, problem in zip(outcomes[:marked], batch, strict=False):
            assert_right(outcome, problem)
        assert outcomes[-1].failure is CallFailure.CRASHED
        assert outcomes[-1].error == (
            "crashed the worker process running it: it exited with code 0 (os._exit, or an "
            "exit from C code) during the call"
        )
        rest = call_backprop_many(proxy, batch[marked + 1 :], timeout=10)  # a new worker
        assert len(rest) == len(batch) - marked - 1
        for outcome, problem in zip(rest, batch[marked + 1 :], strict=True):
            assert_right(outcome, problem)


def test_a_hang_in_c_on_the_kth_call_ends_at_that_calls_time_limit():
    batch = problems(6, marked=2)
    with isolated(backprops.pauses_in_c_when_marked) as proxy:
        start = time.perf_counter()
        outcomes = call_backprop_many(proxy, batch, timeout=0.5)
        assert time.perf_counter() - start < 5
        assert [o.failure for o in outcomes] == [None, None, CallFailure.TIMED_OUT]
        assert outcomes[2].error == (
            "the call did not return within 0.5 s (per-call time limit); its worker process "
            "was killed"
        )
        for outcome, problem in zip(outcomes[:2], batch, strict=False):
            assert_right(outcome, problem)
        for outcome, problem in zip(
            call_backprop_many(proxy, batch[3:], timeout=0.5), batch[3:], strict=True
        ):
            assert_right(outcome, problem)


def test_the_time_limit_is_each_calls_own_in_a_worker_too():
    """Five calls of 0.3 s under a 0.5 s limit: the list takes 1.5 s, no call times out."""

    def takes_a_while(weights, biases, x, y, *, activations, loss):
        time.sleep(0.3)
        return backprops.right(weights, biases, x, y, activations=activations, loss=loss)

    batch = problems(5)
    with isolated(takes_a_while) as proxy:
        outcomes = call_backprop_many(proxy, batch, timeout=0.5)
    assert [o.failure for o in outcomes] == [None] * 5


@pytest.mark.parametrize("isolate", [False, True])
def test_an_exception_on_the_kth_call_is_that_calls_alone(isolate):
    batch = problems(6, marked=3)
    if isolate:
        with isolated(backprops.raises_when_marked) as proxy:
            outcomes = call_backprop_many(proxy, batch, timeout=10)
    else:
        outcomes = call_backprop_many(backprops.raises_when_marked, batch, timeout=10)
    assert len(outcomes) == len(batch)
    for k, (outcome, problem) in enumerate(zip(outcomes, batch, strict=True)):
        if k == 3:
            assert outcome.failure is CallFailure.RAISED
            assert outcome.error.startswith("raised ValueError: the marked problem (at ")
            assert "backprops.py" in outcome.error
        else:
            assert_right(outcome, problem)


@pytest.mark.parametrize("isolate", [False, True])
def test_megabytes_of_output_change_nothing(isolate, capfd):
    batch = problems(8)
    start = time.perf_counter()
    if isolate:
        with isolated(backprops.prints_megabytes) as proxy:
            outcomes = call_backprop_many(proxy, batch, timeout=10)
    else:
        outcomes = call_backprop_many(backprops.prints_megabytes, batch, timeout=10)
        out, err = capfd.readouterr()
        assert (out.count("x"), err.count("y")) == (8 * (2 << 20), 8 * (1 << 20))
    assert time.perf_counter() - start < 30
    for outcome, problem in zip(outcomes, batch, strict=True):
        assert_right(outcome, problem)


def test_a_real_ctrl_c_during_a_list_stops_and_kills_the_worker(tmp_path, monkeypatch):
    started = tmp_path / "started"
    monkeypatch.setenv(backprops.STARTED, str(started))  # the worker's environment is ours
    with isolated(backprops.pauses_in_c_when_marked) as proxy:
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                call_backprop_many(proxy, problems(4, marked=1), timeout=20)
        finally:
            timer.cancel()
    assert_gone(int(started.read_text()))


@pytest.mark.parametrize(
    ("impl", "isolate"),
    [(backprops.pauses_in_c_when_deep, True), (backprops.sleeps_when_deep, False)],
)
def test_a_scan_stops_after_three_hangs_where_it_calls_in_groups(impl, isolate):
    """The hidden-layer scan calls in groups; the third hang still ends the scan, not the
    group's last."""
    start = time.perf_counter()
    with pytest.raises(ScanAborted, match=r"did not return within 0\.3 s on 3 calls"):
        scan(impl, dtypes="float16", timeout=0.3, hidden_activations=("sigmoid",), isolate=isolate)
    assert time.perf_counter() - start < 12  # a whole group of hangs: over a minute
