"""The Hypothesis search: generated networks, saturation on purpose, shrunk counterexamples.

For each dtype, :func:`search` runs :func:`gradverify.engine.check.check_problem` as a Hypothesis
property over :func:`gradverify.exploration.strategies.problems`:

* ``hypothesis.target()`` climbs toward the worst cases on the (clipped, finite) bits of
  error and on the saturation reached;
* each failure kind (``incorrect``, ``unstable``, ``error``) raises its own exception type,
  so Hypothesis keeps them apart and shrinks each separately: an ``incorrect`` failure never
  shrinks into an ``error`` one;
* the shrunk counterexample is checked again with finite differences as a second opinion,
  and turned into a copy-paste reproduction snippet;
* for an ``unstable`` failure the saturation threshold is located by bisection along the
  counterexample scaled toward the interior, and compared with every example tried;
* for ``incorrect`` and ``error`` failures, targeted variants of the counterexample
  (batch 1, shallower, width-1 layers widened, other activations, symmetric square weights)
  say which conditions are necessary (:func:`gradverify.engine.diagnose.condition_hints`).

A call that exceeds the per-call time limit ends that dtype's search at once with an
``error`` verdict (no shrinking, so a hanging implementation cannot stall the search). So
does a protocol error (a ``malformed`` call: a signature that does not take the protocol's
arguments; the wrong type, count, shape or dtype returned; inputs written into; different
answers to the same input) while no call of that dtype has yet returned gradients of the
protocol's form: an implementation that never follows the protocol gets its ``error``
after a call or two, not after a whole search and shrink.

An ``error`` at one depth is followed by one call at each other allowed depth; when one of
them returns gradients, the message says so and how to declare the depth
(``@gradverify.supports(depth=2)``). A declared architecture (depth, widths, batch) is
never left: the strategies draw inside it, and the structural minimiser, the bisection and
the diagnostic variants skip whatever falls outside it.

Reproducibility: the seed (chosen at random and reported when not given) fixes the
examples Hypothesis generates, and so every number in the result apart from timings, given
the same program and the same versions of gradverify, Hypothesis and numpy. Hypothesis also
mixes in literal constants from the local (not installed) modules that are loaded, so a
program that has imported other modules draws other examples from the same seed. A seed
given by the caller switches Hypothesis's default example database off (saved failures would
otherwise replay first and change the examples from one run to the next); a database passed
explicitly is still used. The reproduction snippet rebuilds the counterexample itself,
exactly, anywhere.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, note, settings, target
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.check import INTERIOR_LIMIT, check_problem
from gradverify.engine.compare import (
    DEFAULT_POLICY,
    DEFAULT_TOLERANCE_FACTOR,
    full_width_bits,
    validate_policy,
    validate_tolerance_factor,
)
from gradverify.engine.diagnose import condition_hints, shallower_variant

# Loaded now rather than by the first counterexample's check: Hypothesis draws a few values
# from the literals of the local modules loaded so far, so a module first loaded halfway
# through a search would make the next search in the same process draw other examples.
from gradverify.engine.finite_diff import finite_difference_gradients as _loaded_early  # noqa: F401
from gradverify.engine.harness import DEFAULT_TIMEOUT, CallFailure, call_backprop
from gradverify.engine.implementations import Capabilities, capabilities_of, implementation_name
from gradverify.engine.isolation import isolate_option
from gradverify.engine.repro import reproduction_snippet
from gradverify.engine.results import (
    CheckResult,
    Verdict,
    WarningCount,
    json_number,
    merge_warnings,
    precision_note,
    warning_lines,
    worst_verdict,
)
from gradverify.engine.stopping import CallGuard, stops_calling
from gradverify.exact.reference import ExactReferenceError
from gradverify.exploration.hypothesis_compat import (
    add_database_digest,
    outside_pytest_item,
    use_seed,
)
from gradverify.exploration.strategies import problems
from gradverify.model.dtypes import available_dtypes, skipped_dtype_notes, unavailable_dtypes
from gradverify.model.network import NetworkSpec, Problem

__all__ = ["DEFAULT_MAX_EXAMPLES", "DtypeSummary", "SearchResult", "search"]

SEARCH_SCHEMA = "gradverify.search/2"
"""Format name and major version of :meth:`SearchResult.to_dict`."""

DEFAULT_MAX_EXAMPLES = 150
"""Generated examples per dtype (shrinking a failure runs further examples)."""

DEFAULT_DATABASE: Any = object()
"""Sentinel: Hypothesis's default example database, except in CI, when derandomized or when
a seed is given."""


BISECTION_STEPS = 24


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


NOTABLE_LOSS_BITS = 2.0
"""Bits beyond the stable formulation above which a loss is located by saturation."""


@dataclass(frozen=True)
class BeyondStable:
    """Precision lost beyond the best stable formulation, over the passing examples.

    Attributes:
        bits: the most bits of error any entry had beyond the stable baseline's.
        tensor: the tensor where that happened (``dW1``, ...).
        saturation: max |h| of that example.
        notable_from: the smallest max |h| of any example losing more than
            :data:`NOTABLE_LOSS_BITS` bits (None: no example did).
    """

    bits: float
    tensor: str | None
    saturation: float
    notable_from: float | None

    @classmethod
    def from_samples(cls, samples: Sequence[dict]) -> BeyondStable | None:
        if not samples:
            return None
        worst = max(samples, key=lambda s: s["bits"])
        notable = [s["saturation"] for s in samples if s["bits"] > NOTABLE_LOSS_BITS]
        return cls(
            float(worst["bits"]),
            worst.get("tensor"),
            float(worst["saturation"]),
            min(notable) if notable else None,
        )

    def describe(self) -> str:
        """``loses up to 12.0 bits beyond the stable formulation (dW1, at max |h| = 9.3; ...)``."""
        text = precision_note(
            self.bits, self.tensor, self.saturation if self.bits >= 0.05 else None
        )
        if self.notable_from is not None:
            text += (
                f"; more than {NOTABLE_LOSS_BITS:g} bits only from max |h| = "
                f"{self.notable_from:.4g}"
            )
        return text

    def to_dict(self) -> dict:
        return {
            "bits": json_number(self.bits),
            "tensor": self.tensor,
            "saturation": json_number(self.saturation),
            "notable_from": json_number(self.notable_from),
        }


@dataclass
class DtypeSummary:
    """What the search found at one dtype.

    Attributes:
        dtype: the dtype name.
        verdict: the worst verdict over every example tried.
        examples: checks run (generation, targeting and shrinking).
        worst_bits: the largest bits of error beyond the stable baseline's seen in any example
            (see CheckResult.worst_bits); None for an ``error`` verdict, which is about what
            the implementation did (raised, hung, ...), not about the bits it returned.
        threshold_saturation: for ``unstable``: the smallest max |h| (over all layers) at
            which a failure was observed, refined by bisection; None otherwise.
        max_passing_saturation: the largest max |h| at which an example passed.
        counterexample: the shrunk failure of the worst kind, checked again with FD.
        reproduction: Python source reproducing ``counterexample``.
        failures: the shrunk counterexample of every failure kind found, by verdict name.
        diagnosis: hints (per-problem and from which variants fail).
        saturation_range: (min, max) of max |h| over the examples tried.
        elapsed: seconds.
        beyond_stable: precision the passing examples lose beyond the stable formulation.
    """

    dtype: str
    verdict: Verdict
    examples: int
    worst_bits: float | None
    threshold_saturation: float | None = None
    max_passing_saturation: float | None = None
    counterexample: CheckResult | None = None
    reproduction: str | None = None
    failures: dict[str, CheckResult] = field(default_factory=dict)
    diagnosis: list[str] = field(default_factory=list)
    saturation_range: tuple[float, float] = (0.0, 0.0)
    elapsed: float = 0.0
    stopped_early: str | None = None
    beyond_stable: BeyondStable | None = None

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "verdict": self.verdict.value,
            "examples": self.examples,
            "worst_bits": json_number(self.worst_bits),
            "threshold_saturation": json_number(self.threshold_saturation),
            "max_passing_saturation": json_number(self.max_passing_saturation),
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "reproduction": self.reproduction,
            "failures": {k: v.to_dict() for k, v in self.failures.items()},
            "diagnosis": list(self.diagnosis),
            "saturation_range": [json_number(v) for v in self.saturation_range],
            "elapsed_seconds": self.elapsed,
            "stopped_early": self.stopped_early,
            "beyond_stable": self.beyond_stable.to_dict() if self.beyond_stable else None,
        }


@dataclass
class SearchResult:
    """The outcome of :func:`search` over all dtypes; ``str()`` is the failure report."""

    implementation: str
    verdict: Verdict
    dtypes: tuple[str, ...]
    seed: int | None
    examples: int
    elapsed: float
    saturation_range: tuple[float, float]
    per_dtype: dict[str, DtypeSummary]
    samples: list[dict] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    counterexample: CheckResult | None = None
    reproduction: str | None = None
    derandomize: bool = False
    database: str | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    skipped_dtypes: dict[str, str] = field(default_factory=dict)
    """``{dtype: why}`` for dtypes asked for or declared but unavailable here."""
    warnings: list[WarningCount] = field(default_factory=list)
    """Warnings the implementation raised during the search, one entry per source location."""
    policy: str = DEFAULT_POLICY

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def worst_bits(self) -> float | None:
        """The worst bits of error of any dtype; None for an ``error`` verdict."""
        if self.verdict is Verdict.ERROR:
            return None
        return max(
            (s.worst_bits for s in self.per_dtype.values() if s.worst_bits is not None), default=0.0
        )

    @property
    def thresholds(self) -> dict[str, float | None]:
        """``{dtype: max |h| where it first fails}`` for the unstable dtypes, else None."""
        return {d: s.threshold_saturation for d, s in self.per_dtype.items()}

    def to_dict(self) -> dict:
        return {
            "schema": SEARCH_SCHEMA,
            "policy": self.policy,
            "implementation": self.implementation,
            "verdict": self.verdict.value,
            "dtypes": list(self.dtypes),
            "skipped_dtypes": dict(self.skipped_dtypes),
            "seed": self.seed,
            "derandomize": self.derandomize,
            "database": self.database,
            "max_examples": self.max_examples,
            "examples": self.examples,
            "elapsed_seconds": self.elapsed,
            "saturation_range": [json_number(v) for v in self.saturation_range],
            "worst_bits": json_number(self.worst_bits),
            "thresholds": {d: json_number(t) for d, t in self.thresholds.items()},
            "per_dtype": {d: s.to_dict() for d, s in self.per_dtype.items()},
            "diagnosis": list(self.diagnosis),
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "reproduction": self.reproduction,
            "samples": [
                {k: json_number(v) if k in ("saturation", "bits") else v for k, v in s.items()}
                for s in self.samples
            ],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def seed_line(self) -> str:
        if self.seed is not None:
            return f"seed: {self.seed} (rerun the same search with seed={self.seed})"
        return "seed: none, derandomized (the same examples on every run)"

    def __str__(self) -> str:
        lo, hi = self.saturation_range
        lines = [
            f"gradverify search: {self.implementation} -> {self.verdict.value.upper()} "
            f"({', '.join(self.dtypes)}; {self.examples} examples in {self.elapsed:.1f} s, "
            f"max |h| covered {lo:.3g} .. {hi:.3g})"
        ]
        if self.verdict is Verdict.PASS:
            from gradverify.engine.compare import POLICIES

            lines.append(
                f"  pass: {POLICIES.get(self.policy, self.policy)} (policy {self.policy!r})"
            )
        for s in self.per_dtype.values():
            extra = ""
            if s.threshold_saturation is not None:
                extra = f", first fails at max |h| = {s.threshold_saturation:.6g}"
                if s.max_passing_saturation is not None:
                    extra += f" (passes up to {s.max_passing_saturation:.6g} in other examples)"
            if s.stopped_early:
                extra += f"; stopped early: {s.stopped_early}"
            if s.verdict is Verdict.PASS and s.beyond_stable is not None:
                lines.append(
                    f"  {s.dtype}: pass, {s.examples} examples; {s.beyond_stable.describe()}{extra}"
                )
                continue
            bits = "" if s.worst_bits is None else f", worst {s.worst_bits:.1f} bits of error"
            lines.append(f"  {s.dtype}: {s.verdict.value}, {s.examples} examples{bits}{extra}")
        lines.extend(f"  {note}" for note in skipped_dtype_notes(self.skipped_dtypes))
        if self.diagnosis:
            lines.append("diagnosis:")
            lines.extend(f"  - {hint}" for hint in self.diagnosis)
        if self.counterexample is not None:
            lines.append("shrunk counterexample:")
            lines.extend(f"  {line}" for line in str(self.counterexample).splitlines())
            problem = self.counterexample.problem
            if problem is not None and problem.spec.parameter_count <= 64:
                lines.append("  parameters and batch:")
                for i, (w, b) in enumerate(zip(problem.weights, problem.biases, strict=True)):
                    lines.append(
                        f"    W_{i + 1} = {w.astype(float).tolist()}, "
                        f"b_{i + 1} = {b.astype(float).tolist()}"
                    )
                lines.append(f"    x = {problem.x.astype(float).tolist()}")
                lines.append(f"    y = {problem.y.astype(float).tolist()}")
        if self.reproduction:
            lines.append("reproduce with:")
            lines.extend(f"    {line}" if line else "" for line in self.reproduction.splitlines())
        lines.extend(warning_lines(self.warnings, indent=""))
        lines.append(self.seed_line())
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------


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
class _DtypeRun:
    """Bookkeeping for one dtype's Hypothesis run."""

    dtype: str
    samples: list[dict] = field(default_factory=list)
    stopped: CheckResult | None = None
    warnings: list[WarningCount] = field(default_factory=list)


