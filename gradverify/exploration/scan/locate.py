"""Locating a threshold on one side of the lattice: the first bad float, verified.

On each side floats are addressed by lattice index (the bit pattern without the sign,
:mod:`gradverify.model.lattice`), so "the next float" is index + 1. A criterion is bisected
over ``[0, max finite]``. Bisection assumes monotonicity, so the result is **verified** by
evaluating the criterion on a set of floats (which ones: :class:`.sides.Plan`).

A bad float found below the threshold moves it down (bisecting between checked floats, at
most MAX_DESCENTS times). Where the criterion is *noisy* at the threshold (it moved, or a
good float lies within DENSE_WINDOW after it), all DENSE_WINDOW floats below are checked,
and again below any earlier bad float found, up to MAX_DENSE_WINDOWS windows.
``checked_below`` counts the consecutive floats just below the threshold that were checked
and are good; a threshold whose search below hit a limit is not ``settled`` (the first bad
float is at or below it). Rounding noise near an error level makes such criteria bad, good
and bad again across many floats (epsilon's ``error_1e-3`` in float32 is one); only an
exhaustive scan settles them completely.

A good float after the threshold is a **recovery**: the criterion is not monotone there.
The first MAX_RECOVERIES regions are reported (the first REFINED_RECOVERIES with edges
located by bisection), and all are counted. One kind is expected: once the exact gradient
underflows, a returned 0 is correctly rounded and counts as good again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "DENSE_WINDOW",
    "MAX_DENSE_WINDOWS",
    "MAX_DESCENTS",
    "MAX_RECOVERIES",
    "REFINED_RECOVERIES",
    "Located",
    "locate",
    "spread",
]

MAX_RECOVERIES = 8
"""Recovery regions reported per threshold; the rest are only counted."""
REFINED_RECOVERIES = 2
"""Recovery regions whose edges are located exactly by bisection (the first ones found)."""
DENSE_WINDOW = 1024
"""Where a criterion is noisy at its threshold, every float this far below it is checked..."""
MAX_DENSE_WINDOWS = 4
"""...and again below any earlier bad float found, at most this many times."""
MAX_DESCENTS = 4
"""Times verification may move a threshold down before it stops looking further below."""

Bad = Callable[[int], bool]
Region = tuple[int, int, bool]


@dataclass(frozen=True)
class Located:
    index: int | None
    recoveries: tuple[Region, ...]  # (first good, last good, edges bisected)
    recovery_count: int
    checked_below: int = 0  # consecutive floats just below the threshold, checked and good
    settled: bool = True  # False: the search for earlier bad floats stopped at its limit


def _bisect(bad: Bad, good_index: int, bad_index: int) -> int:
    """The first bad index in (good_index, bad_index], if there is one transition between."""
    lo, hi = good_index, bad_index
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad(mid):
            hi = mid
        else:
            lo = mid
    return hi


def spread(lo: int, hi: int, count: int) -> list[int]:
    """``count`` integers evenly spread over [lo, hi], ends included (exact for huge ints)."""
    if hi <= lo or count <= 1:
        return [lo]
    return [lo + (hi - lo) * k // (count - 1) for k in range(count)]


def _bisected(bad: Bad, max_index: int) -> int | None:
    """The first bad index if the criterion were monotone: bad at 0, or bisected to max."""
    if bad(0):
        return 0
    if bad(max_index):
        return _bisect(bad, 0, max_index)
    return None


def _verified(
    bad: Bad, t: int | None, base: set[int], around: Callable[[int], set[int]]
) -> tuple[int | None, bool]:
    """``(threshold, moved)``: ``t`` moved down to any bad float found on the checked points."""
    moves = 0
    while True:
        points = sorted(base | (around(t) if t is not None else set()))
        flags = [bad(i) for i in points]  # evaluate them all: recoveries use them too
        first = next((i for i, f in zip(points, flags, strict=True) if f), None)
        if first is None or (t is not None and first >= t):
            break
        # a bad float below the threshold: the criterion is not monotone; move down
        goods = [i for i in points if i < first]
        moves = moves + 1 if t is not None else 0
        t = first if not goods else _bisect(bad, goods[-1], first)
        if moves >= MAX_DESCENTS:
            break  # t is the first bad float found; there may be earlier ones
    return t, moves > 0


def _noisy_after(bad: Bad, t: int, checked: Iterable[int]) -> bool:
    """Whether a checked float within DENSE_WINDOW after ``t`` is good."""
    return any(not bad(i) for i in set(checked) if t < i <= t + DENSE_WINDOW)


def _dense_search(bad: Bad, t: int) -> tuple[int, bool]:
    """``(threshold, settled)``: every float of the windows below ``t`` checked, moving down."""
    for _ in range(MAX_DENSE_WINDOWS):
        earlier = next((i for i in range(max(0, t - DENSE_WINDOW), t) if bad(i)), None)
        if earlier is None:
            return t, True
        t = earlier
    return t, False


def _good_run_below(bad: Bad, t: int, checked: Iterable[int]) -> int:
    """How many consecutive floats just below ``t`` were checked and are good."""
    checked = set(checked)
    below = t
    while below > 0 and below - 1 in checked and not bad(below - 1):
        below -= 1
    return t - below


def _good_runs(bad: Bad, t: int, checked: Iterable[int]) -> list[list[int]]:
    """Runs of good checked floats after ``t``: [previous bad, first good, last good, next bad
    or -1 when the run reaches the last checked float]."""
    runs: list[list[int]] = []
    previous_bad = t
    current: list[int] | None = None
    for i in sorted(i for i in set(checked) if i >= t):
        if bad(i):
            if current is not None:
                current[3] = i
                runs.append(current)
                current = None
            previous_bad = i
        elif current is None:
            current = [previous_bad, i, i, -1]
        else:
            current[2] = i
    if current is not None:
        runs.append(current)
    return runs


def _recoveries(bad: Bad, runs: list[list[int]], max_index: int) -> tuple[Region, ...]:
    """The first MAX_RECOVERIES runs as regions; the first REFINED_RECOVERIES bisected."""

    def good(i: int) -> bool:
        return not bad(i)

    regions = []
    for k, (before, first_good, last_good, next_bad) in enumerate(runs[:MAX_RECOVERIES]):
        if k < REFINED_RECOVERIES:
            start = _bisect(good, before, first_good)
            end = (_bisect(bad, last_good, next_bad) - 1) if next_bad >= 0 else max_index
            regions.append((start, end, True))
        else:
            regions.append((first_good, last_good, False))
    return tuple(regions)


def locate(
    bad: Bad,
    max_index: int,
    base: set[int],
    around: Callable[[int], set[int]],
    evaluated: Callable[[], Iterable[int]],
) -> Located:
    """The first bad lattice index, bisected then verified on ``base`` and ``around(t)``.

    Where the criterion is noisy at the threshold (verification moved it down, or a good
    float was checked within DENSE_WINDOW after it), every float of the DENSE_WINDOW floats
    below it is checked too, and again below any earlier bad float found. ``evaluated()``
    gives the indices checked so far (for recoveries and ``checked_below``).
    """
    t, moved = _verified(bad, _bisected(bad, max_index), base, around)
    if t is None:
        return Located(None, (), 0)
    settled = True
    if moved or _noisy_after(bad, t, evaluated()):
        t, settled = _dense_search(bad, t)
    below = _good_run_below(bad, t, evaluated())
    runs = _good_runs(bad, t, evaluated())
    return Located(t, _recoveries(bad, runs, max_index), len(runs), below, settled)
