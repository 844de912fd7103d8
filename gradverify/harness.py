"""Calling a user's backprop safely: copies in, a time limit, and a strict look at what comes back.

Whatever the implementation does (raise, hang, return the wrong shape or dtype, write
into its inputs, answer differently on the same input), the harness returns a
:class:`CallOutcome` with a message naming what was expected and what came back. It never
lets the implementation's exception escape.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.dtypes import dtype_name
from gradverify.implementations import capabilities_of
from gradverify.network import Problem

__all__ = ["CallOutcome", "ImplementationTimeout", "call_backprop", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0
"""Seconds one call of the implementation may take before it is judged to hang."""


class ImplementationTimeout(Exception):
    """Raised inside a call that exceeded its time limit."""


@dataclass(frozen=True)
class CallOutcome:
    """What one call produced: gradients in the problem's dtype, or an error message."""

    dweights: tuple[np.ndarray, ...] | None
    dbiases: tuple[np.ndarray, ...] | None
    error: str | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"a {dtype_name(a.dtype)} array of shape {a.shape}"
    shape = getattr(a, "shape", None)
    return f"a {type(a).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno}, in {f.name})"


def _run_with_time_limit(fn: Callable[[], Any], timeout: float | None) -> Any:
    """Run ``fn()``; raise ImplementationTimeout after ``timeout`` seconds.

    In the main thread a SIGALRM timer interrupts Python code. Elsewhere the call runs in a
    daemon thread that is abandoned when it overruns (it cannot be killed, only ignored).
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


def _inputs(problem: Problem, layout: str) -> tuple[list, list, np.ndarray, np.ndarray]:
    weights = [w.copy() for w in problem.weights]
    biases = [b.copy() for b in problem.biases]
    x, y = problem.x.copy(), problem.y.copy()
    if layout == "rows":
        x, y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    return weights, biases, x, y


def _validate(result: Any, problem: Problem) -> tuple[tuple, tuple] | str:
    """The gradients as tuples of arrays, or a message saying what is wrong."""
    depth = problem.spec.depth
    expected = (
        f"(dweights, dbiases): two sequences of {depth} arrays each, "
        f"in {problem.dtype_name}"
    )
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
        for i, (a, p) in enumerate(zip(arrays, params, strict=True)):
            name = f"{kind}[{i}]"
            if not isinstance(a, np.ndarray):
                return f"expected {name} to be a numpy array of shape {p.shape}; got {_describe(a)}"
            if a.shape != p.shape:
                return f"expected {name} to have shape {p.shape}; got shape {a.shape}"
            if a.dtype != problem.dtype:
                return (
                    f"expected {name} in {problem.dtype_name} (the dtype it was given); "
                    f"got {dtype_name(a.dtype)}"
                )
            converted.append(np.array(a, copy=True))
        out.append(tuple(converted))
    return out[0], out[1]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.tobytes() == b.tobytes()


def call_backprop(
    impl: Callable, problem: Problem, *, timeout: float | None = DEFAULT_TIMEOUT, repeat: int = 1
) -> CallOutcome:
    """Call ``impl`` on copies of ``problem``'s arrays and check what it returns.

    Args:
        impl: a backprop following the protocol (layout taken from its capabilities).
        problem: the inputs, in the dtype under test.
        timeout: seconds allowed per call (None or 0: no limit).
        repeat: call this many times on the same input; differing answers are an error.

    Returns:
        A CallOutcome; ``error`` says what was expected and what came back.
    """
    caps = capabilities_of(impl)
    spec = problem.spec
    results = []
    start = time.perf_counter()
    for attempt in range(max(1, repeat)):
        weights, biases, x, y = _inputs(problem, caps.layout)
        originals = [a.copy() for a in (*weights, *biases, x, y)]
        call = functools.partial(impl, weights, biases, x, y, activations=spec.activations,
                                 loss=spec.loss)
        try:
            raw = _run_with_time_limit(call, timeout)
        except ImplementationTimeout:
            return CallOutcome(None, None, f"the call did not return within {timeout:g} s "
                               "(per-call time limit)", time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            return CallOutcome(None, None, f"raised {type(exc).__name__}: {exc}{_last_frame(exc)}",
                               time.perf_counter() - start)
        for name, before, after in zip(
            [*(f"weights[{i}]" for i in range(spec.depth)),
             *(f"biases[{i}]" for i in range(spec.depth)), "x", "y"],
            originals, (*weights, *biases, x, y), strict=True,
        ):
            if not _same_bits(before, after):
                return CallOutcome(None, None, f"modified its input {name} in place",
                                   time.perf_counter() - start)
        validated = _validate(raw, problem)
        if isinstance(validated, str):
            return CallOutcome(None, None, validated, time.perf_counter() - start)
        results.append(validated)
        if attempt > 0:
            first = results[0]
            for kind, a_list, b_list in (("dweights", first[0], validated[0]),
                                         ("dbiases", first[1], validated[1])):
                for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
                    if not _same_bits(a, b):
                        return CallOutcome(
                            None, None,
                            f"is nondeterministic: two calls on the same input returned "
                            f"different {kind}[{i}]",
                            time.perf_counter() - start,
                        )
    elapsed = (time.perf_counter() - start) / max(1, repeat)
    return CallOutcome(results[0][0], results[0][1], None, elapsed)
