"""Calling a user's backprop safely: copies in, a time limit, and a strict look at what comes back.

This is the one place that calls user code. :func:`call_backprop` calls an implementation
in this process, or, for an implementation wrapped by :func:`gradverify.engine.isolation.isolated`,
in its supervised worker process (the same checks run there, see
:mod:`gradverify.engine.isolation`). :func:`call_backprop_many` makes many such calls in a
row with the per-call set-up done once (a :class:`CallSession`; one request to a worker).

Whatever the implementation does (raise, exit, hang, return the wrong shape or dtype or a
masked array, write into its inputs or the input lists, answer differently on the same
input), the harness returns a :class:`CallOutcome` whose ``failure`` says what kind of
failure it was and whose ``error`` names what was expected and what came back. It never
lets the implementation's exception escape; only a real Ctrl-C of the user does.

Around an in-process call the harness gives the implementation the caller's numpy error
state, and afterwards puts back what the implementation may have changed for everyone
(:mod:`gradverify.engine.call_state`). What in-process calls cannot survive (``os._exit``,
a segfault, a hang in C code, a thread that never ends) is what the worker process is for.

The pieces: :mod:`gradverify.engine.call_outcome` (what a call produced),
:mod:`gradverify.engine.call_state` (process-wide state around it),
:mod:`gradverify.engine.call_checks` (what it was given and what it returned); this module
makes the call and puts them together.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from gradverify.common.errstate import caller_errstate
from gradverify.engine.call_checks import (
    Given,
    given_inputs,
    modified_input,
    nondeterminism,
    validated,
)
from gradverify.engine.call_outcome import (
    STOPPING_FAILURES,
    CallFailure,
    CallOutcome,
    failed,
    timeout_message,
)
from gradverify.engine.call_state import CallerState
from gradverify.engine.implementations import capabilities_of
from gradverify.engine.results import merge_warnings
from gradverify.model.network import Problem

__all__ = [
    "DEFAULT_TIMEOUT",
    "STOPPING_FAILURES",
    "CallFailure",
    "CallOutcome",
    "CallSession",
    "ImplementationTimeout",
    "call_backprop",
    "call_backprop_many",
    "call_once",
    "combine_calls",
    "last_frame",
    "nondeterminism",
    "run_with_time_limit",
    "timeout_message",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds one call of the implementation may take before it is judged to hang."""


class ImplementationTimeout(Exception):
    """Raised inside a call that exceeded its time limit."""


def last_frame(exc: BaseException) -> str:
    """`` (at file:line, in fn)`` of the innermost frame of ``exc``'s traceback, or ""."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno}, in {f.name})"


def _raised(exc: BaseException) -> str:
    """``raised ValueError: bad (at file:line, in fn)``, naming sys.exit and Ctrl-C kinds."""
    if isinstance(exc, SystemExit):
        return f"raised SystemExit({exc.code!r}) (sys.exit){last_frame(exc)}"
    text = f"{exc}".strip()
    return f"raised {type(exc).__name__}{': ' + text if text else ''}{last_frame(exc)}"


def _is_signature_error(exc: BaseException) -> bool:
    """A TypeError raised by the call itself (arguments not accepted), not inside the callee.

    The call is made in :func:`run_with_time_limit`, in this file, so such a TypeError's
    innermost frame is here.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, TypeError) and bool(frames) and frames[-1].filename == __file__


def _signature_mismatch(exc: BaseException) -> str:
    return (
        f"cannot be called as the protocol calls it, backprop(weights, biases, x, y, *, "
        f"activations, loss): TypeError: {exc}"
    )


def run_with_time_limit(fn: Callable[[], Any], timeout: float | None) -> Any:
    """Run ``fn()``; raise ImplementationTimeout after ``timeout`` seconds.

    In the main thread a SIGALRM timer interrupts Python code. Elsewhere the call runs in a
    daemon thread that is abandoned when it overruns (it cannot be killed, only ignored).
    Neither stops C code that never returns to Python: only a worker process can.
    """
    if not timeout:
        return fn()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def on_alarm(signum: int, frame: Any) -> None:
            raise ImplementationTimeout

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="gradverify-call")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ImplementationTimeout
    if "error" in box:
        raise box["error"]
    return box["value"]


