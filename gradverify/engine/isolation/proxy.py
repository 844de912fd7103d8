"""The implementation as the rest of gradverify sees it: a callable whose calls go to its worker.

:func:`isolated` sends an implementation to a new worker process (by reference when it can
be imported there, by value otherwise); :func:`load_isolated` has the worker load it from a
factory instead (the CLI's ``MODULE:ATTR``), so its module's own code runs only there.
:func:`isolated_if` and :func:`isolate_option` give ``check``, ``search`` and ``scan`` their
``isolate`` keyword.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import io
import marshal
import pickle
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from gradverify.common.errstate import caller_errstate
from gradverify.engine.call_outcome import STOPPING_FAILURES, CallFailure, CallOutcome
from gradverify.engine.harness import combine_calls
from gradverify.engine.implementations import (
    CAPABILITIES_ATTRIBUTE,
    Capabilities,
    capabilities_of,
    implementation_name,
)
from gradverify.engine.isolation.protocol import load_failure, metadata
from gradverify.engine.isolation.supervisor import (
    LOAD_TIMEOUT,
    ImplementationLoadError,
    IsolationError,
    Worker,
)
from gradverify.model.network import Problem

__all__ = [
    "IsolatedImplementation",
    "is_isolated",
    "isolate_option",
    "isolated",
    "isolated_if",
    "load_isolated",
]


class IsolatedImplementation:
    """A backprop that runs in a supervised worker process.

    Call it like the implementation it wraps, or pass it wherever a backprop goes
    (``check``, ``search``, ``scan``, ...): every call goes to its worker. Its capability
    declaration, name and module are those of the implementation. ``close()`` (or leaving
    its ``with`` block) stops the worker; a call after that starts a new one.
    """

    def __init__(
        self,
        payload: bytes,
        *,
        by_factory: bool,
        meta: dict[str, Any] | None,
        load_timeout: float = LOAD_TIMEOUT,
    ) -> None:
        self._payload = payload
        self._by_factory = by_factory
        self._load_timeout = load_timeout
        self._worker: Worker | None = None
        self._lock = threading.Lock()
        if meta is None:
            self._worker = Worker(payload, by_factory, load_timeout)
            meta = self._worker.meta
        try:
            self._adopt(meta)
        except Exception as exc:  # noqa: BLE001 - the worker's description of it is unusable
            self.close()
            raise ImplementationLoadError(
                f"its declaration is unusable: {load_failure(exc)}"
            ) from None

    def _adopt(self, meta: dict[str, Any]) -> None:
        caps = Capabilities(**dict(meta["capabilities"]))
        setattr(self, CAPABILITIES_ATTRIBUTE, caps)
        self.__module__ = str(meta.get("module") or "") or None  # type: ignore[assignment]
        self.__qualname__ = str(meta.get("qualname") or "backprop")
        self.__name__ = self.__qualname__.rpartition(".")[2]
        self.__doc__ = str(meta.get("doc") or "") or None
        found = meta.get("import_path")
        self.__gradverify_import_path__ = (str(found[0]), str(found[1])) if found else None
        source = meta.get("source")
        self.__gradverify_source__ = (str(source[0]), int(source[1])) if source else None

    def declare(self, capabilities: Capabilities) -> None:
        """Replace the capability declaration (e.g. by the command line's)."""
        setattr(self, CAPABILITIES_ATTRIBUTE, capabilities)

    def __repr__(self) -> str:
        state = "running" if self._worker is not None else "idle"
        return f"<isolated {implementation_name(self)} ({state})>"

    # -- calls ----------------------------------------------------------------

    def _gradverify_isolated_call(
        self, problem: Problem, *, timeout: float | None, repeat: int
    ) -> CallOutcome:
        """What :func:`gradverify.engine.harness.call_backprop` does, in the worker."""
        with self._lock:
            return self._call(problem, timeout, repeat)

    def _started(self, start: float) -> Worker | CallOutcome:
        """The running worker (started again if it is gone), or the failure to start it."""
        if self._worker is None:
            try:
                self._worker = Worker(self._payload, self._by_factory, self._load_timeout)
            except ImplementationLoadError as exc:
                return CallOutcome(
                    None,
                    None,
                    f"crashed, and its worker process could not be started again: {exc}",
                    time.perf_counter() - start,
                    CallFailure.CRASHED,
                )
        return self._worker

    def _exchange(
        self, worker: Worker, problem: Problem, timeout: float | None, repeat: int
    ) -> tuple[list[CallOutcome], bool]:
        """Send the request and read up to ``repeat`` replies; whether the worker is usable."""
        layout, errstate = capabilities_of(self).layout, caller_errstate()
        try:
            worker.request(problem, layout, repeat, errstate)
        except OSError:  # it died between calls (a thread it left behind, ...)
            return [worker.crashed(0.0)], False
        outcomes, usable = [], True
        for _ in range(repeat):
            outcome, usable = worker.receive(problem, timeout)
            outcomes.append(outcome)
            if not outcome.ok:
                break
        return outcomes, usable

    def _call(self, problem: Problem, timeout: float | None, repeat: int) -> CallOutcome:
        start = time.perf_counter()
        worker = self._started(start)
        if isinstance(worker, CallOutcome):
            return worker
        try:
            outcomes, usable = self._exchange(worker, problem, timeout, repeat)
        except BaseException:  # a real Ctrl-C while waiting: the worker is mid-call
            worker.kill()
            self._worker = None
            raise
        if not usable:
            self._worker = None
        return combine_calls(outcomes, (time.perf_counter() - start) / len(outcomes))

    def _gradverify_isolated_calls(
        self, problems: list[Problem], *, timeout: float | None
    ) -> list[CallOutcome]:
        """What :func:`gradverify.engine.harness.call_backprop_many` does, in the worker."""
        with self._lock:
            return self._calls(problems, timeout)

    def _exchange_many(
        self, worker: Worker, problems: list[Problem], timeout: float | None
    ) -> list[CallOutcome]:
        """One request for every problem, then the replies, each within ``timeout`` of the
        previous one; up to the first that timed out or crashed (the worker is then gone)."""
        layout, errstate = capabilities_of(self).layout, caller_errstate()
        try:
            worker.request_many(problems, layout, errstate)
        except OSError:  # it died between calls (a thread it left behind, ...)
            self._worker = None
            return [worker.crashed(0.0)]
        outcomes = []
        for problem in problems:
            outcome, usable = worker.receive(problem, timeout)
            outcomes.append(outcome)
            if outcome.failure in STOPPING_FAILURES or not usable:
                # the calls after it are not made: a late answer's worker is still busy
                # with them, so it goes too
                worker.kill()
                self._worker = None
                break
        return outcomes

    def _calls(self, problems: list[Problem], timeout: float | None) -> list[CallOutcome]:
        if not problems:
            return []
        worker = self._started(time.perf_counter())
        if isinstance(worker, CallOutcome):
            return [worker]
        try:
            return self._exchange_many(worker, problems, timeout)
        except BaseException:  # a real Ctrl-C while waiting: the worker is mid-call
            worker.kill()
            self._worker = None
            raise

    def __call__(
        self, weights: Any, biases: Any, x: Any, y: Any, *, activations: Any, loss: str
    ) -> tuple[list, list]:
        """Call the implementation in the worker; raise IsolationError if that call fails."""
        import numpy as np

        from gradverify.model.network import NetworkSpec

        x, y = np.asarray(x), np.asarray(y)
        if capabilities_of(self).layout == "rows":
            x, y = x.T, y.T
        widths = (x.shape[0], *(np.shape(w)[0] for w in weights))
        problem = Problem(
            NetworkSpec(widths, tuple(activations), loss), tuple(weights), tuple(biases), x, y
        )
        outcome = self._gradverify_isolated_call(problem, timeout=None, repeat=1)
        if not outcome.ok:
            raise IsolationError(f"{implementation_name(self)} {outcome.error}")
        return list(outcome.dweights), list(outcome.dbiases)

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker process (idempotent)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def __enter__(self) -> IsolatedImplementation:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._worker is not None:
                self._worker.kill()


def is_isolated(impl: Any) -> bool:
    """Whether ``impl`` already runs in a worker process."""
    return isinstance(impl, IsolatedImplementation)


def _code_as_marshalled(code: types.CodeType) -> tuple:
    """Code objects as ``marshal`` writes them (the worker runs the same interpreter): unlike
    cloudpickle's own reduction this keeps ``co_filename``, so that errors and warnings in
    code sent by value still name its file."""
    return marshal.loads, (marshal.dumps(code),)


def _dumps(impl: Callable, *, by_value: bool) -> bytes:
    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        dispatch_table = collections.ChainMap(
            {types.CodeType: _code_as_marshalled}, cloudpickle.Pickler.dispatch_table
        )

    def dumps() -> bytes:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(impl)
        return buffer.getvalue()

    module = sys.modules.get(getattr(impl, "__module__", None) or "")
    if not by_value or module is None or module.__name__ == "__main__":
        return dumps()
    cloudpickle.register_pickle_by_value(module)
    try:
        return dumps()
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def isolated(impl: Callable, *, load_timeout: float = LOAD_TIMEOUT) -> IsolatedImplementation:
    """``impl`` in a new worker process (started now); close it when done.

    Raises:
        IsolationError: ``impl`` cannot be sent to a worker process, or loading it there
            failed (the message says why).
    """
    if not callable(impl):
        raise TypeError(f"impl must be a callable backprop; got {type(impl).__name__}")
    name = implementation_name(impl)
    meta = metadata(impl)
    failure: Exception | None = None
    for by_value in (False, True):
        try:
            payload = _dumps(impl, by_value=by_value)
        except Exception as exc:  # noqa: BLE001 - pickling can fail in many ways
            failure = exc
            continue
        proxy = IsolatedImplementation(
            payload, by_factory=False, meta=meta, load_timeout=load_timeout
        )
        try:
            proxy._worker = Worker(payload, False, load_timeout)
        except ImplementationLoadError as exc:
            failure = exc
            if exc.stage == "unpickle":  # not importable there by name: send it by value
                continue
            break
        return proxy
    raise IsolationError(
        f"cannot run {name} in a worker process: {load_failure(failure)}; pass "
        f"isolate=False (--no-isolate, --gradverify-no-isolate) to run it in this process"
    ) from None


def load_isolated(
    factory: Callable[[], Callable], *, description: str, load_timeout: float = LOAD_TIMEOUT
) -> IsolatedImplementation:
    """An implementation made by ``factory()`` inside a new worker process.

    ``factory`` must be picklable by reference (e.g. ``functools.partial(load_target,
    "pkg.mod:fn")``): only the worker imports the implementation's module, so whatever
    that module does at import time happens there.

    Raises:
        ImplementationLoadError: the factory raised, exited, crashed or hung in the worker.
    """
    payload = pickle.dumps(factory, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        return IsolatedImplementation(
            payload, by_factory=True, meta=None, load_timeout=load_timeout
        )
    except ImplementationLoadError as exc:
        if exc.exception == "UsageError":  # the factory's own one-line message, as it is
            raise ImplementationLoadError(
                exc.text, stage=exc.stage, exception=exc.exception
            ) from None
        raise ImplementationLoadError(
            f"{description}: {exc}", stage=exc.stage, exception=exc.exception
        ) from None


@contextlib.contextmanager
def isolated_if(impl: Callable, enabled: bool | None) -> Iterator[Callable]:
    """``impl`` in a worker process for the duration of the block when ``enabled``.

    An implementation that is already isolated is used as it is and left running (whoever
    isolated it closes it).
    """
    if not enabled or is_isolated(impl):
        yield impl
        return
    proxy = isolated(impl)
    try:
        yield proxy
    finally:
        proxy.close()


def isolate_option(fn: Callable) -> Callable:
    """Decorator: ``fn(impl, ...)`` gains an ``isolate`` keyword (default False; None too).

    With ``isolate=True`` the implementation runs in a worker process for the duration of
    the call (see :func:`isolated_if`); ``fn`` itself never sees the keyword.
    """

    @functools.wraps(fn)
    def wrapper(impl: Callable, *args: Any, isolate: bool | None = False, **kwargs: Any) -> Any:
        if isolate is not None and not isinstance(isolate, bool):
            raise TypeError(f"isolate must be True or False; got {isolate!r}")
        with isolated_if(impl, isolate) as runnable:
            return fn(runnable, *args, **kwargs)

    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    keyword = inspect.Parameter(
        "isolate", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"
    )
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters[:at], keyword, *parameters[at:]]
    )
    return wrapper
