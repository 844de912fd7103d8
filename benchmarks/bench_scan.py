"""Time a full scan of the three built-in implementations over float16, float32 and float64.

    python benchmarks/bench_scan.py [--repeats 3] [--dtypes float16,float32,float64]

One run is ``gradverify.scan`` on naive, epsilon and fused with the default settings:
output-layer thresholds for y = 0 and y = 1 on both sides, the hidden sigmoid/tanh underflow
scan, and the sweep data (200 points per label and dtype). Nothing is cached between runs:
each scan starts from an empty cache. Prints the median wall time of ``--repeats`` runs,
the CPU time of the process over those runs (wall time grows when other processes compete
for the cores; CPU time does not), the number of implementation calls and mpmath's backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS  # noqa: E402
from gradverify.exact.reference import mpmath_backend  # noqa: E402
from gradverify.exploration.scan import scan  # noqa: E402

TARGET_SECONDS = 20.0


def full_scan(dtypes: list[str]) -> int:
    """Scan the three built-ins; returns how many floats were checked in all."""
    checked = 0
    for impl in BUILTIN_IMPLEMENTATIONS.values():
        result = scan(impl, dtypes=dtypes)
        checked += sum(side.checked_points for row in result.rows for side in row.sides)
        checked += sum(h.checked_points for h in result.hidden)
        checked += sum(len(s.h) for s in result.sweeps)
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="float16,float32,float64")
    args = parser.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]

    walls, cpus = [], []
    checked = 0
    for _ in range(max(1, args.repeats)):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        checked = full_scan(dtypes)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"full scan of naive, epsilon, fused over {', '.join(dtypes)} "
        f"(thresholds, hidden underflow, sweeps)"
    )
    print(
        f"  median of {len(walls)}: {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(runs: {', '.join(f'{w:.2f}' for w in walls)} s wall)"
    )
    print(f"  floats checked per run (summed over scans, sides, hidden rows, sweeps): {checked}")
    print(
        f"  mpmath backend: {mpmath_backend()}; load average at the end: {load:.2f}; "
        f"cores: {os.cpu_count()}"
    )
    verdict = "within" if wall < TARGET_SECONDS else "OVER"
    print(f"  target < {TARGET_SECONDS:g} s wall: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
