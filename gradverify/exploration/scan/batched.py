"""Many floats per call of the implementation, and what such a call proves about one float.

A **batched call** puts B floats of the lattice into one probe network: the output probe
with B output units (unit k's bias is the k-th float, ``W = 0``), or the hidden probe with
B hidden units each wired to its own output unit (``W_L`` is the identity). Unit k computes
what the one-float probe computes at its float, with one difference: the loss is a mean
over B times as many elements, so the implementation divides every gradient by B more, in
the dtype under test. B is always a power of two.

Dividing by a power of two is exact as long as the result is a normal float. For an
implementation that applies the mean's 1/N as a factor (the built-ins divide the output
delta by N; autograd of a mean multiplies by 1/N) at any step whose result stays normal,
the last operation computes ``round(P)`` alone and ``round(P / B)`` batched, for the same
exact ``P``; so for every entry

* ``r_B`` normal: ``r_1 = r_B * B`` exactly;
* ``r_B`` inf or NaN: ``r_1`` is the same;
* ``r_B`` subnormal or 0: ``r_1`` is **not** known, only that ``|r_1 / B - r_B|`` is at
  most half the smallest subnormal (the ends of that range are floats, so rounding ``P``
  cannot leave it; from a 0, only floats of that zero's sign). Such a float is called again
  with a smaller B (chosen from ``r_B`` so that ``r_1 / B`` is normal), or judged from
  the range where every float in it gets the same verdict, or called alone.

That the implementation behaves so is **checked, not assumed**: every float that is also
called alone (those above, :data:`GUARD_POINTS` spread over the side, every threshold)
must satisfy the above for every batched call it was in, and a batch that fails must
contain a float that fails alone. Otherwise
:class:`NotBatchable` is raised and the scanner falls back to calling one float at a time.

A failed batched call (raise, time limit, malformed answer) is split in halves until the
floats that fail alone are found. Calls start with :data:`FIRST_UNITS` floats and grow to
at most :data:`MAX_OUTPUT_UNITS` (hidden: :data:`MAX_HIDDEN_UNITS`, whose identity matrix
has B**2 entries) while a call takes well under the time limit; at the most, the calls are
made in groups (:meth:`.probes.Caller.each`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradverify.engine.call_outcome import CallOutcome
from gradverify.exploration.scan.probes import (
    HiddenProbe,
    OutputProbe,
    Returned,
    with_probed_bias,
)
from gradverify.model.lattice import FloatFormat, side_floats
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "FIRST_UNITS",
    "GUARD_POINTS",
    "MAX_FAILING_ALONE",
    "MAX_HIDDEN_UNITS",
    "MAX_OUTPUT_UNITS",
    "Batches",
    "NotBatchable",
    "batches_for",
]

FIRST_UNITS = 64
"""Floats in the first batched call of a side."""
MAX_OUTPUT_UNITS = 4096
"""Most floats per batched call of the output probe."""
MAX_HIDDEN_UNITS = 64
"""Most floats per batched call of the hidden probe (its W_L has B**2 entries)."""
GUARD_POINTS = 64
"""Floats per side spread over the lattice and also called alone, to check batching."""


MAX_FAILING_ALONE = 32
"""Floats that may fail alone (raise, hang, return something malformed) before the scan of a
side stops judging every float and bisects instead: an implementation that fails on most
floats would otherwise be called once per float, 65,536 times, each failure costing a
traceback (and, isolated, a round trip to its worker)."""


class NotBatchable(RuntimeError):
    """The implementation's batched results are not its one-float results, scaled."""


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


