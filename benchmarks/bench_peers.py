"""gradverify against the gradient checkers people would otherwise use, in one run.

    python benchmarks/bench_peers.py [--budget 60] [--repeats 5] [--widths 16,32,64,128,256]

The network is [32, 64, 64, 1], sigmoid, BCE, batch 16, float64 (6,337 parameters); the
scaling series is [32, w, w, 1] for w in ``--widths``. Every tool checks the same model:

* gradverify full: ``check_problem(torch adapter, problem, finite_differences=False)``: the
  torch ``nn.BCEWithLogitsLoss`` model through :mod:`gradverify.edges.adapters.torch` (called twice,
  to catch nondeterminism), the exact mpmath reference, the stable float baseline and the
  verdict. With python-flint installed a second row uses the Arb reference
  (``reference=flint_reference_gradients(problem)``).
* gradverify fast: :func:`gradverify.fast_check`, the same implementation call, then
  directional differences along 4 random directions (Richardson extrapolated; a second row
  uses 1 direction, as torch's fast_mode does) instead of the exact reference.
* ``torch.autograd.gradcheck`` on the same function of the six parameter tensors, slow mode
  (full finite-difference Jacobian) and ``fast_mode=True`` (one random projection).
* ``jax.test_util.check_grads(f, (params,), order=1, modes=("rev",))`` on a jitted loss,
  timed after a warm-up call (compilation excluded).
* ``scipy.optimize.check_grad`` (forward differences over every coordinate) with the numpy
  fused backprop as the gradient.

Times are medians of up to ``--repeats`` runs (fewer when one run is long: at most about
``--budget`` seconds per measurement). In the scaling series a tool whose predicted time
(from the previous width, quadratic growth for full finite differences, linear otherwise)
exceeds ``--budget`` is skipped and the table says so. The peak RSS of the full check at the
largest width is measured in a fresh subprocess (``resource.getrusage``) with the numpy fused
implementation, so torch's own memory is not counted, before torch and jax are imported
(Linux carries a parent's peak RSS into its child's ``ru_maxrss``).

Every library runs single-threaded by default (``--threads 1``: OpenBLAS/OpenMP/MKL through
their environment variables, torch through ``torch.set_num_threads``, XLA through
``XLA_FLAGS``). On two shared cores their thread pools made a 1 ms torch backward pass take up
to 0.15 s and numpy's matrix products 4x slower whenever the other core was busy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _threads_from_argv(argv: list[str]) -> int:
    """``--threads N`` (default 1), read before numpy, torch and jax start their pools."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


THREADS = _threads_from_argv(sys.argv)
if THREADS > 0:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(THREADS))
    if THREADS == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_reference import benchmark_problem  # noqa: E402
from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.check import fast_check as gradverify_fast_check  # noqa: E402
from gradverify.engine.finite_diff import flatten_parameters, unflatten_parameters  # noqa: E402
from gradverify.engine.implementations import fused_bce_backprop  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.exact.reference import mpmath_backend  # noqa: E402
from gradverify.model.network import Problem, forward, loss_value  # noqa: E402

FAST_DIRECTIONS = 4
QUADRATIC = {"torch gradcheck slow", "scipy check_grad"}
FULL, FAST = "gradverify full", "gradverify fast"


# ---------------------------------------------------------------------------
# gradverify's fast check (directional, no exact reference)
# ---------------------------------------------------------------------------


def fast_check(impl: Callable, problem: Problem, directions: int = FAST_DIRECTIONS) -> Verdict:
    """gradverify's fast check: ``v^T g`` against directional differences, no exact reference."""
    return gradverify_fast_check(impl, problem, directions=directions).verdict


# ---------------------------------------------------------------------------
# The tools, each a zero-argument callable for one problem
# ---------------------------------------------------------------------------


