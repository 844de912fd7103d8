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
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.engine.harness import CallFailure, call_backprop
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
    "MAX_TIMEOUTS",
    "Caller",
    "HiddenProbe",
    "Layout",
    "OutputProbe",
    "Returned",
    "ScanAborted",
    "probe_layout",
]


class ScanAborted(RuntimeError):
    """The implementation hung repeatedly: scanning on would take hours."""


MAX_TIMEOUTS = 3
"""Calls that may exceed the time limit before the scan is abandoned."""


class Caller:
    """call_backprop for the probes of one scan; stops it after MAX_TIMEOUTS hangs or crashes."""

    def __init__(self, impl: Callable, timeout: float | None, name: str) -> None:
        self.impl, self.timeout, self.name = impl, timeout, name
        self.guard = CallGuard(limit=MAX_TIMEOUTS)

    def call(self, problem: Problem) -> Any:
        outcome = call_backprop(self.impl, problem, timeout=self.timeout)
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


def _with_probed_bias(template: Problem, layer: int, bias: np.ndarray) -> Problem:
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


def _zero_layers(layout: Layout, dt: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n = layout.widths
    return (
        [np.zeros((n[i + 1], n[i]), dtype=dt) for i in range(layout.depth)],
        [np.zeros(n[i + 1], dtype=dt) for i in range(layout.depth)],
    )


class OutputProbe:
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

    def returned(self, negative: bool, index: int) -> Returned:
        """The call at one float alone: the entries compared (dJ/dW, dJ/db), or its error."""
        key = (negative, index)
        hit = self.calls_made.get(key)
        if hit is not None:
            return hit
        b = _one_float(index, negative, self.fmt)
        last = b if self.outputs == 1 else np.repeat(b, self.outputs)
        outcome = self.calls.call(_with_probed_bias(self.template, -1, last))
        if not outcome.ok:
            hit = Returned((), outcome.error)
        else:
            db = float(outcome.dbiases[-1].astype(np.float64)[0])
            values = (
                (float(outcome.dweights[0].astype(np.float64)[0, 0]), db)
                if self.layout.depth == 1
                else (db,)
            )
            hit = Returned(values)
        self.calls_made[key] = hit
        return hit

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


class HiddenProbe:
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

    def returned(self, negative: bool, index: int) -> Returned:
        """The call at one float alone: the hidden gradient compared, or its error."""
        key = (negative, index)
        hit = self.calls_made.get(key)
        if hit is not None:
            return hit
        probed = _one_float(index, negative, self.fmt)
        if self.biases[-2].shape[0] > 1:
            probed = np.concatenate([probed, self.biases[-2][1:]])
        outcome = self.calls.call(_with_probed_bias(self.template, -2, probed))
        if not outcome.ok:
            hit = Returned((), outcome.error)
        else:
            # dJ/dW1 (x = 1) in the 1 -> 1 -> 1 network; dJ/db_{L-1} in a deeper one
            grad = outcome.dweights[0][0, 0] if self.layout.depth == 2 else outcome.dbiases[-2][0]
            hit = Returned((float(np.asarray(grad).astype(np.float64)),))
        self.calls_made[key] = hit
        return hit

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
