"""The scan: its arguments checked, then every dtype, label, hidden activation and named
activation or loss probed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gradverify.common.errstate import with_own_errstate
from gradverify.common.progress import Progress, ProgressCallback
from gradverify.engine.harness import DEFAULT_TIMEOUT
from gradverify.engine.implementations import Capabilities, capabilities_of, implementation_name
from gradverify.engine.isolation import isolate_option
from gradverify.exploration.scan.criteria import HIDDEN_ACTIVATIONS, SIDES
from gradverify.exploration.scan.designs import Design
from gradverify.exploration.scan.every_float import NotBatchable, hidden_side, output_side
from gradverify.exploration.scan.exact_forms import ExactEvaluator
from gradverify.exploration.scan.function_scans import plan_functions, scan_function
from gradverify.exploration.scan.probes import (
    Caller,
    HiddenProbe,
    Layout,
    OutputProbe,
    probe_layout,
)
from gradverify.exploration.scan.records import (
    FunctionScan,
    HiddenUnderflow,
    ScanRow,
    SideScan,
    SweepSeries,
)
from gradverify.exploration.scan.result import ScanResult
from gradverify.exploration.scan.sides import Plan, scan_hidden, scan_side, sweep
from gradverify.model.dtypes import (
    available_dtypes,
    dtype_name,
    resolve_dtype,
    skipped_dtype_notes,
    unavailable_dtypes,
)
from gradverify.model.lattice import float_format

__all__ = ["scan"]


def _checked_capabilities(impl: Callable, default_scan: bool) -> Capabilities:
    """The declaration; the default scan (no functions named) needs sigmoid and bce."""
    if not callable(impl):
        raise ValueError(f"scan needs a callable backprop implementation; got {impl!r}")
    caps = capabilities_of(impl)
    if default_scan and ("bce" not in caps.losses or "sigmoid" not in caps.activations):
        raise ValueError(
            f"the scanner varies a sigmoid output with loss 'bce', but the implementation "
            f"declares losses ({', '.join(caps.losses)}) and activations "
            f"({', '.join(caps.activations)})"
        )
    return caps


def _free_widths(caps: Capabilities, last: int) -> bool:
    """Whether the ``last`` layers' widths are free, so a probe can hold many floats."""
    return caps.widths is None or all(n is None for n in caps.widths[-last:])


