"""Time the exact reference gradient alone: [32, 64, 64, 1], sigmoid, BCE, batch 16.

    python benchmarks/bench_reference.py [--repeats 5] [--bits 166]

50 significant decimal digits are 50 * log2(10) = 166.1 bits, so ``--bits 166`` (the default)
asks :func:`gradverify.exact.reference.reference_gradients` for two working precisions that agree to
166 bits (it computes at 166 + 32 = 198 and 396 bits). Prints the median of ``--repeats``
runs, the working precision used and mpmath's backend (``gmpy`` when gmpy2 is installed,
else ``python``). Run it under two environments to compare the backends. With python-flint
installed it also times the Arb ball-arithmetic reference (gradverify.exact.reference_flint) and
reports how far it is from the mpmath one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradverify.exact.reference import mpmath_backend, reference_gradients  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402

TARGET_SECONDS = 1.0


def benchmark_problem(width: int = 64, batch: int = 16, seed: int = 0) -> Problem:
    """[32, width, width, 1], sigmoid everywhere, BCE, float64, N(0, 1/fan_in) weights."""
    rng = np.random.default_rng(seed)
    widths = (32, width, width, 1)
    spec = NetworkSpec(widths, ("sigmoid",) * 3, "bce")
    weights = [
        rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i]) for i in range(3)
    ]
    biases = [rng.standard_normal(widths[i + 1]) * 0.1 for i in range(3)]
    x = rng.standard_normal((widths[0], batch))
    y = rng.integers(0, 2, (1, batch)).astype(np.float64)
    return Problem.from_arrays(spec, weights, biases, x, y, "float64")


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--bits",
        type=int,
        default=166,
        help="significant bits the two precisions must agree on (166 = 50 digits)",
    )
    args = parser.parse_args(argv)

    problem = benchmark_problem()
    print(
        f"network {problem.spec.describe()}, batch {problem.batch_size}, float64, "
        f"{problem.spec.parameter_count} parameters"
    )
    result = reference_gradients(problem, bits=args.bits)  # also a warm-up
    seconds, times = median_seconds(
        lambda: reference_gradients(problem, bits=args.bits), args.repeats
    )
    verdict = "met" if seconds < TARGET_SECONDS else "MISSED"
    print(
        f"mpmath reference ({args.bits} bits agreed, working precision {result.precision} "
        f"bits, mpmath backend {mpmath_backend()}): median {seconds:.3f} s of "
        f"{args.repeats} ({', '.join(f'{t:.3f}' for t in times)}); target < "
        f"{TARGET_SECONDS:g} s: {verdict}"
    )

    try:
        from gradverify.exact.reference_flint import flint_available, flint_reference_gradients
    except ImportError:
        flint_available = None  # type: ignore[assignment]
    if flint_available is None:
        print("python-flint reference: not implemented in this checkout")
    elif not flint_available():
        print(
            "python-flint reference: python-flint is not installed (pip install gradverify[fast])"
        )
    else:
        flint_result = flint_reference_gradients(problem, bits=args.bits)
        seconds_f, times_f = median_seconds(
            lambda: flint_reference_gradients(problem, bits=args.bits), args.repeats
        )
        same = all(
            np.array_equal(a, b)
            for a, b in zip(
                (*result.dweights, *result.dbiases),
                (*flint_result.dweights, *flint_result.dbiases),
                strict=True,
            )
        )
        print(
            f"python-flint (Arb) reference ({args.bits} bits, working precision "
            f"{flint_result.precision} bits): median {seconds_f:.3f} s of {args.repeats} "
            f"({', '.join(f'{t:.3f}' for t in times_f)}); {seconds / seconds_f:.1f}x faster "
            f"than mpmath; float64 gradients identical to mpmath's: {same}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
