"""Copy-paste Python that reproduces one check: the exact problem, rebuilt from float literals.

The snippet imports the implementation by ``module:qualname`` when that names the same
object, rebuilds the :class:`~gradverify.network.Problem` from ``repr`` float literals
(every value of the problem's dtype is exactly a float64, and ``repr`` round-trips it), and
calls :func:`gradverify.check_problem`. It runs on its own: ``python snippet.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from gradverify.compare import DEFAULT_TOLERANCE_FACTOR
from gradverify.network import Problem

__all__ = ["import_path", "reproduction_snippet"]


def import_path(impl: Callable) -> tuple[str, str] | None:
    """``(module, qualname)`` if importing them gives back ``impl`` itself, else None."""
    module = getattr(impl, "__module__", None)
    qualname = getattr(impl, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:  # noqa: BLE001 - any failure means "not importable"
        return None
    return (module, qualname) if obj is impl else None


def _literal(a: np.ndarray) -> str:
    """A numpy array as ``np.array([...])`` with exact (repr) float64 literals."""
    def nested(v: np.ndarray) -> str:
        if v.ndim == 0:
            return repr(float(v))
        return "[" + ", ".join(nested(e) for e in v) + "]"

    return f"np.array({nested(np.asarray(a).astype(np.float64))})"


def _arrays(name: str, arrays: tuple[np.ndarray, ...]) -> list[str]:
    if len(arrays) == 1:
        return [f"{name} = [{_literal(arrays[0])}]"]
    return [f"{name} = [", *(f"    {_literal(a)}," for a in arrays), "]"]


def reproduction_snippet(
    impl: Callable,
    problem: Problem,
    *,
    name: str | None = None,
    tolerance_factor: float = DEFAULT_TOLERANCE_FACTOR,
    timeout: float | None = None,
    comment: str | None = None,
) -> str:
    """Python source that rebuilds ``problem`` and runs ``gradverify.check_problem`` on it.

    Args:
        impl: the implementation under test (imported by module:qualname when possible;
            otherwise the snippet says where to put it).
        problem: the problem to reproduce, in its dtype.
        name, tolerance_factor, timeout: passed on to ``check_problem`` when not default.
        comment: a first line saying what the snippet reproduces.
    """
    spec = problem.spec
    lines = []
    if comment:
        lines.extend(f"# {line}" for line in comment.splitlines())
    lines += ["import numpy as np", "", "import gradverify", "from gradverify.network import "
              "NetworkSpec, Problem", ""]
    path = import_path(impl)
    if path is not None:
        module, qualname = path
        head, _, rest = qualname.partition(".")
        lines.append(f"from {module} import {head}")
        lines.append(f"impl = {qualname}" if rest else f"impl = {head}")
    else:
        what = getattr(impl, "__qualname__", None) or type(impl).__name__
        where = getattr(impl, "__module__", None) or "?"
        lines += [
            f"# {what} (module {where}) cannot be imported by name:",
            "# define or import your backprop here and assign it to impl.",
            "impl = None",
            "if impl is None:",
            "    raise SystemExit('set impl to the backprop implementation under test')",
        ]
    lines += [
        "",
        f"spec = NetworkSpec(widths={spec.widths!r}, activations={spec.activations!r}, "
        f"loss={spec.loss!r})",
        *_arrays("weights", problem.weights),
        *_arrays("biases", problem.biases),
        f"x = {_literal(problem.x)}",
        f"y = {_literal(problem.y)}",
        f"problem = Problem.from_arrays(spec, weights, biases, x, y, dtype={problem.dtype_name!r})",
    ]
    options = []
    if name:
        options.append(f"name={name!r}")
    if tolerance_factor != DEFAULT_TOLERANCE_FACTOR:
        options.append(f"tolerance_factor={tolerance_factor!r}")
    if timeout is not None:
        options.append(f"timeout={timeout!r}")
    args = ", ".join(["impl", "problem", *options])
    lines += [f"result = gradverify.check_problem({args})", "print(result)"]
    return "\n".join(lines) + "\n"
