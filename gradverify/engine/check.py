"""Checking an implementation on one problem: ``check_problem`` (exact) and ``fast_check``.

For one problem at one dtype the engine

1. calls the implementation through the harness (copies in, time limit, validation);
2. computes the exact reference (mpmath reverse mode, precision verified);
3. runs the float baselines at the same dtype and takes their errors per tensor: the best
   stable formulation, and (policy ``"autograd"``, the default) the conventional autograd
   formulation that torch and jax compute;
4. bounds, elementwise, what correct float arithmetic may do to each entry
   (:mod:`gradverify.engine.bounds`);
5. compares: a tensor passes when it has no inf/NaN where the exact gradient and the stable
   baseline are finite, and its error beyond the rounding floor is within ``factor`` times
   the larger baseline error (see :mod:`gradverify.engine.compare`);
6. on a failure, checks the same network scaled into the interior (max |h| <= 1, the
   companion :func:`gradverify.model.rewrites.desaturated` builds). Passing there makes the
   verdict ``unstable``; failing there too makes it ``incorrect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.bounds import rounding_floors
from gradverify.engine.compare import (
    DEFAULT_POLICY,
    DEFAULT_TOLERANCE_FACTOR,
    ElementwiseErrors,
    elementwise_errors,
    error_beyond_floor,
    full_width_bits,
    normwise_error,
    tolerance,
    validate_policy,
    validate_tolerance_factor,
)
from gradverify.engine.diagnose import diagnose_gradients
from gradverify.engine.harness import DEFAULT_TIMEOUT, CallOutcome, call_backprop
from gradverify.engine.implementations import (
    conventional_backprop,
    implementation_name,
    stable_backprop,
)
from gradverify.engine.isolation import isolate_option
from gradverify.engine.results import (
    CheckResult,
    ElementError,
    TensorComparison,
    Verdict,
    merge_warnings,
)
from gradverify.exact.reference import ReferenceGradients, reference_gradients
from gradverify.model.dtypes import significand_bits
from gradverify.model.network import Problem
from gradverify.model.rewrites import desaturated

__all__ = ["check_problem", "fast_check"]

INTERIOR_LIMIT = 1.0
"""max |h| of the interior companion problem used to tell unstable from incorrect."""

FAST_DIRECTIONS = 1
"""Random directions of :func:`fast_check` by default (see its docstring)."""

FULL_FD_MAX_PARAMETERS = 2_000
"""Above this many parameters, "auto" finite differences fall back to the directional mode."""


def _tensor_arrays(outcome: CallOutcome) -> list[np.ndarray]:
    out = []
    for w, b in zip(outcome.dweights, outcome.dbiases, strict=True):
        out.extend((w, b))
    return out


def _finite_differences(problem: Problem, mode: Any) -> Any:
    """Per-entry FD (value, error estimate, unreliable) as flat lists per tensor, or None."""
    if mode is False or mode is None or mode == "directional":
        return None
    if mode == "auto" and problem.spec.parameter_count > FULL_FD_MAX_PARAMETERS:
        return None
    from gradverify.engine.finite_diff import finite_difference_gradients

    fd = finite_difference_gradients(problem)
    values, errors, unreliable = [], [], []
    for i in range(problem.spec.depth):
        values.extend((fd.dweights[i], fd.dbiases[i]))
        errors.extend((fd.dweights_error[i], fd.dbiases_error[i]))
        unreliable.extend((fd.dweights_unreliable[i], fd.dbiases_unreliable[i]))
    return values, errors, unreliable


@dataclass(frozen=True)
class _Bar:
    """What one problem's tensors are judged against: baselines and rounding floors."""

    stable: list[np.ndarray | None]  # the stable formulation's gradients (None: it failed)
    autograd: list[np.ndarray | None] | None  # the conventional formulation's (None: strict)
    floors: list[np.ndarray]  # elementwise a-priori bounds on correct rounding error


