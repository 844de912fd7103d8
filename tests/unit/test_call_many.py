"""call_backprop_many in this process: every call made and judged as call_backprop makes it.

The expected gradients are the implementation's own answers, called directly on copies;
the expected failures are the ones each implementation is written to produce on one
marked problem of the list (the ``MARK`` bias), wherever it stands in the list.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import mpmath
import numpy as np
import pytest

from gradverify.engine.harness import (
    STOPPING_FAILURES,
    CallFailure,
    call_backprop,
    call_backprop_many,
)
from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop
from tests.strategies import MARK, called_directly
from tests.strategies import marked_problems as problems


def is_marked(biases) -> bool:
    return float(biases[0][0]) == MARK


def assert_answers(outcome, impl, problem) -> None:
    assert outcome.ok, outcome.error
    dw, db = called_directly(impl, problem)
    for got, expected in zip((*outcome.dweights, *outcome.dbiases), (*dw, *db), strict=True):
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected, equal_nan=True)


@pytest.mark.parametrize("impl", [naive_bce_backprop, fused_bce_backprop])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_every_answer_is_the_implementations_own(impl, dtype):
    batch = problems(9, dtype=dtype)
    outcomes = call_backprop_many(impl, batch, timeout=10)
    assert len(outcomes) == len(batch)
    for outcome, problem in zip(outcomes, batch, strict=True):
        assert_answers(outcome, impl, problem)
        assert outcome.failure is None and outcome.warnings == ()


def test_an_empty_list_makes_no_call():
    assert call_backprop_many(naive_bce_backprop, [], timeout=10) == []


def raises_when_marked(weights, biases, x, y, *, activations, loss):
    if is_marked(biases):
        raise ValueError("the marked problem")
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def writes_into_x_when_marked(weights, biases, x, y, *, activations, loss):
    result = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    if is_marked(biases):
        x[0, 0] = 7.0
    return result


def returns_a_list_when_marked(weights, biases, x, y, *, activations, loss):
    if is_marked(biases):
        return [1, 2, 3]
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


@pytest.mark.parametrize(
    ("impl", "failure", "message"),
    [
        (raises_when_marked, CallFailure.RAISED, "raised ValueError: the marked problem (at "),
        (writes_into_x_when_marked, CallFailure.MALFORMED, "modified its input x in place"),
        (
            returns_a_list_when_marked,
            CallFailure.MALFORMED,
            "expected (dweights, dbiases): two sequences of 1 arrays each, in float64; got "
            "a list of length 3",
        ),
    ],
)
@pytest.mark.parametrize("marked", [0, 3, 6])
def test_a_failure_is_that_calls_alone_and_the_calls_go_on(impl, failure, message, marked):
    batch = problems(7, marked)
    outcomes = call_backprop_many(impl, batch, timeout=10)
    assert len(outcomes) == len(batch)  # not a stopping failure: every problem is called
    for k, (outcome, problem) in enumerate(zip(outcomes, batch, strict=True)):
        if k == marked:
            assert outcome.failure is failure and message in outcome.error
            assert call_backprop(impl, problem).error == outcome.error  # the same judgement
        else:
            assert_answers(outcome, fused_bce_backprop, problem)


def sleeps_when_marked(weights, biases, x, y, *, activations, loss):
    if is_marked(biases):
        time.sleep(30)
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def swallows_the_time_limit_when_marked(weights, biases, x, y, *, activations, loss):
    if is_marked(biases):
        try:
            time.sleep(1)
        except BaseException:  # noqa: BLE001, S110 - the alarm, swallowed
            pass
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


@pytest.mark.parametrize("impl", [sleeps_when_marked, swallows_the_time_limit_when_marked])
def test_a_time_out_ends_the_list_at_that_call(impl):
    batch = problems(6, marked=2)
    start = time.perf_counter()
    outcomes = call_backprop_many(impl, batch, timeout=0.2)
    assert time.perf_counter() - start < 3
    assert [o.failure for o in outcomes] == [None, None, CallFailure.TIMED_OUT]
    assert "did not return within 0.2 s (per-call time limit)" in outcomes[2].error
    assert CallFailure.TIMED_OUT in STOPPING_FAILURES
    # the rest is the caller's to call: the limit is each call's own, not the list's
    rest = call_backprop_many(impl, batch[3:], timeout=0.2)
    for outcome, problem in zip(rest, batch[3:], strict=True):
        assert_answers(outcome, fused_bce_backprop, problem)


def test_each_call_has_its_own_time_limit():
    """Five calls of 0.1 s each under a 0.3 s limit: none times out (the list takes longer)."""

    def takes_a_tenth(weights, biases, x, y, *, activations, loss):
        time.sleep(0.1)
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    outcomes = call_backprop_many(takes_a_tenth, problems(5), timeout=0.3)
    assert [o.failure for o in outcomes] == [None] * 5


def test_the_time_limit_holds_after_a_call_replaced_the_alarm_handler():
    def ignores_alarms_then_sleeps(weights, biases, x, y, *, activations, loss):
        if is_marked(biases):
            time.sleep(30)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # for the calls after this one
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    before = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    outcomes = call_backprop_many(ignores_alarms_then_sleeps, problems(4, marked=2), timeout=0.2)
    assert time.perf_counter() - start < 3
    assert [o.failure for o in outcomes] == [None, None, CallFailure.TIMED_OUT]
    assert signal.getsignal(signal.SIGALRM) is before


def test_in_another_thread_the_time_limit_holds_too():
    found = {}

    def run() -> None:
        found["outcomes"] = call_backprop_many(sleeps_when_marked, problems(4, 1), timeout=0.2)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(10)
    assert [o.failure for o in found["outcomes"]] == [None, CallFailure.TIMED_OUT]


def test_every_call_starts_from_the_callers_state():
    """A call that changes the process-wide state leaves none of it to the next call, nor
    to the caller; the calls after it see the caller's numpy error state."""
    seen = []

    def changes_state_when_marked(weights, biases, x, y, *, activations, loss):
        seen.append(
            (os.getcwd(), np.geterr()["over"], mpmath.mp.prec, warnings.filters[0][0] == "error")
        )
        if is_marked(biases):
            np.seterr(all="raise")
            os.chdir("/")
            warnings.simplefilter("error")
            mpmath.mp.prec = 20
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    cwd, errstate, filters, prec = os.getcwd(), np.geterr(), list(warnings.filters), mpmath.mp.prec
    with np.errstate(over="warn"):
        outcomes = call_backprop_many(changes_state_when_marked, problems(4, marked=1), timeout=10)
    assert all(o.ok for o in outcomes)
    assert seen == [(cwd, "warn", prec, False)] * 4
    assert (os.getcwd(), np.geterr(), warnings.filters, mpmath.mp.prec) == (
        cwd,
        errstate,
        filters,
        prec,
    )


def test_warnings_are_each_calls_own():
    def warns_when_odd(weights, biases, x, y, *, activations, loss):
        for _ in range(int(float(biases[0][0]) * 4) % 2 * 2):  # twice from one line when odd
            warnings.warn("odd", UserWarning, stacklevel=1)
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    outcomes = call_backprop_many(warns_when_odd, problems(5), timeout=10)
    counts = [[(w.category, w.message, w.count) for w in o.warnings] for o in outcomes]
    assert counts == [[], [("UserWarning", "odd", 2)], [], [("UserWarning", "odd", 2)], []]


def test_a_real_ctrl_c_stops_the_list():
    calls = []

    def presses_ctrl_c_when_marked(weights, biases, x, y, *, activations, loss):
        calls.append(1)
        if is_marked(biases):
            signal.raise_signal(signal.SIGINT)
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    with pytest.raises(KeyboardInterrupt):
        call_backprop_many(presses_ctrl_c_when_marked, problems(5, marked=1), timeout=10)
    assert len(calls) == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