def _clipped_bits(result: CheckResult) -> float:
    width = full_width_bits(result.dtype)
    bits = width if result.verdict is Verdict.ERROR else result.worst_bits
    return float(min(max(bits, 0.0), width)) if math.isfinite(bits) else width


def _resolve_database(
    database: Any, *, ci: bool, derandomize: bool, seeded: bool
) -> ExampleDatabase | None:
    if database is DEFAULT_DATABASE:
        # A given seed means "the same examples as last time": replayed failures would differ.
        return None if (ci or derandomize or seeded) else settings.default.database
    if database is None or isinstance(database, ExampleDatabase):
        return database
    if isinstance(database, (str, os.PathLike)):
        return DirectoryBasedExampleDatabase(str(database))
    raise TypeError(
        f"database must be None, a path or a hypothesis ExampleDatabase; "
        f"got {type(database).__name__}"
    )


def _database_name(db: ExampleDatabase | None) -> str | None:
    if db is None:
        return None
    path = getattr(db, "path", None)
    return str(path) if path is not None else type(db).__name__


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


@dataclass(frozen=True)
class _RunSettings:
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


def _run_dtype(config: _RunSettings, dtype: str) -> tuple[_DtypeRun, dict[Verdict, CheckResult]]:
    """Search one dtype: Hypothesis rounds until ``max_examples`` are generated.

    Hypothesis stops generating soon after its first failure and shrinks it. So that an
    early ``unstable`` failure (say at the second example) cannot hide a logic bug or an
    error elsewhere (an ``incorrect`` one at depth 3), the search then continues in a new
    round (seed + 1, ...) with the generated examples that remain, treating the kinds
    already found as passing. An ``incorrect`` or ``error`` failure already decides the
    verdict, so it ends the search (Hypothesis still reports the other kinds it met).
    """
    run = _DtypeRun(dtype)
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
    config: _RunSettings,
    dtype: str,
    run: _DtypeRun,
    known: set[Verdict],
    *,
    max_examples: int,
    round_number: int,
) -> dict[Verdict, CheckResult]:
    """One Hypothesis run; failures of a kind in ``known`` count as passing here."""
    impl, caps, name, progress = config.impl, config.caps, config.name, config.progress
    seed = None if config.seed is None else config.seed + round_number
    strategy = problems(caps, dtypes=[dtype], **config.strategy_options)
    last: dict[Verdict, CheckResult] = {}

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
        f"gradverify.search|{name}|{dtype}|{caps.to_dict()}|"
        f"{sorted(config.strategy_options.items())}|{round_number}"
    )
    add_database_digest(test, key.encode())

    found: dict[Verdict, CheckResult] = {}
    try:
        with outside_pytest_item():
            test()
    except _Stop as stop:
        found[Verdict.ERROR] = stop.result
    except Exception as exc:  # our failures, grouped or wrapped by Hypothesis
        others = _collect_failures(exc, found)
        # A Flaky report wraps the original failures; anything else is an internal error.
        if any(not _is_flaky(e) for e in others):
            raise
    for verdict, result in last.items():
        found.setdefault(verdict, result)
    return found


