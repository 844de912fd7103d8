"""The Hypothesis run of one dtype: its rounds, the property, and the failures it keeps apart.

:func:`check_problem` runs as a Hypothesis property over
:func:`gradverify.exploration.strategies.problems`:

* ``hypothesis.target()`` climbs toward the worst cases on the (clipped, finite) bits of
  error and on the saturation reached;
* each failure kind (``incorrect``, ``unstable``, ``error``) raises its own exception type,
  so Hypothesis keeps them apart and shrinks each separately: an ``incorrect`` failure never
  shrinks into an ``error`` one;
* a call that exceeds the per-call time limit, or a protocol error while no call of the
  dtype has yet followed the protocol, ends the dtype's search at once (:class:`_Stop`,
  not shrunk).

The source of the property (``prop`` in :func:`_property`) is part of Hypothesis's example
database key and of its derandomized stream, with the digest :func:`_run_round` adds: an
edit to its body (other than comments and blank lines) orphans the examples saved by earlier
versions and changes the examples drawn in CI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, note, settings, target
from hypothesis.database import ExampleDatabase
from hypothesis.errors import Flaky

from gradverify.engine.check import check_problem
from gradverify.engine.compare import full_width_bits
from gradverify.engine.harness import CallFailure
from gradverify.engine.implementations import Capabilities
from gradverify.engine.results import CheckResult, Verdict, WarningCount, merge_warnings
from gradverify.engine.stopping import stops_calling
from gradverify.exact.reference import ExactReferenceError
from gradverify.exploration.hypothesis_compat import (
    add_database_digest,
    outside_pytest_item,
    use_seed,
    without_local_constants,
)
from gradverify.exploration.strategies import problems
from gradverify.model.network import Problem

__all__ = ["DtypeRun", "RunSettings", "run_dtype"]


class _Failure(Exception):
    """A failing check, raised inside the property; one subclass per failure kind."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message or result.verdict.value)
        self.result = result


class _IncorrectFailure(_Failure):
    pass


class _UnstableFailure(_Failure):
    pass


class _ErrorFailure(_Failure):
    pass


_FAILURE_TYPES: dict[Verdict, type[_Failure]] = {
    Verdict.INCORRECT: _IncorrectFailure,
    Verdict.UNSTABLE: _UnstableFailure,
    Verdict.ERROR: _ErrorFailure,
}


class _Stop(BaseException):
    """Ends a dtype's search at once (a hang, or a protocol error before any call followed
    the protocol); not an Exception, so Hypothesis won't shrink it."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class DtypeRun:
    """Bookkeeping for one dtype's Hypothesis run."""

    dtype: str
    samples: list[dict] = field(default_factory=list)
    stopped: CheckResult | None = None
    warnings: list[WarningCount] = field(default_factory=list)


@dataclass(frozen=True)
class RunSettings:
    """What every Hypothesis round of one search shares."""

    impl: Callable
    caps: Capabilities
    name: str
    max_examples: int  # generated examples planned per dtype
    seed: int | None
    derandomize: bool
    database: ExampleDatabase | None
    tolerance_factor: float
    policy: str
    timeout: float | None
    strategy_options: dict[str, Any]
    progress: Callable[[str, int, int], None] | None


def _clipped_bits(result: CheckResult) -> float:
    width = full_width_bits(result.dtype)
    bits = width if result.verdict is Verdict.ERROR else result.worst_bits
    return float(min(max(bits, 0.0), width)) if math.isfinite(bits) else width


def _collect_failures(exc: BaseException, into: dict[Verdict, CheckResult]) -> list[BaseException]:
    """Take our failures out of an exception (or group); return anything else found."""
    others: list[BaseException] = []
    if isinstance(exc, _Failure):
        into.setdefault(exc.result.verdict, exc.result)
    elif isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            others.extend(_collect_failures(inner, into))
    else:
        others.append(exc)
    return others


def run_dtype(config: RunSettings, dtype: str) -> tuple[DtypeRun, dict[Verdict, CheckResult]]:
    """Search one dtype: Hypothesis rounds until ``max_examples`` are generated.

    Hypothesis stops generating soon after its first failure and shrinks it. So that an
    early ``unstable`` failure (say at the second example) cannot hide a logic bug or an
    error elsewhere (an ``incorrect`` one at depth 3), the search then continues in a new
    round (seed + 1, ...) with the generated examples that remain, treating the kinds
    already found as passing. An ``incorrect`` or ``error`` failure already decides the
    verdict, so it ends the search (Hypothesis still reports the other kinds it met).
    """
    run = DtypeRun(dtype)
    found: dict[Verdict, CheckResult] = {}
    remaining = config.max_examples
    for round_number in range(len(_FAILURE_TYPES) + 1):
        before = len(run.samples)
        new = _run_round(
            config, dtype, run, set(found), max_examples=remaining, round_number=round_number
        )
        found.update({k: v for k, v in new.items() if k not in found})
        if not new or run.stopped is not None or set(found) != {Verdict.UNSTABLE}:
            break
        # generated examples used up: those up to this round's first new failure
        firsts = [i for i, s in enumerate(run.samples[before:]) if Verdict(s["verdict"]) in new]
        remaining -= (firsts[0] + 1) if firsts else len(run.samples) - before
        if remaining <= 0:
            break
    return run, found


