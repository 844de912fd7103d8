"""The entry point: :func:`search` validates its arguments and searches each dtype in turn.

Per dtype, the Hypothesis run (:mod:`gradverify.exploration.search.rounds`) is followed by
the work on what it found (:mod:`gradverify.exploration.search.summary`) and, for an
``error``, the hint on how to declare the architecture
(:mod:`gradverify.exploration.search.architecture`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.compare import (
    DEFAULT_POLICY,
    DEFAULT_TOLERANCE_FACTOR,
    validate_policy,
    validate_tolerance_factor,
)
from gradverify.engine.harness import DEFAULT_TIMEOUT
from gradverify.engine.implementations import capabilities_of, implementation_name
from gradverify.engine.isolation import isolate_option
from gradverify.engine.results import Verdict, WarningCount, merge_warnings, worst_verdict
from gradverify.exploration.search.architecture import explain_architecture
from gradverify.exploration.search.database import DEFAULT_DATABASE, database_name, resolve_draws
from gradverify.exploration.search.results import DEFAULT_MAX_EXAMPLES, DtypeSummary, SearchResult
from gradverify.exploration.search.rounds import RunSettings, run_dtype
from gradverify.exploration.search.summary import summarize
from gradverify.exploration.strategies import problems
from gradverify.model.dtypes import usable_dtypes

__all__ = ["search"]


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
    labels: str | None = None,
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
            (timings apart) on every run, whatever else the program has imported: the
            default example database is then off, so no saved failure replays first.
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
        labels: ``"hard"``: ``impl`` takes only labels in {0, 1} (class indices, as one-hot
            columns, for softmax_ce), and only those are generated; ``"any"``: hard and soft
            labels; None: as declared (see :func:`gradverify.supports`).
        max_depth, max_width, max_batch: size limits of what is not declared.
        isolate: run ``impl`` in a supervised worker process for the whole search (see
            :mod:`gradverify.engine.isolation`): a call that exits or crashes the process is an
            ``error`` verdict, and a time-out kills the worker even in C code. A call that
            times out or crashes ends that dtype's search at once.

    Returns:
        A :class:`SearchResult`; ``str()`` of it is the failure report.
    """
    tolerance_factor = _validated_arguments(impl, max_examples, seed, tolerance_factor, timeout)
    activations, losses, dtypes = (
        (names,) if isinstance(names, str) else names for names in (activations, losses, dtypes)
    )
    start = time.perf_counter()
    draws = resolve_draws(seed, derandomize, database)
    caps = capabilities_of(impl).restricted(
        activations, losses, dtypes, depth=depth, widths=widths, batch=batch, labels=labels
    )
    names, skipped = usable_dtypes(caps.dtypes if dtypes is None else dtypes)
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

    config = RunSettings(
        impl=impl,
        caps=caps,
        name=name,
        max_examples=max_examples,
        seed=draws.seed,
        derandomize=draws.derandomize,
        database=draws.database,
        tolerance_factor=float(tolerance_factor),
        policy=policy,
        timeout=timeout,
        strategy_options=strategy_options,
        progress=progress,
    )
    per_dtype, samples, caught = _search_dtypes(config, names, options, max_depth=max_depth)
    verdict = worst_verdict(s.verdict for s in per_dtype.values())
    primary = None
    if verdict is not Verdict.PASS:
        primary = next(s for s in per_dtype.values() if s.verdict is verdict)
    sats = [s["saturation"] for s in samples if math.isfinite(s["saturation"])]
    return SearchResult(
        implementation=name,
        verdict=verdict,
        dtypes=names,
        seed=draws.seed,
        examples=len(samples),
        elapsed=time.perf_counter() - start,
        saturation_range=(min(sats, default=0.0), max(sats, default=0.0)),
        per_dtype=per_dtype,
        samples=samples,
        # the other dtypes' verdicts and thresholds are in their summaries, not repeated here
        diagnosis=list(primary.diagnosis) if primary is not None else [],
        counterexample=primary.counterexample if primary else None,
        reproduction=primary.reproduction if primary else None,
        derandomize=draws.derandomize and draws.seed is None,
        database=database_name(draws.database),
        max_examples=max_examples,
        skipped_dtypes=skipped,
        policy=policy,
        warnings=caught,
    )


def _validated_arguments(
    impl: Callable,
    max_examples: int,
    seed: int | None,
    tolerance_factor: float,
    timeout: float | None,
) -> float:
    """Raise on an argument no search can take; return the validated tolerance factor."""
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer; got {max_examples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None; got {seed!r}")
    tolerance_factor = validate_tolerance_factor(tolerance_factor)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None; got {timeout!r}")
    if not callable(impl):
        raise TypeError(f"impl must be a callable backprop; got {type(impl).__name__}")
    return tolerance_factor


def _search_dtypes(
    config: RunSettings, names: tuple[str, ...], options: dict[str, Any], *, max_depth: int
) -> tuple[dict[str, DtypeSummary], list[dict], list[WarningCount]]:
    """Each dtype's run and summary; every sample; the warnings the implementation raised."""
    per_dtype: dict[str, DtypeSummary] = {}
    samples: list[dict] = []
    caught: list[WarningCount] = []
    for dtype in names:
        dtype_start = time.perf_counter()
        run, found = run_dtype(config, dtype)
        per_dtype[dtype] = summarize(
            config.impl,
            config.caps,
            run,
            found,
            name=config.name,
            options=options,
            elapsed=time.perf_counter() - dtype_start,
        )
        explain_architecture(
            config.impl, config.caps, per_dtype[dtype], max_depth=max_depth, timeout=config.timeout
        )
        samples.extend(run.samples)
        caught = merge_warnings(caught, run.warnings)
    return per_dtype, samples, caught
