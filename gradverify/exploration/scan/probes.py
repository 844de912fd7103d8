"""The probe networks: the implementation called at one lattice float at a time (cached).

The output probe is the one-layer network and the hidden probe the 1 -> 1 -> 1 network of
:mod:`.exact_forms`, with the probed bias set to a float of the dtype.

Declared architectures: an implementation that declares its depth, widths or batch
(:func:`gradverify.supports`) is probed inside them: the probe network gets the smallest
allowed depth (at least 2 for the hidden-layer probe), the declared widths (1 where free)
and the smallest allowed batch. The layers before the probed one have ``W = 0``, ``b = 0``
(a sigmoid where declared, else the first declared activation), so they cannot change the
probed logit; every output unit gets the same bias and label, and the exact gradients are
divided by the number of outputs (the loss is a mean over all elements). Deeper than that,
the output probe compares only ``dJ/db_L`` and the hidden probe ``dJ/db_{L-1}``. A declared
depth of exactly 1 leaves no hidden layer (:func:`probe_layout` gives None).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.engine.harness import CallFailure, CallOutcome, call_backprop, call_backprop_many
from gradverify.engine.implementations import Capabilities
from gradverify.engine.stopping import CallGuard
from gradverify.exact.rounding import round_mpf, split_to_float64
from gradverify.exploration.scan.exact_forms import (
    ExactEvaluator,
    exact_hidden_gradient,
    exact_output_gradient,
)
from gradverify.exploration.scan.observations import Observation, judge
from gradverify.model.lattice import FloatFormat
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "GROUP_CALLS",
    "MAX_TIMEOUTS",
    "Caller",
    "HiddenProbe",
    "Layout",
    "OutputProbe",
    "Returned",
    "ScanAborted",
    "probe_layout",
    "with_probed_bias",
]


class ScanAborted(RuntimeError):
    """The implementation hung repeatedly: scanning on would take hours."""


MAX_TIMEOUTS = 3
"""Calls that may exceed the time limit before the scan is abandoned."""
GROUP_CALLS = 256
"""Most calls made together (:func:`~gradverify.engine.harness.call_backprop_many`): the
per-call set-up, and an isolated implementation's round trip to its worker, once per group."""


class Caller:
    """call_backprop for the probes of one scan; stops it after MAX_TIMEOUTS hangs or crashes."""

    def __init__(self, impl: Callable, timeout: float | None, name: str) -> None:
        self.impl, self.timeout, self.name = impl, timeout, name
        self.guard = CallGuard(limit=MAX_TIMEOUTS)

    def call(self, problem: Problem) -> CallOutcome:
        """One call, counted by the guard."""
        return self._counted(call_backprop(self.impl, problem, timeout=self.timeout))

    def each(
        self, problems: Iterable[Problem], first: int = GROUP_CALLS, most: int = GROUP_CALLS
    ) -> Iterator[CallOutcome]:
        """The outcome of a call per problem, in order, as :meth:`call` gives it one at a time.

        The calls are made in groups (``first`` problems, then twice as many each time, up to
        ``most``); an outcome is counted by the guard when it is taken. Stopping early
        leaves the rest of a group's outcomes untaken (their calls made, none counted): a
        walk that stops at a float it cannot foresee loses at most a group. After a call
        that timed out or crashed, the problems after it in its group are called again.
        """
        pending, queue, size = iter(problems), [], max(1, min(first, most))
        while True:
            queue += itertools.islice(pending, size - len(queue))
            if not queue:
                return
            outcomes = call_backprop_many(self.impl, queue, timeout=self.timeout)
            for outcome in outcomes:
                yield self._counted(outcome)
            del queue[: len(outcomes)]
            size = max(size, min(2 * size, most))

    def _counted(self, outcome: CallOutcome) -> CallOutcome:
        """``outcome``, counted; ScanAborted when it is the MAX_TIMEOUTS-th hang or crash."""
        if self.guard.record(outcome.failure):
            count = self.guard.counts[self.guard.stopped_by]
            if self.guard.stopped_by is CallFailure.TIMED_OUT:
                raise ScanAborted(
                    f"{self.name} did not return within {self.timeout:g} s on {count} "
                    f"calls; the scan makes thousands, so it stopped (raise timeout= or fix "
                    f"the implementation)"
                )
            raise ScanAborted(
                f"{self.name} crashed its worker process on {count} calls (last: "
                f"{outcome.error}); the scan makes thousands, so it stopped"
            )
        return outcome


@dataclass(frozen=True)
class Returned:
    """What one call at one float gave: the entries the probe compares (float64), or the
    call's error message (``values`` is then empty)."""

    values: tuple[float, ...]
    error: str | None = None