def _accuracy_bar(problem: Problem, policy: str) -> _Bar:
    """Run the float baselines and compute the rounding floors for ``policy``."""
    stable = call_backprop(stable_backprop, problem, timeout=None)
    count = 2 * problem.spec.depth
    stable_values = _tensor_arrays(stable) if stable.ok else [None] * count
    autograd_values = None
    if policy == "autograd":
        autograd = call_backprop(conventional_backprop, problem, timeout=None)
        autograd_values = _tensor_arrays(autograd) if autograd.ok else [None] * count
    formulations = ("stable", "autograd") if policy == "autograd" else ("stable",)
    return _Bar(stable_values, autograd_values, rounding_floors(problem, formulations))


def _rounded_reference(reference: ReferenceGradients) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, rounded, residual) for dW_1, db_1, ..., dW_L, db_L: the float64 double-double
    of each exact gradient, without making the exact values themselves (which a reference may
    build lazily, at a Python-level cost per entry)."""
    out = []
    for i in range(len(reference.dweights)):
        out.append((f"dW{i + 1}", reference.dweights[i], reference.dweights_low[i]))
        out.append((f"db{i + 1}", reference.dbiases[i], reference.dbiases_low[i]))
    return out


def _compare(
    problem: Problem,
    outcome: CallOutcome,
    reference: ReferenceGradients,
    bar: _Bar,
    factor: float,
    fd: Any,
    worst: int,
) -> tuple[list[TensorComparison], list[ElementError]]:
    values = _tensor_arrays(outcome)
    autograd_values = bar.autograd or [None] * len(values)
    tensors: list[TensorComparison] = []
    elements: list[tuple[float, float, ElementError]] = []
    for k, ((name, hi, lo), value, base, conventional, floor) in enumerate(
        zip(
            _rounded_reference(reference),
            values,
            bar.stable,
            autograd_values,
            bar.floors,
            strict=True,
        )
    ):
        baselines = (base, conventional, floor)
        tensor, errs = _tensor_comparison(problem, k, name, hi, lo, value, baselines, factor, fd)
        tensors.append(tensor)
        elements.extend(_worst_entries(k, name, hi, value, errs, fd, worst))
    elements.sort(key=lambda e: (e[0], e[1]), reverse=True)
    return tensors, [e[2] for e in elements[:worst]]


def _tensor_comparison(
    problem: Problem,
    k: int,
    name: str,
    hi: np.ndarray,
    lo: np.ndarray,
    value: np.ndarray,
    baselines: tuple[np.ndarray | None, np.ndarray | None, np.ndarray],
    factor: float,
    fd: Any,
) -> tuple[TensorComparison, ElementwiseErrors]:
    """Tensor ``k`` (``dW1``, ``db1``, ...) against the reference and the accuracy bar.

    ``baselines`` are the stable and autograd baselines' values (None: not run, or failed)
    and the rounding floor. Returns the comparison and the elementwise errors.
    """
    base, conventional, floor = baselines
    dtype = problem.dtype
    errs = elementwise_errors(value, hi, lo, dtype)
    if base is not None:
        base_error = normwise_error(base, hi, lo)
        base_finite = np.isfinite(np.asarray(base, dtype=np.float64))
        base_bits = elementwise_errors(base, hi, lo, dtype).bits
    else:
        base_error, base_finite = 0.0, np.ones(hi.shape, bool)
        base_bits = np.zeros(hi.shape)
    autograd_error = None if conventional is None else normwise_error(conventional, hi, lo)
    blamed_nonfinite = int(np.count_nonzero(errs.nonfinite & base_finite))
    excused = np.where(errs.nonfinite & ~base_finite, hi, value)
    beyond = error_beyond_floor(excused, hi, lo, floor)
    tol = tolerance(base_error, dtype, factor, autograd_error)
    comparison = TensorComparison(
        name=name,
        layer=k // 2 + 1,
        kind="weight" if k % 2 == 0 else "bias",
        shape=tuple(hi.shape),
        normwise_error=normwise_error(excused, hi, lo),
        max_relative_error=float(np.max(errs.relative, initial=0.0)),
        max_ulps=float(np.max(errs.ulps, initial=0.0)),
        max_bits=float(np.max(errs.bits, initial=0.0)),
        nonfinite=blamed_nonfinite,
        baseline_error=base_error,
        tolerance=tol,
        passed=bool(blamed_nonfinite == 0 and beyond <= tol),
        fd_max_error=_fd_max_error(fd, k, hi),
        autograd_baseline_error=autograd_error,
        error_beyond_floor=beyond,
        max_excess_bits=_excess_bits(errs.bits, base_bits, errs.nonfinite & base_finite, dtype),
    )
    return comparison, errs


def _fd_max_error(fd: Any, k: int, hi: np.ndarray) -> float | None:
    """The largest relative gap between FD and the reference in tensor ``k`` (None: no FD)."""
    if fd is None:
        return None
    fd_vals, fd_bad = fd[0][k], fd[2][k]
    usable = ~fd_bad & (hi != 0)
    if not np.any(usable):
        return None
    return float(np.max(np.abs(fd_vals[usable] - hi[usable]) / np.abs(hi[usable])))


def _worst_entries(
    k: int,
    name: str,
    hi: np.ndarray,
    value: np.ndarray,
    errs: ElementwiseErrors,
    fd: Any,
    worst: int,
) -> list[tuple[float, float, ElementError]]:
    """Candidates for the worst-elements list: the largest bits of error of tensor ``k``."""
    out = []
    flat_bits = errs.bits.ravel()
    for j in _largest_positive(flat_bits, worst):
        index = np.unravel_index(j, hi.shape)
        fd_value = fd_error = None
        if fd is not None and not fd[2][k][index]:
            fd_value, fd_error = float(fd[0][k][index]), float(fd[1][k][index])
        element = ElementError(
            tensor=name,
            index=tuple(int(i) for i in index),
            value=float(value[index]),
            reference=float(hi[index]),
            relative_error=float(errs.relative[index]),
            ulps=float(errs.ulps[index]),
            bits=float(errs.bits[index]),
            fd=fd_value,
            fd_error=fd_error,
        )
        out.append((float(flat_bits[j]), float(errs.relative[index]), element))
    return out


def _largest_positive(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the (at most) ``count`` largest positive ``values``, largest first, ties in
    index order: the order of a stable sort of ``-values``, without sorting them all."""
    positive = np.flatnonzero(values > 0)
    if positive.size > count:
        kth = np.partition(values[positive], positive.size - count)[positive.size - count]
        above = positive[values[positive] > kth]
        ties = positive[values[positive] == kth][: count - above.size]
        positive = np.concatenate([above, ties])
    return positive[np.argsort(-values[positive], kind="stable")]


