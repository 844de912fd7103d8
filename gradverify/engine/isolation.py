"""Supervised worker processes: the implementation runs where nothing it does can reach us.

:func:`isolated` wraps a backprop in an :class:`IsolatedImplementation`. The harness
(:func:`gradverify.engine.harness.call_backprop`) sees the wrapper and sends each call to the
wrapper's worker process, which runs exactly the in-process checks of
:func:`gradverify.engine.harness.call_once` and sends back plain bytes. The parent process (the
CLI, pytest, your program) keeps the time, owns every result, output file and the exit
status, and judges whatever comes back:

* a call with no answer within the per-call time limit (a hang in C code, a time-out the
  code swallows) ends with SIGKILL of the worker: a ``timed_out`` failure;
* a worker that dies (``os._exit``, a segfault, any signal) is a ``crashed`` failure naming
  the exit code or the signal;
* ``sys.exit`` and ``KeyboardInterrupt`` raised by the code are ``raised`` failures (the
  worker ignores SIGINT, so a real Ctrl-C reaches only the parent, which stops);
* threads the code leaves behind die with the worker, and whatever global state it changes
  (numpy's error state, the cwd, warning filters, mpmath's precision) stays in the worker.

One worker serves one implementation for the duration of its check and is started again
after a crash or a kill. Workers come from multiprocessing's ``forkserver`` (``spawn`` where
there is none): a fresh process forked from a small server that has already imported
gradverify and numpy, so a start costs milliseconds, and nothing of the parent's threads
(torch's or jax's pools) is forked. The implementation is sent with cloudpickle: by
reference (module and name) when it can be imported, by value otherwise (closures,
lambdas, ``__main__``, the adapters' wrappers). :func:`load_isolated` instead loads it in
the worker from a factory (the CLI's ``MODULE:ATTR``), so the module's own code runs there.

Replies are decoded by an unpickler that accepts no classes at all: the worker can send
tuples, bytes, strings and numbers, never an object that runs code in the parent.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import io
import marshal
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from typing import Any

from gradverify.common.errstate import caller_errstate
from gradverify.engine.harness import (
    CallFailure,
    CallOutcome,
    call_once,
    combine_calls,
    timeout_message,
)
from gradverify.engine.implementations import (
    CAPABILITIES_ATTRIBUTE,
    Capabilities,
    capabilities_of,
    implementation_name,
)
from gradverify.engine.results import WarningCount
from gradverify.model.network import Problem

__all__ = [
    "IsolatedImplementation",
    "IsolationError",
    "ImplementationLoadError",
    "LOAD_TIMEOUT",
    "is_isolated",
    "isolate_option",
    "isolated",
    "isolated_if",
    "load_isolated",
]

LOAD_TIMEOUT = 120.0
"""Seconds a worker may take to start and load the implementation (imports such as torch)."""

CLOSE_GRACE = 1.0
"""Seconds a worker gets to exit when closed before it is killed."""

MAX_WARNING_LOCATIONS = 100
"""Warning locations a worker reports per call (the rest are dropped)."""


class IsolationError(RuntimeError):
    """The implementation cannot be run in a worker process (the message says why)."""


class ImplementationLoadError(IsolationError):
    """Loading the implementation in its worker process failed: it raised, exited or hung.

    ``stage`` is "unpickle" (the worker could not rebuild it, e.g. its module is not
    importable there) or "load"; ``exception`` names the exception type, if one was raised,
    and ``text`` is its message.
    """

    def __init__(
        self, message: str, *, stage: str = "load", exception: str = "", text: str = ""
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.exception = exception
        self.text = text or message  # the exception's own message, without its type


# ---------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------


def _exit_now(code: int = 0) -> None:
    """Leave the worker at once: no atexit handlers, no waiting for left-behind threads."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _breakpoint_in_worker(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(
        "breakpoint() was called in the implementation, which runs in a worker process "
        "without a terminal; to debug it, run it in-process: isolate=False, "
        "gradverify --no-isolate, or pytest --gradverify-no-isolate (the pytest plugin also "
        "runs in-process under --pdb, --trace or an attached debugger)"
    )