def _is_flaky(exc: BaseException) -> bool:
    from hypothesis.errors import Flaky

    return isinstance(exc, Flaky)


# ---------------------------------------------------------------------------
# After the search: threshold, conditions, reproduction
# ---------------------------------------------------------------------------


def _without_unit(problem: Problem, layer: int, unit: int) -> Problem | None:
    """The problem with one unit removed from width index ``layer`` (0 = the input)."""
    spec = problem.spec
    if spec.widths[layer] <= 1 or (layer == spec.depth and spec.loss == "softmax_ce"):
        return None
    return _without_units(problem, {layer: unit})


def _without_units(problem: Problem, units: dict[int, int]) -> Problem | None:
    """The problem with unit ``units[k]`` removed from each width index ``k``."""
    spec = problem.spec
    weights = [w.astype(np.float64) for w in problem.weights]
    biases = [b.astype(np.float64) for b in problem.biases]
    x, y = problem.x.astype(np.float64), problem.y.astype(np.float64)
    widths = list(spec.widths)
    for k, j in units.items():
        if widths[k] <= 1 or (k == spec.depth and spec.loss == "softmax_ce"):
            return None
        if k == 0:
            x = np.delete(x, j, axis=0)
        else:
            weights[k - 1] = np.delete(weights[k - 1], j, axis=0)
            biases[k - 1] = np.delete(biases[k - 1], j)
            if k == spec.depth:
                y = np.delete(y, j, axis=0)
        if k < spec.depth:
            weights[k] = np.delete(weights[k], j, axis=1)
        widths[k] -= 1
    narrow = NetworkSpec(tuple(widths), spec.activations, spec.loss)
    return Problem.from_arrays(narrow, weights, biases, x, y, problem.dtype)


