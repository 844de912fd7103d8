"""Calling a user's backprop safely: copies in, a time limit, and a strict look at what comes back.

This is the one place that calls user code. :func:`call_backprop` calls an implementation
in this process, or, for an implementation wrapped by :func:`gradverify.engine.isolation.isolated`,
in its supervised worker process (the same checks run there, see
:mod:`gradverify.engine.isolation`).

Whatever the implementation does (raise, exit, hang, return the wrong shape or dtype or a
masked array, write into its inputs or the input lists, answer differently on the same
input), the harness returns a :class:`CallOutcome` whose ``failure`` says what kind of
failure it was and whose ``error`` names what was expected and what came back. It never
lets the implementation's exception escape; only a real Ctrl-C of the user does.

Around an in-process call the harness gives the implementation the caller's numpy error
state, and afterwards puts back what the implementation may have changed for everyone:
the working directory, the warning filters, numpy's error state and mpmath's global
precision. The implementation's warnings are collected and counted per source location.
What in-process calls cannot survive (``os._exit``, a segfault, a hang in C code, a thread
that never ends) is what the worker process is for.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from gradverify.common.errstate import caller_errstate
from gradverify.engine.implementations import capabilities_of
from gradverify.engine.results import WarningCount, merge_warnings
from gradverify.model.dtypes import dtype_name
from gradverify.model.network import Problem

__all__ = [
    "DEFAULT_TIMEOUT",
    "CallFailure",
    "CallOutcome",
    "ImplementationTimeout",
    "call_backprop",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds one call of the implementation may take before it is judged to hang."""


class ImplementationTimeout(Exception):
    """Raised inside a call that exceeded its time limit."""


class CallFailure(StrEnum):
    """What kind of failure a call was (``CallOutcome.failure``)."""

    RAISED = "raised"  # an exception, SystemExit and KeyboardInterrupt included
    TIMED_OUT = "timed_out"  # no answer within the per-call time limit
    CRASHED = "crashed"  # the worker process died: a signal, os._exit (isolated calls only)
    MALFORMED = "malformed"  # wrong type/shape/dtype/count, wrote into inputs, nondeterministic,
    # or a signature that does not take the protocol's arguments


@dataclass(frozen=True)
class CallOutcome:
    """What one call produced: gradients in the problem's dtype, or an error message.

    ``failure`` is None exactly when the call succeeded; ``warnings`` are those the
    implementation raised, one entry per source location with a count.
    """

    dweights: tuple[np.ndarray, ...] | None
    dbiases: tuple[np.ndarray, ...] | None
    error: str | None
    elapsed: float
    failure: CallFailure | None = None
    warnings: tuple[WarningCount, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def timed_out(self) -> bool:
        return self.failure is CallFailure.TIMED_OUT


def _failed(
    failure: CallFailure, message: str, elapsed: float, caught: Sequence[WarningCount] = ()
) -> CallOutcome:
    return CallOutcome(None, None, message, elapsed, failure, tuple(caught))


def timeout_message(timeout: float | None, killed: bool = False) -> str:
    """The message of a call that exceeded ``timeout``."""
    text = f"the call did not return within {timeout:g} s (per-call time limit)"
    return text + ("; its worker process was killed" if killed else "")


def _describe(a: Any) -> str:
    if isinstance(a, np.ma.MaskedArray):
        return f"a masked array of shape {a.shape}"
    if isinstance(a, np.ndarray):
        return f"a {dtype_name(a.dtype)} array of shape {a.shape}"
    shape = getattr(a, "shape", None)
    try:
        shape = tuple(shape) if shape is not None else None
    except TypeError:
        shape = None
    return f"a {type(a).__name__}" + (f" of shape {shape}" if shape is not None else "")


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno}, in {f.name})"


def _raised(exc: BaseException) -> str:
    """``raised ValueError: bad (at file:line, in fn)``, naming sys.exit and Ctrl-C kinds."""
    if isinstance(exc, SystemExit):
        return f"raised SystemExit({exc.code!r}) (sys.exit){_last_frame(exc)}"
    text = f"{exc}".strip()
    return f"raised {type(exc).__name__}{': ' + text if text else ''}{_last_frame(exc)}"


def _is_signature_error(exc: BaseException) -> bool:
    """A TypeError raised by the call itself (arguments not accepted), not inside the callee."""
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, TypeError) and bool(frames) and frames[-1].filename == __file__


def _signature_mismatch(exc: BaseException) -> str:
    return (
        f"cannot be called as the protocol calls it, backprop(weights, biases, x, y, *, "
        f"activations, loss): TypeError: {exc}"
    )


def _run_with_time_limit(fn: Callable[[], Any], timeout: float | None) -> Any:
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


# ---------------------------------------------------------------------------
# Process-wide state around one call
# ---------------------------------------------------------------------------

