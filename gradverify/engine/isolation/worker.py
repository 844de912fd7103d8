"""The worker process: it loads the implementation, then answers call requests until told to stop.

Before the implementation it restores the activations and losses registered in the parent.
It runs exactly the in-process checks of :func:`gradverify.engine.harness.call_once` and sends
back plain data (:mod:`gradverify.engine.isolation.protocol`). Before any user code runs it
ignores SIGINT (a real Ctrl-C is the parent's to handle), takes the parent's environment,
refuses ``breakpoint()`` with a message, and arranges to die with the parent.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any, NoReturn

from gradverify.engine.harness import CallSession, call_once
from gradverify.engine.isolation.protocol import encode, load_failure, metadata, send
from gradverify.engine.isolation.registrations import install_registry

__all__ = ["worker_main"]


def _exit_now(code: int = 0) -> NoReturn:
    """Leave the worker at once: no atexit handlers, no waiting for left-behind threads."""
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _breakpoint_in_worker(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(
        "breakpoint() was called in the implementation, which runs in a worker process "
        "without a terminal; to debug it, run it in-process: isolate=False, "
        "gradverify --no-isolate, or pytest --gradverify-no-isolate (the pytest plugin also "
        "runs in-process under --pdb, --trace or an attached debugger)"
    )


def _die_with_the_parent() -> None:
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


def _settle_in(environ: dict[str, str]) -> None:
    """The worker's own set-up, before any user code runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a real Ctrl-C is the parent's to handle
    # started as a daemon (never waited for at the parent's exit), but the implementation
    # may start processes of its own, which a daemon may not
    multiprocessing.current_process().daemon = False
    os.environ.clear()
    os.environ.update(environ)
    sys.breakpointhook = _breakpoint_in_worker
    _die_with_the_parent()


def _load_failed(conn: Any, stage: str, exc: BaseException) -> NoReturn:
    send(
        conn,
        ("load-failed", stage, type(exc).__name__, load_failure(exc), " ".join(str(exc).split())),
    )
    _exit_now()


def _load(conn: Any, payload: bytes, by_factory: bool) -> tuple[Callable, dict[str, Any]]:
    """The implementation (unpickled, or made by the unpickled factory) and its metadata."""
    try:
        obj = pickle.loads(payload)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        _load_failed(conn, "unpickle", exc)
    try:
        impl = obj() if by_factory else obj
        return impl, metadata(impl)
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import included
        _load_failed(conn, "load", exc)


def _answer_calls(conn: Any, impl: Callable, problems: list, layout: str, errstate: dict) -> None:
    """One reply per problem, each sent as soon as its call ends (the parent times each)."""
    with CallSession(impl, layout, None, errstate, in_worker=True) as session:
        for problem in problems:
            reply = encode(session.call(problem))
            try:
                send(conn, reply)
            except OSError:  # the parent has gone, or killed the call's list
                _exit_now()


def _serve(conn: Any, impl: Callable) -> NoReturn:
    """Answer call requests until the connection closes or the parent says anything else."""
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            _exit_now()
        if request[0] == "calls":
            _, problems, layout, errstate = request
            _answer_calls(conn, impl, problems, layout, errstate)
        elif request[0] == "call":
            _, problem, layout, repeat, errstate = request
            for _ in range(repeat):
                outcome = call_once(impl, problem, layout, None, errstate, in_worker=True)
                send(conn, encode(outcome))
                if not outcome.ok:
                    break
        else:
            _exit_now()
        _flush()


def worker_main(
    conn: Any, payload: bytes, by_factory: bool, environ: dict[str, str], registered: bytes = b""
) -> None:
    """The worker: restore the parent's registered activations and losses
    (:mod:`~gradverify.engine.isolation.registrations`), load the implementation, then answer
    call requests until told to stop."""
    _settle_in(environ)
    with contextlib.suppress(Exception):  # a name that cannot be restored stays unknown
        install_registry(registered)
    impl, meta = _load(conn, payload, by_factory)
    send(conn, ("ready", meta))
    _serve(conn, impl)