def _excess_bits(
    bits: np.ndarray, base_bits: np.ndarray, blamed_nonfinite: np.ndarray, dtype: np.dtype
) -> float:
    """Worst bits of error beyond the baseline's; inf/NaN the baseline avoids counts in full."""
    excess = np.where(blamed_nonfinite, full_width_bits(dtype), np.maximum(bits - base_bits, 0.0))
    return float(np.max(excess, initial=0.0))


def _error_result(name: str, problem: Problem, outcome: CallOutcome, elapsed: float) -> CheckResult:
    return CheckResult(
        implementation=name,
        verdict=Verdict.ERROR,
        dtype=problem.dtype_name,
        spec=problem.spec,
        saturation=problem.max_abs_logit(),
        message=f"{name} {outcome.error or ''}",
        problem=problem,
        elapsed=elapsed,
        warnings=list(outcome.warnings),
        call_failure=outcome.failure.value if outcome.failure is not None else None,
    )


def _interior_check(impl: Callable, problem: Problem, **options: Any) -> CheckResult:
    """The check of the interior companion (max |h| <= INTERIOR_LIMIT), once, unclassified."""
    interior = desaturated(problem, INTERIOR_LIMIT)
    return check_problem(
        impl, interior, finite_differences=False, repeat=1, classify=False, **options
    )


