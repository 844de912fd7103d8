"""Time the exact reference alone: mpmath, Arb (python-flint) and the automatic choice.

    python benchmarks/bench_reference.py [--repeats 5] [--bits 80] [--search 200]

Three networks, sigmoid everywhere, BCE, float64, N(0, 1/fan_in) weights: a search-sized
[4, 8, 8, 1] with batch 8 (121 parameters), [32, 64, 64, 1] with batch 16 (6,337 parameters)
and [32, 256, 256, 1] with batch 16 (74,497 parameters). For each, the three backends of
:func:`gradverify.exact.reference.reference_gradients` run in turn, ``--repeats`` times
(interleaved, so that a change in the machine's load reaches all three alike); the line gives
their medians, the ratios mpmath / Arb and mpmath / auto, the backend auto chose and whether
the float64 gradients (values and residuals) are bit for bit the same.

``--search N`` also times the three on N problems drawn (derandomized) by the default
search's strategy with every built-in activation and loss, the four dtypes, up to 3 layers of
up to 8 units and batch up to 8: their total and median seconds, and how often auto fell back
to mpmath. ``--bits`` is the significant bits asked for (80, the default, is what checks use;
166 is 50 decimal digits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradverify.exact.precision import DEFAULT_BITS, ExactReferenceError  # noqa: E402
from gradverify.exact.reference import BACKENDS, reference_gradients  # noqa: E402
from gradverify.exact.reference_flint import flint_available  # noqa: E402
from gradverify.exact.reference_mpmath import mpmath_backend  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402

TARGET_SECONDS = 1.0
"""The target for the default (auto) reference at 6,337 parameters."""

ORDER = ("mpmath", "flint", "auto")


def benchmark_problem(width: int = 64, batch: int = 16, seed: int = 0, inputs: int = 32) -> Problem:
    """[inputs, width, width, 1], sigmoid everywhere, BCE, float64, N(0, 1/fan_in) weights."""
    rng = np.random.default_rng(seed)
    widths = (inputs, width, width, 1)
    spec = NetworkSpec(widths, ("sigmoid",) * 3, "bce")
    weights = [
        rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i]) for i in range(3)
    ]
    biases = [rng.standard_normal(widths[i + 1]) * 0.1 for i in range(3)]
    x = rng.standard_normal((widths[0], batch))
    y = rng.integers(0, 2, (1, batch)).astype(np.float64)
    return Problem.from_arrays(spec, weights, biases, x, y, "float64")


def _seconds(backend: str, problem: Problem, bits: int) -> tuple[float, object]:
    start = time.perf_counter()
    try:
        result: object = reference_gradients(problem, bits=bits, backend=backend)
    except ExactReferenceError as exc:
        result = exc
    return time.perf_counter() - start, result


def _same_floats(a: object, b: object) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return isinstance(a, Exception) and isinstance(b, Exception)
    pairs = zip(a.tensors(), b.tensors(), strict=True)  # type: ignore[attr-defined]
    return a.loss == b.loss and all(  # type: ignore[attr-defined]
        np.array_equal(x[1].view(np.uint64), y[1].view(np.uint64))
        and np.array_equal(x[2].view(np.uint64), y[2].view(np.uint64))
        for x, y in pairs
    )


def _interleaved(
    problem: Problem, bits: int, repeats: int, backends: tuple[str, ...]
) -> dict[str, tuple[list[float], object]]:
    """Each backend once per round (after one warm-up round): its times and last result."""
    runs: dict[str, tuple[list[float], object]] = {b: ([], None) for b in backends}
    for round_ in range(repeats + 1):
        for backend in backends:
            seconds, result = _seconds(backend, problem, bits)
            if round_:
                runs[backend][0].append(seconds)
            runs[backend] = (runs[backend][0], result)
    return runs


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds:.3f} s"


def _network_line(label: str, problem: Problem, args: argparse.Namespace) -> dict[str, float]:
    backends = ORDER if flint_available() else ("mpmath", "auto")
    runs = _interleaved(problem, args.bits, args.repeats, backends)
    medians = {b: statistics.median(t) for b, (t, _) in runs.items()}
    results = {b: r for b, (_, r) in runs.items()}
    chosen = getattr(results["auto"], "backend", "error")
    parts = [f"{b if b != 'flint' else 'Arb'} {_fmt(medians[b])}" for b in backends]
    ratios = [
        f"mpmath/{b if b != 'flint' else 'Arb'} {medians['mpmath'] / medians[b]:.2f}x"
        for b in backends[1:]
    ]
    same = all(_same_floats(results["mpmath"], results[b]) for b in backends[1:])
    precisions = ", ".join(f"{b} {getattr(results[b], 'precision', '-')}" for b in backends)
    print(
        f"{label} ({problem.spec.parameter_count:,} parameters, batch {problem.batch_size}): "
        f"{'; '.join(parts)} (medians of {args.repeats}, interleaved); {'; '.join(ratios)}; "
        f"auto chose {chosen}; working bits {precisions}; float64 bits identical: {same}"
    )
    return medians


def _search_problems(count: int) -> list[Problem]:
    from hypothesis import HealthCheck, given, settings

    from gradverify.exploration.strategies import problems
    from gradverify.model.functions import ACTIVATIONS, LOSSES

    drawn: list[Problem] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        problems(
            activations=list(ACTIVATIONS),
            losses=list(LOSSES),
            dtypes=["float16", "bfloat16", "float32", "float64"],
            max_width=8,
            max_batch=8,
        )
    )
    def collect(problem: Problem) -> None:
        drawn.append(problem)

    collect()
    return drawn


def _search_line(args: argparse.Namespace) -> None:
    backends = ORDER if flint_available() else ("mpmath", "auto")
    drawn = _search_problems(args.search)
    times: dict[str, list[float]] = {b: [] for b in backends}
    fallbacks = 0
    for problem in drawn:
        for backend in backends:
            seconds, result = _seconds(backend, problem, args.bits)
            times[backend].append(seconds)
            if backend == "auto" and getattr(result, "backend", "flint") != "flint":
                fallbacks += 1
    parts = [
        f"{b if b != 'flint' else 'Arb'} total {sum(t):.2f} s, median {_fmt(statistics.median(t))}"
        for b, t in times.items()
    ]
    ratio = statistics.median(m / a for m, a in zip(times["mpmath"], times["auto"], strict=True))
    print(
        f"{len(drawn)} search-drawn problems (every activation and loss, 4 dtypes, <= 3 layers "
        f"of <= 8 units, batch <= 8): {'; '.join(parts)}; auto fell back to mpmath on "
        f"{fallbacks}; median ratio mpmath/auto {ratio:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bits", type=int, default=DEFAULT_BITS, help="significant bits")
    parser.add_argument(
        "--search", type=int, default=0, help="also time this many search-drawn problems"
    )
    args = parser.parse_args(argv)
    assert set(ORDER) == set(BACKENDS)
    flint = "python-flint installed" if flint_available() else "python-flint NOT installed"
    print(f"{args.bits} bits; mpmath backend {mpmath_backend()}; {flint}")
    _network_line("[4, 8, 8, 1]", benchmark_problem(8, batch=8, inputs=4), args)
    medians = _network_line("[32, 64, 64, 1]", benchmark_problem(64), args)
    verdict = "met" if medians["auto"] < TARGET_SECONDS else "MISSED"
    print(f"  target < {TARGET_SECONDS:g} s for the default (auto) reference: {verdict}")
    _network_line("[32, 256, 256, 1]", benchmark_problem(256), args)
    if args.search:
        _search_line(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