def _without_hidden_layer(problem: Problem, k: int) -> Problem | None:
    """Layer ``k`` (1-based, hidden) removed; layer k+1 absorbs it as if it were linear."""
    spec = problem.spec
    if not 1 <= k < spec.depth:
        return None
    weights = [w.astype(np.float64) for w in problem.weights]
    biases = [b.astype(np.float64) for b in problem.biases]
    with np.errstate(all="ignore"):
        merged_w = weights[k] @ weights[k - 1]
        merged_b = weights[k] @ biases[k - 1] + biases[k]
    if not (np.all(np.isfinite(merged_w)) and np.all(np.isfinite(merged_b))):
        return None
    weights[k - 1 : k + 1] = [merged_w]
    biases[k - 1 : k + 1] = [merged_b]
    widths = spec.widths[:k] + spec.widths[k + 1 :]
    acts = spec.activations[: k - 1] + spec.activations[k:]
    return Problem.from_arrays(
        NetworkSpec(widths, acts, spec.loss),
        weights,
        biases,
        problem.x.astype(np.float64),
        problem.y.astype(np.float64),
        problem.dtype,
    )


def _simpler_problems(problem: Problem) -> Iterator[Problem]:
    """Structurally smaller versions of ``problem``, biggest simplifications first."""
    spec = problem.spec
    for drop in (
        shallower_variant(problem, 1),
        *(_without_hidden_layer(problem, k) for k in range(spec.depth - 1, 0, -1)),
    ):
        if drop is not None:
            yield drop
    if problem.batch_size > 1:
        keep = np.arange(problem.batch_size)
        for j in range(problem.batch_size):
            cols = keep[keep != j]
            yield Problem.from_arrays(
                spec,
                problem.weights,
                problem.biases,
                problem.x[:, cols],
                problem.y[:, cols],
                problem.dtype,
            )
    # one unit from every layer of the same width at once (keeps square matrices square)
    for width in sorted(set(spec.widths[1:]), reverse=True):
        same = [k for k in range(1, spec.depth + 1) if spec.widths[k] == width]
        if len(same) > 1 and width > 1:
            for j in range(width):
                variant = _without_units(problem, dict.fromkeys(same, j))
                if variant is not None:
                    yield variant
    for k in range(spec.depth + 1):
        for j in range(spec.widths[k]):
            variant = _without_unit(problem, k, j)
            if variant is not None:
                yield variant


