"""gradverify against the gradient checkers people would otherwise use, in one run.

    python benchmarks/bench_peers.py [--budget 60] [--repeats 5] [--sizes 64,256]
                                     [--widths 16,32,64,128,256] [--threads 1]

The networks are [32, w, w, 1], sigmoid, BCE, batch 16, float64: w = 64 has 6,337
parameters, w = 256 has 74,497. Every tool checks the same model:

* gradverify full: ``check_problem(torch adapter, problem)`` with its default options: the
  torch ``nn.BCEWithLogitsLoss`` model through :mod:`gradverify.edges.adapters.torch` (called
  twice, to catch nondeterminism), the exact reference (Arb where python-flint is installed,
  else mpmath), the stable and autograd float baselines with their rounding floors, the
  comparison, and directional finite differences as a second opinion on the reference. A
  second row passes the mpmath reference (``backend="mpmath"``), computed inside the timing.
* gradverify fast: :func:`gradverify.fast_check` with its default options (one random
  direction, as torch's fast_mode and jax's check_grads project once); a second row uses
  4 directions.
* ``torch.autograd.gradcheck`` on the same function of the six parameter tensors, slow mode
  (full finite-difference Jacobian) and ``fast_mode=True`` (one random projection).
* ``jax.test_util.check_grads(f, (params,), order=1, modes=("rev",))`` on a jitted loss,
  timed after a warm-up call (compilation excluded).
* ``scipy.optimize.check_grad`` (forward differences over every coordinate) with the numpy
  fused backprop as the gradient.

For each network of ``--sizes`` the tools run in interleaved rounds (every tool once per
round, so that the machine's load hits all alike), up to ``--repeats`` rounds; a tool stops
early once its next run would take it past ``--budget`` seconds. The table gives medians and
ratios between tools of the same run; the targets follow, then the default full check part
by part (implementation calls, exact reference, float baselines, rounding floors,
comparison, directional finite differences, the rest), at every size.

Then the exact reference alone (mpmath against Arb), the default search (median of 3
seeds), and a scaling series over ``--widths`` (reusing the tables' medians at their
sizes; a tool whose predicted time, from the previous width, quadratic for full finite
differences and linear otherwise, exceeds ``--budget`` is skipped). The peak RSS of the full
check at the largest width is measured in a fresh subprocess (``resource.getrusage``) with
the numpy fused implementation, so torch's own memory is not counted, before torch and jax
are imported (Linux carries a parent's peak RSS into its child's ``ru_maxrss``).

Every library runs single-threaded by default (``--threads 1``: OpenBLAS/OpenMP/MKL through
their environment variables, torch through ``torch.set_num_threads``, XLA through
``XLA_FLAGS``). On two shared cores their thread pools made a 1 ms torch backward pass take up
to 0.15 s and numpy's matrix products 4x slower whenever the other core was busy.
"""

from __future__ import annotations

import argparse
import copy
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
from gradverify.exact.reference import mpmath_backend, reference_gradients  # noqa: E402
from gradverify.model.network import Problem, forward, loss_value  # noqa: E402

QUADRATIC = {"torch gradcheck slow", "scipy check_grad"}
FULL, FAST = "gradverify full", "gradverify fast"
SLOW, FAST_MODE = "torch gradcheck slow", "torch gradcheck fast_mode"
TARGETS = (
    ("default full check / torch gradcheck slow", FULL, SLOW, {6_337: 0.1, 74_497: 0.03}),
    ("fast_check / torch gradcheck fast_mode", FAST, FAST_MODE, {6_337: 1.0, 74_497: 1.0}),
)
"""(label, ours, peer, {parameters: the largest ratio ours / peer that meets the target})."""


# ---------------------------------------------------------------------------
# The tools, each a zero-argument callable for one problem
# ---------------------------------------------------------------------------


def mpmath_reference(problem: Problem) -> object:
    """The exact reference computed by mpmath, whatever the default backend."""
    try:
        return reference_gradients(problem, backend="mpmath")
    except TypeError:  # a reference_gradients without backends: mpmath is all it has
        return reference_gradients(problem)


def torch_module_impl() -> Callable:
    """The implementation under test: torch's ``nn.BCEWithLogitsLoss`` model (autograd)."""
    from torch import nn

    from gradverify.edges.adapters.torch import from_module

    return from_module(nn.BCEWithLogitsLoss())


def gradverify_tools(problem: Problem) -> dict[str, Callable[[], object]]:
    """Each run checks a new copy of ``problem`` (``copy.copy``, 3 us): the float64 forward
    pass a Problem keeps for its later checks is computed in every run, as the peers
    compute theirs."""
    impl = torch_module_impl()

    def fresh() -> Problem:
        return copy.copy(problem)

    return {
        FULL: lambda: check_problem(impl, fresh()).verdict,
        FULL + " (mpmath)": lambda: (
            check_problem(
                impl, q := fresh(), reference=reference_gradients(q, backend="mpmath")
            ).verdict
        ),
        FAST: lambda: gradverify_fast_check(impl, fresh()).verdict,
        FAST + " (4 directions)": lambda: (
            gradverify_fast_check(impl, fresh(), directions=4).verdict
        ),
    }


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
        SLOW: lambda: torch.autograd.gradcheck(loss, params),
        FAST_MODE: lambda: torch.autograd.gradcheck(loss, params, fast_mode=True),
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