class _TimeLimit:
    """The per-call time limit of many calls in a row.

    In the main thread SIGALRM's handler is installed once and only the timer is set per
    call (the handler raises only while a call is timed, so an alarm that arrives late is
    ignored; one the code replaced is installed again). Elsewhere each call goes through
    :func:`run_with_time_limit`.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._timing = False
        self._previous: Any = None
        self._alarm = (
            bool(timeout)
            and threading.current_thread() is threading.main_thread()
            and hasattr(signal, "setitimer")
        )

        def on_alarm(signum: int, frame: Any) -> None:
            if self._timing:
                raise ImplementationTimeout

        self._on_alarm = on_alarm

    def __enter__(self) -> _TimeLimit:
        if self._alarm:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()``; ImplementationTimeout after ``timeout`` seconds."""
        if not self._alarm:
            return run_with_time_limit(fn, self.timeout)
        if signal.getsignal(signal.SIGALRM) is not self._on_alarm:  # the code replaced it
            signal.signal(signal.SIGALRM, self._on_alarm)
        self._timing = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._timing = False


def _guarded_call(
    call: Callable[[], Any], limit: _TimeLimit, state: CallerState
) -> tuple[Any, tuple[CallFailure, str] | None]:
    """``call()`` inside ``state``: (what it returned, None) or (None, (failure, message))."""
    try:
        return limit.run(call), None
    except ImplementationTimeout:
        return None, (CallFailure.TIMED_OUT, timeout_message(limit.timeout))
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, ... too
        if state.real_interrupt(exc):
            raise
        if _is_signature_error(exc):
            return None, (CallFailure.MALFORMED, _signature_mismatch(exc))
        return None, (CallFailure.RAISED, _raised(exc))


class CallSession:
    """Calls of one implementation in a row, each exactly as :func:`call_once` makes it,
    with the set-up done once: the caller's state (:class:`CallerState`, put back between
    calls where a call changed it) and the time limit's signal handler.

    Runs in this process, or inside a worker process (``in_worker``: every KeyboardInterrupt
    is the code's own, as the worker ignores SIGINT). ``errstate`` is numpy's error state
    for the calls. Only a real Ctrl-C escapes :meth:`call`.
    """

    def __init__(
        self,
        impl: Callable,
        layout: str,
        timeout: float | None,
        errstate: dict[str, str],
        *,
        in_worker: bool = False,
    ) -> None:
        self.impl, self.layout = impl, layout
        self._state = CallerState(errstate, ctrl_c=not in_worker)
        self._limit = _TimeLimit(timeout)

    def __enter__(self) -> CallSession:
        self._state.__enter__()
        try:
            self._limit.__enter__()
        except BaseException:
            self._state.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._limit.__exit__(*exc_info)
        finally:
            self._state.__exit__(*exc_info)

    def call(
        self, problem: Problem, *, given: Given | None = None, keep: bool = True
    ) -> CallOutcome:
        """One call on fresh copies of ``problem``'s arrays, checked (see :func:`call_once`)."""
        given = given_inputs(problem, self.layout) if given is None else given
        spec, timeout = problem.spec, self._limit.timeout
        call = functools.partial(
            self.impl,
            given.weights,
            given.biases,
            given.x,
            given.y,
            activations=spec.activations,
            loss=spec.loss,
        )
        start = time.perf_counter()
        raw, failure = _guarded_call(call, self._limit, self._state)
        elapsed = time.perf_counter() - start
        caught = self._state.call_ended()
        if (
            timeout
            and elapsed > timeout
            and (failure is None or failure[0] is not CallFailure.TIMED_OUT)
        ):
            # it swallowed the time-out, or never let it be raised, and came back late
            failure = (CallFailure.TIMED_OUT, timeout_message(timeout))
        if failure is not None:
            return failed(*failure, elapsed, caught)
        try:
            modified = modified_input(given)
            result = modified if modified is not None else validated(raw, problem, copy=keep)
        except Exception as exc:  # noqa: BLE001 - a returned object that breaks when read
            result = f"returned an object that could not be read ({type(exc).__name__}: {exc})"
        if isinstance(result, str):
            return failed(CallFailure.MALFORMED, result, elapsed, caught)
        return CallOutcome(result[0], result[1], None, elapsed, None, tuple(caught))


def call_once(
    impl: Callable,
    problem: Problem,
    layout: str,
    timeout: float | None,
    errstate: dict[str, str],
    *,
    in_worker: bool = False,
    given: Given | None = None,
    keep: bool = True,
) -> CallOutcome:
    """One call of ``impl`` on fresh copies of ``problem``'s arrays, checked.

    Runs in this process, or inside a worker process (``in_worker``: no time limit, the
    supervising parent keeps the time, and every KeyboardInterrupt is the code's own, as
    the worker ignores SIGINT). ``errstate`` is numpy's error state for the call. Only a
    real Ctrl-C escapes. ``given``: the inputs of a previous call on the same problem that
    left them unchanged (default: fresh copies). ``keep=False`` leaves the gradients the
    implementation's own arrays instead of copies: for an answer that is only compared with
    a kept one, at once.
    """
    with CallSession(impl, layout, timeout, errstate, in_worker=in_worker) as session:
        return session.call(problem, given=given, keep=keep)


