"""Copy-paste Python that reproduces one check: the exact problem, rebuilt from float literals.

The snippet imports the implementation by ``module:qualname`` when that names the same
object, rebuilds the :class:`~gradverify.model.network.Problem` from ``repr`` float literals
(every value of the problem's dtype is exactly a float64, and ``repr`` round-trips it), and
calls :func:`gradverify.check_problem`. It runs on its own: ``python snippet.py``.

Names come from user code (an implementation's ``__qualname__``, ``__module__``, the name
it is checked under) and may hold anything, a line break or quotes included. None of them
can add a statement to the snippet: they are written as Python string literals built by
``str.__repr__``, or into comments with every control character escaped; an import line is
written only for names that are plain dotted identifiers.
"""

from __future__ import annotations

import importlib
import keyword
import math
import unicodedata
from collections.abc import Callable

import numpy as np

from gradverify.engine.compare import DEFAULT_POLICY, DEFAULT_TOLERANCE_FACTOR
from gradverify.model.network import Problem

__all__ = ["import_path", "reproduction_snippet"]


def _dotted_identifier(name: object) -> bool:
    """Whether ``name`` is ``a.b.c`` of identifiers that Python reads back unchanged."""
    return isinstance(name, str) and all(
        part.isidentifier()
        and not keyword.iskeyword(part)
        and unicodedata.normalize("NFKC", part) == part
        for part in name.split(".")
    )


def _comment_text(value: object) -> str:
    """``value`` as text for a ``#`` comment: line breaks and every other control or
    unprintable character escaped (``\\n``), so the comment cannot end early."""
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a user's object may fail even at this
        text = f"<{type(value).__name__}>"
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _float_literal(x: float) -> str:
    """An exact float literal; inf and nan as ``float('inf')``, which Python can read."""
    x = float(x)
    if math.isfinite(x):
        return float.__repr__(x)
    if math.isnan(x):
        return "float('nan')"
    return "float('inf')" if x > 0 else "-float('inf')"


def _py(value: object) -> str:
    """A Python literal for a str, int, float, None or tuple of them, from the base types'
    own ``repr`` (a subclass's ``__repr__`` cannot change what is written)."""
    if value is None or isinstance(value, bool):
        return "True" if value is True else "False" if value is False else "None"
    if isinstance(value, int):
        return int.__repr__(int(value))
    if isinstance(value, float):
        return _float_literal(value)
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, tuple | list):
        items = [_py(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return _py(_comment_text(value))


def import_path(impl: Callable) -> tuple[str, str] | None:
    """``(module, qualname)`` if importing them gives back ``impl`` itself, else None.

    Both must be dotted identifiers (so they can be written into an import statement).
    """
    found = getattr(impl, "__gradverify_import_path__", False)
    if found is not False:  # an isolated implementation: what its worker process found
        return found
    module = getattr(impl, "__module__", None)
    qualname = getattr(impl, "__qualname__", None)
    if not _dotted_identifier(module) or not _dotted_identifier(qualname) or module == "__main__":
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
            return _float_literal(float(v))
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
    policy: str = DEFAULT_POLICY,
    timeout: float | None = None,
    isolate: bool = False,
    comment: str | None = None,
) -> str:
    """Python source that rebuilds ``problem`` and runs ``gradverify.check_problem`` on it.

    Args:
        impl: the implementation under test (imported by module:qualname when possible;
            otherwise the snippet says where to put it).
        problem: the problem to reproduce, in its dtype.
        name, tolerance_factor, policy, timeout: passed on to ``check_problem`` when not
            default.
        isolate: run the implementation in a worker process (for a verdict that crashed or
            hung it, so that replaying it cannot take the reader's interpreter down).
        comment: a first line saying what the snippet reproduces.
    """
    lines = [f"# {_comment_text(line)}" for line in comment.splitlines()] if comment else []
    lines += [
        "import numpy as np",
        "",
        "import gradverify",
        "from gradverify.model.network import NetworkSpec, Problem",
        "",
        *_implementation_lines(impl),
        "",
        *_problem_lines(problem),
    ]
    options = []
    if name:
        options.append(f"name={_py(name if isinstance(name, str) else _comment_text(name))}")
    if tolerance_factor != DEFAULT_TOLERANCE_FACTOR:
        options.append(f"tolerance_factor={_float_literal(tolerance_factor)}")
    if policy != DEFAULT_POLICY:
        options.append(f"policy={_py(policy)}")
    if timeout is not None:
        options.append(f"timeout={_float_literal(timeout)}")
    if isolate:
        options.append("isolate=True")
    args = ", ".join(["impl", "problem", *options])
    if isolate:  # worker processes need the guard when this runs as a script
        lines += [
            "",
            'if __name__ == "__main__":',
            f"    result = gradverify.check_problem({args})",
            "    print(result)",
        ]
    else:
        lines += [f"result = gradverify.check_problem({args})", "print(result)"]
    return "\n".join(lines) + "\n"


def _implementation_lines(impl: Callable) -> list[str]:
    """``impl = ...``: imported by name when that gives it back, else a place to put it."""
    path = import_path(impl)
    if path is not None:
        module, qualname = path
        head, _, rest = qualname.partition(".")
        return [f"from {module} import {head}", f"impl = {qualname}" if rest else f"impl = {head}"]
    what = _comment_text(getattr(impl, "__qualname__", None) or type(impl).__name__)
    where = _comment_text(getattr(impl, "__module__", None) or "?")
    return [
        f"# {what} (module {where}) cannot be imported by name:",
        "# define or import your backprop here and assign it to impl.",
        "impl = None",
        "if impl is None:",
        "    raise SystemExit('set impl to the backprop implementation under test')",
    ]


def _problem_lines(problem: Problem) -> list[str]:
    """``problem = Problem.from_arrays(...)`` from exact float literals."""
    spec = problem.spec
    return [
        f"spec = NetworkSpec(widths={_py(spec.widths)}, activations={_py(spec.activations)}, "
        f"loss={_py(spec.loss)})",
        *_arrays("weights", problem.weights),
        *_arrays("biases", problem.biases),
        f"x = {_literal(problem.x)}",
        f"y = {_literal(problem.y)}",
        "problem = Problem.from_arrays(spec, weights, biases, x, y, "
        f"dtype={_py(problem.dtype_name)})",
    ]