def _check_settings(
    sweep_points: int, check_points: int, neighbourhood: int, timeout: float | None
) -> None:
    for label, v in (
        ("sweep_points", sweep_points),
        ("check_points", check_points),
        ("neighbourhood", neighbourhood),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{label} must be a non-negative integer; got {v!r}")
    if check_points < 2 or neighbourhood < 1:
        raise ValueError("check_points must be at least 2 and neighbourhood at least 1")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None; got {timeout!r}")


def _resolve_dtypes(impl: Callable, dtypes: Iterable[str] | str | None) -> tuple[str, ...]:
    if dtypes is None:
        available = set(available_dtypes())
        chosen = tuple(d for d in capabilities_of(impl).dtypes if d in available)
        if not chosen:
            why = "; ".join(skipped_dtype_notes(_skipped_dtypes(impl, None)))
            raise ValueError(
                f"none of the declared dtypes ({', '.join(capabilities_of(impl).dtypes)}) is "
                f"available here ({', '.join(sorted(available))}){f': {why}' if why else ''}"
            )
        return chosen
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    names = tuple(dict.fromkeys(dtype_name(resolve_dtype(d)) for d in dtypes))
    if not names:
        raise ValueError(
            "dtypes is empty: name at least one of float16, bfloat16, float32, float64"
        )
    return names


def _skipped_dtypes(impl: Callable, dtypes: Iterable[str] | str | None) -> dict[str, str]:
    """``{dtype: why}`` for the declared dtypes left out as unavailable (none when named)."""
    if dtypes is not None:  # named dtypes are resolved, so an unavailable one is an error
        return {}
    missing = unavailable_dtypes()
    return {d: missing[d] for d in capabilities_of(impl).dtypes if d in missing}


def _resolve_labels(labels: Iterable[float]) -> tuple[float, ...]:
    out = []
    for y in labels:
        try:
            v = float(y)
        except (TypeError, ValueError):
            raise ValueError(f"labels must be numbers in [0, 1]; got {y!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"labels must be numbers in [0, 1]; got {y!r}")
        out.append(v)
    if not out:
        raise ValueError("labels is empty: give at least one label in [0, 1], e.g. (0.0, 1.0)")
    return tuple(dict.fromkeys(out))


def _resolve_hidden(
    hidden_activations: Iterable[str] | None, caps: Capabilities, layout: Layout | None
) -> tuple[str, ...]:
    """The hidden activations to scan: the declared ones by default, none without a layer."""
    if hidden_activations is None:
        if layout is None:
            return ()  # a declared depth of 1 has no hidden layer to scan
        return tuple(a for a in HIDDEN_ACTIVATIONS if a in caps.activations)
    hidden = tuple(hidden_activations)
    for a in hidden:
        if a not in HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"hidden_activations must be among {', '.join(HIDDEN_ACTIVATIONS)}; got {a!r}"
            )
    if hidden and layout is None:
        raise ValueError(
            "the hidden-layer scan needs a network of depth 2 or more, but "
            "the implementation declares depth 1; pass hidden_activations=()"
        )
    return hidden


@dataclass(frozen=True)
class _Found:
    """What a scan found, in the order it found it."""

    rows: list[ScanRow]
    sweeps: list[SweepSeries]
    hidden: list[HiddenUnderflow]
    functions: list[FunctionScan]


@dataclass
class _Scanner:
    """One scan's implementation, labels, layouts and settings; :meth:`run` scans them."""

    name: str
    calls: Caller
    labels: tuple[float, ...]
    hidden: tuple[str, ...]
    output_layout: Layout | None
    hidden_layout: Layout | None
    settings: dict[str, Any]  # as recorded in ScanResult.settings
    functions: tuple[tuple[Design, Layout], ...] = ()
    exact: ExactEvaluator = field(default_factory=ExactEvaluator)
    batchable: tuple[bool, bool] = (False, False)  # output, hidden: free widths to batch in

    def every_float(self, plan: Plan, hidden: bool) -> bool:
        """Whether a side is judged at every float from batched calls (16-bit, by default)."""
        return plan.fmt.width == 16 and not plan.exhaustive and self.batchable[hidden]

    def output_sides(self, probe: OutputProbe, plan: Plan) -> tuple[SideScan, SideScan]:
        """Both sides' thresholds: at every float, or (32/64-bit, exhaustive=True, or an
        implementation batched calls do not suit) bisected and verified on samples."""
        if self.every_float(plan, False):
            try:
                return tuple(output_side(probe, s, self.calls.timeout) for s in SIDES)
            except NotBatchable:
                pass  # the floats called alone stay cached for the sampled scan
        return scan_side(probe, plan, "positive"), scan_side(probe, plan, "negative")

    def hidden_sides(
        self, probe: HiddenProbe, plan: Plan, hidden_plan: Plan
    ) -> list[HiddenUnderflow]:
        """Both sides' hidden underflow, as :meth:`output_sides` decides."""
        if self.every_float(plan, True):
            try:
                return [hidden_side(probe, s, self.name, self.calls.timeout) for s in SIDES]
            except NotBatchable:
                pass
        return [scan_hidden(probe, hidden_plan, side, self.name) for side in SIDES]

    def run(self, dtypes: tuple[str, ...], progress: ProgressCallback | bool | None) -> _Found:
        """Every dtype, in order; ``progress`` hears of each label's and activation's step."""
        found = _Found([], [], [], [])
        total = len(dtypes) * (len(self.labels) + len(self.hidden) + len(self.functions))
        shown = progress if callable(progress) else bool(progress)
        with Progress(total, title="gradverify scan", progress=shown, lines=True) as steps:
            for dt in dtypes:
                fmt, settings = float_format(dt), self.settings
                exhaustive = settings["exhaustive"] and fmt.width == 16  # one call per float
                plan = Plan(fmt, settings["check_points"], settings["neighbourhood"], exhaustive)
                self.output_layer(plan, steps, found)
                self.hidden_layer(plan, steps, found)
                self.function_scans(plan, steps, found)
        return found

    def output_layer(self, plan: Plan, steps: Progress, found: _Found) -> None:
        fmt = plan.fmt
        for y in self.labels:
            steps.step(f"{self.name} {fmt.name} y={y:g}: output layer")
            probe = OutputProbe(self.calls, fmt, y, self.exact, self.output_layout)
            row = ScanRow(self.name, fmt.name, probe.label, *self.output_sides(probe, plan))
            found.rows.append(row)
            if self.settings["sweep_points"]:
                points = self.settings["sweep_points"]
                found.sweeps.extend(sweep(probe, row.sides, points, self.name))
            steps.advance(announce=False)

    def hidden_layer(self, plan: Plan, steps: Progress, found: _Found) -> None:
        fmt = plan.fmt
        # one criterion per side (not five): half the verification points suffice
        hidden_plan = Plan(
            fmt, max(2, plan.check_points // 2), plan.neighbourhood, plan.exhaustive, False
        )
        for act in self.hidden:
            steps.step(f"{self.name} {fmt.name}: hidden {act} underflow")
            probe = HiddenProbe(self.calls, fmt, act, self.exact, self.hidden_layout)
            found.hidden.extend(self.hidden_sides(probe, plan, hidden_plan))
            steps.advance(announce=False)

    def function_scans(self, plan: Plan, steps: Progress, found: _Found) -> None:
        fmt = plan.fmt
        for design, layout in self.functions:
            what = f"{design.kind} {design.function}"
            if design.kind == "loss":
                what += f" y={design.label_positive:g}"
            steps.step(f"{self.name} {fmt.name}: {what}")
            found.functions.append(
                scan_function(
                    self.calls,
                    plan,
                    design,
                    layout,
                    self.exact,
                    name=self.name,
                    sweep_points=self.settings["sweep_points"],
                )
            )
            steps.advance(announce=False)


@with_own_errstate
@isolate_option
def scan(
    impl: Callable,
    *,
    dtypes: Iterable[str] | str | None = None,
    labels: Iterable[float] = (0.0, 1.0),
    name: str | None = None,
    sweep_points: int = 200,
    progress: ProgressCallback | bool | None = None,
    check_points: int = 256,
    neighbourhood: int = 32,
    exhaustive: bool = False,
    hidden_activations: Iterable[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    activations: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
) -> ScanResult:
    """Find where floating point breaks ``impl``'s BCE gradient, per dtype (see the package doc).

    Args:
        impl: a backprop following the protocol; for the default scan it must support a
            sigmoid output with bce.
        dtypes: dtype names; default: the declared dtypes that are available here. An
            explicit list is scanned even where the implementation did not declare it.
        labels: the labels y of the output-layer scan (each rounded to the dtype).
        name: the name shown in results (default: the declared name or module:qualname).
        sweep_points: log-spaced |h| points per label and dtype (half per side); 0: no sweep.
        progress: None/False quiet, True one line per step on stderr, or a callable
            ``(step, steps_done, steps_total)`` called as each step starts (the
            :data:`~gradverify.common.progress.ProgressCallback` of the search and reports).
        check_points: floats per side spread over the lattice to verify monotonicity.
        neighbourhood: every float within this many ULPs of a threshold is checked.
        exhaustive: call ``impl`` once per float at every finite float of float16 and
            bfloat16, in every scan (about 64k calls per label and dtype: the definition
            itself, for cross-checks). Without it the output and hidden scans of float16
            and bfloat16 still judge every float, from batched calls checked against
            calls alone (:mod:`.every_float`); function scans and float32/float64 are
            bisected and sampled.
        hidden_activations: hidden activations for the underflow scan (default: sigmoid
            and tanh, where declared); () skips it.
        timeout: seconds allowed per call of ``impl`` (None: no limit).
        activations: activations whose hidden-layer derivative to scan (any name
            :func:`gradverify.model.functions.activation` knows); see
            :mod:`.designs`. None: none.
        losses: losses whose output delta to scan: ``bce`` is the classic output scan
            (``labels``), any other a function scan. None: ``bce`` alone, as by default;
            when only ``activations`` are named, ``bce`` where declared.
        isolate: call ``impl`` in a supervised worker process (see
            :mod:`gradverify.engine.isolation`); a call that crashes it counts as failed.

    Returns:
        A :class:`ScanResult`.

    Raises:
        ValueError: bad arguments, an unknown function name, or (for the default scan)
            an implementation without sigmoid + bce support.
        ScanAborted: the implementation exceeded ``timeout`` (or, isolated, crashed its
            worker process) on 3 calls.
    """
    caps = _checked_capabilities(impl, activations is None and losses is None)
    _check_settings(sweep_points, check_points, neighbourhood, timeout)
    dtype_names = _resolve_dtypes(impl, dtypes)
    label_values = _resolve_labels(labels)
    functions = plan_functions(caps, activations, losses, label_values)
    row_labels = label_values if functions.bce else ()
    hidden_layout = probe_layout(caps, 2)
    hidden = _resolve_hidden(hidden_activations, caps, hidden_layout)
    if not (row_labels or hidden or functions.designs):
        raise ValueError("nothing to scan: name at least one activation or loss")
    display = name or implementation_name(impl)
    settings = {
        "check_points": check_points,
        "neighbourhood": neighbourhood,
        "exhaustive": bool(exhaustive),
        "sweep_points": sweep_points,
        "timeout": timeout,
    }
    scanner = _Scanner(
        display,
        Caller(impl, timeout, display),
        row_labels,
        hidden,
        probe_layout(caps, 1),
        hidden_layout,
        settings,
        functions.designs,
        batchable=(_free_widths(caps, 1), _free_widths(caps, 2)),
    )
    start = time.perf_counter()
    found = scanner.run(dtype_names, progress)
    return ScanResult(
        display,
        dtype_names,
        row_labels,
        found.rows,
        found.sweeps,
        found.hidden,
        time.perf_counter() - start,
        settings,
        skipped_dtypes=_skipped_dtypes(impl, dtypes),
        functions=found.functions,
    )
