"""Measurements the report makes itself with the core engine: error per layer, hidden underflow.

Both build small sigmoid + BCE networks with a fixed seed (so a report is reproducible),
round them to each dtype and judge the implementations against the exact reference of the
*rounded* problem:

* :func:`layer_errors`: one network whose output logits sit at ``output_logit``; the
  normwise error of every layer's dJ/dW_i (layer L first) shows how the output error
  travels back through ``delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1})``;
* :func:`hidden_underflow`: networks whose hidden pre-activations are scaled to a
  saturation level; at each level, the fraction of hidden-layer gradient entries that
  are exactly 0 in float while the exact gradient (an mpf) is not.

The results are plain dicts (inf as the string "inf") ready for report.json and the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gradverify.common.formatting import format_logit, format_time_limit, json_number
from gradverify.engine.check import check_problem
from gradverify.engine.harness import CallFailure, call_backprop
from gradverify.engine.implementations import capabilities_of
from gradverify.engine.results import CheckResult, Verdict
from gradverify.engine.stopping import CallGuard
from gradverify.exact.reference import ExactReferenceError, reference_gradients
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "LAYER_WIDTHS",
    "HIDDEN_LEVELS",
    "hidden_underflow",
    "layer_errors",
    "layer_problem",
    "saturated_problem",
    "supports_network",
]

LAYER_WIDTHS = (4, 8, 8, 8, 1)
"""The network of the per-layer figure: three sigmoid hidden layers, a sigmoid output, BCE."""

HIDDEN_LEVELS = tuple(float(v) for v in np.round(np.logspace(0, 3.5, 22), 3))
"""Hidden saturation levels max |h_i| of the underflow figure: 1 to about 3000, log-spaced."""


def supports_network(impl: Callable, spec: NetworkSpec, dtype: str) -> bool:
    """Whether ``impl`` declares support for every activation, the loss and the dtype."""
    caps = capabilities_of(impl)
    return (
        set(spec.activations) <= set(caps.activations)
        and spec.loss in caps.losses
        and dtype in caps.dtypes
    )


def _spec(widths: Sequence[int]) -> NetworkSpec:
    return NetworkSpec(tuple(widths), ("sigmoid",) * (len(widths) - 1), "bce")


def saturated_problem(
    widths: Sequence[int],
    hidden_level: float,
    output_level: float,
    *,
    batch: int,
    seed: int = 0,
    labels: str = "alternate",
) -> Problem:
    """A float64 sigmoid + BCE problem with max |h_i| = ``hidden_level`` in every hidden layer.

    The output layer is set so every output logit h_L lies in
    ``[output_level - 0.1, output_level]`` (a confident prediction when it is large).
    ``labels`` is ``"alternate"`` (0, 1, 0, ...) or ``"zeros"``. Seeded: reproducible.
    """
    rng = np.random.default_rng(seed)
    spec = _spec(widths)
    x = rng.standard_normal((widths[0], batch))
    weights, biases = [], []
    z = x
    for i in range(spec.depth):
        W = rng.standard_normal((widths[i + 1], widths[i]))
        b = rng.standard_normal(widths[i + 1]) * 0.1
        last = i == spec.depth - 1
        if last:
            # small spread around the target so every logit is close to output_level
            W *= 0.05 / max(1e-12, float(np.max(np.abs(W @ z))))
            b = np.full(widths[i + 1], float(output_level)) - np.max(W @ z, axis=1)
            h = W @ z + b[:, None]
        else:
            h = W @ z + b[:, None]
            scale = hidden_level / float(np.max(np.abs(h)))
            W, b = W * scale, b * scale
            h = W @ z + b[:, None]
            with np.errstate(all="ignore"):
                z = 1.0 / (1.0 + np.exp(-h))
        weights.append(W)
        biases.append(b)
    if labels == "zeros":
        y = np.zeros((widths[-1], batch))
    else:
        y = (np.arange(widths[-1] * batch).reshape(widths[-1], batch) % 2).astype(float)
    return Problem.from_arrays(spec, weights, biases, x, y, "float64")


def layer_problem(output_logit: float = 12.0, *, seed: int = 0) -> Problem:
    """The per-layer figure's network: moderate hidden layers (max |h_i| = 2), output logits
    just below ``output_logit`` (a confident prediction), labels alternating 0 and 1."""
    return saturated_problem(LAYER_WIDTHS, 2.0, output_logit, batch=8, seed=seed)


def layer_errors(
    implementations: Mapping[str, Callable],
    dtypes: Sequence[str],
    *,
    output_logit: float = 12.0,
    seed: int = 0,
    timeout: float | None = 10.0,
) -> dict[str, Any]:
    """Per-layer normwise error of dJ/dW_i and dJ/db_i for each implementation and dtype.

    Returns a dict with ``network``, ``widths``, ``output_logit``, ``depth`` and ``panels``
    (one per dtype: ``lines`` with ``implementation``, ``kind``, ``errors`` for W_L .. W_1,
    ``bias_errors`` likewise, ``verdict``), plus ``skipped`` notes.
    """
    base = layer_problem(output_logit, seed=seed)
    spec = base.spec
    calls = _Calls(implementations, timeout)
    panels = []
    for dtype in dtypes:
        lines = calls.layer_lines(base.astype(dtype), dtype)
        if lines:
            panels.append({"dtype": dtype, "lines": lines})
    logits = base.forward64().h[-1]
    return {
        "network": f"{spec.describe()}; batch {base.batch_size}, output logits h_L "
        f"from {format_logit(float(np.min(logits)))} to {format_logit(float(np.max(logits)))}, "
        "labels 0,1,0,1,...",
        "widths": list(spec.widths),
        "activations": list(spec.activations),
        "loss": spec.loss,
        "batch": base.batch_size,
        "seed": seed,
        "output_logit": float(output_logit),
        "depth": spec.depth,
        "panels": panels,
        "skipped": calls.skipped,
    }


class _Calls:
    """The implementations a measurement calls, each stopped after it hangs or crashes
    (:class:`~gradverify.engine.stopping.CallGuard`), and the notes on what was skipped."""

    def __init__(self, implementations: Mapping[str, Callable], timeout: float | None) -> None:
        self.implementations = implementations
        self.timeout = timeout
        self.guards = {name: CallGuard() for name in implementations}
        self.skipped: list[str] = []

    # -- the per-layer figure ------------------------------------------------

    def layer_lines(self, problem: Problem, dtype: str) -> list[dict[str, Any]]:
        """The lines of one dtype's panel: each implementation, then the stable baseline
        and the tolerance (from the last implementation checked)."""
        try:
            reference = reference_gradients(problem)
        except ExactReferenceError as exc:
            self.skipped.append(f"{dtype}: no exact reference ({exc})")
            return []
        lines: list[dict[str, Any]] = []
        weights = None
        for name, impl in self.implementations.items():
            result = self._check(name, impl, problem, reference, dtype)
            if result is None:
                continue
            weights = [t for t in result.tensors if t.kind == "weight"][::-1]
            bias = [t for t in result.tensors if t.kind == "bias"][::-1]
            lines.append(
                {
                    "implementation": name,
                    "kind": "implementation",
                    "verdict": result.verdict.value,
                    "errors": [json_number(t.normwise_error) for t in weights],
                    "bias_errors": [json_number(t.normwise_error) for t in bias],
                    "nonfinite": [t.nonfinite for t in weights],
                }
            )
        if weights is not None:
            baseline = [json_number(t.baseline_error) for t in weights]
            tolerance = [json_number(t.tolerance) for t in weights]
            lines.append(
                {"implementation": "stable baseline", "kind": "baseline", "errors": baseline}
            )
            lines.append({"implementation": "tolerance", "kind": "tolerance", "errors": tolerance})
        return lines

    def _check(
        self, name: str, impl: Callable, problem: Problem, reference: Any, dtype: str
    ) -> CheckResult | None:
        """The check of one implementation at one dtype, or None (and a note) without one."""
        if not supports_network(impl, problem.spec, dtype):
            self.skipped.append(f"{name} at {dtype}: does not declare sigmoid/bce/{dtype}")
            return None
        if self.guards[name].stopped:
            self.skipped.append(f"{name} at {dtype}: not called (it hung before)")
            return None
        result = check_problem(
            impl,
            problem,
            name=name,
            reference=reference,
            finite_differences=False,
            classify=False,
            repeat=1,
            timeout=self.timeout,
        )
        if result.verdict is Verdict.ERROR and not result.tensors:
            self.skipped.append(f"{name} at {dtype}: {result.message}")
            self.guards[name].record(result.call_failure)
            return None
        return result

    # -- the hidden-underflow figure -----------------------------------------

    def underflow_fraction(
        self, name: str, impl: Callable, problem: Problem, exact: list[np.ndarray]
    ) -> float | None:
        """The fraction of the hidden-layer entries that ``impl`` returns as 0 while
        ``exact`` is not; None when it is not called or its call fails."""
        if self.guards[name].stopped:
            return None
        outcome = call_backprop(impl, problem, timeout=self.timeout)
        if self.guards[name].record(outcome.failure):
            how = (
                "crashed its worker process"
                if outcome.failure is CallFailure.CRASHED
                else f"exceeded {format_time_limit(self.timeout)}"
            )
            self.skipped.append(f"{name}: stopped after a call that {how}")
        if not outcome.ok:
            return None
        hidden = len(exact) // 2
        got = [*outcome.dweights[:hidden], *outcome.dbiases[:hidden]]
        under, total = _hidden_entries(got, exact)
        return under / total if total else 0.0


def _hidden_entries(values: Sequence[np.ndarray], exact: Sequence[np.ndarray]) -> tuple[int, int]:
    """(entries exactly 0 in float with a non-zero exact value, entries with a non-zero
    exact value), over the given tensors."""
    underflow = nonzero = 0
    for value, ex in zip(values, exact, strict=True):
        exact_nonzero = np.frompyfunc(lambda v: bool(v != 0), 1, 1)(ex).astype(bool)
        float_zero = np.asarray(value).astype(np.float64) == 0.0
        nonzero += int(np.count_nonzero(exact_nonzero))
        underflow += int(np.count_nonzero(float_zero & exact_nonzero))
    return underflow, nonzero


def hidden_underflow(
    implementations: Mapping[str, Callable],
    dtypes: Sequence[str],
    *,
    levels: Sequence[float] = HIDDEN_LEVELS,
    widths: Sequence[int] = (4, 8, 8, 8, 1),
    batch: int = 4,
    seed: int = 0,
    timeout: float | None = 10.0,
    on_level: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """The fraction of hidden-layer gradient entries that underflow to 0, per level and dtype.

    For each level the hidden layers are scaled to max |h_i| = level (output max |h_L| = 1,
    so the output layer plays no part). Hidden layers are 1..L-1; both dW_i and db_i count.
    An implementation that raises at some level gets ``None`` there; one that exceeds the
    time limit is not called again (``None`` from there on).

    Returns a dict with ``network``, ``saturation`` (the levels) and ``series``: one per
    dtype and group of implementations with identical fractions (``dtype``,
    ``implementations``, ``fraction``), plus ``skipped`` notes.
    """
    spec = _spec(widths)
    calls = _Calls(implementations, timeout)
    usable = {
        (n, d)
        for n, impl in implementations.items()
        for d in dtypes
        if supports_network(impl, spec, d)
    }
    calls.skipped += [
        f"{n} at {d}: does not declare sigmoid/bce/{d}"
        for n in implementations
        for d in dtypes
        if (n, d) not in usable
    ]
    fractions: dict[tuple[str, str], list[float | None]] = {}
    for level in levels:
        base = saturated_problem(widths, level, 1.0, batch=batch, seed=seed)
        for dtype in dtypes:
            for key, value in _level_fractions(calls, base.astype(dtype), dtype, usable):
                fractions.setdefault(key, []).append(value)
        if on_level is not None:
            on_level(level)
    return {
        "network": f"{spec.describe()}; batch {batch}, output max |h_L| = 1",
        "widths": list(spec.widths),
        "activations": list(spec.activations),
        "loss": spec.loss,
        "batch": batch,
        "seed": seed,
        "saturation": [float(v) for v in levels],
        "series": _grouped_series(fractions, implementations, dtypes),
        "skipped": calls.skipped,
    }


def _level_fractions(
    calls: _Calls, problem: Problem, dtype: str, usable: set[tuple[str, str]]
) -> list[tuple[tuple[str, str], float | None]]:
    """((implementation, dtype), fraction) at one level: every implementation gets None
    when there is no exact reference, else each usable one its underflow fraction."""
    hidden = problem.spec.depth - 1
    try:
        reference = reference_gradients(problem)
    except ExactReferenceError:
        return [((n, dtype), None) for n in calls.implementations]
    exact = [*reference.exact_dweights[:hidden], *reference.exact_dbiases[:hidden]]
    return [
        ((name, dtype), calls.underflow_fraction(name, impl, problem, exact))
        for name, impl in calls.implementations.items()
        if (name, dtype) in usable
    ]


def _grouped_series(
    fractions: Mapping[tuple[str, str], list[float | None]],
    implementations: Mapping[str, Callable],
    dtypes: Sequence[str],
) -> list[dict[str, Any]]:
    """One series per dtype and group of implementations with identical fractions."""
    series = []
    for dtype in dtypes:
        groups: dict[tuple, list[str]] = {}
        for name in implementations:
            values = fractions.get((name, dtype))
            if values is not None:
                groups.setdefault(tuple(values), []).append(name)
        series.extend(
            {
                "dtype": dtype,
                "implementations": names,
                "fraction": [None if v is None else float(v) for v in values],
            }
            for values, names in groups.items()
        )
    return series