class _Checker:
    """``check_problem`` for the work after the search; after one time-out it stops calling.

    An implementation that hangs on some inputs would otherwise cost the full time limit
    on every variant tried while minimising, bisecting and diagnosing.
    """

    def __init__(
        self, impl: Callable, options: dict[str, Any], caps: Capabilities | None = None
    ) -> None:
        self.impl, self.options, self.guard = impl, options, CallGuard()
        self.caps = caps

    def admits(self, problem: Problem) -> bool:
        """Whether ``problem`` is inside the declared architecture (others are never run)."""
        return self.caps is None or self.caps.admits(problem.spec.widths, problem.batch_size)

    def __call__(self, problem: Problem, **kwargs: Any) -> CheckResult | None:
        if self.guard.stopped or not self.admits(problem):
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


def _minimize_structure(checker: _Checker, result: CheckResult, budget: int = 80) -> CheckResult:
    """Greedily remove layers, samples and units while the failure keeps its kind.

    Hypothesis shrinks values well but cannot always shrink two widths together (a
    square layer) or remove a layer in the middle; this finishes that job on the Problem.
    """
    current = result
    checks = 0
    improved = True
    while improved and checks < budget and not checker.guard.stopped:
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


def _probe_problem(caps: Capabilities, failing: Problem, depth: int) -> Problem | None:
    """A small problem like ``failing`` (same input, labels, loss, dtype) at another depth.

    Hidden layers have width 3 and the first hidden (or allowed) activation; the parameters
    are fixed pseudo-random values in [-1, 1]. None when it is outside ``caps``.
    """
    spec = failing.spec
    widths = (spec.widths[0], *(3,) * (depth - 1), spec.widths[-1])
    if not caps.admits(widths, failing.batch_size):
        return None
    hidden = spec.activations[0] if spec.depth > 1 else caps.activations[0]
    acts = (*(hidden,) * (depth - 1), spec.activations[-1])
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-1.0, 1.0, (widths[i + 1], widths[i])) for i in range(depth)]
    biases = [rng.uniform(-1.0, 1.0, widths[i + 1]) for i in range(depth)]
    return Problem.from_arrays(
        NetworkSpec(widths, acts, spec.loss),
        weights,
        biases,
        failing.x.astype(np.float64),
        failing.y.astype(np.float64),
        failing.dtype,
    )