def gradverify_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    from torch import nn

    from gradverify.edges.adapters.torch import from_module

    impl = from_module(nn.BCEWithLogitsLoss())
    tools: dict[str, Callable[[], object]] = {
        FULL: lambda: check_problem(impl, problem, finite_differences=False).verdict,
        FAST: lambda: fast_check(impl, problem),
        FAST + " (1 direction)": lambda: fast_check(impl, problem, directions=1),
    }
    try:
        from gradverify.exact.reference_flint import flint_available, flint_reference_gradients
    except ImportError:
        return tools
    if flint_available():
        tools["gradverify full (flint)"] = lambda: (
            check_problem(
                impl,
                problem,
                finite_differences=False,
                reference=flint_reference_gradients(problem),
            ).verdict
        )
    return tools


def torch_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    import torch

    params = [torch.tensor(a, requires_grad=True) for a in (*problem.weights, *problem.biases)]
    x, y = torch.tensor(problem.x.T), torch.tensor(problem.y.T)
    depth = problem.spec.depth

    def loss(*p):
        z = x
        for i in range(depth):
            h = z @ p[i].T + p[depth + i]
            z = torch.sigmoid(h)
        return torch.nn.functional.binary_cross_entropy_with_logits(h, y)

    return {
        "torch gradcheck slow": lambda: torch.autograd.gradcheck(loss, params),
        "torch gradcheck fast_mode": lambda: torch.autograd.gradcheck(loss, params, fast_mode=True),
    }


def jax_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    params = [
        (jnp.asarray(w), jnp.asarray(b))
        for w, b in zip(problem.weights, problem.biases, strict=True)
    ]
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)

    @jax.jit
    def loss(p):
        z = x
        for W, b in p:
            h = W @ z + b[:, None]
            z = jax.nn.sigmoid(h)
        return jnp.mean(jax.nn.softplus(h) - y * h)

    def run() -> bool:
        check_grads(loss, (params,), order=1, modes=("rev",))
        return True

    run()  # warm-up: compile the loss and its gradient for these shapes
    return {"jax check_grads": run}


def scipy_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    from scipy.optimize import check_grad

    spec = problem.spec
    theta = flatten_parameters(problem.weights, problem.biases)

    def fun(t: np.ndarray) -> float:
        W, b = unflatten_parameters(t, spec)
        return float(loss_value(spec, forward(spec, W, b, problem.x), problem.y))

    def grad(t: np.ndarray) -> np.ndarray:
        W, b = unflatten_parameters(t, spec)
        dW, db = fused_bce_backprop(
            W, b, problem.x, problem.y, activations=spec.activations, loss=spec.loss
        )
        return flatten_parameters(dW, db)

    return {"scipy check_grad": lambda: check_grad(fun, grad, theta)}


def all_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    tools = gradverify_tools(problem)
    for extra in (torch_tools, jax_tools, scipy_tools):
        try:
            tools.update(extra(problem))
        except ImportError as exc:
            print(f"  ({extra.__name__[:-6]} not installed: {exc})")
    return tools


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeats: int, budget: float) -> tuple[float, int, object]:
    """Median wall time of up to ``repeats`` runs, stopping once ``budget`` seconds are used."""
    times, result = [], None
    while len(times) < repeats:
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if sum(times) + times[-1] > budget:
            break
    return statistics.median(times), len(times), result


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for mod in ("numpy", "mpmath", "torch", "jax", "scipy", "flint"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} -")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} CPUs ({cpu}); "
        f"Python {platform.python_version()}; mpmath backend {mpmath_backend()}; "
        f"{', '.join(versions)}; load average {load:.2f}"
    )