def _classify(
    result: CheckResult,
    failed: list[TensorComparison],
    interior: CheckResult | None,
    name: str,
) -> None:
    """Set the verdict and message of a failing check from its interior companion's verdict.

    Passing in the interior makes it ``unstable``; an error there, or inf/NaN at ordinary
    values (no interior companion to run), makes it ``error``; anything else ``incorrect``.
    """
    saturation = result.saturation
    nonfinite = sum(t.nonfinite for t in failed)
    what = (
        f"{nonfinite} inf/NaN entries"
        if nonfinite
        else ("gradients outside tolerance (" + ", ".join(t.name for t in failed) + ")")
    )
    if interior is not None and interior.verdict is Verdict.PASS:
        result.verdict = Verdict.UNSTABLE
        result.message = (
            f"{what} at saturation (max |h| = {saturation:.4g}); the same network scaled to "
            f"max |h| <= {INTERIOR_LIMIT:g} passes: numerically unstable, not a logic bug"
        )
    elif interior is not None and interior.verdict is Verdict.ERROR:
        result.verdict = Verdict.ERROR
        result.message = f"{what}; in the interior: {interior.message}"
        result.call_failure = interior.call_failure
    elif nonfinite and interior is None:
        result.verdict = Verdict.ERROR
        result.message = (
            f"{name} returned {nonfinite} inf/NaN entries at ordinary values "
            f"(max |h| = {saturation:.4g}) where the exact gradient is finite"
        )
    else:
        result.verdict = Verdict.INCORRECT
        where = (
            "at ordinary values"
            if interior is None
            else (f"and also on the same network scaled to max |h| <= {INTERIOR_LIMIT:g}")
        )
        result.message = f"{what} {where}: a logic bug"


@with_own_errstate
@isolate_option
def check_problem(
    impl: Callable,
    problem: Problem,
    *,
    name: str | None = None,
    tolerance_factor: float = DEFAULT_TOLERANCE_FACTOR,
    policy: str = DEFAULT_POLICY,
    finite_differences: bool | str = "auto",
    worst: int = 5,
    timeout: float | None = DEFAULT_TIMEOUT,
    repeat: int = 2,
    classify: bool = True,
    reference: ReferenceGradients | None = None,
) -> CheckResult:
    """Judge ``impl`` on one problem, at the problem's dtype.

    Args:
        impl: a backprop following the protocol.
        problem: network, parameters and batch, already in the dtype under test.
        name: the name shown in results (default: from the implementation).
        tolerance_factor: how many times the larger baseline error a tensor may have
            beyond its rounding floor.
        policy: ``"autograd"`` (default: as accurate as framework autograd passes) or
            ``"strict"`` (as accurate as the best stable formulation); see
            :mod:`gradverify.engine.compare`.
        finite_differences: "auto" (full FD up to 2,000 parameters, else "directional"),
            True (full), "directional" (random projections of the reference), or False.
        worst: how many worst elements to report.
        timeout: seconds per call of the implementation.
        repeat: calls on the same input; differing answers make the verdict ``error``.
        classify: on failure, check the interior companion to tell unstable from incorrect.
        reference: a precomputed reference for this problem (to save time).
        isolate: call ``impl`` in a supervised worker process (see
            :mod:`gradverify.engine.isolation`), so that exiting, crashing or hanging in C code
            is an ``error`` verdict instead of the end of this process.

    Raises:
        gradverify.exact.reference.ExactReferenceError: the exact reference does not exist here.
    """
    start = time.perf_counter()
    validate_policy(policy)
    tolerance_factor = validate_tolerance_factor(tolerance_factor)
    name = name or implementation_name(impl)
    outcome = call_backprop(impl, problem, timeout=timeout, repeat=repeat)
    if not outcome.ok:
        return _error_result(name, problem, outcome, time.perf_counter() - start)
    reference = reference or reference_gradients(problem)
    fd = _finite_differences(problem, finite_differences)
    tensors, worst_elements = _compare(
        problem, outcome, reference, _accuracy_bar(problem, policy), tolerance_factor, fd, worst
    )
    saturation = problem.max_abs_logit()
    result = CheckResult(
        implementation=name,
        verdict=Verdict.PASS,
        dtype=problem.dtype_name,
        spec=problem.spec,
        saturation=saturation,
        tensors=tensors,
        worst=worst_elements,
        reference_precision=reference.precision,
        reference_backend=reference.backend,
        problem=problem,
        policy=policy,
        warnings=list(outcome.warnings),
    )
    if fd is None and finite_differences in ("auto", "directional"):
        from gradverify.engine.directional import directional_check

        directional = directional_check(problem, reference.dweights, reference.dbiases)
        result.fd_directional_discrepancy = directional.max_relative_discrepancy()
    failed = result.failed_tensors()
    if failed:
        interior = None
        if saturation > INTERIOR_LIMIT * 1.01 and classify:
            interior = _interior_check(
                impl,
                problem,
                name=name,
                tolerance_factor=tolerance_factor,
                policy=policy,
                worst=worst,
                timeout=timeout,
            )
            result.interior_verdict = interior.verdict
            result.warnings = merge_warnings(result.warnings, interior.warnings)
        _classify(result, failed, interior, name)
        result.diagnosis = diagnose_gradients(
            problem,
            tensors,
            _tensor_arrays(outcome),
            [hi for _, hi, _ in _rounded_reference(reference)],
            significand_bits(problem.dtype),
        )
    result.elapsed = time.perf_counter() - start
    return result


