"""What one call of an implementation produced: gradients, or what kind of failure and why.

The plain data that the harness (:mod:`gradverify.engine.harness`) returns for a call and
that a worker process (:mod:`gradverify.engine.isolation`) sends back for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from gradverify.engine.results import WarningCount

__all__ = ["STOPPING_FAILURES", "CallFailure", "CallOutcome", "failed", "timeout_message"]


class CallFailure(StrEnum):
    """What kind of failure a call was (``CallOutcome.failure``)."""

    RAISED = "raised"  # an exception, SystemExit and KeyboardInterrupt included
    TIMED_OUT = "timed_out"  # no answer within the per-call time limit
    CRASHED = "crashed"  # the worker process died: a signal, os._exit (isolated calls only)
    MALFORMED = "malformed"  # wrong type/shape/dtype/count, wrote into inputs, nondeterministic,
    # or a signature that does not take the protocol's arguments


STOPPING_FAILURES = frozenset({CallFailure.TIMED_OUT, CallFailure.CRASHED})
"""Failures after which calling again costs too much: a time-out, or a dead worker
(:mod:`gradverify.engine.stopping` decides what then)."""


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


def failed(
    failure: CallFailure, message: str, elapsed: float, caught: Sequence[WarningCount] = ()
) -> CallOutcome:
    """The outcome of a failed call."""
    return CallOutcome(None, None, message, elapsed, failure, tuple(caught))


def timeout_message(timeout: float | None, killed: bool = False) -> str:
    """The message of a call that exceeded ``timeout``."""
    text = f"the call did not return within {timeout:g} s (per-call time limit)"
    return text + ("; its worker process was killed" if killed else "")
