"""What a scan of named activations and losses scans, and one function scan on one dtype.

:func:`plan_functions` turns ``scan(activations=..., losses=...)`` into the work: whether
the classic sigmoid + BCE output scan runs (``bce`` among the losses), and the
:class:`.designs.Design` of every other function scan with its probe layout.
:func:`scan_function` runs one design on one dtype: both sides of 0, every criterion of
the output scan, and the sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gradverify.engine.implementations import Capabilities
from gradverify.exploration.scan.designs import (
    Design,
    activation_design,
    loss_design,
    loss_labels,
    probe_loss,
)
from gradverify.exploration.scan.exact_forms import ExactEvaluator
from gradverify.exploration.scan.function_probe import FunctionProbe, function_layout
from gradverify.exploration.scan.probes import Caller, Layout
from gradverify.exploration.scan.records import FunctionScan
from gradverify.exploration.scan.sides import Plan, scan_side, sweep
from gradverify.model.functions import loss_function

__all__ = ["FunctionPlan", "plan_functions", "scan_function"]


@dataclass(frozen=True)
class FunctionPlan:
    """The function scans of one scan: ``bce`` (the classic output scan runs) and the
    other scans, each a design with its probe layout."""

    bce: bool
    designs: tuple[tuple[Design, Layout], ...]


def _names(kind: str, names: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = tuple(dict.fromkeys(str(n).strip() for n in names))
    for name in out:
        if not name:
            raise ValueError(f"{kind} names must not be empty")
    return out


def plan_functions(
    caps: Capabilities,
    activations: Iterable[str] | str | None,
    losses: Iterable[str] | str | None,
    labels: tuple[float, ...],
) -> FunctionPlan:
    """The work asked for by ``activations`` and ``losses`` (None: the default scan only).

    An activation's probe takes its loss from ``losses`` and the declared losses (see
    :data:`.designs.PROBE_LOSSES`); a loss is scanned at ``labels`` (classification) or
    y = 0 (regression). ``bce`` is the classic output scan. ValueError for an unknown
    name, or an architecture with no room for a probe.
    """
    if activations is None and losses is None:
        return FunctionPlan(True, ())
    acts = _names("activation", activations or ())
    loss_names = _names("loss", losses) if losses is not None else ()
    for name in loss_names:
        loss_function(name)  # an unknown name: the one message listing the known ones
    designs: list[Design] = []
    if acts:
        probe = probe_loss(tuple(dict.fromkeys((*loss_names, *caps.losses))))
        designs += [activation_design(a, probe) for a in acts]
    for name in loss_names:
        if name != "bce":
            designs += [loss_design(name, y) for y in loss_labels(name, labels)]
    bce = "bce" in loss_names if losses is not None else "bce" in caps.losses
    return FunctionPlan(bce, tuple(function_layout(caps, d)[::-1] for d in designs))


def scan_function(
    calls: Caller,
    plan: Plan,
    design: Design,
    layout: Layout,
    exact: ExactEvaluator,
    *,
    name: str,
    sweep_points: int,
) -> FunctionScan:
    """One design on one dtype: every criterion's threshold on each side, and the sweep."""
    probe = FunctionProbe(calls, plan.fmt, design, exact, layout)
    sides = (scan_side(probe, plan, "positive"), scan_side(probe, plan, "negative"))
    sweeps = tuple(sweep(probe, sides, sweep_points, name)) if sweep_points else ()
    return FunctionScan(
        implementation=name,
        dtype=plan.fmt.name,
        kind=design.kind,
        function=design.function,
        probe_loss=design.loss,
        probe_output=design.output,
        outputs=design.outputs,
        probe=design.describe(),
        labels={side: probe.label_for(side) for side in ("positive", "negative")},
        positive=sides[0],
        negative=sides[1],
        sweeps=sweeps,
    )
