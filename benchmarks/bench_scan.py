"""Time the default scan of the three built-in implementations, per dtype, against a baseline.

    python benchmarks/bench_scan.py [--repeats 3] [--dtypes float16,bfloat16,float32,float64]
                                    [--modes in-process,isolated] [--before DIR]

One run is ``gradverify.scan`` on naive, epsilon and fused with the default settings, one
dtype at a time: output-layer thresholds for y = 0 and y = 1 on both sides, the hidden
sigmoid/tanh underflow scan and the sweep data (200 points per label and dtype); float16
and bfloat16 are judged at every float, the others bisected and sampled. The default dtypes
are what ``gradverify report`` scans. Each run is a fresh process, so nothing is cached
between runs. Prints the median wall time of ``--repeats`` runs, in all and for the 16-bit
dtypes, the CPU time, the number of implementation calls and mpmath's backend.

``--modes``: ``in-process`` calls the implementations in the benchmark's process (the API's
default), ``isolated`` in a worker process (``isolate=True``: the default of the command
line and the report, where each call crosses a process boundary); both by default, each
timed in its own runs. The CPU time is the benchmark process's own (not the worker's).

``--before DIR``: also time the code in ``DIR`` (e.g. ``git worktree add /tmp/scan-before
HEAD``), in runs interleaved with these, and print the time the 16-bit dtypes add (the
median of after minus before) against the target of :data:`TARGET_ADDED_SECONDS`. Other
processes competing for the cores lengthen wall times; compare runs made together.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_ADDED_SECONDS = 10.0
"""At most this much longer than before, for the three built-ins over float16 + bfloat16."""
DEFAULT_DTYPES = "float16,bfloat16,float32,float64"


MODES = ("in-process", "isolated")


def _count_calls() -> dict[str, int]:
    """Count the implementation calls of the scan's probes (one per problem)."""
    from gradverify.exploration.scan import probes

    calls = {"count": 0}
    original = probes.Caller.call

    def counted(self: object, problem: object) -> object:
        calls["count"] += 1
        return original(self, problem)

    probes.Caller.call = counted  # type: ignore[method-assign]
    original_each = getattr(probes.Caller, "each", None)
    if original_each is not None:  # calls made in groups

        def counted_each(self: object, problems: object, *args: object, **kwargs: object) -> object:
            for outcome in original_each(self, problems, *args, **kwargs):
                calls["count"] += 1
                yield outcome

        probes.Caller.each = counted_each  # type: ignore[method-assign]
    return calls


def one_run(dtypes: list[str], isolate: bool = False) -> dict:
    """Scan the three built-ins one dtype at a time (``isolate``: each in a worker process):
    seconds per dtype."""
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS
    from gradverify.exact.reference import mpmath_backend
    from gradverify.exploration.scan import scan

    calls = _count_calls()
    seconds, cpu = dict.fromkeys(dtypes, 0.0), dict.fromkeys(dtypes, 0.0)
    for impl in BUILTIN_IMPLEMENTATIONS.values():
        for dtype in dtypes:
            start, cpu0 = time.perf_counter(), time.process_time()
            scan(impl, dtypes=[dtype], isolate=isolate)
            seconds[dtype] += time.perf_counter() - start
            cpu[dtype] += time.process_time() - cpu0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cpu": sum(cpu.values()),
        "calls": calls["count"],
        "backend": mpmath_backend(),
    }


def timed(code: Path, dtypes: list[str], mode: str) -> dict:
    """One run in a fresh process importing gradverify from ``code``."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one-run",
            "--code",
            str(code),
            "--dtypes",
            ",".join(dtypes),
            "--modes",
            mode,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sixteen_bit(run: dict, key: str = "seconds") -> float:
    return sum(s for d, s in run[key].items() if d in ("float16", "bfloat16"))


def _summary(label: str, runs: list[dict]) -> None:
    total = [sum(r["seconds"].values()) for r in runs]
    print(
        f"  {label}: median {statistics.median(total):.2f} s wall "
        f"(float16 + bfloat16: {statistics.median(_sixteen_bit(r) for r in runs):.2f} s), "
        f"{statistics.median(r['cpu'] for r in runs):.2f} s CPU, "
        f"{statistics.median(r['calls'] for r in runs):.0f} implementation calls; "
        f"runs: {', '.join(f'{t:.2f}' for t in total)} s"
    )
    for dtype in runs[0]["seconds"]:
        per = statistics.median(r["seconds"][dtype] for r in runs)
        print(f"    {dtype}: {per:.2f} s")


def _added(label: str, after: list[dict], before: list[dict]) -> None:
    """The time the 16-bit dtypes add, per pair of interleaved runs, against the target."""
    _summary(f"before ({label})", before)
    added = [_sixteen_bit(a) - _sixteen_bit(b) for a, b in zip(after, before, strict=True)]
    total = [
        sum(a["seconds"].values()) - sum(b["seconds"].values())
        for a, b in zip(after, before, strict=True)
    ]
    median = statistics.median(added)
    added_cpu = statistics.median(
        _sixteen_bit(a, "cpu_seconds") - _sixteen_bit(b, "cpu_seconds")
        for a, b in zip(after, before, strict=True)
        if "cpu_seconds" in b
    )
    verdict = "met" if median < TARGET_ADDED_SECONDS else "MISSED"
    print(
        f"  added by float16 + bfloat16: median {median:+.2f} s wall, {added_cpu:+.2f} s "
        f"CPU (pairs: {', '.join(f'{a:+.2f}' for a in added)} s wall); all dtypes: "
        f"{statistics.median(total):+.2f} s wall"
    )
    print(f"  target: under {TARGET_ADDED_SECONDS:g} s added: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default=DEFAULT_DTYPES)
    parser.add_argument("--modes", default=",".join(MODES), help="in-process, isolated or both")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--code", type=Path, default=ROOT, help="the code to time (default: this)")
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes) or not modes:
        parser.error(f"--modes must name {' or '.join(MODES)}; got {args.modes!r}")
    if args.one_run:
        sys.path.insert(0, str(args.code))
        print(json.dumps(one_run(dtypes, isolate=modes == ["isolated"])))
        return 0

    after: dict[str, list[dict]] = {m: [] for m in modes}
    before: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(max(1, args.repeats)):
        for mode in modes:
            if args.before is not None:
                before[mode].append(timed(args.before, dtypes, mode))
            after[mode].append(timed(args.code, dtypes, mode))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"default scan of naive, epsilon, fused over {', '.join(dtypes)}, one dtype at a time")
    for mode in modes:
        print(f" {mode}:")
        _summary(f"this code ({args.code})", after[mode])
        if args.before is not None:
            _added(str(args.before), after[mode], before[mode])
    first = after[modes[0]][0]
    print(
        f"  mpmath backend: {first['backend']}; load average at the end: {load:.2f}; "
        f"cores: {os.cpu_count()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