def _settle_in(environ: dict[str, str]) -> None:
    """The worker's own set-up, before any user code runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a real Ctrl-C is the parent's to handle
    # started as a daemon (never waited for at the parent's exit), but the implementation
    # may start processes of its own, which a daemon may not
    multiprocessing.current_process().daemon = False
    os.environ.clear()
    os.environ.update(environ)
    sys.breakpointhook = _breakpoint_in_worker
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        # die with the parent, even while the implementation is stuck (the GIL permitting)
        def watch(sentinel: int = parent.sentinel) -> None:
            wait([sentinel])
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="gradverify-parent-watch").start()
    if sys.platform.startswith("linux") and multiprocessing.get_start_method() == "forkserver":
        # ... and when the implementation holds the GIL in C: killed when the forkserver
        # (which exits with the parent) goes
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _send(conn: Any, message: tuple) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _capabilities_data(caps: Capabilities) -> dict[str, Any]:
    return {f.name: getattr(caps, f.name) for f in dataclasses.fields(caps)}


def _source_location(impl: Callable) -> tuple[str, int] | None:
    try:
        path = inspect.getsourcefile(impl)
        _, line = inspect.getsourcelines(impl)
    except (TypeError, OSError):
        return None
    return (str(path), int(line)) if path else None


def _metadata(impl: Callable) -> dict[str, Any]:
    """What the parent needs to know of an implementation it does not hold (plain data)."""
    from gradverify.engine.repro import import_path

    if not callable(impl):
        raise TypeError(f"it is a {type(impl).__name__}, not a callable backprop")
    found = import_path(impl)
    return {
        "name": implementation_name(impl),
        "capabilities": _capabilities_data(capabilities_of(impl)),
        "module": str(getattr(impl, "__module__", None) or ""),
        "qualname": str(getattr(impl, "__qualname__", None) or type(impl).__qualname__),
        "doc": str(getattr(impl, "__doc__", None) or ""),
        "import_path": tuple(found) if found is not None else None,
        "source": _source_location(impl),
    }


def _load_failure(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (sys.exit)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _encode(outcome: CallOutcome) -> tuple:
    caught = [
        (w.category, w.message, w.filename, w.lineno, w.count)
        for w in outcome.warnings[:MAX_WARNING_LOCATIONS]
    ]
    if outcome.ok:
        return (
            "ok",
            [a.tobytes() for a in outcome.dweights],
            [b.tobytes() for b in outcome.dbiases],
            caught,
            outcome.elapsed,
        )
    return ("failed", outcome.failure.value, outcome.error, caught, outcome.elapsed)


def _worker_main(conn: Any, payload: bytes, by_factory: bool, environ: dict[str, str]) -> None:
    """The worker: load the implementation, then answer call requests until told to stop."""
    _settle_in(environ)
    try:
        obj = pickle.loads(payload)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        _send(
            conn,
            (
                "load-failed",
                "unpickle",
                type(exc).__name__,
                _load_failure(exc),
                " ".join(str(exc).split()),
            ),
        )
        _exit_now()
    try:
        impl = obj() if by_factory else obj
        meta = _metadata(impl)
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import included
        _send(
            conn,
            (
                "load-failed",
                "load",
                type(exc).__name__,
                _load_failure(exc),
                " ".join(str(exc).split()),
            ),
        )
        _exit_now()
    _send(conn, ("ready", meta))
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            _exit_now()
        if request[0] != "call":
            _exit_now()
        _, problem, layout, repeat, errstate = request
        for _ in range(repeat):
            outcome = call_once(impl, problem, layout, None, errstate, in_worker=True)
            _send(conn, _encode(outcome))
            if not outcome.ok:
                break
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()


# ---------------------------------------------------------------------------
# The parent's side
# ---------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: only plain data is accepted")


def _plain_loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


_CONTEXT: Any = None


def _context() -> Any:
    """The multiprocessing context of the workers (forkserver, else spawn), made once."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["gradverify.engine.isolation", "cloudpickle"])
        else:  # pragma: no cover - Windows
            ctx = multiprocessing.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


def _death(process: Any) -> str:
    """How a worker process ended: "was killed by signal SIGSEGV (...)" or "exited with..."."""
    process.join(CLOSE_GRACE)
    code = process.exitcode
    if code is None:
        with contextlib.suppress(Exception):
            process.kill()
            process.join(CLOSE_GRACE)
        return "closed its connection to gradverify"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        described = signal.strsignal(-code) or ""
        return f"was killed by signal {name}" + (f" ({described})" if described else "")
    return f"exited with code {code} (os._exit, or an exit from C code)"


