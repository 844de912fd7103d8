"""gradverify: is my gradient right, and where does floating point make it wrong?

The public API is loaded lazily so that ``import gradverify`` (and the pytest plugin)
stay cheap: numpy, mpmath and matplotlib are imported only when first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "NetworkSpec": "gradverify.network",
    "Problem": "gradverify.network",
    "reference_gradients": "gradverify.reference",
    "finite_difference_gradients": "gradverify.finite_diff",
    "directional_check": "gradverify.finite_diff",
    "supports": "gradverify.implementations",
    "Capabilities": "gradverify.implementations",
    "naive_bce_backprop": "gradverify.implementations",
    "epsilon_bce_backprop": "gradverify.implementations",
    "fused_bce_backprop": "gradverify.implementations",
    "BUILTIN_IMPLEMENTATIONS": "gradverify.implementations",
    "check": "gradverify.check",
    "check_problem": "gradverify.check",
    "fast_check": "gradverify.check",
    "assert_gradients_match": "gradverify.check",
    "CheckResult": "gradverify.results",
    "Verdict": "gradverify.results",
    "search": "gradverify.search",
    "SearchResult": "gradverify.search",
    "scan": "gradverify.scan",
    "ScanResult": "gradverify.scan",
    "check_function": "gradverify.adapters.plain",
    "write_report": "gradverify.report",
    "render_report": "gradverify.report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gradverify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


_SHADOWED = frozenset({"check", "search", "scan"})
"""Public functions that share their name with the submodule that defines them."""


class _Package(types.ModuleType):
    """The package, whose ``check``, ``search`` and ``scan`` are always the functions.

    Importing the submodule ``gradverify.check`` makes the import system set the package's
    attribute ``check`` to that module, which would turn ``gradverify.check(impl)`` into
    "'module' object is not callable" once anything had imported it (the pytest plugin does).
    The submodules stay in ``sys.modules`` and ``from gradverify.check import ...`` works.
    """

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from gradverify.adapters.plain import check_function
    from gradverify.check import assert_gradients_match, check, check_problem, fast_check
    from gradverify.finite_diff import directional_check, finite_difference_gradients
    from gradverify.implementations import (
        BUILTIN_IMPLEMENTATIONS,
        Capabilities,
        epsilon_bce_backprop,
        fused_bce_backprop,
        naive_bce_backprop,
        supports,
    )
    from gradverify.network import NetworkSpec, Problem
    from gradverify.reference import reference_gradients
    from gradverify.report import render_report, write_report
    from gradverify.results import CheckResult, Verdict
    from gradverify.scan import ScanResult, scan
    from gradverify.search import SearchResult, search
