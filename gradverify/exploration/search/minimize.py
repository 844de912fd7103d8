"""After the search: checks that stop at a hang, structural minimisation, threshold bisection.

Hypothesis shrinks the values of a counterexample well, but cannot always shrink two widths
together (a square layer) or remove a layer in the middle. :func:`minimize_structure`
finishes that job on the :class:`~gradverify.model.network.Problem`, with the rewrites of
:mod:`gradverify.model.rewrites`. For an ``unstable`` failure,
:func:`threshold_by_bisection` locates the saturation where it starts, along the
counterexample scaled toward the interior. Neither leaves a declared architecture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from gradverify.engine.check import INTERIOR_LIMIT, check_problem
from gradverify.engine.implementations import Capabilities
from gradverify.engine.results import CheckResult, Verdict
from gradverify.engine.stopping import CallGuard
from gradverify.exact.reference import ExactReferenceError
from gradverify.model.network import Problem
from gradverify.model.rewrites import (
    desaturated,
    shallower_variant,
    without_hidden_layer,
    without_sample,
    without_units,
)

__all__ = ["BISECTION_STEPS", "Checker", "minimize_structure", "threshold_by_bisection"]

BISECTION_STEPS = 24


class Checker:
    """``check_problem`` for the work after the search; after one time-out it stops calling.

    An implementation that hangs on some inputs would otherwise cost the full time limit
    on every variant tried while minimising, bisecting and diagnosing. It makes no call at
    all after :meth:`halt`: the dtype's run stopped early (a hang, a crash, or a protocol
    error before any call followed the protocol).
    """

    def __init__(
        self, impl: Callable, options: dict[str, Any], caps: Capabilities | None = None
    ) -> None:
        self.impl, self.options, self.guard = impl, options, CallGuard()
        self.caps = caps
        self.halted = False

    def halt(self) -> None:
        """Make no further call."""
        self.halted = True

    @property
    def stopped(self) -> bool:
        """Whether calling has stopped: halted, or a call here hung or crashed."""
        return self.halted or self.guard.stopped

    def admits(self, problem: Problem) -> bool:
        """Whether ``problem`` is inside the declared architecture (others are never run)."""
        return self.caps is None or self.caps.admits(problem.spec.widths, problem.batch_size)

    def __call__(self, problem: Problem, **kwargs: Any) -> CheckResult | None:
        if self.stopped or not self.admits(problem):
            return None
        kwargs.setdefault("finite_differences", False)
        try:
            result = check_problem(self.impl, problem, **kwargs, **self.options)
        except ExactReferenceError:  # pragma: no cover - variants stay in range
            return None
        self.guard.record(result.call_failure)
        return result

    def verdict_of(self, problem: Problem) -> str:
        result = self(problem, repeat=2)
        return result.verdict.value if result is not None else "not checked"


def _simpler_problems(problem: Problem) -> Iterator[Problem]:
    """Structurally smaller versions of ``problem``, biggest simplifications first.

    Fewer layers, then fewer samples, then one unit fewer in every layer of the same width
    at once (keeps square matrices square), then one unit fewer in one layer.
    """
    spec = problem.spec
    candidates = [
        shallower_variant(problem, 1),
        *(without_hidden_layer(problem, k) for k in range(spec.depth - 1, 0, -1)),
    ]
    yield from (c for c in candidates if c is not None)
    for j in range(problem.batch_size):
        fewer = without_sample(problem, j)
        if fewer is not None:
            yield fewer
    yield from _narrower_problems(problem)


def _narrower_problems(problem: Problem) -> Iterator[Problem]:
    """One unit fewer in every layer of one width at once, then in one layer at a time."""
    spec = problem.spec
    for width in sorted(set(spec.widths[1:]), reverse=True):
        same = [k for k in range(1, spec.depth + 1) if spec.widths[k] == width]
        if len(same) > 1 and width > 1:
            for j in range(width):
                variant = without_units(problem, dict.fromkeys(same, j))
                if variant is not None:
                    yield variant
    for k in range(spec.depth + 1):
        for j in range(spec.widths[k]):
            variant = without_units(problem, {k: j})
            if variant is not None:
                yield variant


def minimize_structure(checker: Checker, result: CheckResult, budget: int = 80) -> CheckResult:
    """Greedily remove layers, samples and units while the failure keeps its kind."""
    current = result
    checks = 0
    improved = True
    while improved and checks < budget and not checker.stopped:
        improved = False
        for candidate in _simpler_problems(current.problem):
            if not checker.admits(candidate):
                continue
            checks += 1
            attempt = checker(candidate, repeat=1)
            if attempt is not None and attempt.verdict is result.verdict:
                current, improved = attempt, True
                break
            if checks >= budget:
                break
    return current


def threshold_by_bisection(checker: Checker, problem: Problem) -> tuple[float | None, float | None]:
    """Bisect the scaling of ``problem`` toward the interior: (first failing, last passing) |h|.

    The path is ``desaturated(problem, limit)`` for ``limit`` between the interior limit
    (passes, by the verdict ``unstable``) and the problem's own saturation (fails).
    """
    lo, hi = INTERIOR_LIMIT, problem.max_abs_logit()
    if not hi > lo:
        return None, None
    failing, passing = [hi], []
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(lo * hi)
        variant = desaturated(problem, mid)
        saturation = variant.max_abs_logit()
        result = checker(variant, classify=False, repeat=1)
        if result is None:
            break
        if result.verdict is Verdict.PASS:
            lo = mid
            passing.append(saturation)
        else:
            hi = mid
            failing.append(saturation)
        if hi / lo < 1.0 + 1e-6:
            break
    return min(failing), (max(passing) if passing else None)
