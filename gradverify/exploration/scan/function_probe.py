"""The probe of a function scan: the implementation called at one lattice float at a time.

The network is a :class:`.designs.Design`'s (see there), built inside a declared
architecture as :mod:`.probes` builds the BCE probes: the smallest allowed depth (at least 2
for a hidden derivative), the declared widths (1 where free, 2 outputs for softmax_ce), the
smallest allowed batch, zero weights and biases elsewhere. At depth 1 (a loss) or 2 (an
activation) the probe compares the returned ``dJ/dW[0, 0]`` and ``dJ/db[0]`` of the probed
layer; deeper, only ``dJ/db[0]``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from gradverify.engine.implementations import Capabilities
from gradverify.exact.rounding import split_to_float64
from gradverify.exploration.scan.criteria import ERROR_LEVELS
from gradverify.exploration.scan.designs import Design, exact_design_gradient
from gradverify.exploration.scan.exact_forms import ExactEvaluator
from gradverify.exploration.scan.observations import Observation, judge
from gradverify.exploration.scan.probes import Caller, Layout, probe_layout
from gradverify.model.lattice import FloatFormat
from gradverify.model.network import NetworkSpec, Problem

__all__ = ["FunctionProbe", "function_layout"]


def function_layout(caps: Capabilities, design: Design) -> tuple[Layout, Design]:
    """The probe network's layout for ``design`` inside ``caps``, and the design with the
    layout's number of outputs; ValueError where the architecture leaves no room for it."""
    min_depth = 2 if design.kind == "activation" else 1
    layout = probe_layout(caps, min_depth)
    what = f"the {design.kind} scan of {design.function!r}"
    if layout is None:
        raise ValueError(
            f"{what} needs a network of depth {min_depth} or more, but the implementation "
            "declares a smaller depth"
        )
    widths = list(layout.widths)
    if caps.widths is None or caps.widths[-1] is None:
        widths[-1] = design.outputs
    elif widths[-1] < design.outputs:
        raise ValueError(
            f"{what} needs {design.outputs} outputs (loss {design.loss}), but the "
            f"implementation declares an output width of {widths[-1]}"
        )
    return replace(layout, widths=tuple(widths)), design.with_outputs(widths[-1])


class FunctionProbe:
    """Calls the implementation on a design's probe network at lattice floats (cached)."""

    def __init__(
        self,
        calls: Caller,
        fmt: FloatFormat,
        design: Design,
        exact: ExactEvaluator,
        layout: Layout,
    ) -> None:
        self.calls, self.fmt, self.design, self.exact = calls, fmt, design, exact
        self.layout = layout
        dt, n, depth = fmt.dtype, layout.widths, layout.depth
        probed = depth - 1 if design.kind == "loss" else depth - 2  # the layer holding h
        self.probed = probed
        acts = [layout.filler] * depth
        acts[-1] = design.output
        if design.kind == "activation":
            acts[probed] = design.function
        self.spec = NetworkSpec(n, tuple(acts), design.loss)
        weights = [np.zeros((n[i + 1], n[i]), dtype=dt) for i in range(depth)]
        if design.kind == "activation":
            weights[-1][0, 0] = 1  # only the probed unit reaches the (first) output
        self.weights = tuple(weights)
        self.biases = [np.zeros(n[i + 1], dtype=dt) for i in range(depth)]
        self.x = np.ones((n[0], layout.batch), dtype=dt)
        self.y = {neg: self._labels(design.label(neg), dt) for neg in (False, True)}
        self.cache: dict[tuple[bool, int], Observation] = {}

    def _labels(self, y: float, dt: Any) -> np.ndarray:
        column = np.array(self.design.label_column(y), dtype=np.float64).astype(dt)
        return np.repeat(column[:, None], self.layout.batch, axis=1)

    def label_for(self, side: str) -> float:
        """The first output's label on ``side`` (as rounded to the dtype)."""
        return float(self.y[side == "negative"].astype(np.float64)[0, 0])

    def _problem(self, b: np.ndarray, negative: bool) -> Problem:
        biases = list(self.biases)
        biases[self.probed] = np.concatenate([b, biases[self.probed][1:]])
        return Problem(self.spec, self.weights, tuple(biases), self.x, self.y[negative])

    def _returned(self, outcome: Any) -> tuple[float, ...]:
        k = self.probed
        db = float(np.asarray(outcome.dbiases[k]).astype(np.float64).reshape(-1)[0])
        if k > 0:  # deeper than the smallest probe: only the bias gradient is compared
            return (db,)
        dw = float(np.asarray(outcome.dweights[k]).astype(np.float64).reshape(-1)[0])
        return (dw, db)

    def _exact(self, h: float, y: float) -> Any:
        """The exact gradient, or None where it is not judged (see :mod:`.designs`)."""
        if not self.design.judged(h):
            return None
        try:
            return exact_design_gradient(self.design, h, y, evaluator=self.exact)
        except (ArithmeticError, ValueError):  # OverflowError, ZeroDivisionError, no agreement
            return None

    def observe(self, negative: bool, index: int) -> Observation:
        key = (negative, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        bits = index | (self.fmt.sign_bit if negative else 0)
        b = np.array([bits], dtype=self.fmt.uint).view(self.fmt.dtype)
        h = float(b.astype(np.float64)[0])
        y = self.label_for("negative" if negative else "positive")
        g = self._exact(h, y)
        if g is None:  # outside the range of the exact forms: not judged
            obs = Observation(h, "unjudged", (), None, math.nan, 0.0, math.nan, frozenset())
            self.cache[key] = obs
            return obs
        outcome = self.calls.call(self._problem(b, negative))
        hi, lo = split_to_float64(g)
        if not outcome.ok:
            obs = Observation(
                h, "error", (), None, hi, lo, math.nan, frozenset({"raises"}), outcome.error
            )
        else:
            values = self._returned(outcome)
            status, worst, rel, bad = judge(values, g, self.fmt)
            if h in self.design.kinks:  # a convention there: only inf/NaN counts
                bad = bad - set(ERROR_LEVELS)
            obs = Observation(h, status, values, worst, hi, lo, rel, bad)
        self.cache[key] = obs
        return obs
