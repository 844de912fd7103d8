"""Process-wide state around in-process calls of an implementation.

Around a call the implementation gets the caller's numpy error state; afterwards whatever
it may have changed for everyone is put back: the working directory, the warning filters,
numpy's error state and mpmath's global precision. The warnings it raised are collected and
counted per source location, and, in the main thread, a real Ctrl-C is told apart from a
KeyboardInterrupt the code raises.

Many calls in a row share one :class:`CallerState`: set up once, with
:meth:`CallerState.call_ended` after each call (that call's warnings, and the state put back
where the call changed it, so that every call starts from the same state).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradverify.engine.results import WarningCount

__all__ = ["CallerState", "count_warnings"]

_CAUGHT_ACTIONS = {"default": "always", "module": "always", "once": "always", "error": "always"}
"""Warning filter actions rewritten while a call runs: every warning that would be shown
(or raised) is recorded instead, so each one is counted."""


class CallerState:
    """Around in-process calls: the caller's numpy error state for the implementation,
    then the cwd, warning filters, numpy error state and mpmath precision put back.

    Collects the warnings raised (``self.caught``: those since the last
    :meth:`call_ended`) and, in the main thread, tells a real Ctrl-C (``self.interrupted``)
    from a KeyboardInterrupt the implementation raises.
    """

    def __init__(self, errstate: dict[str, str], ctrl_c: bool) -> None:
        self.errstate = errstate
        self.ctrl_c = ctrl_c  # whether a KeyboardInterrupt may be the user's Ctrl-C
        self.interrupted = False
        self.caught: list[WarningCount] = []

    def __enter__(self) -> CallerState:
        self._enter()
        return self

    def _enter(self) -> None:
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
            self._on_sigint = on_sigint
        self._mark = 0  # where the log's entries of the current call start
        self._entered = (self._cwd, self._mp_prec, warnings.filters, list(warnings.filters))
        self._showwarning, self._np_state = warnings.showwarning, np.geterr()

    def __exit__(self, *exc_info: Any) -> None:
        self.caught = count_warnings(self._log[self._mark :])
        self._exit()

    def call_ended(self) -> list[WarningCount]:
        """The warnings of the call that just ended, and the state put back for the next.

        Only what the call changed is put back (checking costs microseconds; putting back,
        a new state, more).
        """
        caught = count_warnings(self._log[self._mark :])
        self._mark = len(self._log)
        if self._changed():
            self._exit()
            self._enter()
        return caught

    def _changed(self) -> bool:
        """Whether the call changed anything this state puts back or relies on."""
        cwd, mp_prec, filters, entries = self._entered
        mpmath = sys.modules.get("mpmath")
        return (
            warnings.filters is not filters
            or warnings.filters != entries
            or warnings.showwarning is not self._showwarning
            or np.geterr() != self._np_state
            or _getcwd() != cwd
            or (mpmath is not None and mpmath.mp.prec != mp_prec)
            or (self._sigint is not None and signal.getsignal(signal.SIGINT) is not self._on_sigint)
        )

    def _exit(self) -> None:
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
        self._errstate.__exit__(None, None, None)
        self._warnings.__exit__(None, None, None)
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


def count_warnings(log: Sequence[warnings.WarningMessage]) -> list[WarningCount]:
    """The warnings of ``log``, one entry per category and source location, with a count."""
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
