"""What running the implementation in a supervised worker process costs.

    python benchmarks/bench_isolation.py [--repeats 3] [--max-examples 150] [--calls 500]

Three measurements, each in-process against isolated (``isolate=True``), interleaved run
by run so that a change in the machine's load hits both alike:

* per call: ``call_backprop(impl, problem, repeat=2)`` (what each example of a search
  does) on a small problem (network [3, 4, 1], batch 4) and on the peers' benchmark size
  ([32, 64, 64, 1], batch 16, 6,337 parameters), with the fused implementation; the
  difference is the cost of a round trip to the worker (pickling the problem, two replies);
* worker start: ``isolated(impl)`` to the first answer, and ``close()``;
* a default search: ``search(fused_bce_backprop, dtypes=("float32", "float64"))`` with
  seeds 0, 1, 2, ... and no example database, in-process and isolated. Target: the isolated
  median at most 1.3 times the in-process median;
* a default scan of the fused implementation (float16, float32, float64), which makes
  thousands of calls on a one-unit network, each far cheaper than a round trip: the worst
  case for isolation (no target; ``--no-scan`` skips it).

Prints medians and the ratios, and exits 1 when the search target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _problem(widths: tuple[int, ...], batch: int):
    import numpy as np

    from gradverify.model.network import NetworkSpec, Problem

    rng = np.random.default_rng(0)
    spec = NetworkSpec(widths, ("sigmoid",) * (len(widths) - 1), "bce")
    weights = [
        rng.standard_normal((m, n)) / np.sqrt(n)
        for n, m in zip(widths[:-1], widths[1:], strict=True)
    ]
    biases = [rng.standard_normal(m) / 4 for m in widths[1:]]
    x = rng.standard_normal((widths[0], batch))
    y = (rng.random((widths[-1], batch)) < 0.5).astype(float)
    return Problem.from_arrays(spec, weights, biases, x, y, "float64")


def _per_call(impl, problem, calls: int) -> float:
    """Median seconds of one ``call_backprop(..., repeat=2)``, over blocks of 50."""
    from gradverify.engine.harness import call_backprop

    blocks = []
    for _ in range(max(1, calls // 50)):
        start = time.perf_counter()
        for _ in range(50):
            outcome = call_backprop(impl, problem, repeat=2)
        blocks.append((time.perf_counter() - start) / 50)
        assert outcome.ok, outcome.error
    return statistics.median(blocks)


def per_call(calls: int) -> None:
    from gradverify.engine.implementations import fused_bce_backprop
    from gradverify.engine.isolation import isolated

    for label, widths, batch in (
        ("[3, 4, 1], batch 4", (3, 4, 1), 4),
        ("[32, 64, 64, 1], batch 16", (32, 64, 64, 1), 16),
    ):
        problem = _problem(widths, batch)
        with isolated(fused_bce_backprop) as proxy:
            _per_call(proxy, problem, 50)  # warm up both
            _per_call(fused_bce_backprop, problem, 50)
            inside = _per_call(fused_bce_backprop, problem, calls)
            outside = _per_call(proxy, problem, calls)
        print(
            f"per example (two calls), {label}: in-process {inside * 1e6:7.0f} us, "
            f"isolated {outside * 1e6:7.0f} us, +{(outside - inside) * 1e6:.0f} us "
            f"({outside / inside:.2f}x)"
        )


def worker_start(repeats: int) -> None:
    from gradverify.engine.harness import call_backprop
    from gradverify.engine.implementations import fused_bce_backprop
    from gradverify.engine.isolation import isolated

    problem = _problem((3, 4, 1), 4)
    isolated(fused_bce_backprop).close()  # the first start also starts the fork server
    starts, closes = [], []
    for _ in range(max(5, repeats)):
        start = time.perf_counter()
        proxy = isolated(fused_bce_backprop)
        assert call_backprop(proxy, problem).ok
        starts.append(time.perf_counter() - start)
        start = time.perf_counter()
        proxy.close()
        closes.append(time.perf_counter() - start)
    print(
        f"worker start to first answer: median {statistics.median(starts) * 1e3:.1f} ms; "
        f"close: median {statistics.median(closes) * 1e3:.1f} ms"
    )


def search_ratio(repeats: int, max_examples: int) -> bool:
    from gradverify.engine.implementations import fused_bce_backprop
    from gradverify.exploration.search import search

    for isolate in (False, True):  # warm-up: imports, Hypothesis, the fork server
        search(
            fused_bce_backprop,
            dtypes=("float64",),
            max_examples=5,
            seed=99,
            database=None,
            isolate=isolate,
        )
    walls: dict[bool, list[float]] = {False: [], True: []}
    for seed in range(repeats):
        for isolate in (False, True):
            start = time.perf_counter()
            result = search(
                fused_bce_backprop,
                dtypes=("float32", "float64"),
                max_examples=max_examples,
                seed=seed,
                database=None,
                isolate=isolate,
            )
            wall = time.perf_counter() - start
            walls[isolate].append(wall)
            print(
                f"  search, {'isolated  ' if isolate else 'in-process'} seed {seed}: "
                f"{wall:6.2f} s, {result.examples} examples, verdict {result.verdict.value}"
            )
    inside, outside = statistics.median(walls[False]), statistics.median(walls[True])
    ratio = outside / inside
    print(
        f"default search: in-process median {inside:.2f} s, isolated median {outside:.2f} s, "
        f"ratio {ratio:.3f} (target <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'})"
    )
    return ratio <= 1.3


def scan_ratio(repeats: int) -> None:
    from gradverify.engine.implementations import fused_bce_backprop
    from gradverify.exploration.scan import scan

    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for isolate in (False, True):
            start = time.perf_counter()
            scan(fused_bce_backprop, dtypes=("float16", "float32", "float64"), isolate=isolate)
            walls[isolate].append(time.perf_counter() - start)
    inside, outside = statistics.median(walls[False]), statistics.median(walls[True])
    print(
        f"default scan: in-process median {inside:.2f} s, isolated median {outside:.2f} s, "
        f"ratio {outside / inside:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="searches per mode")
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="examples per dtype (default: the search's default)",
    )
    parser.add_argument("--calls", type=int, default=500, help="calls per per-call timing")
    parser.add_argument("--no-scan", action="store_true", help="skip the scan timing")
    args = parser.parse_args(argv)

    from gradverify.exploration.search import DEFAULT_MAX_EXAMPLES

    per_call(args.calls)
    worker_start(args.repeats)
    ok = search_ratio(args.repeats, args.max_examples or DEFAULT_MAX_EXAMPLES)
    if not args.no_scan:
        scan_ratio(args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