@with_own_errstate
@isolate_option
def fast_check(
    impl: Callable,
    problem: Problem,
    *,
    directions: int = FAST_DIRECTIONS,
    seed: int = 0,
    tolerance_factor: float = DEFAULT_TOLERANCE_FACTOR,
    timeout: float | None = DEFAULT_TIMEOUT,
    name: str | None = None,
) -> CheckResult:
    """A cheap check without the exact reference: ``v^T g`` against directional differences.

    Along each of ``directions`` random unit vectors v (seeded; see
    :func:`gradverify.engine.directional.directional_check`), the implementation's projected
    gradient must agree with a Richardson directional difference of the float64 loss within
    ``4 x`` the difference's error estimate plus ``tolerance_factor`` roundings of the dtype
    under test on ``|v|.|g|``. It costs one call and six loss evaluations per direction (one
    stacked forward pass or a few), plus one at the unperturbed point.

    One direction by default (:data:`FAST_DIRECTIONS`), as torch's ``gradcheck(fast_mode=True)``
    and jax's ``check_grads`` project once: v has a continuous distribution, so a wrong g
    passes only if its error e is almost orthogonal to v, with probability at most
    ``2 t / max_i |e_i|`` for the slack t (about ``sqrt(P/12)`` times the tolerance above, P
    parameters). Each further direction multiplies that by its own such factor, at the cost
    of six more loss evaluations: on a [32, 256, 256, 1] network four directions took about
    1.6 times torch's fast mode, one about 0.7. A sparse or small error can hide from any
    few projections, so it can only say ``pass``, ``incorrect`` or ``error`` (never
    ``unstable``). ``isolate=True`` calls ``impl`` in a worker process, as in
    :func:`check_problem`.
    """
    from gradverify.engine.directional import directional_check
    from gradverify.model.dtypes import unit_roundoff

    start = time.perf_counter()
    name = name or implementation_name(impl)
    outcome = call_backprop(impl, problem, timeout=timeout, repeat=1)
    if not outcome.ok:
        return _error_result(name, problem, outcome, time.perf_counter() - start)
    check = directional_check(
        problem, outcome.dweights, outcome.dbiases, directions=directions, seed=seed
    )
    with np.errstate(all="ignore"):
        slack = (
            4 * check.projected_fd_error
            + tolerance_factor * unit_roundoff(problem.dtype) * check.projected_magnitude
        )
        gap = np.abs(check.projected_gradient - check.projected_fd)
        bad = ~(gap <= slack) & ~check.unreliable
    result = CheckResult(
        implementation=name,
        verdict=Verdict.INCORRECT if bad.any() else Verdict.PASS,
        dtype=problem.dtype_name,
        spec=problem.spec,
        saturation=problem.max_abs_logit(),
        problem=problem,
        fd_directional_discrepancy=check.max_relative_discrepancy(),
        message=(
            f"fast check: {int(bad.sum())} of {directions} random directions disagree with "
            f"the directional finite differences (no exact reference)"
        ),
        warnings=list(outcome.warnings),
    )
    result.elapsed = time.perf_counter() - start
    return result
