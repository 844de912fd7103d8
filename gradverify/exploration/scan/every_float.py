"""Every float of a 16-bit side, judged: the scan's default for float16 and bfloat16.

A 16-bit dtype has at most 32,767 finite floats per side, few enough to judge them all, so
its thresholds are not bisected: they are the first bad floats of the whole side, the
answer of calling the implementation at every float alone. Few calls do it
(:mod:`.batched`): batches of up to 4096 floats, then, for the floats a batch does not
determine (where the scaled result is subnormal or 0), smaller batches; every float called
alone is also a check that batching changed nothing. The exact gradients come from the
certified float64 enclosures of :mod:`.certified`, exact mpmath only where they do not
decide. Calls alone are made in groups (:meth:`.probes.Caller.each`), and a walk that stops
at a float it cannot foresee keeps only the calls up to it.

* Output layer (:func:`output_side`): a float whose batched result is subnormal or 0 is
  known to a range; where every float of the range gets the same verdicts it is judged
  from the range. The others (an implementation returning 0 deep in saturation, where a
  batch cannot tell 0 from the smallest subnormal) are called alone in lattice order,
  as far as each error level needs: every float below its first bad float, and past that
  float until one is good (or to the end, to call it monotone). So every threshold is the
  first bad float of the side and ``monotone`` is exact; recoveries are counted among the
  floats whose verdict is known (``checked_points``).
* Hidden-layer underflow (:func:`hidden_side`): the first float returning 0 is found the
  same way (a batched result that is not 0 proves the float's own is not 0); past it, a
  float whose batched result is 0 is not called alone, so recoveries beyond the first zero
  are those among the floats determined. ``representable_limit`` is exact at every float.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradverify.exploration.scan.batched import (
    FIRST_UNITS,
    GUARD_POINTS,
    Batches,
    NotBatchable,
    batches_for,
)
from gradverify.exploration.scan.certified import (
    Judged,
    hidden_enclosure,
    judge_side,
    output_enclosure,
    rounds_to_zero,
)
from gradverify.exploration.scan.criteria import CRITERIA, ERROR_LEVELS
from gradverify.exploration.scan.exact_forms import exact_output_gradient
from gradverify.exploration.scan.locate import MAX_RECOVERIES, REFINED_RECOVERIES, Located, spread
from gradverify.exploration.scan.observations import error_bits
from gradverify.exploration.scan.probes import HiddenProbe, OutputProbe
from gradverify.exploration.scan.records import HiddenUnderflow, SideScan
from gradverify.exploration.scan.sides import threshold_record
from gradverify.model.lattice import FloatFormat

__all__ = ["NotBatchable", "hidden_side", "located_everywhere", "output_side"]


def located_everywhere(bad: np.ndarray, checked: np.ndarray) -> Located:
    """The first bad float among the ``checked`` ones, and the runs of good checked floats
    after it (see :mod:`.locate`): a run's edges are exact (``refined``) when every float
    from the bad one before it to the bad one after it was checked."""
    hits = np.flatnonzero(bad & checked)
    if not len(hits):
        return Located(None, (), 0)
    t = int(hits[0])
    after = np.flatnonzero(checked[t:]) + t
    good = ~bad[after]
    starts = np.flatnonzero(good[1:] & ~good[:-1]) + 1
    ends = np.flatnonzero(good[:-1] & ~good[1:])
    if good[-1]:
        ends = np.append(ends, len(good) - 1)
    missing = np.cumsum(~checked)  # floats not checked up to each index
    regions = []
    for k in range(min(len(starts), MAX_RECOVERIES)):
        first, last = int(after[starts[k]]), int(after[ends[k]])
        until = int(after[ends[k] + 1]) - 1 if ends[k] + 1 < len(after) else len(bad) - 1
        whole = missing[until] == missing[int(after[starts[k] - 1])]
        regions.append((first, last, bool(whole) and k < REFINED_RECOVERIES))
    return Located(t, tuple(regions), len(starts), checked_below=t, settled=True)


def _agree(
    batches: Batches, alone: np.ndarray, failed: np.ndarray, call: tuple[np.ndarray, ...]
) -> None:
    """NotBatchable unless each float's call alone (``alone``: its entries; ``failed``: it
    failed) agrees with the batched ``call`` = (indices, units, raw): a normal batched
    entry times B is the entry alone, a subnormal or zero one is the entry alone divided by
    B to within half the smallest subnormal (where the division happened before the last
    rounding, it is still there: the range's ends are floats)."""
    index, units, raw = call
    batched = units > 1
    index, units, raw = index[batched], units[batched], raw[batched]
    alone, failed = alone[batched], failed[batched]
    fmt = batches.fmt
    with np.errstate(invalid="ignore"):
        scaled = raw * units[:, None]
        # normal or inf/NaN: the batched result is the float's own, divided by B; subnormal
        # or 0: the float's own result lies in the range the batched one allows
        proves = ~np.isfinite(raw) | (np.abs(raw) >= math.ldexp(1.0, fmt.emin))
        inside = np.abs(alone / units[:, None] - raw) <= fmt.min_subnormal / 2
        same = np.where(proves, (alone == scaled) | (np.isnan(alone) & np.isnan(raw)), inside)
    wrong = np.flatnonzero(~np.all(same, axis=1) | failed)
    if not len(wrong):
        return
    k = wrong[0]
    h, u = float(batches.floats[index[k]]), int(units[k])
    if failed[k]:
        why = f"fails alone but not with {u - 1} other floats"
    else:
        why = (
            f"returned {tuple(alone[k])} alone but {tuple(raw[k] * u)} with {u} floats: the "
            "implementation does not apply the mean's 1/N as a factor"
        )
    raise NotBatchable(f"at h = {h!r} the implementation {why}")


def _smaller_batch(raw: np.ndarray, units: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Per float, the largest power of two B that keeps its one-float result normal when
    divided by B, from its subnormal batched result (1 where none, or the result was 0)."""
    spacing = fmt.min_subnormal
    with np.errstate(all="ignore"):
        lowest = (np.min(np.abs(raw), axis=1) - spacing / 2) * units  # |r_1| is at least this
        ratio = lowest / math.ldexp(1.0, fmt.emin)
        exponent = np.floor(np.log2(np.where(ratio >= 1, ratio, 1.0)))
    return np.where(np.isfinite(exponent), 2 ** exponent.astype(np.int64), 1)


class _SideCalls:
    """The one-float results of every float of a side, from batches and calls alone."""

    def __init__(self, batches: Batches, entries: int) -> None:
        self.batches = batches
        n = batches.fmt.max_index + 1
        self.values = np.full((n, entries), np.nan)
        self.known = np.zeros(n, dtype=bool)  # the one-float result is in values
        self.last = (np.zeros(n, dtype=np.int64), np.full((n, entries), np.nan))
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # batched raw

    def batched(self, indices: np.ndarray, first: int, most: int | None = None) -> None:
        """Batch ``indices``: the floats whose batched result proves their own are known."""
        index, units, raw = self.batches.run(indices, first, most)
        if not len(index):
            return
        self.calls.append((index, units, raw))
        self.last[0][index], self.last[1][index] = units, raw
        proves = self.batches.single_equivalent(raw, units)
        self.values[index[proves]] = raw[proves] * units[proves, None]
        self.known[index[proves]] = True

    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Where a float's result is not known: the range its last batched result allows,
        ``|r_1 / B - r_B| <= smallest subnormal / 2`` (from a 0, only that zero's sign)."""
        units, raw = self.last[0][:, None].astype(np.float64), self.last[1]
        half = self.batches.fmt.min_subnormal / 2
        with np.errstate(invalid="ignore"):
            lo, hi = (raw - half) * units, (raw + half) * units
            zero = raw == 0
            lo = np.where(zero & ~np.signbit(raw), 0.0, lo)
            hi = np.where(zero & np.signbit(raw), -0.0, hi)
        unknown = ~self.known[:, None] & (units > 0)
        return np.where(unknown, lo, np.nan), np.where(unknown, hi, np.nan)

    def alone(self, indices: np.ndarray) -> None:
        """Call each of ``indices`` alone (in groups: :meth:`.probes.Caller.each`)."""
        indices = np.asarray(indices).tolist()
        each = self.batches.probe.returned_each(self.batches.negative, indices)
        for i, returned in zip(indices, each, strict=True):
            if returned.error is None:
                self.values[i] = returned.values
                self.known[i] = True

    def check(self) -> None:
        """Check every float called alone so far against every batched call of it."""
        probe, negative = self.batches.probe, self.batches.negative
        alone = np.full(self.values.shape, np.nan)
        wanted = np.zeros(len(self.known), dtype=bool)
        failed = np.zeros(len(self.known), dtype=bool)
        for (neg, i), returned in probe.calls_made.items():
            if neg == negative:
                wanted[i] = True
                failed[i] = returned.error is not None
                if not failed[i]:
                    alone[i] = returned.values
        for index, units, raw in self.calls:
            k = index[wanted[index]]
            pick = wanted[index]
            _agree(self.batches, alone[k], failed[k], (k, units[pick], raw[pick]))

    @property
    def returned(self) -> np.ndarray:
        failed = np.zeros(len(self.known), dtype=bool)
        failed[list(self.batches.errors)] = True
        return ~failed


def _guard_points(fmt: FloatFormat) -> np.ndarray:
    return np.array(spread(0, fmt.max_index, GUARD_POINTS), dtype=np.int64)


def _output_calls(probe: OutputProbe, negative: bool, timeout: float | None) -> _SideCalls:
    """Every float in batches, then the floats a batch did not determine in smaller ones."""
    batches = batches_for(probe, negative, timeout)
    calls = _SideCalls(batches, 2 if probe.layout.depth == 1 else 1)
    everything = np.arange(batches.fmt.max_index + 1, dtype=np.int64)
    calls.batched(everything, FIRST_UNITS)
    undetermined = np.flatnonzero(~calls.known & calls.returned)
    units, raw = calls.last[0][undetermined], calls.last[1][undetermined]
    smaller = _smaller_batch(raw, units, batches.fmt)
    for b in sorted(set(smaller.tolist()) - {1}):
        calls.batched(undetermined[smaller == b], b, b)
    calls.alone(_guard_points(batches.fmt))
    calls.check()  # before the many calls alone that batching needs: it may not suit
    return calls


WALK_GROUPS = (8, 64)
"""Calls in the first and the largest group of the hidden walk to the first float returning
0 alone (the groups double in between): a walk that stops early wastes at most a group."""
MAX_REFINEMENTS = 8
"""Floats called alone to settle a side's largest error where only a range is known."""
FIRST_WALK = 64
"""Floats called alone at first where ranges leave criteria open (doubling each time)."""


def _next_needed(bad: dict[str, np.ndarray], undecided: np.ndarray) -> int | None:
    """The first undecided float that some error level still needs, or None.

    A level needs the undecided floats below its first decided bad float (one of them may
    be the first bad float), and, past its threshold, one good float (else it is monotone
    only if every float after it is bad).
    """
    open_floats = np.flatnonzero(undecided)
    if not len(open_floats):
        return None
    needs = []
    for criterion in ERROR_LEVELS:
        flags = bad[criterion]
        decided_bad = np.flatnonzero(flags & ~undecided)
        if not len(decided_bad) or decided_bad[0] > open_floats[0]:
            return int(open_floats[0])
        t = int(decided_bad[0])
        if np.any(~flags[t:] & ~undecided[t:]):
            continue  # good again past the threshold: not monotone, whatever the rest
        later = open_floats[open_floats > t]
        if len(later):
            needs.append(int(later[0]))
    return min(needs) if needs else None


def _judged(probe: OutputProbe, calls: _SideCalls) -> Judged:
    """Every float judged from its result or its range; floats called alone as the
    thresholds and their monotonicity need (see :mod:`.every_float`), and the float with
    the largest error while that error is only a bound."""
    h = calls.batches.floats.astype(np.float64)
    enc = output_enclosure(h, probe.label, probe.outputs)

    def exact_at(i: int) -> Any:
        return exact_output_gradient(
            float(h[i]), probe.label, evaluator=probe.exact, outputs=probe.outputs
        )

    def judged_now() -> Judged:
        return judge_side(calls.values, calls.returned, enc, probe.fmt, exact_at, calls.ranges())

    judged, walk = judged_now(), FIRST_WALK
    while (needed := _next_needed(judged.bad, judged.undecided)) is not None:
        open_floats = np.flatnonzero(judged.undecided)
        calls.alone(open_floats[open_floats >= needed][:walk])
        if not calls.known[needed]:
            # its call alone failed where its batched call returned: batching does not suit
            # (and the float would stay undecided, walked again and again)
            calls.check()
            raise NotBatchable(f"at h = {float(h[needed])!r} the call alone failed")
        judged, walk = judged_now(), walk * 2
    for _ in range(MAX_REFINEMENTS):
        worst = [_worst(judged.relative_error), _worst(judged.bits)]
        bounded = [i for i in worst if i is not None and judged.bounded[i]]
        if not bounded:
            break
        calls.alone(np.array(bounded))
        judged = judged_now()
    return judged


def output_side(probe: OutputProbe, side: str, timeout: float | None) -> SideScan:
    """Every output-layer criterion's threshold on ``side``, from every float's result.

    NotBatchable if batched calls do not give the one-float results (see :mod:`.batched`).
    """
    negative = side == "negative"
    fmt = probe.fmt
    calls = _output_calls(probe, negative, timeout)
    judged = _judged(probe, calls)
    checked = ~judged.undecided
    thresholds = {}
    for criterion in CRITERIA:
        located = located_everywhere(judged.bad[criterion], checked)
        thresholds[criterion] = threshold_record(
            criterion, fmt, side, located, lambda i: probe.observe(negative, i)
        )
    worst_rel, worst_bits = _worst(judged.relative_error), _worst(judged.bits)
    scanned = SideScan(
        side=side,
        thresholds=thresholds,
        checked_points=int(checked.sum()),
        verification="exhaustive",
        max_relative_error=(
            probe.observe(negative, worst_rel).relative_error if worst_rel is not None else math.nan
        ),
        max_error_bits=(
            error_bits([probe.observe(negative, worst_bits)], fmt)[0]
            if worst_bits is not None
            else math.nan
        ),
        raises_anywhere=not calls.returned.all(),
    )
    calls.check()  # every float called alone, the thresholds' too
    return scanned


def _worst(measure: np.ndarray) -> int | None:
    """The float where ``measure`` is largest (NaN: the call failed), or None."""
    if np.all(np.isnan(measure)):
        return None
    return int(np.nanargmax(measure))


def _hidden_calls(
    probe: HiddenProbe, negative: bool, timeout: float | None
) -> tuple[_SideCalls, np.ndarray]:
    """Batched results of every float, and which are not 0; floats whose batched result is 0
    are called alone in lattice order until the first that returns 0 alone."""
    batches = batches_for(probe, negative, timeout)
    calls = _SideCalls(batches, 1)
    everything = np.arange(batches.fmt.max_index + 1, dtype=np.int64)
    calls.batched(everything, FIRST_UNITS)
    nonzero = np.zeros(len(everything), dtype=bool)
    for index, _, raw in calls.calls:
        nonzero[index] = raw[:, 0] != 0  # inf/NaN too: not 0
    walk = np.flatnonzero(~nonzero & calls.returned).tolist()
    for returned in probe.returned_each(negative, walk, *WALK_GROUPS):
        if returned.error is None and returned.values[0] == 0:
            break
    calls.alone(_guard_points(batches.fmt))
    calls.check()
    return calls, nonzero


def hidden_side(probe: HiddenProbe, side: str, name: str, timeout: float | None) -> HiddenUnderflow:
    """Where the hidden unit's returned gradient, and its exact one, become 0 on ``side``."""
    negative = side == "negative"
    fmt = probe.fmt
    calls, nonzero = _hidden_calls(probe, negative, timeout)
    n = fmt.max_index + 1
    zero = np.zeros(n, dtype=bool)
    established = nonzero | ~calls.returned
    errors = dict(calls.batches.errors)  # floats that failed alone
    for (neg, i), alone in probe.calls_made.items():
        if neg == negative:
            established[i] = True
            zero[i] = alone.error is None and alone.values[0] == 0
            if alone.error is not None:
                errors.setdefault(i, alone.error)
    first_zero = located_everywhere(zero, established)
    h = calls.batches.floats.astype(np.float64)
    limit = located_everywhere(
        rounds_to_zero(
            hidden_enclosure(probe.activation, h, probe.outputs),
            fmt,
            lambda i: probe.exact_rounds_to_zero(negative, i),
        ),
        np.ones(n, dtype=bool),
    )
    nonfinite = np.zeros(n, dtype=bool)
    for index, _, raw in calls.calls:
        nonfinite[index] = ~np.isfinite(raw[:, 0])
    return HiddenUnderflow(
        implementation=name,
        dtype=fmt.name,
        activation=probe.activation,
        side=side,
        first_zero=threshold_record(
            "first_zero", fmt, side, first_zero, lambda i: probe.observe(negative, i)
        ),
        representable_limit=threshold_record("representable_limit", fmt, side, limit, None),
        checked_points=int(established.sum()),
        verification="exhaustive",
        nonfinite_points=int((nonfinite & established).sum()),
        error_points=len(errors),
        message=errors[min(errors)] if errors else None,
    )