def with_probed_bias(template: Problem, layer: int, bias: np.ndarray) -> Problem:
    """``template`` with layer ``layer``'s bias replaced by ``bias`` (same shape and dtype).

    A shallow copy that shares the template's read-only arrays: the probes make one such
    problem per call, and the template was validated once (the harness copies every array
    before the implementation sees it).
    """
    bias = np.array(bias, dtype=template.x.dtype, copy=True)
    bias.setflags(write=False)
    biases = list(template.biases)
    if bias.shape != biases[layer].shape:
        raise ValueError(f"bias of shape {bias.shape} for a layer of {biases[layer].shape}")
    biases[layer] = bias
    problem = copy.copy(template)
    object.__setattr__(problem, "biases", tuple(biases))
    return problem


def _one_float(index: int, negative: bool, fmt: FloatFormat) -> np.ndarray:
    """A 1-element array holding the float at lattice ``index`` (a fast lattice_values)."""
    bits = index | (fmt.sign_bit if negative else 0)
    return np.array([bits], dtype=fmt.uint).view(fmt.dtype)


@dataclass(frozen=True)
class Layout:
    """The probe network's shape inside a declared architecture (see the module doc)."""

    widths: tuple[int, ...]
    batch: int = 1
    filler: str = "sigmoid"  # activation of the layers before the probed one

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


def probe_layout(caps: Capabilities, min_depth: int) -> Layout | None:
    """The smallest probe network of depth >= ``min_depth`` that ``caps`` allows, or None."""
    lo, hi = caps.depth_range or (1, max(min_depth, 1))
    depth = max(lo, min_depth)
    if depth > hi:
        return None
    widths = caps.widths or (None,) * (depth + 1)
    filler = "sigmoid" if "sigmoid" in caps.activations else caps.activations[0]
    return Layout(
        tuple(1 if n is None else n for n in widths), caps.batch[0] if caps.batch else 1, filler
    )


class _CallsAlone:
    """A probe's calls at one float alone, cached per (side, float) in ``calls_made``."""

    calls: Caller
    calls_made: dict[tuple[bool, int], Returned]

    def _problem(self, negative: bool, index: int) -> Problem:
        raise NotImplementedError

    def _values(self, outcome: CallOutcome) -> tuple[float, ...]:
        raise NotImplementedError

    def _kept(self, key: tuple[bool, int], outcome: CallOutcome) -> Returned:
        """The call's Returned, cached (a result cached meanwhile stays)."""
        hit = Returned(self._values(outcome)) if outcome.ok else Returned((), outcome.error)
        return self.calls_made.setdefault(key, hit)

    def returned(self, negative: bool, index: int) -> Returned:
        """The call at one float alone: the entries compared (see the probe), or its error."""
        hit = self.calls_made.get((negative, index))
        if hit is not None:
            return hit
        return self._kept((negative, index), self.calls.call(self._problem(negative, index)))

    def returned_each(
        self,
        negative: bool,
        indices: Sequence[int],
        first: int = GROUP_CALLS,
        most: int = GROUP_CALLS,
    ) -> Iterator[Returned]:
        """:meth:`returned` at each of ``indices``, in order; the calls not cached are made
        in groups (:meth:`Caller.each`: ``first`` calls, doubling up to ``most``). A call is
        cached when its result is taken, so a walk that stops early caches exactly what it
        would have, calling one float at a time."""
        indices = [int(i) for i in indices]
        todo = list(dict.fromkeys(i for i in indices if (negative, i) not in self.calls_made))
        problems = (self._problem(negative, i) for i in todo)
        pairs = zip(todo, self.calls.each(problems, first, most), strict=True)
        for i in indices:
            hit = self.calls_made.get((negative, i))
            while hit is None:
                j, outcome = next(pairs)
                kept = self._kept((negative, j), outcome)
                hit = kept if j == i else None
            yield hit


