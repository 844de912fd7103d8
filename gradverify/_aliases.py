"""Deprecated module paths of gradverify 0.1, kept importable for one release.

gradverify 0.2 moved its modules into layer subpackages (``model``, ``common``, ``exact``,
``engine``, ``exploration``, ``report``, ``edges``). ``import gradverify.reference`` and
``from gradverify.check import check_problem`` still work: a meta-path finder serves each old
name as a small module that forwards attribute lookups to the new modules, and warns once
with a :class:`DeprecationWarning` that names the new path. Import public names from
``gradverify`` itself; they do not move.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED_MODULES", "RENAMED", "install"]

MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "gradverify.dtypes": ("gradverify.model.dtypes",),
    "gradverify.functions": ("gradverify.model.functions",),
    "gradverify.network": ("gradverify.model.network",),
    "gradverify.lattice": ("gradverify.model.lattice", "gradverify.exact.rounding"),
    "gradverify.errstate": ("gradverify.common.errstate",),
    "gradverify.report.progress": ("gradverify.common.progress",),
    "gradverify.reference": ("gradverify.exact.reference",),
    "gradverify.reference_flint": ("gradverify.exact.reference_flint",),
    "gradverify.implementations": ("gradverify.engine.implementations",),
    "gradverify.harness": ("gradverify.engine.harness",),
    "gradverify.isolation": ("gradverify.engine.isolation",),
    "gradverify.repro": ("gradverify.engine.repro",),
    "gradverify.compare": ("gradverify.engine.compare",),
    "gradverify.bounds": ("gradverify.engine.bounds",),
    "gradverify.check": ("gradverify.engine.check", "gradverify.exploration.checking"),
    "gradverify.diagnose": (
        "gradverify.engine.diagnose",
        "gradverify.engine.conditions",
        "gradverify.model.rewrites",
    ),
    "gradverify.results": ("gradverify.engine.results",),
    "gradverify.finite_diff": (
        "gradverify.engine.finite_diff",
        "gradverify.engine.stencil",
        "gradverify.engine.directional",
    ),
    "gradverify.strategies": ("gradverify.exploration.strategies",),
    "gradverify.search": ("gradverify.exploration.search",),
    "gradverify.scan": ("gradverify.exploration.scan",),
    "gradverify.cli": ("gradverify.edges.cli",),
    "gradverify.options": ("gradverify.edges.options",),
    "gradverify.config": ("gradverify.edges.config",),
    "gradverify.ci_outputs": ("gradverify.edges.ci_outputs",),
    "gradverify.pytest_plugin": ("gradverify.edges.pytest_plugin",),
    "gradverify.adapters": ("gradverify.edges.adapters",),
    "gradverify.adapters.torch": ("gradverify.edges.adapters.torch",),
    "gradverify.adapters.jax": ("gradverify.edges.adapters.jax",),
    "gradverify.adapters.textbook": ("gradverify.edges.adapters.textbook",),
    "gradverify.adapters.plain": ("gradverify.edges.adapters.plain",),
}
"""Old module path -> the new modules its names now live in, searched in order."""

RENAMED: dict[str, str] = {"ReferenceError": "ExactReferenceError"}
"""Old name -> new name, for names that were renamed as well as moved."""


class _ForwardingModule(types.ModuleType):
    """An old module path: attribute lookups go to the new modules, in order."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Deprecated alias of {', '.join(targets)}.")
        self.__dict__["_targets"] = targets
        if name == "gradverify.adapters":
            self.__path__ = []  # a package, so that gradverify.adapters.torch resolves

    def __getattr__(self, name: str) -> Any:
        name = RENAMED.get(name, name)
        for target in self.__dict__["_targets"]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for target in self.__dict__["_targets"]:
            names.update(dir(importlib.import_module(target)))
        return sorted(names)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves :data:`MOVED_MODULES` as forwarding modules, with a DeprecationWarning."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MOVED_MODULES:
            return None
        is_package = fullname == "gradverify.adapters"
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED_MODULES[spec.name]
        warnings.warn(
            f"{spec.name} moved to {' and '.join(targets)} in gradverify 0.2; the old path "
            "will be removed in 0.3 (public names are importable from gradverify itself)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _ForwardingModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once (after the normal finders)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
