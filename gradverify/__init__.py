"""gradverify: is my gradient right, and where does floating point make it wrong?

``register_activation`` and ``register_loss`` add your own activations and losses: once
registered, a name works wherever a built-in one does (declarations, specs, search, scan,
the command line, the config, worker processes).

The public API is loaded lazily so that ``import gradverify`` (and the pytest plugin)
stay cheap: numpy, mpmath and matplotlib are imported only when first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from gradverify import _aliases
from gradverify.common.version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # the model
    "NetworkSpec": "gradverify.model.network",
    "Problem": "gradverify.model.network",
    # your own activations and losses, usable by name everywhere once registered
    "register_activation": "gradverify.exact.registration",
    "register_loss": "gradverify.exact.loss_registration",
    # the references
    "reference_gradients": "gradverify.exact.reference",
    "finite_difference_gradients": "gradverify.engine.finite_diff",
    "directional_check": "gradverify.engine.finite_diff",
    # the implementation protocol and the built-in implementations
    "supports": "gradverify.engine.implementations",
    "Capabilities": "gradverify.engine.implementations",
    "naive_bce_backprop": "gradverify.engine.implementations",
    "epsilon_bce_backprop": "gradverify.engine.implementations",
    "fused_bce_backprop": "gradverify.engine.implementations",
    "BUILTIN_IMPLEMENTATIONS": "gradverify.engine.implementations",
    # checking: one problem, or a search
    "check": "gradverify.exploration.checking",
    "assert_gradients_match": "gradverify.exploration.checking",
    "check_problem": "gradverify.engine.check",
    "fast_check": "gradverify.engine.check",
    "CheckResult": "gradverify.engine.results",
    "Verdict": "gradverify.engine.results",
    "search": "gradverify.exploration.search",
    "SearchResult": "gradverify.exploration.search",
    "scan": "gradverify.exploration.scan",
    "ScanResult": "gradverify.exploration.scan",
    # adapters for foreign gradient code
    "torch_module": "gradverify.edges.adapters",
    "torch_function": "gradverify.edges.adapters",
    "jax_function": "gradverify.edges.adapters",
    "textbook_network": "gradverify.edges.adapters",
    "check_function": "gradverify.edges.adapters",
    # reports
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
"""Public functions that share their name with a deprecated 0.1 module path."""


class _Package(types.ModuleType):
    """The package, whose ``check``, ``search`` and ``scan`` are always the functions.

    Importing the submodule ``gradverify.engine.check`` makes the import system set the package's
    attribute ``check`` to that module, which would turn ``gradverify.check(impl)`` into
    "'module' object is not callable" once anything had imported it (the pytest plugin does).
    The submodules stay in ``sys.modules`` and ``from gradverify.engine.check import ...`` works.
    """

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value


sys.modules[__name__].__class__ = _Package
_aliases.install()


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from gradverify.edges.adapters import (
        check_function,
        jax_function,
        textbook_network,
        torch_function,
        torch_module,
    )
    from gradverify.engine.check import check_problem, fast_check
    from gradverify.engine.finite_diff import directional_check, finite_difference_gradients
    from gradverify.engine.implementations import (
        BUILTIN_IMPLEMENTATIONS,
        Capabilities,
        epsilon_bce_backprop,
        fused_bce_backprop,
        naive_bce_backprop,
        supports,
    )
    from gradverify.engine.results import CheckResult, Verdict
    from gradverify.exact.loss_registration import register_loss
    from gradverify.exact.reference import reference_gradients
    from gradverify.exact.registration import register_activation
    from gradverify.exploration.checking import assert_gradients_match, check
    from gradverify.exploration.scan import ScanResult, scan
    from gradverify.exploration.search import SearchResult, search
    from gradverify.model.network import NetworkSpec, Problem
    from gradverify.report import render_report, write_report