class _Worker:
    """One worker process and the parent's end of its connection."""

    def __init__(self, payload: bytes, by_factory: bool, load_timeout: float) -> None:
        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main,
            name="gradverify-worker",
            daemon=True,
            args=(child, payload, by_factory, dict(os.environ)),
        )
        try:
            self.process.start()
        finally:
            child.close()
        self.meta: dict[str, Any] = {}
        try:
            ready = wait([self.conn, self.process.sentinel], load_timeout)
            if not ready:
                self.kill()
                raise ImplementationLoadError(
                    f"loading it in a worker process did not finish within {load_timeout:g} s"
                )
            try:
                reply = _plain_loads(self.conn.recv_bytes(1 << 24))
            except (EOFError, OSError, pickle.UnpicklingError):
                raise ImplementationLoadError(
                    f"the worker process loading it {_death(self.process)}"
                ) from None
            if reply[0] == "load-failed":
                self.kill()
                raise ImplementationLoadError(
                    str(reply[3]), stage=str(reply[1]), exception=str(reply[2]), text=str(reply[4])
                )
            if reply[0] != "ready" or not isinstance(reply[1], dict):
                raise ImplementationLoadError("its worker process sent an unreadable answer")
            self.meta = reply[1]
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.exitcode is None:
            with contextlib.suppress(Exception):
                self.process.kill()
                self.process.join(CLOSE_GRACE)

    def close(self) -> None:
        """Ask the worker to leave; kill it when it does not within CLOSE_GRACE."""
        with contextlib.suppress(Exception):
            _send(self.conn, ("close",))
        self.process.join(CLOSE_GRACE)
        self.kill()

    def receive(self, problem: Problem, timeout: float | None) -> tuple[CallOutcome, bool]:
        """The next reply as an outcome, and whether the worker is still usable."""
        start = time.perf_counter()
        ready = wait([self.conn, self.process.sentinel], timeout or None)
        elapsed = time.perf_counter() - start
        if not ready:
            self.kill()
            return CallOutcome(
                None, None, timeout_message(timeout, killed=True), elapsed, CallFailure.TIMED_OUT
            ), False
        try:
            limit = sum(a.nbytes for a in (*problem.weights, *problem.biases)) + (1 << 20)
            reply = _plain_loads(self.conn.recv_bytes(limit))
            outcome = _decode(reply, problem)
        except (EOFError, OSError):
            return self._crashed(elapsed), False
        except Exception:  # noqa: BLE001 - anything unreadable: treat the worker as broken
            self.kill()
            return CallOutcome(
                None,
                None,
                "crashed the worker process running it: it sent data gradverify cannot read",
                elapsed,
                CallFailure.CRASHED,
            ), False
        if timeout and outcome.elapsed > timeout and not outcome.timed_out:
            return CallOutcome(
                None,
                None,
                timeout_message(timeout),
                outcome.elapsed,
                CallFailure.TIMED_OUT,
                outcome.warnings,
            ), True
        return outcome, True

    def _crashed(self, elapsed: float) -> CallOutcome:
        how = _death(self.process)
        self.kill()
        return CallOutcome(
            None,
            None,
            f"crashed the worker process running it: it {how} during the call",
            elapsed,
            CallFailure.CRASHED,
        )


def _decode(reply: Any, problem: Problem) -> CallOutcome:
    """A worker's reply as a CallOutcome; ValueError/TypeError when it is not well formed."""
    status, *rest = reply
    caught = tuple(
        WarningCount(str(c), str(m)[:500], str(f), int(n), int(k)) for c, m, f, n, k in rest[2]
    )
    elapsed = float(rest[3])
    if status == "failed":
        return CallOutcome(None, None, str(rest[1]), elapsed, CallFailure(rest[0]), caught)
    if status != "ok":
        raise ValueError(f"unknown reply {status!r}")
    import numpy as np

    grads = []
    for blobs, params in ((rest[0], problem.weights), (rest[1], problem.biases)):
        if len(blobs) != len(params):
            raise ValueError("wrong number of arrays")
        grads.append(
            tuple(
                np.frombuffer(bytes(b), dtype=problem.dtype).reshape(p.shape).copy()
                for b, p in zip(blobs, params, strict=True)
            )
        )
    return CallOutcome(grads[0], grads[1], None, elapsed, None, caught)


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
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        if meta is None:
            self._worker = _Worker(payload, by_factory, load_timeout)
            meta = self._worker.meta
        try:
            self._adopt(meta)
        except Exception as exc:  # noqa: BLE001 - the worker's description of it is unusable
            self.close()
            raise ImplementationLoadError(
                f"its declaration is unusable: {_load_failure(exc)}"
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

    def _call(self, problem: Problem, timeout: float | None, repeat: int) -> CallOutcome:
        start = time.perf_counter()
        if self._worker is None:
            try:
                self._worker = _Worker(self._payload, self._by_factory, self._load_timeout)
            except ImplementationLoadError as exc:
                return CallOutcome(
                    None,
                    None,
                    f"crashed, and its worker process could not be started again: {exc}",
                    time.perf_counter() - start,
                    CallFailure.CRASHED,
                )
        worker = self._worker
        request = ("call", problem, capabilities_of(self).layout, repeat, caller_errstate())
        outcomes = []
        try:
            try:
                worker.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:  # it died between calls (a thread it left behind, ...)
                outcomes.append(worker._crashed(0.0))
                usable = False
            else:
                usable = True
                for _ in range(repeat):
                    outcome, usable = worker.receive(problem, timeout)
                    outcomes.append(outcome)
                    if not outcome.ok:
                        break
        except BaseException:  # a real Ctrl-C while waiting: the worker is mid-call
            worker.kill()
            self._worker = None
            raise
        if not usable:
            self._worker = None
        return combine_calls(outcomes, (time.perf_counter() - start) / len(outcomes))

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
    meta = _metadata(impl)
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
            proxy._worker = _Worker(payload, False, load_timeout)
        except ImplementationLoadError as exc:
            failure = exc
            if exc.stage == "unpickle":  # not importable there by name: send it by value
                continue
            break
        return proxy
    raise IsolationError(
        f"cannot run {name} in a worker process: {_load_failure(failure)}; pass "
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