def _zero_layers(layout: Layout, dt: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n = layout.widths
    return (
        [np.zeros((n[i + 1], n[i]), dtype=dt) for i in range(layout.depth)],
        [np.zeros(n[i + 1], dtype=dt) for i in range(layout.depth)],
    )


class OutputProbe(_CallsAlone):
    """Calls the implementation on the one-layer network at lattice floats (cached)."""

    def __init__(
        self,
        calls: Caller,
        fmt: FloatFormat,
        label: float,
        exact: ExactEvaluator,
        layout: Layout | None = None,
    ) -> None:
        layout = layout or Layout((1, 1))
        self.calls, self.fmt, self.exact = calls, fmt, exact
        dt = fmt.dtype
        n, depth = layout.widths, layout.depth
        self.layout, self.outputs = layout, n[-1]
        self.spec = NetworkSpec(n, (*(layout.filler,) * (depth - 1), "sigmoid"), "bce")
        weights, biases = _zero_layers(layout, dt)
        self.weights, self.hidden_biases = tuple(weights), tuple(biases[:-1])
        self.x = np.ones((n[0], layout.batch), dtype=dt)
        self.y = np.full((n[-1], layout.batch), label, dtype=np.float64).astype(dt)
        self.label = float(self.y.astype(np.float64)[0, 0])
        self.cache: dict[tuple[bool, int], Observation] = {}
        self.calls_made: dict[tuple[bool, int], Returned] = {}
        last = np.zeros(n[-1], dtype=dt)
        self.template = Problem(
            self.spec, self.weights, (*self.hidden_biases, last), self.x, self.y
        )

    def label_for(self, side: str) -> float:
        """The label on ``side``: the same on both."""
        return self.label

    def _problem(self, negative: bool, index: int) -> Problem:
        b = _one_float(index, negative, self.fmt)
        last = b if self.outputs == 1 else np.repeat(b, self.outputs)
        return with_probed_bias(self.template, -1, last)

    def _values(self, outcome: CallOutcome) -> tuple[float, ...]:
        """(dJ/dW, dJ/db) in the one-layer network; dJ/db_L in a deeper one."""
        db = float(outcome.dbiases[-1].astype(np.float64)[0])
        if self.layout.depth == 1:
            return float(outcome.dweights[0].astype(np.float64)[0, 0]), db
        return (db,)

    def observe(self, negative: bool, index: int) -> Observation:
        key = (negative, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        h = float(_one_float(index, negative, self.fmt).astype(np.float64)[0])
        g = exact_output_gradient(h, self.label, evaluator=self.exact, outputs=self.outputs)
        returned = self.returned(negative, index)
        hi, lo = split_to_float64(g)
        if returned.error is not None:
            obs = Observation(
                h, "error", (), None, hi, lo, math.nan, frozenset({"raises"}), returned.error
            )
        else:
            status, worst, rel, bad = judge(returned.values, g, self.fmt)
            obs = Observation(h, status, returned.values, worst, hi, lo, rel, bad)
        self.cache[key] = obs
        return obs


class HiddenProbe(_CallsAlone):
    """Calls the implementation on the 1 -> 1 -> 1 network at lattice floats (cached)."""

    def __init__(
        self,
        calls: Caller,
        fmt: FloatFormat,
        activation_name: str,
        exact: ExactEvaluator,
        layout: Layout | None = None,
    ) -> None:
        layout = layout or Layout((1, 1, 1))
        self.calls, self.fmt, self.exact = calls, fmt, exact
        self.activation = activation_name
        dt = fmt.dtype
        n, depth = layout.widths, layout.depth
        self.layout, self.outputs = layout, n[-1]
        self.spec = NetworkSpec(
            n, (*(layout.filler,) * (depth - 2), activation_name, "sigmoid"), "bce"
        )
        weights, biases = _zero_layers(layout, dt)
        weights[-1][0, 0] = 1  # only the probed unit reaches the (first) output
        self.weights = tuple(weights)
        self.biases = biases
        self.x = np.ones((n[0], layout.batch), dtype=dt)
        self.y = np.zeros((n[-1], layout.batch), dtype=dt)
        self.exact_cache: dict[tuple[bool, int], tuple[float, Any]] = {}
        self.cache: dict[tuple[bool, int], Observation] = {}
        self.calls_made: dict[tuple[bool, int], Returned] = {}
        self.template = Problem(self.spec, self.weights, tuple(biases), self.x, self.y)

    def exact_at(self, negative: bool, index: int) -> tuple[float, Any]:
        key = (negative, index)
        hit = self.exact_cache.get(key)
        if hit is None:
            h = float(_one_float(index, negative, self.fmt).astype(np.float64)[0])
            hit = (
                h,
                exact_hidden_gradient(
                    self.activation, h, evaluator=self.exact, outputs=self.outputs
                ),
            )
            self.exact_cache[key] = hit
        return hit

    def exact_rounds_to_zero(self, negative: bool, index: int) -> bool:
        return round_mpf(self.exact_at(negative, index)[1], self.fmt) == 0

    def _problem(self, negative: bool, index: int) -> Problem:
        probed = _one_float(index, negative, self.fmt)
        if self.biases[-2].shape[0] > 1:
            probed = np.concatenate([probed, self.biases[-2][1:]])
        return with_probed_bias(self.template, -2, probed)

    def _values(self, outcome: CallOutcome) -> tuple[float, ...]:
        """dJ/dW1 (x = 1) in the 1 -> 1 -> 1 network; dJ/db_{L-1} in a deeper one."""
        grad = outcome.dweights[0][0, 0] if self.layout.depth == 2 else outcome.dbiases[-2][0]
        return (float(np.asarray(grad).astype(np.float64)),)

    def observe(self, negative: bool, index: int) -> Observation:
        key = (negative, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        h, g = self.exact_at(negative, index)
        returned = self.returned(negative, index)
        hi, lo = split_to_float64(g)
        if returned.error is not None:
            obs = Observation(h, "error", (), None, hi, lo, math.nan, frozenset(), returned.error)
        else:
            value = returned.values[0]
            status = "ok" if math.isfinite(value) else "nonfinite"
            bad = frozenset({"first_zero"}) if value == 0 and g != 0 else frozenset()
            obs = Observation(h, status, (value,), value, hi, lo, math.nan, bad)
        self.cache[key] = obs
        return obs
