"""When to stop calling an implementation: after it hung or crashed its worker.

An implementation that hangs on some inputs costs the whole per-call time limit on every
further call, and one that crashes its worker costs a new process each time. The search,
the scan and the report's measurements all stop calling it; this is the one place that
decides when, from the structured :class:`~gradverify.engine.harness.CallFailure` of each
call (never from message text).
"""

from __future__ import annotations

from gradverify.engine.call_outcome import STOPPING_FAILURES
from gradverify.engine.harness import CallFailure

__all__ = ["STOPPING_FAILURES", "CallGuard", "stops_calling"]


def stops_calling(failure: CallFailure | str | None) -> bool:
    """Whether a call that failed with ``failure`` (an enum or its value) ends the calling."""
    return failure is not None and CallFailure(failure) in STOPPING_FAILURES


class CallGuard:
    """Counts the stopping failures of one implementation; stops after ``limit`` of a kind.

    ``limit=1`` (the search, the measurements) stops at the first; the scan, which makes
    thousands of calls, tolerates a few (``MAX_TIMEOUTS`` there) before it gives up.
    """

    def __init__(self, limit: int = 1) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        self.limit = limit
        self.counts: dict[CallFailure, int] = {}
        self.stopped_by: CallFailure | None = None

    @property
    def stopped(self) -> bool:
        """True once a kind of stopping failure has happened ``limit`` times."""
        return self.stopped_by is not None

    def record(self, failure: CallFailure | str | None) -> bool:
        """Note one call's failure (None for success); return whether calling has stopped."""
        if stops_calling(failure):
            kind = CallFailure(failure)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if self.counts[kind] >= self.limit and self.stopped_by is None:
                self.stopped_by = kind
        return self.stopped
