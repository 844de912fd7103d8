"""How well and how fast the default search finds the planted bugs of the quality suite.

    python benchmarks/bench_quality.py [--seeds 20240607,0,1,2,3] [--kinds sign,tanh only]

For each planted bug of ``tests/quality/planted_zoo.py`` (the textbook backprop with one
mistake) and each seed, runs the default search (``gradverify.search(impl, seed=s,
database=None)``) and prints one row per bug:

* found: how many seeds gave the expected ``incorrect`` verdict (and which other verdicts);
* named: how many of those have the bug's phrase among the diagnosis hints;
* examples to detection: median number of examples up to and including the first failing one;
* time to detection: median seconds from the start of the search to the end of the first
  failing example's check (the progress callback after each example);
* total: median wall time of the whole search (shrinking, minimising and the hints included);
* shrunk: the largest parameter count and batch of the final counterexamples.

The correct control (``textbook_backprop``) is run with the same seeds and must pass.

To compare two versions of gradverify, run this script from one tree against the package
of another: ``PYTHONPATH=/path/to/other/tree python benchmarks/bench_quality.py``. The zoo is
always loaded from this script's own tree (by file path), the package from wherever
``import gradverify`` finds it.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ZOO = Path(__file__).resolve().parent.parent / "tests" / "quality" / "planted_zoo.py"
DEFAULT_SEEDS = (20240607, 0, 1, 2, 3)


def _load_zoo():
    spec = importlib.util.spec_from_file_location("planted_zoo", ZOO)
    module = importlib.util.module_from_spec(spec)
    sys.modules["planted_zoo"] = module
    spec.loader.exec_module(module)
    return module


def _one_search(impl, seed: int) -> dict:
    """One default search of ``impl``: its result, and when its first failure was checked."""
    from gradverify.exploration.search import search

    stamps: list[float] = []
    start = time.perf_counter()
    result = search(
        impl, seed=seed, database=None, progress=lambda *_: stamps.append(time.perf_counter())
    )
    total = time.perf_counter() - start
    first = next((i for i, s in enumerate(result.samples) if s["verdict"] != "pass"), None)
    return {
        "result": result,
        "total": total,
        "examples": None if first is None else first + 1,
        "detection": None if first is None else stamps[first] - start,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _row(kind: str, phrase: str, runs: list[dict]) -> str:
    verdicts = [run["result"].verdict.value for run in runs]
    found = [run for run in runs if run["result"].verdict.value == "incorrect"]
    named = [r for r in found if any(phrase in h for h in r["result"].diagnosis)]
    others = sorted({v for v in verdicts if v != "incorrect"})
    examples = _median([r["examples"] for r in found if r["examples"] is not None])
    detection = _median([r["detection"] for r in found if r["detection"] is not None])
    shrunk = [r["result"].counterexample for r in found if r["result"].counterexample]
    params = max((ce.spec.parameter_count for ce in shrunk), default=0)
    batch = max((ce.problem.batch_size for ce in shrunk), default=0)
    return (
        f"| {kind} | {len(found)}/{len(runs)}{' (' + ', '.join(others) + ')' if others else ''} "
        f"| {len(named)}/{len(found)} | {examples if examples is not None else '-'} "
        f"| {f'{detection:.2f} s' if detection is not None else '-'} "
        f"| {_median([r['total'] for r in runs]):.2f} s | {params} params, batch {batch} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, DEFAULT_SEEDS)),
        help="comma-separated seeds (default: %(default)s)",
    )
    parser.add_argument("--kinds", default=None, help="comma-separated bug kinds (default: all)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    zoo = _load_zoo()
    kinds = list(zoo.PLANTED) if args.kinds is None else args.kinds.split(",")

    import gradverify

    print(f"gradverify from {Path(gradverify.__file__).parent}; seeds {seeds}")
    # warm-up: the first search in a process pays for imports and first-call caches
    gradverify.search(zoo.textbook_backprop, seed=1, max_examples=5, database=None)
    print(
        "| planted bug | found | named | examples to detection (median) "
        "| time to detection (median) | total search (median) | shrunk (largest) |"
    )
    print("|---|---|---|---|---|---|---|")
    ok = True
    for kind in kinds:
        impl, phrase = zoo.PLANTED[kind]
        runs = [_one_search(impl, seed) for seed in seeds]
        print(_row(kind, phrase, runs), flush=True)
        ok = ok and all(
            r["result"].verdict.value == "incorrect"
            and any(phrase in h for h in r["result"].diagnosis)
            for r in runs
        )
    control = [_one_search(zoo.textbook_backprop, seed) for seed in seeds]
    passing = sum(run["result"].verdict.value == "pass" for run in control)
    print(
        f"control (textbook, no bug): {passing}/{len(seeds)} pass, median "
        f"{_median([r['total'] for r in control]):.2f} s"
    )
    ok = ok and passing == len(seeds)
    print(f"every bug found and named on every seed, control passing: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
