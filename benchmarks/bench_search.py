"""Time the default Hypothesis search on the fused (correct) BCE implementation.

    python benchmarks/bench_search.py [--repeats 3] [--max-examples 150]
    python benchmarks/bench_search.py --policies [--repeats 5]

Runs ``gradverify.search(fused_bce_backprop, dtypes=("float32", "float64"))`` with the
default number of examples per dtype (every example is a full check: the implementation
called twice, the exact mpmath reference, the stable float baseline, the comparison), no
example database, and seeds 0, 1, 2, ... so that each run draws different examples. Prints
each run's wall and CPU time and the medians. Target: a median of at most 2 s for the fused
implementation, on two cores. A short untimed search comes first, so that imports and
first-call caches are not counted in the first run.

A passing search is the common and the slowest-to-finish case (every example is generated
and checked; a failing search stops generating early and then shrinks). The same is timed
for the naive implementation, whose search fails (unstable) and so also shrinks,
bisects the threshold and writes the reproduction.

``--policies`` measures what the second float baseline costs: the same searches of the fused
implementation under ``policy="strict"`` (the stable baseline and its rounding floor only)
and under the default ``policy="autograd"`` (also the conventional autograd baseline and its
floor), interleaved seed by seed, and prints the ratio of the medians. Target: at most 1.2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

TARGET_SECONDS = 2.0
"""The default search of the fused implementation, median wall time, on two cores."""


def _run(impl, dtypes, max_examples, seed, **options):
    from gradverify.exploration.search import search

    wall, cpu = time.perf_counter(), time.process_time()
    result = search(
        impl, dtypes=dtypes, max_examples=max_examples, seed=seed, database=None, **options
    )
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _compare_policies(dtypes, max_examples, repeats) -> bool:
    from gradverify.engine.implementations import fused_bce_backprop

    walls: dict[str, list[float]] = {"strict": [], "autograd": []}
    cpus: dict[str, list[float]] = {"strict": [], "autograd": []}
    for seed in range(repeats):
        for policy in walls:
            wall, cpu, result = _run(fused_bce_backprop, dtypes, max_examples, seed, policy=policy)
            walls[policy].append(wall)
            cpus[policy].append(cpu)
            print(
                f"  fused, policy {policy:<8} seed {seed}: {wall:6.2f} s wall, {cpu:6.2f} s "
                f"CPU, {result.examples} examples, verdict {result.verdict.value}"
            )
    medians = {p: statistics.median(w) for p, w in walls.items()}
    cpu_medians = {p: statistics.median(c) for p, c in cpus.items()}
    ratio = medians["autograd"] / medians["strict"]
    cpu_ratio = cpu_medians["autograd"] / cpu_medians["strict"]
    print(
        f"median wall: strict {medians['strict']:.2f} s, autograd {medians['autograd']:.2f} s; "
        f"ratio {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
    )
    print(
        f"median CPU: strict {cpu_medians['strict']:.2f} s, autograd "
        f"{cpu_medians['autograd']:.2f} s; ratio {cpu_ratio:.2f}"
    )
    return ratio <= 1.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per implementation")
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="examples per dtype (default: the search's default)",
    )
    parser.add_argument(
        "--policies",
        action="store_true",
        help="time the second (autograd) baseline: strict vs autograd policy",
    )
    args = parser.parse_args(argv)

    from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop
    from gradverify.exploration.search import DEFAULT_MAX_EXAMPLES

    max_examples = args.max_examples or DEFAULT_MAX_EXAMPLES
    dtypes = ("float32", "float64")
    print(
        f"search: {max_examples} examples per dtype, dtypes {', '.join(dtypes)}, "
        f"median of {args.repeats} runs"
    )
    _run(fused_bce_backprop, dtypes, 5, seed=12345)  # warm-up: imports, first-call caches
    if args.policies:
        return 0 if _compare_policies(dtypes, max_examples, args.repeats) else 1
    ok = True
    for label, impl in (("fused", fused_bce_backprop), ("naive", naive_bce_backprop)):
        walls, cpus = [], []
        for seed in range(args.repeats):
            wall, cpu, result = _run(impl, dtypes, max_examples, seed)
            walls.append(wall)
            cpus.append(cpu)
            print(
                f"  {label:<6} seed {seed}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
                f"{result.examples} examples, verdict {result.verdict.value}"
            )
        median = statistics.median(walls)
        print(f"{label}: median {median:.2f} s wall, {statistics.median(cpus):.2f} s CPU")
        if label == "fused":
            ok = median <= TARGET_SECONDS
            print(
                f"target <= {TARGET_SECONDS:g} s median for the default search of the fused "
                f"implementation: {'met' if ok else 'missed'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
