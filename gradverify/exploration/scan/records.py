"""The records a scan returns; each ``to_dict`` is one object of the scan JSON document.

The document's JSON Schema is ``gradverify/schemas/scan.schema.json``
(:func:`gradverify.exploration.scan.scan_schema`); floats are numbers or the strings
``"inf"``, ``"-inf"``, ``"nan"`` (:func:`gradverify.common.formatting.json_number`) and missing
values null. What each field means is said on its class below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradverify.common.formatting import json_number
from gradverify.model.lattice import bit_pattern, float_format

__all__ = ["FunctionScan", "HiddenUnderflow", "ScanRow", "SideScan", "SweepSeries", "Threshold"]


@dataclass(frozen=True)
class Threshold:
    """The first float (moving outward from 0 on one side) that fails one criterion.

    ``index`` (lattice steps from 0) is None when no checked float fails it. ``value`` is
    the float exactly (as a float64), ``decimal`` the shortest string reading back to it,
    ``bits`` its bit pattern in the dtype, ``previous_*`` the float just inside, which is
    good. ``status`` (``ok``/``nonfinite``/``error``), ``gradient`` (returned), ``exact``,
    ``relative_error`` and ``message`` (for ``error``) describe the call at the threshold.
    ``checked_below`` and ``settled``: see :mod:`.locate`. ``recoveries`` are
    ``(start, end, refined)`` regions after the threshold where the criterion no longer
    fails (so it is not monotone): ``refined`` regions have edges located by bisection; the
    others are given by the first and last checked float. At most 8 are kept;
    ``recovery_count`` counts them all.
    """

    criterion: str
    dtype: str
    side: str
    index: int | None = None
    value: float | None = None
    decimal: str | None = None
    bits: str | None = None
    previous_value: float | None = None
    previous_bits: str | None = None
    status: str | None = None
    gradient: float | None = None
    exact: float | None = None
    relative_error: float | None = None
    message: str | None = None
    recoveries: tuple[tuple[float, float, bool], ...] = ()
    recovery_count: int = 0
    checked_below: int = 0
    settled: bool = True

    @property
    def found(self) -> bool:
        return self.index is not None

    @property
    def monotone(self) -> bool:
        return self.recovery_count == 0

    def _found_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "value": json_number(self.value),
            "decimal": self.decimal,
            "bits": self.bits,
            "previous_value": json_number(self.previous_value),
            "previous_bits": self.previous_bits,
            "status": self.status,
            "gradient": json_number(self.gradient),
            "exact": json_number(self.exact),
            "relative_error": json_number(self.relative_error),
            "message": self.message,
            "checked_below": self.checked_below,
            "settled": self.settled,
        }

    def to_dict(self) -> dict:
        fmt = float_format(self.dtype)
        out: dict[str, Any] = {"criterion": self.criterion, "found": self.found}
        if self.found:
            out.update(self._found_dict())
        out.update(
            {
                "monotone": self.monotone,
                "recovery_count": self.recovery_count,
                "recoveries": [
                    {
                        "start": json_number(a),
                        "start_bits": bit_pattern(a, fmt),
                        "end": json_number(b),
                        "end_bits": bit_pattern(b, fmt),
                        "refined": refined,
                    }
                    for a, b, refined in self.recoveries
                ],
            }
        )
        return out


@dataclass(frozen=True)
class SideScan:
    """The output-layer thresholds on one side of 0 for one dtype and label.

    ``checked_points``: floats whose result is known (called, or determined by a batched
    call); ``verification``: ``"exhaustive"`` (every threshold is the first bad float
    among every finite float of the side, and ``monotone`` is exact; float16 and bfloat16)
    or ``"sampled"`` (bisected, verified on samples); ``max_relative_error`` and
    ``max_error_bits``: over the checked floats whose call returned; ``raises_anywhere``:
    some call failed. Recoveries (:class:`Threshold`) are counted among the checked floats.
    """

    side: str
    thresholds: dict[str, Threshold]
    checked_points: int
    verification: str  # "exhaustive" or "sampled"
    max_relative_error: float
    max_error_bits: float
    raises_anywhere: bool

    @property
    def finite_throughout(self) -> bool:
        """No checked float gave inf/NaN (calls that failed are counted under ``raises``)."""
        return not self.thresholds["nonfinite"].found

    def to_dict(self) -> dict:
        return {
            "side": self.side,
            "finite_throughout": self.finite_throughout,
            "raises_anywhere": self.raises_anywhere,
            "checked_points": self.checked_points,
            "verification": self.verification,
            "max_relative_error": json_number(self.max_relative_error),
            "max_error_bits": json_number(self.max_error_bits),
            "thresholds": {k: t.to_dict() for k, t in self.thresholds.items()},
        }


class _BothSides:
    """What a record with a ``positive`` and a ``negative`` SideScan offers."""

    positive: SideScan
    negative: SideScan

    @property
    def sides(self) -> tuple[SideScan, SideScan]:
        return self.positive, self.negative

    def threshold(self, side: str, criterion: str) -> Threshold:
        return (self.positive if side == "positive" else self.negative).thresholds[criterion]


@dataclass(frozen=True)
class ScanRow(_BothSides):
    """Output-layer thresholds for one implementation x dtype x label, both sides."""

    implementation: str
    dtype: str
    label: float
    positive: SideScan
    negative: SideScan

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "label": self.label,
            "sides": {"positive": self.positive.to_dict(), "negative": self.negative.to_dict()},
        }


@dataclass(frozen=True)
class HiddenUnderflow:
    """Where a saturated hidden unit's weight gradient becomes exactly 0 (one side).

    ``first_zero``: the first float where the returned gradient is exactly 0 while the exact
    one is not; ``representable_limit``: the first float where the exact gradient itself
    rounds to 0 in the dtype. ``nonfinite_points`` and ``error_points`` count the checked
    floats where the call returned inf/NaN or failed; ``message`` is the first failure's.
    In float16 and bfloat16 (``verification="exhaustive"``) both are the first such float
    among every float of the side; past ``first_zero``, a float whose batched call returned
    0 is not called alone, so recoveries there are among the checked floats.
    """

    implementation: str
    dtype: str
    activation: str
    side: str
    first_zero: Threshold
    representable_limit: Threshold
    checked_points: int
    verification: str
    nonfinite_points: int
    error_points: int
    message: str | None = None

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "activation": self.activation,
            "side": self.side,
            "first_zero": self.first_zero.to_dict(),
            "representable_limit": self.representable_limit.to_dict(),
            "checked_points": self.checked_points,
            "verification": self.verification,
            "nonfinite_points": self.nonfinite_points,
            "error_points": self.error_points,
            "message": self.message,
        }


@dataclass(frozen=True)
class SweepSeries:
    """Error against saturation for one implementation x dtype x label x side (by |h|).

    Per point (tuples of equal length, ordered by |h|): ``h`` (signed; ``saturation`` is
    |h|), the returned ``gradient`` (NaN where the call failed), the ``exact`` gradient, the
    scanner's ``relative_error``, the ``bits`` of error
    (:func:`gradverify.engine.compare.elementwise_errors`: ``log2(1 + ulps)``, inf/NaN
    counting as the dtype's width), ``nonfinite`` and ``error`` (the call failed).
    """

    implementation: str
    dtype: str
    label: float
    side: str
    h: tuple[float, ...]
    gradient: tuple[float, ...]
    exact: tuple[float, ...]
    relative_error: tuple[float, ...]
    bits: tuple[float, ...]
    nonfinite: tuple[bool, ...]
    error: tuple[bool, ...]

    @property
    def saturation(self) -> tuple[float, ...]:
        return tuple(abs(v) for v in self.h)

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "label": self.label,
            "side": self.side,
            "h": [json_number(v) for v in self.h],
            "saturation": [json_number(v) for v in self.saturation],
            "gradient": [json_number(v) for v in self.gradient],
            "exact": [json_number(v) for v in self.exact],
            "relative_error": [json_number(v) for v in self.relative_error],
            "bits": [json_number(v) for v in self.bits],
            "nonfinite": list(self.nonfinite),
            "error": list(self.error),
        }


@dataclass(frozen=True)
class FunctionScan(_BothSides):
    """Thresholds of one activation's hidden derivative or one loss's output delta.

    One implementation x dtype x function (x label, for a loss), both sides of 0, with the
    criteria of the output scan (:data:`.criteria.CRITERIA`). ``kind``: ``"activation"``
    (the probed gradient is dJ/dW1 of a hidden unit whose pre-activation is h) or
    ``"loss"`` (dJ/db of an output unit whose logit is h); ``function``: the activation or
    loss scanned. ``probe_loss``, ``probe_output``, ``outputs`` and ``probe`` (in words)
    describe the probe network (:mod:`.designs`); ``labels`` is the first output's label
    on each side (an activation's probe uses a different one per side). ``sweeps``: the
    error along each side, as for the output scan (empty without a sweep).
    """

    implementation: str
    dtype: str
    kind: str
    function: str
    probe_loss: str
    probe_output: str
    outputs: int
    probe: str
    labels: dict[str, float]
    positive: SideScan
    negative: SideScan
    sweeps: tuple[SweepSeries, ...] = ()

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "dtype": self.dtype,
            "kind": self.kind,
            "function": self.function,
            "probe": {
                "loss": self.probe_loss,
                "output_activation": self.probe_output,
                "outputs": self.outputs,
                "description": self.probe,
            },
            "labels": dict(self.labels),
            "sides": {"positive": self.positive.to_dict(), "negative": self.negative.to_dict()},
            "sweeps": [s.to_dict() for s in self.sweeps],
        }