def interleaved_times(
    tools: dict[str, Callable[[], object]], repeats: int, budget: float
) -> dict[str, tuple[float, int, object]]:
    """Each tool's (median seconds, runs, last result), the tools run in interleaved rounds.

    Every round runs each tool once, so that a change in the machine's load hits all tools
    alike; a tool drops out after ``repeats`` runs or once its next run (predicted from its
    last) would take its total past ``budget`` seconds.
    """
    times: dict[str, list[float]] = {name: [] for name in tools}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in tools.items():
            done = times[name]
            if done and sum(done) + done[-1] > budget:
                continue
            start = time.perf_counter()
            results[name] = fn()
            done.append(time.perf_counter() - start)
    return {name: (statistics.median(t), len(t), results[name]) for name, t in times.items()}


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
result = check_problem(fused_bce_backprop, problem)
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
    parser.add_argument(
        "--sizes", default="64,256", help="widths w of the tables (64: 6,337, 256: 74,497)"
    )
    parser.add_argument(
        "--widths", default="16,32,64,128,256", help="the scaling series ('' to skip it)"
    )
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


def _one_network(args: argparse.Namespace, width: int) -> dict[str, float]:
    """The table for [32, width, width, 1]; returns each tool's median seconds."""
    problem = benchmark_problem(width)
    print(
        f"\n== one network: {problem.spec.describe()}, batch {problem.batch_size}, float64, "
        f"{problem.spec.parameter_count:,} parameters; median of up to {args.repeats} "
        f"interleaved runs, budget {args.budget:g} s per tool =="
    )
    tools = all_tools(problem)
    for name, fn in tools.items():  # warm-up (imports, first-call set-up)
        if name not in QUADRATIC:
            fn()
    measured = interleaved_times(tools, args.repeats, args.budget)
    times = {name: m[0] for name, m in measured.items()}
    print(f"{'tool':<30}{'median s':>10}{'runs':>6}{'/ gv full':>11}{'/ gv fast':>11}  result")
    for name, (t, n, result) in measured.items():
        print(
            f"{name:<30}{_fmt_seconds(t):>10}{n:>6}{t / times[FULL]:>11.3g}"
            f"{t / times[FAST]:>11.3g}  {result}"
        )
    return times


def _targets(tables: dict[int, dict[str, float]]) -> None:
    """Every target at every measured size: gradverify's time / the peer's, met or missed."""
    print("\ntargets (gradverify time / peer time, same run):")
    for label, ours, peer, limits in TARGETS:
        for params, times in tables.items():
            limit = limits.get(params)
            if limit is None:
                continue
            where = f"  {label} at {params:,} parameters"
            if ours in times and peer in times:
                ratio = times[ours] / times[peer]
                print(
                    f"{where}: {_fmt_seconds(times[ours])} s / {_fmt_seconds(times[peer])} s "
                    f"= {ratio:.3g} (target <= {limit:g}): {'met' if ratio <= limit else 'MISSED'}"
                )
            else:
                print(f"{where}: not measured ({ours if ours not in times else peer} missing)")


# ---------------------------------------------------------------------------
# The default full check, part by part
# ---------------------------------------------------------------------------

PARTS = ("implementation calls", "exact reference", "float baselines", "rounding floors")
PARTS += ("comparison", "directional FD", "full FD", "other")
"""The parts of a check; "full FD" (every parameter) runs only up to 2,000 parameters."""


