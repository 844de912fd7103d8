"""How to declare the architecture, when an implementation errs at one depth but not others.

An ``error`` at one depth is followed by one call at each other allowed depth, on a small
problem built from the failing one (:func:`gradverify.model.rewrites.at_depth`); when one of
them returns gradients, the message says so and how to declare the depth
(``@gradverify.supports(depth=2)``).
"""

from __future__ import annotations

from collections.abc import Callable

from gradverify.engine.harness import call_backprop
from gradverify.engine.implementations import Capabilities
from gradverify.engine.results import CheckResult, Verdict
from gradverify.engine.stopping import stops_calling
from gradverify.exploration.search.results import DtypeSummary
from gradverify.model.network import Problem
from gradverify.model.rewrites import at_depth

__all__ = ["explain_architecture"]


def explain_architecture(
    impl: Callable,
    caps: Capabilities,
    summary: DtypeSummary,
    *,
    max_depth: int,
    timeout: float | None,
) -> None:
    """Append :func:`_architecture_hint` to the message of the dtype's ``error`` failure."""
    error = summary.failures.get(Verdict.ERROR.value)
    if error is None:
        return
    hint = _architecture_hint(impl, caps, error, max_depth=max_depth, timeout=timeout)
    if hint is not None:
        error.message = f"{error.message}; {hint}"


def _probe_problem(caps: Capabilities, failing: Problem, depth: int) -> Problem | None:
    """A small problem like ``failing`` at another depth; None when it is outside ``caps``.

    Its hidden layers have the first hidden activation of ``failing`` (or the first allowed
    one, when ``failing`` has none).
    """
    spec = failing.spec
    hidden = spec.activations[0] if spec.depth > 1 else caps.activations[0]
    probe = at_depth(failing, depth, hidden)
    return probe if caps.admits(probe.spec.widths, probe.batch_size) else None


def _working_depths(
    impl: Callable, caps: Capabilities, problem: Problem, depths: range, timeout: float | None
) -> list[int]:
    """The depths (other than the problem's) at which ``impl`` returns gradients of the
    right count, shapes and dtype."""
    works = []
    for d in depths:
        probe = _probe_problem(caps, problem, d) if d != problem.spec.depth else None
        if probe is not None and call_backprop(impl, probe, timeout=timeout).ok:
            works.append(d)
    return works


def _architecture_hint(
    impl: Callable,
    caps: Capabilities,
    failure: CheckResult,
    *,
    max_depth: int,
    timeout: float | None,
) -> str | None:
    """How to declare the architecture, when ``impl`` errs at one depth but returns at others.

    One call per other depth in the allowed range. None when the depth is declared or no
    other depth works.
    """
    problem = failure.problem
    if problem is None or stops_calling(failure.call_failure):
        return None
    depth = problem.spec.depth
    lo, hi = caps.depth_range or (1, max(max_depth, depth))
    if lo == hi:
        return None
    works = _working_depths(impl, caps, problem, range(lo, hi + 1), timeout)
    if not works:
        return None
    a, b = works[0], works[-1]
    if works != list(range(a, b + 1)):
        b = a
    if a == b:
        shown, python, flag, toml = f"depth {a}", f"depth={a}", f"--depth {a}", f"depth = {a}"
    else:
        shown, python = f"depths {a} to {b}", f"depth=({a}, {b})"
        flag, toml = f"--depth {a},{b}", f"depth = [{a}, {b}]"
    detail = failure.message.removeprefix(f"{failure.implementation} ")
    what = detail.split(":", 1)[0] if detail.startswith("raised ") else "fails"
    return (
        f"it works with {shown} but {what} at depth {depth}: if it handles only some "
        f"architectures, declare them with @gradverify.supports({python}) (or {flag}, "
        f"or {toml} in [[tool.gradverify.implementations]])"
    )
