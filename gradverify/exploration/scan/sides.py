"""One side of one dtype's lattice: which floats verify a threshold, and what is found there.

Verification (:class:`Plan`): a threshold found by bisection is checked on

* every float within ``neighbourhood`` ULPs of it, points spread over the octave below it,
  and every 16th of the DENSE_WINDOW floats below it;
* ``check_points`` floats spread over the whole lattice and over the saturation range
  (1/8 to twice ``ln(1/smallest subnormal)``);
* or, exhaustively, every finite float of a 16-bit dtype, each called alone
  (``exhaustive=True``; the default judges every 16-bit float of the output and hidden
  scans from batched calls instead, :mod:`.every_float`).

Sweep data (:func:`sweep`): points log-spaced in |h| (rounded to the lattice) from 1/16 past
the thresholds, plus the floats next to every threshold, with the bits and the relative
error of the returned gradient, exact at every point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from gradverify.exploration.scan.criteria import CRITERIA
from gradverify.exploration.scan.function_probe import FunctionProbe
from gradverify.exploration.scan.locate import DENSE_WINDOW, Located, locate, spread
from gradverify.exploration.scan.observations import Observation, error_bits
from gradverify.exploration.scan.probes import HiddenProbe, OutputProbe
from gradverify.exploration.scan.records import (
    HiddenUnderflow,
    SideScan,
    SweepSeries,
    Threshold,
)
from gradverify.model.lattice import (
    FloatFormat,
    bit_pattern,
    index_at_least,
    lattice_values,
    shortest_decimal,
)

__all__ = ["Plan", "scan_hidden", "scan_side", "sweep", "threshold_record"]


@dataclass(frozen=True)
class Plan:
    """Which floats verify a threshold on one side of one dtype's lattice."""

    fmt: FloatFormat
    check_points: int
    neighbourhood: int
    exhaustive: bool
    stride_window: bool = True  # every 16th of the DENSE_WINDOW floats below a threshold

    @property
    def verification(self) -> str:
        return "exhaustive" if self.exhaustive else "sampled"

    def base(self) -> set[int]:
        n = self.fmt.max_index
        if self.exhaustive:
            return set(range(n + 1))
        # the whole lattice, and the saturation range 1/8 .. 2 ln(1/smallest subnormal)
        focus_hi = index_at_least(2 * -math.log(self.fmt.min_subnormal), self.fmt)
        focus_lo = index_at_least(0.125, self.fmt)
        half = max(2, self.check_points // 2)
        return set(spread(0, n, half)) | set(spread(focus_lo, focus_hi, half))

    def around(self, t: int) -> set[int]:
        if self.exhaustive:
            return set()
        n, k = self.fmt.max_index, self.neighbourhood
        points = set(range(max(0, t - k), min(n, t + k) + 1))
        # the octave below: from the float of half the magnitude up to t
        magnitude = abs(float(lattice_values([t], False, self.fmt).astype(np.float64)[0]))
        lo = index_at_least(magnitude / 2, self.fmt)
        points |= set(spread(lo, t, max(2, k // 2)))
        # every 16th float of the dense window below: a run of bad floats there marks the
        # criterion as noisy, and the whole window is then checked
        if self.stride_window:
            points |= set(range(t - 1, max(-1, t - DENSE_WINDOW - 1), -16))
        return points


def _call_first(probe: object, negative: bool, indices: Iterable[int]) -> None:
    """Call ``probe`` alone at each of ``indices`` now, in groups, for the observations that
    follow (a probe that only calls one float at a time is left to do so)."""
    if isinstance(probe, (OutputProbe, HiddenProbe)):
        for _ in probe.returned_each(negative, sorted(indices)):
            pass


def _value(i: int, negative: bool, fmt: FloatFormat) -> float:
    return float(lattice_values([i], negative, fmt).astype(np.float64)[0])


def threshold_record(
    criterion: str,
    fmt: FloatFormat,
    side: str,
    located: Located,
    observe: Callable[[int], Observation] | None,
) -> Threshold:
    """The :class:`Threshold` record of a located index (``observe``: the call there)."""
    negative = side == "negative"
    recoveries = tuple(
        (_value(a, negative, fmt), _value(b, negative, fmt), r) for a, b, r in located.recoveries
    )
    if located.index is None:
        return Threshold(
            criterion, fmt.name, side, recoveries=recoveries, recovery_count=located.recovery_count
        )
    t = located.index
    v = _value(t, negative, fmt)
    previous = _value(t - 1, negative, fmt) if t > 0 else None
    obs = observe(t) if observe is not None else None
    return Threshold(
        criterion,
        fmt.name,
        side,
        index=t,
        value=v,
        decimal=shortest_decimal(v, fmt),
        bits=bit_pattern(v, fmt),
        previous_value=previous,
        previous_bits=bit_pattern(previous, fmt) if previous is not None else None,
        status=obs.status if obs else None,
        gradient=obs.gradient if obs else None,
        exact=obs.exact if obs else None,
        relative_error=obs.relative_error if obs else None,
        message=obs.message if obs else None,
        recoveries=recoveries,
        recovery_count=located.recovery_count,
        checked_below=located.checked_below,
        settled=located.settled,
    )


def scan_side(probe: OutputProbe | FunctionProbe, plan: Plan, side: str) -> SideScan:
    """Every output-layer criterion's threshold on one side, for one dtype and label (or, for
    a function scan, one function and label)."""
    negative = side == "negative"
    fmt = plan.fmt

    def observe(i: int) -> Observation:
        return probe.observe(negative, i)

    def evaluated() -> list[int]:
        return [i for (neg, i) in probe.cache if neg == negative]

    base = plan.base()
    _call_first(probe, negative, base)  # the first criterion's verification checks them all
    thresholds = {}
    for criterion in CRITERIA:
        located = locate(
            lambda i, c=criterion: c in observe(i).bad, fmt.max_index, base, plan.around, evaluated
        )
        thresholds[criterion] = threshold_record(criterion, fmt, side, located, observe)
    seen = [o for (neg, _), o in probe.cache.items() if neg == negative]
    returned = [o for o in seen if o.status not in ("error", "unjudged")]
    return SideScan(
        side=side,
        thresholds=thresholds,
        checked_points=len(seen),
        verification=plan.verification,
        max_relative_error=max((o.relative_error for o in returned), default=math.nan),
        max_error_bits=max(error_bits(returned, fmt), default=math.nan),
        raises_anywhere=any(o.status == "error" for o in seen),
    )


def scan_hidden(probe: HiddenProbe, plan: Plan, side: str, name: str) -> HiddenUnderflow:
    """Where the hidden unit's returned gradient, and its exact one, become 0 on one side."""
    negative = side == "negative"
    fmt = plan.fmt

    def observe(i: int) -> Observation:
        return probe.observe(negative, i)

    base = plan.base()
    _call_first(probe, negative, base)  # the verification of first_zero checks them all
    first_zero = locate(
        lambda i: "first_zero" in observe(i).bad,
        fmt.max_index,
        base,
        plan.around,
        lambda: [i for (neg, i) in probe.cache if neg == negative],
    )
    limit = locate(
        lambda i: probe.exact_rounds_to_zero(negative, i),
        fmt.max_index,
        base,
        plan.around,
        lambda: [i for (neg, i) in probe.exact_cache if neg == negative],
    )
    seen = [o for (neg, _), o in probe.cache.items() if neg == negative]
    errors = [o for o in seen if o.status == "error"]
    return HiddenUnderflow(
        implementation=name,
        dtype=fmt.name,
        activation=probe.activation,
        side=side,
        first_zero=threshold_record("first_zero", fmt, side, first_zero, observe),
        representable_limit=threshold_record("representable_limit", fmt, side, limit, None),
        checked_points=len(seen),
        verification=plan.verification,
        nonfinite_points=sum(o.status == "nonfinite" for o in seen),
        error_points=len(errors),
        message=errors[0].message if errors else None,
    )


def _sweep_indices(side: SideScan, magnitudes: np.ndarray, fmt: FloatFormat) -> list[int]:
    """The lattice indices of ``magnitudes`` and of the floats next to each threshold."""
    indices = {index_at_least(m, fmt) for m in magnitudes}
    for t in side.thresholds.values():
        if t.found:
            indices |= {i for i in range(t.index - 2, t.index + 3) if 0 <= i <= fmt.max_index}
    return sorted(indices)


def sweep(
    probe: OutputProbe | FunctionProbe,
    sides: tuple[SideScan, ...],
    sweep_points: int,
    name: str,
) -> list[SweepSeries]:
    """Log-spaced |h| from 1/16 past the thresholds, plus the floats next to each threshold
    (``sides``: the thresholds found on each side, e.g. ``ScanRow.sides``)."""
    fmt = probe.fmt
    found = [t.value for s in sides for t in s.thresholds.values() if t.found]
    saturation = -math.log(fmt.min_subnormal)  # exp(-h) has underflowed entirely beyond
    top = max([1.1 * saturation, *(1.25 * abs(v) for v in found)])
    top = min(top, fmt.max_finite)
    magnitudes = np.geomspace(1 / 16, top, max(2, sweep_points // 2))
    series = []
    for side in sides:
        negative = side.side == "negative"
        indices = _sweep_indices(side, magnitudes, fmt)
        _call_first(probe, negative, indices)
        points = [probe.observe(negative, i) for i in indices]
        series.append(
            SweepSeries(
                implementation=name,
                dtype=fmt.name,
                label=probe.label_for(side.side),
                side=side.side,
                h=tuple(o.h for o in points),
                gradient=tuple(math.nan if o.gradient is None else o.gradient for o in points),
                exact=tuple(o.exact for o in points),
                relative_error=tuple(o.relative_error for o in points),
                bits=tuple(error_bits(points, fmt)),
                nonfinite=tuple(o.status == "nonfinite" for o in points),
                error=tuple(o.status == "error" for o in points),
            )
        )
    return series