class _PartTimer:
    """Times the parts of ``check_problem`` by wrapping the functions it calls.

    The wrappers replace the names ``gradverify.engine.check`` (and the directional module)
    looks up at call time; :meth:`restore` puts the originals back.
    """

    def __init__(self) -> None:
        import gradverify.engine.check as check
        import gradverify.engine.directional as directional
        from gradverify.engine.implementations import conventional_backprop, stable_backprop

        self.spent = dict.fromkeys(PARTS, 0.0)
        baselines = (stable_backprop, conventional_backprop)
        self.patched = [
            (
                check,
                "call_backprop",
                lambda impl, *a, **k: (
                    "float baselines" if impl in baselines else "implementation calls"
                ),
            ),
            (check, "reference_gradients", lambda *a, **k: "exact reference"),
            (check, "rounding_floors", lambda *a, **k: "rounding floors"),
            (check, "_compare", lambda *a, **k: "comparison"),
            (check, "_finite_differences", lambda *a, **k: "full FD"),
            (directional, "directional_check", lambda *a, **k: "directional FD"),
        ]
        self.originals = [(module, name, getattr(module, name)) for module, name, _ in self.patched]
        for (module, name, part_of), (_, _, original) in zip(
            self.patched, self.originals, strict=True
        ):
            setattr(module, name, self._timed(original, part_of))

    def _timed(self, fn: Callable, part_of: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[part_of(*args, **kwargs)] += time.perf_counter() - start

        return timed

    def restore(self) -> None:
        for module, name, original in self.originals:
            setattr(module, name, original)


def check_parts(problem: Problem, impl: Callable, repeats: int) -> dict[str, float]:
    """Median seconds of each part of ``check_problem(impl, problem)`` (and ``"total"``)."""
    check_problem(impl, problem)  # warm-up
    runs: dict[str, list[float]] = {part: [] for part in (*PARTS, "total")}
    for _ in range(repeats):
        timer = _PartTimer()
        try:
            fresh = copy.copy(problem)  # without the forward pass of the previous run
            start = time.perf_counter()
            check_problem(impl, fresh)
            total = time.perf_counter() - start
        finally:
            timer.restore()
        timer.spent["other"] = total - sum(timer.spent.values())
        for part, spent in timer.spent.items():
            runs[part].append(spent)
        runs["total"].append(total)
    return {part: statistics.median(t) for part, t in runs.items()}


def _breakdown(args: argparse.Namespace, sizes: list[int]) -> None:
    problems = [benchmark_problem(w) for w in sizes]
    impl = torch_module_impl()
    parts = [check_parts(p, impl, max(args.repeats, 5)) for p in problems]
    print(
        f"\n== the default full check, part by part: check_problem(torch adapter, problem), "
        f"median of {max(args.repeats, 5)} runs =="
    )
    header = "".join(f"{f'{p.spec.parameter_count:,} parameters':>26}" for p in problems)
    print(f"{'part':<22}{header}")
    for part in (*PARTS, "total"):
        cells = "".join(
            f"{t[part] * 1e3:>14.2f} ms {100 * t[part] / t['total']:>5.1f} %" for t in parts
        )
        print(f"{part:<22}{cells}")
    for p, t in zip(problems, parts, strict=True):
        rest = t["total"] - t["exact reference"]
        print(
            f"  {p.spec.parameter_count:,} parameters: everything but the exact reference "
            f"{rest * 1e3:.1f} ms = {rest / t['exact reference']:.2f} x the reference"
        )


class _Scaling:
    """The scaling series over [32, w, w, 1]: medians, skipped runs and their notes."""

    def __init__(
        self, args: argparse.Namespace, widths: list[int], known: dict[int, dict[str, float]]
    ) -> None:
        self.args, self.widths = args, widths
        self.known = known  # medians already measured at some widths (the tables)
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
            known = self.known.get(w, {})
            for name, fn in all_tools(p).items():
                self.series.setdefault(name, {})
                if name in known:
                    self.series[name][w] = known[name]
                    self.last[name] = (self.counts[w], known[name])
                    continue
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
        header = f"{'tool':<30}" + "".join(f"{f'w={w}':>11}" for w in widths) + "   growth"
        print(header)
        print(f"{'(parameters)':<30}" + "".join(f"{self.counts[w]:>11,}" for w in widths))
        for name, values in self.series.items():
            measured = [(self.counts[w], t) for w, t in values.items() if t is not None]
            if len(measured) >= 2:
                (p0, t0), (p1, t1) = measured[0], measured[-1]
                slope = f"t ~ P^{np.log(t1 / t0) / np.log(p1 / p0):.2f}"
            else:
                slope = "-"
            print(
                f"{name:<30}"
                + "".join(f"{_fmt_seconds(values.get(w)):>11}" for w in widths)
                + f"   {slope}"
            )
        for note in self.notes:
            print(f"  note: {note}")
        tables = ", ".join(f"w={w}" for w in widths if w in self.known)
        if tables:
            print(f"  ({tables}: the medians of the tables above)")


def _reference_backends(args: argparse.Namespace) -> None:
    """The exact reference alone at 6,337 parameters: mpmath against Arb (python-flint)."""
    problem = benchmark_problem(64)
    print(f"\n== exact reference alone, {problem.spec.parameter_count:,} parameters ==")
    t_mp, n_mp, _ = median_time(lambda: mpmath_reference(problem), args.repeats, args.budget)
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
    sizes = [int(w) for w in args.sizes.split(",") if w]
    widths = [int(w) for w in args.widths.split(",") if w]
    # Measured first, while this process is small: Linux carries a parent's peak RSS over
    # into a child's ru_maxrss across fork and exec.
    rss = peak_rss_of_full_check(max(widths or sizes))
    _set_threads(args.threads)
    print(f"machine: {machine()}; threads per library: {args.threads or 'default'}")
    tables = {w: _one_network(args, w) for w in sizes}
    _targets({benchmark_problem(w).spec.parameter_count: t for w, t in tables.items()})
    _breakdown(args, sizes)
    _reference_backends(args)
    _default_search(args)
    if widths:
        print(
            f"\n== scaling: [32, w, w, 1], batch 16, float64; median seconds "
            f"(budget {args.budget:g} s per measurement) =="
        )
        scaling = _Scaling(args, widths, tables)
        scaling.measure()
        scaling.print_table()
    print()
    print(rss)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