def peak_rss_of_full_check(width: int) -> str:
    """Peak RSS (MiB) of a fresh process running the full check at [32, width, width, 1]."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.bench_reference import benchmark_problem
from gradverify.engine.check import check_problem
from gradverify.engine.implementations import fused_bce_backprop
problem = benchmark_problem({width})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = check_problem(fused_bce_backprop, problem, finite_differences=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024, result.verdict.value, problem.spec.parameter_count)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, verdict, params = float(out[0]), float(out[1]), out[2], int(out[3])
    status = "met" if after < 1024 else "MISSED"
    return (
        f"peak RSS of the full check at [32, {width}, {width}, 1] ({params:,} parameters, "
        f"numpy fused implementation, verdict {verdict}): {after:.0f} MiB "
        f"({before:.0f} MiB after imports and set-up); target < 1 GiB: {status}"
    )


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def _fmt_seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.4f}" if t < 1 else f"{t:.2f}"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds per measurement; longer predicted runs are skipped",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", default="16,32,64,128,256")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for BLAS, torch and XLA (0: leave each library's default)",
    )
    return parser.parse_args(argv)


def _set_threads(threads: int) -> None:
    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass


def _one_network(args: argparse.Namespace) -> dict[str, float]:
    """The table at 6,337 parameters; returns each tool's median seconds."""
    problem = benchmark_problem(64)
    print(
        f"\n== one network: {problem.spec.describe()}, batch {problem.batch_size}, float64, "
        f"{problem.spec.parameter_count:,} parameters =="
    )
    tools = all_tools(problem)
    for fn in tools.values():  # warm-up (imports, first-call set-up)
        if fn is not tools.get("torch gradcheck slow") and fn is not tools.get("scipy check_grad"):
            fn()
    times: dict[str, float] = {}
    print(f"{'tool':<28}{'median s':>10}{'runs':>6}{'/ gv full':>11}{'/ gv fast':>11}  result")
    rows = []
    for name, fn in tools.items():
        t, n, result = median_time(fn, args.repeats, args.budget)
        times[name] = t
        rows.append((name, t, n, result))
    for name, t, n, result in rows:
        print(
            f"{name:<28}{_fmt_seconds(t):>10}{n:>6}{t / times[FULL]:>11.3g}"
            f"{t / times[FAST]:>11.3g}  {result}"
        )
    return times


def _targets(times: dict[str, float]) -> None:
    print("\ntargets (gradverify time / peer time):")

    def target(label: str, ours: str, peer: str, limit: float) -> None:
        if ours in times and peer in times:
            ratio = times[ours] / times[peer]
            print(
                f"  {label}: {ratio:.3g} (target <= {limit:g}): "
                f"{'met' if ratio <= limit else 'MISSED'}"
            )
        else:
            print(f"  {label}: not measured ({ours if ours not in times else peer} missing)")

    target(
        "full check / torch gradcheck slow at 6,337 parameters", FULL, "torch gradcheck slow", 0.2
    )
    target("fast check / torch gradcheck fast_mode", FAST, "torch gradcheck fast_mode", 1.0)
    target(
        "full check with flint / torch gradcheck slow",
        "gradverify full (flint)",
        "torch gradcheck slow",
        0.02,
    )


class _Scaling:
    """The scaling series over [32, w, w, 1]: medians, skipped runs and their notes."""

    def __init__(self, args: argparse.Namespace, widths: list[int]) -> None:
        self.args, self.widths = args, widths
        self.series: dict[str, dict[int, float | None]] = {}
        self.notes: list[str] = []
        self.counts: dict[int, int] = {}
        self.last: dict[str, tuple[int, float]] = {}

    def predicted(self, name: str, w: int) -> float | None:
        """The extrapolated time of ``name`` at width ``w`` from its last run, if any."""
        if name not in self.last:
            return None
        p0, t0 = self.last[name]
        return t0 * (self.counts[w] / p0) ** (2 if name in QUADRATIC else 1)

    def measure(self) -> None:
        for w in self.widths:
            p = benchmark_problem(w)
            self.counts[w] = p.spec.parameter_count
            for name, fn in all_tools(p).items():
                self.series.setdefault(name, {})
                predicted = self.predicted(name, w)
                if predicted is not None and predicted > self.args.budget:
                    self.series[name][w] = None
                    self.notes.append(
                        f"{name} at w={w} skipped: predicted {predicted:.0f} s "
                        f"> budget {self.args.budget:g} s"
                    )
                    continue
                if name not in QUADRATIC:
                    fn()  # warm-up for this shape
                repeats = self.args.repeats if w <= 64 else 3
                t, _, _ = median_time(fn, repeats, self.args.budget)
                self.series[name][w] = t
                self.last[name] = (self.counts[w], t)

    def print_table(self) -> None:
        widths = self.widths
        header = f"{'tool':<28}" + "".join(f"{f'w={w}':>11}" for w in widths) + "   growth"
        print(header)
        print(f"{'(parameters)':<28}" + "".join(f"{self.counts[w]:>11,}" for w in widths))
        for name, values in self.series.items():
            measured = [(self.counts[w], t) for w, t in values.items() if t is not None]
            if len(measured) >= 2:
                (p0, t0), (p1, t1) = measured[0], measured[-1]
                slope = f"t ~ P^{np.log(t1 / t0) / np.log(p1 / p0):.2f}"
            else:
                slope = "-"
            print(
                f"{name:<28}"
                + "".join(f"{_fmt_seconds(values.get(w)):>11}" for w in widths)
                + f"   {slope}"
            )
        for note in self.notes:
            print(f"  note: {note}")

    def print_target(self) -> None:
        full = self.series.get(FULL, {}).get(256)
        if full is None:
            return
        slow = self.series.get("torch gradcheck slow", {}).get(256)
        if slow is not None:
            ratio = full / slow
            print(
                f"  full check / torch gradcheck slow at w=256: {ratio:.3g} (target <= 0.1): "
                f"{'met' if ratio <= 0.1 else 'MISSED'}"
            )
        elif "torch gradcheck slow" in self.last:
            predicted = self.predicted("torch gradcheck slow", 256)
            ratio = full / predicted
            print(
                f"  full check / torch gradcheck slow at w=256: ~{ratio:.3g} against its "
                f"quadratic extrapolation ({predicted:.0f} s; not run) (target <= 0.1)"
            )