_CAUGHT_ACTIONS = {"default": "always", "module": "always", "once": "always", "error": "always"}
"""Warning filter actions rewritten while a call runs: every warning that would be shown
(or raised) is recorded instead, so each one is counted."""


class _CallerState:
    """Around one in-process call: the caller's numpy error state for the implementation,
    then the cwd, warning filters, numpy error state and mpmath precision put back.

    Collects the warnings raised (``self.caught``) and, in the main thread, tells a real
    Ctrl-C (``self.interrupted``) from a KeyboardInterrupt the implementation raises.
    """

    def __init__(self, errstate: dict[str, str], ctrl_c: bool) -> None:
        self.errstate = errstate
        self.ctrl_c = ctrl_c  # whether a KeyboardInterrupt may be the user's Ctrl-C
        self.interrupted = False
        self.caught: list[WarningCount] = []

    def __enter__(self) -> _CallerState:
        self._cwd = _getcwd()
        mpmath = sys.modules.get("mpmath")
        self._mp_prec = mpmath.mp.prec if mpmath is not None else None
        self._warnings = warnings.catch_warnings(record=True)
        self._log = self._warnings.__enter__()
        warnings.filters[:] = [(_CAUGHT_ACTIONS.get(f[0], f[0]), *f[1:]) for f in warnings.filters]
        warnings.simplefilter("always", append=True)
        self._errstate = np.errstate(**self.errstate)
        self._errstate.__enter__()
        self._sigint = None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):

            def on_sigint(signum: int, frame: Any) -> None:
                self.interrupted = True
                raise KeyboardInterrupt

            self._sigint = signal.signal(signal.SIGINT, on_sigint)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
        self._errstate.__exit__(None, None, None)
        self._warnings.__exit__(None, None, None)
        self.caught = _count_warnings(self._log)
        if self._mp_prec is not None:
            mpmath = sys.modules.get("mpmath")
            if mpmath is not None and mpmath.mp.prec != self._mp_prec:
                mpmath.mp.prec = self._mp_prec
        if self._cwd is not None and _getcwd() != self._cwd:
            try:
                os.chdir(self._cwd)
            except OSError:  # pragma: no cover - the directory was removed meanwhile
                pass

    def real_interrupt(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the user's Ctrl-C rather than something the code raised."""
        return (
            isinstance(exc, KeyboardInterrupt)
            and self.ctrl_c
            and (self.interrupted or self._sigint is None)
        )


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # pragma: no cover - the cwd was removed
        return None


def _count_warnings(log: Sequence[warnings.WarningMessage]) -> list[WarningCount]:
    counts: dict[tuple[str, str, int], list] = {}
    for w in log:
        key = (w.category.__name__, str(w.filename), int(w.lineno or 0))
        if key in counts:
            counts[key][1] += 1
        else:
            counts[key] = [str(w.message)[:500], 1]
    return [
        WarningCount(cat, message, filename, lineno, n)
        for (cat, filename, lineno), (message, n) in counts.items()
    ]


# ---------------------------------------------------------------------------
# One call, checked
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Given:
    """What the implementation was given: the lists, the arrays in them, and their values."""

    weights: list
    biases: list
    x: np.ndarray
    y: np.ndarray
    arrays: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (name, array passed, its copy)
    weight_ids: tuple[int, ...]
    bias_ids: tuple[int, ...]


def _inputs(problem: Problem, layout: str) -> _Given:
    weights = [w.copy() for w in problem.weights]
    biases = [b.copy() for b in problem.biases]
    x, y = problem.x.copy(), problem.y.copy()
    if layout == "rows":
        x, y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    named = [
        *((f"weights[{i}]", w) for i, w in enumerate(weights)),
        *((f"biases[{i}]", b) for i, b in enumerate(biases)),
        ("x", x),
        ("y", y),
    ]
    return _Given(
        weights,
        biases,
        x,
        y,
        tuple((n, a, a.copy()) for n, a in named),
        tuple(map(id, weights)),
        tuple(map(id, biases)),
    )


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _modified_input(given: _Given) -> str | None:
    """What the implementation changed in its inputs (lists first), or None."""
    for kind, now, ids in (
        ("weights", given.weights, given.weight_ids),
        ("biases", given.biases, given.bias_ids),
    ):
        if len(now) != len(ids):
            change = (
                "emptied"
                if not now
                else ("appended to" if len(now) > len(ids) else "removed entries from")
            )
            return (
                f"modified its input list {kind} in place: {change} it "
                f"({len(ids)} arrays before the call, {len(now)} after)"
            )
        for i, (a, original) in enumerate(zip(now, ids, strict=True)):
            if id(a) != original:
                return f"modified its input list {kind} in place: replaced {kind}[{i}]"
    for name, passed, before in given.arrays:
        if not _same_bits(passed, before):
            return f"modified its input {name} in place"
    return None


def _validate(result: Any, problem: Problem) -> tuple[tuple, tuple] | str:
    """The gradients as tuples of plain arrays, or a message saying what is wrong."""
    depth = problem.spec.depth
    expected = f"(dweights, dbiases): two sequences of {depth} arrays each, in {problem.dtype_name}"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"a {type(result).__name__}" + (
            f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        )
        return f"expected {expected}; got {got}"
    out = []
    for kind, arrays, params in (
        ("dweights", result[0], problem.weights),
        ("dbiases", result[1], problem.biases),
    ):
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
            return f"expected {kind} to be a sequence of {depth} arrays; got {_describe(arrays)}"
        if len(arrays) != depth:
            return f"expected {depth} arrays in {kind} (one per layer); got {len(arrays)}"
        converted = []
        for i in range(depth):
            a, p = arrays[i], params[i]
            name = f"{kind}[{i}]"
            if isinstance(a, np.ma.MaskedArray):
                return (
                    f"expected {name} to be a plain numpy array; got a masked array "
                    f"(its masked entries have no value to check; return np.asarray "
                    f"of the filled values)"
                )
            if not isinstance(a, np.ndarray):
                return f"expected {name} to be a numpy array of shape {p.shape}; got {_describe(a)}"
            plain = np.array(a, copy=True, subok=False)
            if plain.shape != p.shape:
                return f"expected {name} to have shape {p.shape}; got shape {plain.shape}"
            if plain.dtype != problem.dtype:
                return (
                    f"expected {name} in {problem.dtype_name} (the dtype it was given); "
                    f"got {dtype_name(plain.dtype)}"
                )
            converted.append(plain)
        out.append(tuple(converted))
    return out[0], out[1]


def call_once(
    impl: Callable,
    problem: Problem,
    layout: str,
    timeout: float | None,
    errstate: dict[str, str],
    *,
    in_worker: bool = False,
) -> CallOutcome:
    """One call of ``impl`` on fresh copies of ``problem``'s arrays, checked.

    Runs in this process, or inside a worker process (``in_worker``: no time limit, the
    supervising parent keeps the time, and every KeyboardInterrupt is the code's own, as
    the worker ignores SIGINT). ``errstate`` is numpy's error state for the call. Only a
    real Ctrl-C escapes.
    """
    given = _inputs(problem, layout)
    spec = problem.spec
    call = functools.partial(
        impl,
        given.weights,
        given.biases,
        given.x,
        given.y,
        activations=spec.activations,
        loss=spec.loss,
    )
    start = time.perf_counter()
    failure: tuple[CallFailure, str] | None = None
    raw: Any = None
    with _CallerState(errstate, ctrl_c=not in_worker) as state:
        try:
            raw = _run_with_time_limit(call, timeout)
        except ImplementationTimeout:
            failure = (CallFailure.TIMED_OUT, timeout_message(timeout))
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, ... too
            if state.real_interrupt(exc):
                raise
            failure = (
                (CallFailure.MALFORMED, _signature_mismatch(exc))
                if _is_signature_error(exc)
                else (CallFailure.RAISED, _raised(exc))
            )
    elapsed = time.perf_counter() - start
    if (
        timeout
        and elapsed > timeout
        and (failure is None or failure[0] is not CallFailure.TIMED_OUT)
    ):
        # it swallowed the time-out, or never let it be raised, and came back late
        failure = (CallFailure.TIMED_OUT, timeout_message(timeout))
    if failure is not None:
        return _failed(*failure, elapsed, state.caught)
    try:
        modified = _modified_input(given)
        validated = modified if modified is not None else _validate(raw, problem)
    except Exception as exc:  # noqa: BLE001 - a returned object that breaks when read
        validated = f"returned an object that could not be read ({type(exc).__name__}: {exc})"
    if isinstance(validated, str):
        return _failed(CallFailure.MALFORMED, validated, elapsed, state.caught)
    return CallOutcome(validated[0], validated[1], None, elapsed, None, tuple(state.caught))


def nondeterminism(first: CallOutcome, again: CallOutcome) -> str | None:
    """The message for two successful calls on the same input that differ, or None."""
    for kind, a_list, b_list in (
        ("dweights", first.dweights, again.dweights),
        ("dbiases", first.dbiases, again.dbiases),
    ):
        for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
            if not _same_bits(a, b):
                return (
                    f"is nondeterministic: two calls on the same input returned "
                    f"different {kind}[{i}]"
                )
    return None


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
            return _failed(CallFailure.MALFORMED, message, elapsed, caught)
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
    errstate = caller_errstate()
    start = time.perf_counter()
    outcomes = []
    for _ in range(max(1, repeat)):
        outcome = call_once(impl, problem, layout, timeout, errstate)
        outcomes.append(outcome)
        if not outcome.ok:
            break
    return combine_calls(outcomes, (time.perf_counter() - start) / len(outcomes))
