"""One dtype's summary: its verdict, its shrunk failures, their threshold, hints and snippet.

After the Hypothesis run of a dtype, each failure kind found is minimised further
(:mod:`gradverify.exploration.search.minimize`) and checked again with finite differences as
a second opinion; an ``unstable`` one gets its saturation threshold by bisection, compared
with every example tried; an ``incorrect`` or ``error`` one gets the condition hints of
targeted variants (:func:`gradverify.engine.conditions.condition_hints`); the worst kind
becomes the counterexample, with a copy-paste reproduction snippet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from gradverify.engine.check import INTERIOR_LIMIT
from gradverify.engine.conditions import condition_hints
from gradverify.engine.implementations import Capabilities, implementation_name
from gradverify.engine.repro import reproduction_snippet
from gradverify.engine.results import CheckResult, Verdict, worst_verdict
from gradverify.engine.stopping import stops_calling
from gradverify.exploration.search.minimize import (
    Checker,
    minimize_structure,
    threshold_by_bisection,
)
from gradverify.exploration.search.results import BeyondStable, DtypeSummary
from gradverify.exploration.search.rounds import DtypeRun

__all__ = ["summarize"]

_FAILURE_ORDER = (Verdict.ERROR, Verdict.INCORRECT, Verdict.UNSTABLE)
"""Failure kinds, worst first: the first one found is the dtype's counterexample."""


def summarize(
    impl: Callable,
    caps: Capabilities,
    run: DtypeRun,
    found: dict[Verdict, CheckResult],
    *,
    name: str,
    options: dict[str, Any],
    elapsed: float,
) -> DtypeSummary:
    """The summary of one dtype's run, from its samples and the shrunk failure of each kind."""
    summary = _tally(run, found, elapsed)
    checker = Checker(impl, options, caps)
    if run.stopped is not None:  # nothing more is asked of impl at this dtype
        checker.halt()
    summary.failures.update(_final_failures(checker, found))
    kinds = [summary.failures[v.value] for v in _FAILURE_ORDER if v.value in summary.failures]
    primary = kinds[0] if kinds else None
    hints = _threshold_hints(checker, summary, run.samples, primary)
    if primary is not None:
        hints.extend(_diagnosis_hints(checker, caps, primary, kinds[1:]))
    summary.diagnosis = list(dict.fromkeys(hints))
    if primary is not None:
        summary.counterexample = primary
        if primary.problem is not None:
            summary.reproduction = _reproduction(impl, primary, name, options)
    return summary


def _tally(run: DtypeRun, found: dict[Verdict, CheckResult], elapsed: float) -> DtypeSummary:
    """What the samples say: the verdict, worst bits, saturation range and passing levels."""
    samples = run.samples
    verdict = worst_verdict([s["verdict"] for s in samples] + [v.value for v in found])
    sats = [s["saturation"] for s in samples if math.isfinite(s["saturation"])]
    summary = DtypeSummary(
        dtype=run.dtype,
        verdict=verdict,
        examples=len(samples),
        worst_bits=(
            None if verdict is Verdict.ERROR else max((s["bits"] for s in samples), default=0.0)
        ),
        saturation_range=(min(sats, default=0.0), max(sats, default=0.0)),
        elapsed=elapsed,
        stopped_early=run.stopped.message if run.stopped is not None else None,
    )
    passing = [s["saturation"] for s in samples if s["verdict"] == "pass"]
    summary.max_passing_saturation = max(passing) if passing else None
    summary.beyond_stable = BeyondStable.from_samples(
        [s for s in samples if s["verdict"] == "pass"]
    )
    return summary


def _final_failures(checker: Checker, found: dict[Verdict, CheckResult]) -> dict[str, CheckResult]:
    """Each shrunk failure minimised, then checked again with finite differences.

    A failure that does not keep its kind when checked again (flaky) stays as it was seen.
    """
    failures: dict[str, CheckResult] = {}
    for kind in _FAILURE_ORDER:
        shrunk = found.get(kind)
        if shrunk is None:
            continue
        final = shrunk
        if shrunk.problem is not None:
            smaller = minimize_structure(checker, shrunk)
            final = checker(smaller.problem, finite_differences="auto", repeat=2)
            if final is None or final.verdict is not kind:  # flaky: keep what was seen
                final = smaller
        failures[kind.value] = final
    return failures


def _threshold_hints(
    checker: Checker,
    summary: DtypeSummary,
    samples: Sequence[dict],
    primary: CheckResult | None,
) -> list[str]:
    """Locate where an ``unstable`` failure starts (sets ``threshold_saturation``).

    Returns the saturation hint when the unstable failure is the dtype's counterexample;
    where it first fails is the dtype's own line (``first fails at max |h|``).
    """
    unstable = summary.failures.get(Verdict.UNSTABLE.value)
    if unstable is None or unstable.problem is None:
        return []
    first_fail, last_pass = threshold_by_bisection(checker, unstable.problem)
    observed = [s["saturation"] for s in samples if s["verdict"] == "unstable"]
    candidates = [t for t in (first_fail, *observed) if t is not None]
    summary.threshold_saturation = min(candidates) if candidates else None
    if summary.threshold_saturation is None or primary is not unstable:
        return []
    path = (
        f"; the shrunk network scaled toward the interior passes up to max |h| = {last_pass:.6g}"
        if last_pass is not None
        else ""
    )
    return [
        f"wrong only at saturation: it passes in the interior (max |h| <= {INTERIOR_LIMIT:g}){path}"
    ]


def _diagnosis_hints(
    checker: Checker, caps: Capabilities, primary: CheckResult, others: Sequence[CheckResult]
) -> list[str]:
    """The counterexample's own hints, its condition hints, and the other kinds found."""
    hints = list(primary.diagnosis)
    if (
        primary.verdict is not Verdict.UNSTABLE
        and primary.problem is not None
        and not checker.stopped
    ):
        hints.extend(
            condition_hints(
                primary.problem,
                checker.verdict_of,
                primary.verdict.value,
                caps.activations,
                admits=checker.admits,
                losses=caps.losses,
            )
        )
    for other in others:
        hints.append(
            f"also {other.verdict.value} on other examples (shrunk separately to "
            f"network {other.spec.describe()}, batch {other.problem.batch_size}): "
            f"{other.message}"
        )
    return hints


def _reproduction(impl: Callable, primary: CheckResult, name: str, options: dict[str, Any]) -> str:
    """The copy-paste snippet that reproduces the counterexample's verdict."""
    return reproduction_snippet(
        impl,
        primary.problem,
        name=None if name == implementation_name(impl) else name,
        tolerance_factor=options["tolerance_factor"],
        policy=options["policy"],
        isolate=stops_calling(primary.call_failure),
        comment=(
            f"Reproduces gradverify's {primary.verdict.value} verdict for {name} "
            f"({primary.dtype}, network {primary.spec.describe()}, "
            f"batch {primary.problem.batch_size})"
        ),
    )
