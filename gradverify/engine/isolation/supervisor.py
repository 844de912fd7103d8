"""The parent's end of one worker process: start it, wait for it, time its calls, kill it.

The parent keeps the time. A call with no reply within its limit ends with SIGKILL of the
worker (a ``timed_out`` failure); a worker that dies is a ``crashed`` failure naming its
exit code or signal; a reply that cannot be read is treated as a crash. Workers come from
multiprocessing's ``forkserver`` (``spawn`` where there is none), which has imported
gradverify, numpy and, where installed, ml_dtypes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.connection import wait
from typing import Any

from gradverify.engine.call_outcome import CallFailure, CallOutcome, timeout_message
from gradverify.engine.isolation.protocol import decode, plain_loads, send
from gradverify.engine.isolation.registrations import registry_payload
from gradverify.engine.isolation.worker import worker_main
from gradverify.model.network import Problem

__all__ = [
    "CLOSE_GRACE",
    "LOAD_TIMEOUT",
    "ImplementationLoadError",
    "IsolationError",
    "Worker",
]

LOAD_TIMEOUT = 120.0
"""Seconds a worker may take to start and load the implementation (imports such as torch)."""

CLOSE_GRACE = 1.0
"""Seconds a worker gets to exit when closed before it is killed."""


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


_CONTEXT: Any = None


def _context() -> Any:
    """The multiprocessing context of the workers (forkserver, else spawn), made once."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            # ml_dtypes (bfloat16) where installed: a worker's first bfloat16 problem would
            # otherwise import it, for half a second, in every worker
            ctx.set_forkserver_preload(["gradverify.engine.isolation", "cloudpickle", "ml_dtypes"])
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


class Worker:
    """One worker process and the parent's end of its connection.

    Started by the constructor, which sends the activations and losses registered so far
    along (a worker started again after a crash gets the registry as it is then) and waits
    until the implementation is loaded (its metadata is then ``self.meta``) or raises
    :class:`ImplementationLoadError`.
    """

    def __init__(self, payload: bytes, by_factory: bool, load_timeout: float) -> None:
        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=worker_main,
            name="gradverify-worker",
            daemon=True,
            args=(child, payload, by_factory, dict(os.environ), registry_payload()),
        )
        try:
            self.process.start()
        finally:
            child.close()
        self.meta: dict[str, Any] = {}
        try:
            self.meta = self._ready(load_timeout)
        except BaseException:
            self.kill()
            raise

    def _ready(self, load_timeout: float) -> dict[str, Any]:
        """The worker's ``ready`` metadata, or ImplementationLoadError saying why not."""
        ready = wait([self.conn, self.process.sentinel], load_timeout)
        if not ready:
            self.kill()
            raise ImplementationLoadError(
                f"loading it in a worker process did not finish within {load_timeout:g} s"
            )
        try:
            reply = plain_loads(self.conn.recv_bytes(1 << 24))
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
        return reply[1]

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
            send(self.conn, ("close",))
        self.process.join(CLOSE_GRACE)
        self.kill()

    def request(self, problem: Problem, layout: str, repeat: int, errstate: dict) -> None:
        """Send one call request (OSError when the worker is gone)."""
        request = ("call", problem, layout, repeat, errstate)
        self.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))

    def request_many(self, problems: list[Problem], layout: str, errstate: dict) -> None:
        """Send one request for a call per problem, in a row (OSError when the worker is
        gone); the replies come one per call, as each ends."""
        request = ("calls", problems, layout, errstate)
        self.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))

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
            outcome = decode(plain_loads(self.conn.recv_bytes(limit)), problem)
        except (EOFError, OSError):
            return self.crashed(elapsed), False
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

    def crashed(self, elapsed: float) -> CallOutcome:
        """The outcome of a call during which the worker died (and the worker killed)."""
        how = _death(self.process)
        self.kill()
        return CallOutcome(
            None,
            None,
            f"crashed the worker process running it: it {how} during the call",
            elapsed,
            CallFailure.CRASHED,
        )