def _run_round(
    config: RunSettings,
    dtype: str,
    run: DtypeRun,
    known: set[Verdict],
    *,
    max_examples: int,
    round_number: int,
) -> dict[Verdict, CheckResult]:
    """One Hypothesis run; failures of a kind in ``known`` count as passing here."""
    last: dict[Verdict, CheckResult] = {}
    test = _hypothesis_test(
        config,
        dtype,
        _property(config, dtype, run, known, last),
        max_examples=max_examples,
        round_number=round_number,
    )
    found: dict[Verdict, CheckResult] = {}
    try:
        with outside_pytest_item(), without_local_constants():
            test()
    except _Stop as stop:
        found[Verdict.ERROR] = stop.result
    except Exception as exc:  # our failures, grouped or wrapped by Hypothesis
        others = _collect_failures(exc, found)
        # A Flaky report wraps the original failures; anything else is an internal error.
        if any(not isinstance(e, Flaky) for e in others):
            raise
    for verdict, result in last.items():
        found.setdefault(verdict, result)
    return found


def _hypothesis_test(
    config: RunSettings,
    dtype: str,
    prop: Callable[[Problem], None],
    *,
    max_examples: int,
    round_number: int,
) -> Callable[[], None]:
    """``prop`` as a seeded ``@given`` test over the dtype's problems, with its database key."""
    seed = None if config.seed is None else config.seed + round_number
    strategy = problems(config.caps, dtypes=[dtype], **config.strategy_options)
    test = given(strategy)(prop)
    test = settings(
        max_examples=max_examples,
        deadline=None,
        database=config.database,
        derandomize=config.derandomize and seed is None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )(test)
    if seed is not None:
        use_seed(test, seed)  # the database stays as resolved by ``search``
    # One database key (and derandomized stream) per implementation, dtype, options, round.
    key = (
        f"gradverify.search|{config.name}|{dtype}|{config.caps.to_dict()}|"
        f"{sorted(config.strategy_options.items())}|{round_number}"
    )
    add_database_digest(test, key.encode())
    return test


def _property(
    config: RunSettings,
    dtype: str,
    run: DtypeRun,
    known: set[Verdict],
    last: dict[Verdict, CheckResult],
) -> Callable[[Problem], None]:
    """The property of one round: check one problem, record it, raise its failure.

    Every example is appended to ``run.samples``; the last failure of each kind not in
    ``known`` goes to ``last``. Keep the text of ``prop`` as it is (see the module's
    docstring): its source is part of the example database key.
    """
    impl, name, progress = config.impl, config.name, config.progress

    def prop(problem: Problem) -> None:
        try:
            result = check_problem(
                impl,
                problem,
                name=name,
                tolerance_factor=config.tolerance_factor,
                policy=config.policy,
                finite_differences=False,
                timeout=config.timeout,
                repeat=2,
            )
        except ExactReferenceError:  # pragma: no cover - the strategies stay in range
            from hypothesis import reject

            reject()
        bits = _clipped_bits(result)
        run.warnings = merge_warnings(run.warnings, result.warnings)
        run.samples.append(
            {
                "dtype": dtype,
                "saturation": result.saturation,
                "bits": bits,
                "verdict": result.verdict.value,
                "tensor": result.precision_beyond_stable()[1],
            }
        )
        if progress is not None:
            done = len(run.samples)
            progress(f"search {name} ({dtype})", done, max(done, config.max_examples))
        note(
            f"{dtype}, network {problem.spec.describe()}, batch {problem.batch_size}, "
            f"max |h| = {result.saturation:.6g}: {result.verdict.value}, {bits:.1f} bits"
        )
        target(bits, label="bits of error")
        target(math.log2(1.0 + result.saturation), label="log2(1 + max |h|)")
        if result.verdict is Verdict.PASS:
            return
        if stops_calling(result.call_failure):
            run.stopped = result
            raise _Stop(result)
        if result.call_failure == CallFailure.MALFORMED and all(
            s["verdict"] == "error" for s in run.samples
        ):
            # no call has yet returned gradients of the protocol's form: say so at once
            run.stopped = result
            raise _Stop(result)
        if result.verdict in known:
            return
        last[result.verdict] = result
        raise _FAILURE_TYPES[result.verdict](result)

    return prop