def combine_calls(outcomes: Sequence[CallOutcome], elapsed: float) -> CallOutcome:
    """The outcome of ``repeat`` calls on one input: the first failure, a difference between
    answers, or the first answer (``elapsed``: mean seconds per call)."""
    caught = tuple(merge_warnings(*(o.warnings for o in outcomes)))
    for o in outcomes:
        if not o.ok:
            return CallOutcome(None, None, o.error, o.elapsed, o.failure, caught)
    first = outcomes[0]
    for again in outcomes[1:]:
        message = nondeterminism(first, again)
        if message is not None:
            return failed(CallFailure.MALFORMED, message, elapsed, caught)
    return CallOutcome(first.dweights, first.dbiases, None, elapsed, None, caught)


def call_backprop(
    impl: Callable, problem: Problem, *, timeout: float | None = DEFAULT_TIMEOUT, repeat: int = 1
) -> CallOutcome:
    """Call ``impl`` on copies of ``problem``'s arrays and check what it returns.

    Args:
        impl: a backprop following the protocol (layout taken from its capabilities), or
            one wrapped by :func:`gradverify.engine.isolation.isolated` (then called in its
            worker process).
        problem: the inputs, in the dtype under test.
        timeout: seconds allowed per call (None or 0: no limit).
        repeat: call this many times on the same input; differing answers are an error.

    Returns:
        A CallOutcome; ``failure`` says what kind of failure, ``error`` what was expected
        and what came back.

    Raises:
        KeyboardInterrupt: only for a real Ctrl-C of the user.
    """
    isolated_call = getattr(impl, "_gradverify_isolated_call", None)
    if isolated_call is not None:
        return isolated_call(problem, timeout=timeout, repeat=max(1, repeat))
    layout = capabilities_of(impl).layout
    start = time.perf_counter()
    given = given_inputs(problem, layout)
    with CallSession(impl, layout, timeout, caller_errstate()) as session:
        outcomes = [session.call(problem, given=given)]
        while outcomes[-1].ok and len(outcomes) < repeat:
            # the same input again: the arrays the first call left unchanged, in new lists;
            # the answer is only compared with the first one's copies (combine_calls)
            outcomes.append(session.call(problem, given=given.again(), keep=False))
    return combine_calls(outcomes, (time.perf_counter() - start) / len(outcomes))


def call_backprop_many(
    impl: Callable, problems: Sequence[Problem], *, timeout: float | None = DEFAULT_TIMEOUT
) -> list[CallOutcome]:
    """:func:`call_backprop` on each of ``problems`` in turn, with the set-up done once.

    Each call is made and judged exactly as :func:`call_backprop` (``repeat=1``) makes and
    judges it: fresh copies in, its own time limit, numpy error state and warnings, the
    same failure kinds and messages. What is shared is the set-up: in this process one
    caller state and one signal handler for all the calls; for an isolated implementation
    one request to its worker process, which answers call by call while the parent keeps
    each call's time.

    Returns:
        One outcome per call made, in order: for every problem, or up to and including
        the first call that timed out or crashed (:data:`STOPPING_FAILURES`); the problems
        after that one are not called (calling on is the caller's decision, e.g. a
        :class:`~gradverify.engine.stopping.CallGuard`'s).

    Raises:
        KeyboardInterrupt: only for a real Ctrl-C of the user.
    """
    isolated_calls = getattr(impl, "_gradverify_isolated_calls", None)
    if isolated_calls is not None:
        return isolated_calls(list(problems), timeout=timeout)
    outcomes: list[CallOutcome] = []
    if getattr(impl, "_gradverify_isolated_call", None) is not None:
        for problem in problems:
            outcomes.append(call_backprop(impl, problem, timeout=timeout))
            if outcomes[-1].failure in STOPPING_FAILURES:
                break
        return outcomes
    layout = capabilities_of(impl).layout
    with CallSession(impl, layout, timeout, caller_errstate()) as session:
        for problem in problems:
            outcomes.append(session.call(problem))
            if outcomes[-1].failure in STOPPING_FAILURES:
                break
    return outcomes