def _reference_backends(args: argparse.Namespace) -> None:
    """The exact reference alone at 6,337 parameters: mpmath against Arb (python-flint)."""
    from gradverify.exact.reference import reference_gradients

    problem = benchmark_problem(64)
    print(f"\n== exact reference alone, {problem.spec.parameter_count:,} parameters ==")
    t_mp, n_mp, _ = median_time(lambda: reference_gradients(problem), args.repeats, args.budget)
    print(f"  mpmath ({mpmath_backend()}): {_fmt_seconds(t_mp)} s (median of {n_mp})")
    try:
        from gradverify.exact.reference_flint import flint_available, flint_reference_gradients
    except ImportError:
        flint_available = None
    if flint_available is None or not flint_available():
        print("  python-flint: not installed (pip install -e '.[fast]')")
        return
    t_arb, n_arb, _ = median_time(
        lambda: flint_reference_gradients(problem), args.repeats, args.budget
    )
    print(
        f"  Arb (python-flint): {_fmt_seconds(t_arb)} s (median of {n_arb}); "
        f"Arb / mpmath = {t_arb / t_mp:.3g}"
    )


def _default_search(args: argparse.Namespace) -> None:
    """The default search of the fused built-in (float32 + float64), median of 3 seeds."""
    from gradverify.exploration.search import search

    times = []
    for seed in (0, 1, 2):
        start = time.perf_counter()
        result = search(fused_bce_backprop, seed=seed, database=None, dtypes=("float32", "float64"))
        times.append(time.perf_counter() - start)
        assert result.verdict is Verdict.PASS, str(result)
    median = statistics.median(times)
    print(
        f"\n== default search of the fused built-in (float32 + float64), seeds 0-2 ==\n"
        f"  median {median:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)} s); "
        f"target <= 2 s: {'met' if median <= 2.0 else 'MISSED'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    widths = [int(w) for w in args.widths.split(",")]
    # Measured first, while this process is small: Linux carries a parent's peak RSS over
    # into a child's ru_maxrss across fork and exec.
    rss = peak_rss_of_full_check(max(widths))
    _set_threads(args.threads)
    print(f"machine: {machine()}; threads per library: {args.threads or 'default'}")
    _targets(_one_network(args))
    _reference_backends(args)
    _default_search(args)
    print(
        f"\n== scaling: [32, w, w, 1], batch 16, float64; median seconds "
        f"(budget {args.budget:g} s per measurement) =="
    )
    scaling = _Scaling(args, widths)
    scaling.measure()
    scaling.print_table()
    scaling.print_target()
    print()
    print(rss)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