def _architecture_hint(
    impl: Callable,
    caps: Capabilities,
    failure: CheckResult,
    *,
    max_depth: int,
    timeout: float | None,
) -> str | None:
    """How to declare the architecture, when ``impl`` errs at one depth but returns at others.

    One call per other depth in the allowed range, on a small problem built from the failing
    one (:func:`_probe_problem`); "works" means it returned gradients of the right count,
    shapes and dtype there. None when the depth is declared or no other depth works.
    """
    problem = failure.problem
    if problem is None or stops_calling(failure.call_failure):
        return None
    depth = problem.spec.depth
    lo, hi = caps.depth_range or (1, max(max_depth, depth))
    if lo == hi:
        return None
    works = []
    for d in range(lo, hi + 1):
        probe = _probe_problem(caps, problem, d) if d != depth else None
        if probe is not None and call_backprop(impl, probe, timeout=timeout).ok:
            works.append(d)
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


def _explain_architecture(
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


def _threshold_by_bisection(
    checker: _Checker, problem: Problem
) -> tuple[float | None, float | None]:
    """Bisect the scaling of ``problem`` toward the interior: (first failing, last passing) |h|.

    The path is ``problem.desaturated(limit)`` for ``limit`` between the interior limit
    (passes, by the verdict ``unstable``) and the problem's own saturation (fails).
    """
    lo, hi = INTERIOR_LIMIT, problem.max_abs_logit()
    if not hi > lo:
        return None, None
    failing, passing = [hi], []
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(lo * hi)
        variant = problem.desaturated(mid)
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


def _summarize(
    impl: Callable,
    caps: Capabilities,
    run: _DtypeRun,
    found: dict[Verdict, CheckResult],
    *,
    name: str,
    options: dict[str, Any],
    elapsed: float,
) -> DtypeSummary:
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

    checker = _Checker(impl, options, caps)
    if run.stopped is not None:
        checker.guard.record(run.stopped.call_failure)
    for kind in (Verdict.ERROR, Verdict.INCORRECT, Verdict.UNSTABLE):
        shrunk = found.get(kind)
        if shrunk is None:
            continue
        final = shrunk
        if shrunk.problem is not None:
            smaller = _minimize_structure(checker, shrunk)
            final = checker(smaller.problem, finite_differences="auto", repeat=2)
            if final is None or final.verdict is not kind:  # flaky: keep what was seen
                final = smaller
        summary.failures[kind.value] = final

    order = (Verdict.ERROR, Verdict.INCORRECT, Verdict.UNSTABLE)
    kinds = [summary.failures[v.value] for v in order if v.value in summary.failures]
    primary = kinds[0] if kinds else None
    hints: list[str] = []

    unstable = summary.failures.get(Verdict.UNSTABLE.value)
    if unstable is not None and unstable.problem is not None:
        first_fail, last_pass = _threshold_by_bisection(checker, unstable.problem)
        observed = [s["saturation"] for s in samples if s["verdict"] == "unstable"]
        candidates = [t for t in (first_fail, *observed) if t is not None]
        summary.threshold_saturation = min(candidates) if candidates else None
        if summary.threshold_saturation is not None:
            path = (
                f"; the shrunk network scaled toward the interior passes up to "
                f"max |h| = {last_pass:.6g}"
                if last_pass is not None
                else ""
            )
            # where it first fails is the dtype's own line (``first fails at max |h|``)
            saturation_hint = (
                f"wrong only at saturation: it passes in the interior (max |h| <= "
                f"{INTERIOR_LIMIT:g}){path}"
            )
            if primary is unstable:
                hints.append(saturation_hint)

    if primary is not None:
        hints.extend(primary.diagnosis)
        if (
            primary.verdict is not Verdict.UNSTABLE
            and primary.problem is not None
            and not checker.guard.stopped
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
        for other in kinds[1:]:
            hints.append(
                f"also {other.verdict.value} on other examples (shrunk separately to "
                f"network {other.spec.describe()}, batch {other.problem.batch_size}): "
                f"{other.message}"
            )
    summary.diagnosis = list(dict.fromkeys(hints))

    if primary is not None:
        summary.counterexample = primary
        if primary.problem is not None:
            summary.reproduction = reproduction_snippet(
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
    return summary


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


def _validated_dtypes(
    caps: Capabilities, dtypes: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The dtypes to search, and ``{dtype: why}`` for those wanted but unavailable here."""
    wanted = tuple(caps.dtypes if dtypes is None else dtypes)
    if isinstance(dtypes, str):
        wanted = (dtypes,)
    missing = unavailable_dtypes()
    skipped = {d: missing[d] for d in wanted if d in missing}
    usable = tuple(d for d in wanted if d not in missing)
    if not usable:
        why = "; ".join(skipped_dtype_notes(skipped))
        raise ValueError(
            f"no usable dtype among {', '.join(wanted) or '(none)'}"
            f"{f' ({why})' if why else ''}; available here: "
            f"{', '.join(available_dtypes())}"
        )
    return usable, skipped


@with_own_errstate
@isolate_option
def search(
    impl: Callable,
    *,
    activations: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    derandomize: bool | None = None,
    database: Any = DEFAULT_DATABASE,
    tolerance_factor: float = DEFAULT_TOLERANCE_FACTOR,
    policy: str = DEFAULT_POLICY,
    timeout: float | None = DEFAULT_TIMEOUT,
    name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    depth: int | tuple[int, int] | None = None,
    widths: Sequence[int | None] | None = None,
    batch: int | tuple[int, int] | None = None,
    max_depth: int = 3,
    max_width: int = 4,
    max_batch: int = 4,
) -> SearchResult:
    """Search for inputs on which ``impl``'s gradients are wrong, one Hypothesis run per dtype.

    Args:
        impl: a backprop following the protocol; its declared capabilities limit what is
            generated.
        activations, losses, dtypes: replace the declared capabilities (a dtype not
            available here, e.g. bfloat16 without ml_dtypes, is skipped and named, with the
            reason, in the result's ``skipped_dtypes``, its ``str()`` and its JSON).
        max_examples: generated examples per dtype (shrinking runs more).
        seed: the Hypothesis seed; None picks one at random (reported in the result)
            unless derandomized. A given seed reproduces the same examples and numbers
            (timings apart) on every run of the same program: the default example database
            is then off, so no saved failure replays first.
        derandomize: a fixed example sequence with no seed; default: on when the ``CI``
            environment variable is set.
        database: Hypothesis example database: None (off), a directory path, or an
            ``ExampleDatabase``; default: Hypothesis's default, off in CI, when
            derandomized or when ``seed`` is given. One passed explicitly is always used
            (with a seed, saved failures then replay before the seeded examples).
        tolerance_factor: passed to the check (times the larger baseline error).
        policy: the accuracy bar, ``"autograd"`` (default) or ``"strict"``; see
            :mod:`gradverify.engine.compare`.
        timeout: seconds per call of ``impl``; a call over it ends the search for that
            dtype with an ``error`` verdict.
        name: the name shown in results.
        progress: ``callback(description, examples_done, examples_planned)``.
        depth, widths, batch: the architecture ``impl`` serves, replacing its declaration
            (see :func:`gradverify.supports`): depth an int or ``(min, max)``, widths input
            first with None for a free one, batch an int or ``(min, max)``. The search
            generates, shrinks and diagnoses only inside it.
        max_depth, max_width, max_batch: size limits of what is not declared.
        isolate: run ``impl`` in a supervised worker process for the whole search (see
            :mod:`gradverify.engine.isolation`): a call that exits or crashes the process is an
            ``error`` verdict, and a time-out kills the worker even in C code. A call that
            times out or crashes ends that dtype's search at once.

    Returns:
        A :class:`SearchResult`; ``str()`` of it is the failure report.
    """
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer; got {max_examples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None; got {seed!r}")
    tolerance_factor = validate_tolerance_factor(tolerance_factor)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None; got {timeout!r}")
    if not callable(impl):
        raise TypeError(f"impl must be a callable backprop; got {type(impl).__name__}")
    activations, losses, dtypes = (
        (names,) if isinstance(names, str) else names for names in (activations, losses, dtypes)
    )
    start = time.perf_counter()
    ci = bool(os.environ.get("CI"))
    derandomize = ci if derandomize is None else bool(derandomize)
    db = _resolve_database(database, ci=ci, derandomize=derandomize, seeded=seed is not None)
    if seed is None and not derandomize:
        seed = secrets.randbits(32)
    caps = capabilities_of(impl).restricted(
        activations, losses, dtypes, depth=depth, widths=widths, batch=batch
    )
    names, skipped = _validated_dtypes(caps, dtypes if dtypes is not None else caps.dtypes)
    name = name or implementation_name(impl)
    options = {
        "name": name,
        "tolerance_factor": float(tolerance_factor),
        "policy": validate_policy(policy),
        "timeout": timeout,
    }
    strategy_options = {"max_depth": max_depth, "max_width": max_width, "max_batch": max_batch}
    # fail early, with a clear message, on options that admit no network
    problems(caps, dtypes=names, **strategy_options)

    config = _RunSettings(
        impl=impl,
        caps=caps,
        name=name,
        max_examples=max_examples,
        seed=seed,
        derandomize=derandomize,
        database=db,
        tolerance_factor=float(tolerance_factor),
        policy=policy,
        timeout=timeout,
        strategy_options=strategy_options,
        progress=progress,
    )
    per_dtype: dict[str, DtypeSummary] = {}
    samples: list[dict] = []
    caught: list[WarningCount] = []
    for dtype in names:
        dtype_start = time.perf_counter()
        run, found = _run_dtype(config, dtype)
        per_dtype[dtype] = _summarize(
            impl,
            caps,
            run,
            found,
            name=name,
            options=options,
            elapsed=time.perf_counter() - dtype_start,
        )
        _explain_architecture(impl, caps, per_dtype[dtype], max_depth=max_depth, timeout=timeout)
        samples.extend(run.samples)
        caught = merge_warnings(caught, run.warnings)

    verdict = worst_verdict(s.verdict for s in per_dtype.values())
    primary = None
    if verdict is not Verdict.PASS:
        primary = next(s for s in per_dtype.values() if s.verdict is verdict)
    # the other dtypes' verdicts and thresholds are in their summaries, not repeated here
    diagnosis: list[str] = list(primary.diagnosis) if primary is not None else []
    sats = [s["saturation"] for s in samples if math.isfinite(s["saturation"])]
    return SearchResult(
        implementation=name,
        verdict=verdict,
        dtypes=names,
        seed=seed,
        examples=len(samples),
        elapsed=time.perf_counter() - start,
        saturation_range=(min(sats, default=0.0), max(sats, default=0.0)),
        per_dtype=per_dtype,
        samples=samples,
        diagnosis=diagnosis,
        counterexample=primary.counterexample if primary else None,
        reproduction=primary.reproduction if primary else None,
        derandomize=derandomize and seed is None,
        database=_database_name(db),
        max_examples=max_examples,
        skipped_dtypes=skipped,
        policy=policy,
        warnings=caught,
    )