@dataclass
class Batches:
    """Batched calls of one probe on one side; every raw result kept for the checks."""

    probe: OutputProbe | HiddenProbe
    negative: bool
    max_units: int
    timeout: float | None
    floats: np.ndarray = field(init=False)
    errors: dict[int, str] = field(default_factory=dict)  # floats that fail alone

    def __post_init__(self) -> None:
        self.floats = side_floats(self.negative, self.probe.fmt)
        self._networks: dict[int, Problem] = {}
        self._elapsed = 0.0

    @property
    def fmt(self) -> FloatFormat:
        return self.probe.fmt

    @property
    def hidden(self) -> bool:
        return isinstance(self.probe, HiddenProbe)

    # -- the network of B units -----------------------------------------------------

    def _network(self, units: int) -> Problem:
        """The probe with ``units`` probed units (their biases 0), made and checked once."""
        made = self._networks.get(units)
        if made is not None:
            return made
        probe, dt = self.probe, self.fmt.dtype
        widths = list(probe.layout.widths)
        widths[-1] = units
        if self.hidden:
            widths[-2] = units
        depth = len(widths) - 1
        weights = [np.zeros((widths[i + 1], widths[i]), dtype=dt) for i in range(depth)]
        if self.hidden:
            weights[-1] = np.eye(units, dtype=dt)
        biases = tuple(np.zeros(widths[i + 1], dtype=dt) for i in range(depth))
        x = np.ones((widths[0], probe.layout.batch), dtype=dt)
        label = 0.0 if self.hidden else probe.label
        y = np.full((units, probe.layout.batch), label, dtype=np.float64).astype(dt)
        made = Problem(
            NetworkSpec(tuple(widths), probe.spec.activations, "bce"), tuple(weights), biases, x, y
        )
        self._networks[units] = made
        return made

    def _problem(self, indices: np.ndarray, units: int) -> Problem:
        """The network of ``units`` floats, the ``indices`` ones (padded with repeats); it
        shares every other array with the others of its size (one copy each when sent)."""
        probed = self.floats[np.resize(indices, units)]
        return with_probed_bias(self._network(units), -2 if self.hidden else -1, probed)

    def _entries(self, outcome: object, count: int) -> np.ndarray:
        """(count, entries) float64: what the one-float probe compares, per unit."""
        depth = self.probe.layout.depth
        if self.hidden:
            grad = outcome.dweights[0][:, 0] if depth == 2 else outcome.dbiases[-2]
            return np.asarray(grad).astype(np.float64)[:count, None]
        db = np.asarray(outcome.dbiases[-1]).astype(np.float64)[:count]
        if depth == 1:
            dw = np.asarray(outcome.dweights[0]).astype(np.float64)[:count, 0]
            return np.stack([dw, db], axis=1)
        return db[:, None]

    # -- calling ----------------------------------------------------------------------

    def _alone(self, index: int) -> Returned:
        return self.probe.returned(self.negative, index)

    def _call(self, indices: np.ndarray, units: int) -> list[tuple[np.ndarray, int, np.ndarray]]:
        """``[(indices, units, raw entries)]`` of the calls that returned; floats that fail
        alone go to ``errors``. NotBatchable if a batch fails with no float failing alone."""
        if units == 1:
            returned = self._alone(int(indices[0]))
            if returned.error is not None:
                self.errors[int(indices[0])] = returned.error
                if len(self.errors) > MAX_FAILING_ALONE:
                    raise NotBatchable(
                        f"more than {MAX_FAILING_ALONE} floats failed alone (last: "
                        f"{returned.error}); judging every float would call it once per float"
                    )
                return []
            return [(indices, 1, np.array([returned.values]))]
        return self._called(indices, units, self.probe.calls.call(self._problem(indices, units)))

    def _called(
        self, indices: np.ndarray, units: int, outcome: CallOutcome
    ) -> list[tuple[np.ndarray, int, np.ndarray]]:
        """:meth:`_call` from the outcome of the batched call of ``indices``."""
        if outcome.ok:
            self._elapsed = outcome.elapsed
            return [(indices, units, self._entries(outcome, len(indices)))]
        half = units // 2
        parts = [indices[:half], indices[half:]]
        done = [r for part in parts if len(part) for r in self._call(part, half)]
        if all(int(i) not in self.errors for part in parts for i in part):
            raise NotBatchable(
                f"a call with {units} floats failed ({outcome.error}), but each float alone did not"
            )
        return done

    def run(
        self, indices: np.ndarray, first: int = FIRST_UNITS, most: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Call every float of ``indices`` in batches of ``first`` floats, growing to at most
        ``most`` (default ``max_units``) while calls are quick.

        Returns ``(indices, units, raw)`` of the floats whose call returned: the number of
        floats in that call and its raw entries (floats, entries); the floats that fail
        alone are in ``errors``.
        """
        most = min(most or self.max_units, self.max_units)
        units = min(_power_of_two_at_most(first), most)
        done: list[tuple[np.ndarray, int, np.ndarray]] = []
        start = 0
        while start < len(indices) and units < most:
            chunk = indices[start : start + units]
            self._elapsed = 0.0
            done += self._call(chunk, units)
            start += len(chunk)
            if self._quick():
                units = min(units * 8, most)
        done += self._grouped(indices[start:], units)
        if not done:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1))
        return (
            np.concatenate([d[0] for d in done]),
            np.concatenate([np.full(len(d[0]), d[1]) for d in done]),
            np.concatenate([d[2] for d in done]),
        )

    def _grouped(self, indices: np.ndarray, units: int) -> list[tuple[np.ndarray, int, np.ndarray]]:
        """:meth:`_call` on each chunk of ``units`` floats, the calls made in groups
        (:meth:`.probes.Caller.each`)."""
        chunks = [indices[k : k + units] for k in range(0, len(indices), units)]
        if units == 1:
            return [r for chunk in chunks for r in self._call(chunk, 1)]
        outcomes = self.probe.calls.each(self._problem(c, units) for c in chunks)
        done = []
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            done += self._called(chunk, units, outcome)
        return done

    def _quick(self) -> bool:
        """Whether a call 8 times larger would still take under a tenth of the time limit."""
        limit = 1.0 if self.timeout is None else min(self.timeout, 10.0) / 10
        return self._elapsed * 8 < limit

    def single_equivalent(self, raw: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Per float, whether its batched entries prove its one-float entries (which are then
        ``raw * units``): every entry inf/NaN or a normal float (see the module doc)."""
        a = np.abs(raw)
        smallest_normal = np.ldexp(1.0, self.fmt.emin)
        with np.errstate(invalid="ignore"):
            scaled_ok = (a >= smallest_normal) & (a * units[:, None] <= self.fmt.max_finite)
        return (units == 1) | np.all(~np.isfinite(raw) | scaled_ok, axis=1)


def batches_for(probe: OutputProbe | HiddenProbe, negative: bool, timeout: float | None) -> Batches:
    """The batched calls of ``probe`` on one side (output or hidden probe)."""
    units = MAX_HIDDEN_UNITS if isinstance(probe, HiddenProbe) else MAX_OUTPUT_UNITS
    return Batches(probe, negative, units, timeout)
