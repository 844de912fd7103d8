"""Time the default Hypothesis search on the fused (correct) BCE implementation.

    python benchmarks/bench_search.py [--repeats 3] [--max-examples 150]

Runs ``gradverify.search(fused_bce_backprop, dtypes=("float32", "float64"))`` with the
default number of examples per dtype (every example is a full check: the implementation
called twice, the exact mpmath reference, the stable float baseline, the comparison), no
example database, and seeds 0, 1, 2, ... so that each run draws different examples. Prints
each run's wall and CPU time and the median. Target: under 30 s on two cores.

A passing search is the common and the slowest-to-finish case (every example is generated
and checked; a failing search stops generating early and then shrinks). The same is timed
for the naive implementation, whose search fails (unstable) and so also shrinks,
bisects the threshold and writes the reproduction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _run(impl, dtypes, max_examples, seed):
    from gradverify.search import search

    wall, cpu = time.perf_counter(), time.process_time()
    result = search(impl, dtypes=dtypes, max_examples=max_examples, seed=seed, database=None)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per implementation")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="examples per dtype (default: the search's default)")
    args = parser.parse_args(argv)

    from gradverify.implementations import fused_bce_backprop, naive_bce_backprop
    from gradverify.search import DEFAULT_MAX_EXAMPLES

    max_examples = args.max_examples or DEFAULT_MAX_EXAMPLES
    dtypes = ("float32", "float64")
    print(f"search: {max_examples} examples per dtype, dtypes {', '.join(dtypes)}, "
          f"median of {args.repeats} runs")
    ok = True
    for label, impl in (("fused", fused_bce_backprop), ("naive", naive_bce_backprop)):
        walls = []
        for seed in range(args.repeats):
            wall, cpu, result = _run(impl, dtypes, max_examples, seed)
            walls.append(wall)
            print(f"  {label:<6} seed {seed}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
                  f"{result.examples} examples, verdict {result.verdict.value}")
        median = statistics.median(walls)
        print(f"{label}: median {median:.2f} s")
        if label == "fused":
            ok = median < 30.0
            print(f"target < 30 s for the default search on the fused implementation: "
                  f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
