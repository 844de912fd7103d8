"""CallGuard: stop calling after a time-out or a crash, decided from the failure kind."""

from __future__ import annotations

import pytest

from gradverify.engine.harness import CallFailure
from gradverify.engine.stopping import CallGuard, stops_calling


@pytest.mark.parametrize(
    ("failure", "stops"),
    [
        (None, False),
        (CallFailure.RAISED, False),
        (CallFailure.MALFORMED, False),
        (CallFailure.TIMED_OUT, True),
        (CallFailure.CRASHED, True),
        ("timed_out", True),
        ("raised", False),
    ],
)
def test_only_hangs_and_crashes_stop_the_calling(failure, stops):
    assert stops_calling(failure) is stops


def test_the_first_stopping_failure_stops_by_default():
    guard = CallGuard()
    assert guard.record(None) is False and guard.record(CallFailure.RAISED) is False
    assert guard.record(CallFailure.TIMED_OUT) is True
    assert guard.stopped and guard.stopped_by is CallFailure.TIMED_OUT


def test_a_limit_counts_each_kind_separately():
    guard = CallGuard(limit=3)
    for failure in (CallFailure.TIMED_OUT, CallFailure.CRASHED) * 2:
        assert guard.record(failure) is False
    assert guard.record(CallFailure.CRASHED) is True
    assert guard.stopped_by is CallFailure.CRASHED
    assert guard.counts == {CallFailure.TIMED_OUT: 2, CallFailure.CRASHED: 3}


def test_an_unknown_failure_name_is_an_error_not_a_pass():
    with pytest.raises(ValueError):
        stops_calling("melted")
    with pytest.raises(ValueError, match="at least 1"):
        CallGuard(limit=0)
