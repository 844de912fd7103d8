"""Naming implementations: ``MODULE:ATTR`` or a built-in name, loaded and declared for a run.

:func:`load_target` imports the callable a name points at (in a worker process when the run
isolates implementations); :func:`prepare_targets` adds what the command line, the config
entry and the config say about it (activations, losses, dtypes, layout, labels,
architecture).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradverify.edges.cli.common import UsageError, isolate_setting
from gradverify.edges.config import GradverifyConfig, ImplementationEntry
from gradverify.edges.options import FUNCTION_DESTS, resolve_function_names
from gradverify.edges.user_code import UserCodeError, import_attribute, import_user_module

__all__ = [
    "Target",
    "builtin_implementations",
    "close_all_workers",
    "close_worker",
    "load_target",
    "prepare",
    "prepare_targets",
]

NAME_LISTS = ("activations", "losses", "dtypes")
ARCHITECTURE = ("depth", "widths", "batch")


def builtin_implementations() -> dict[str, Callable]:
    """The built-ins by short name (naive, epsilon, fused)."""
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS

    return dict(BUILTIN_IMPLEMENTATIONS)


# ---------------------------------------------------------------------------
# Loading MODULE:ATTR
# ---------------------------------------------------------------------------


def _builtin(spec: str) -> Callable:
    builtins = builtin_implementations()
    if spec in builtins:
        return builtins[spec]
    raise UsageError(
        f"{spec!r} is not MODULE:ATTR (e.g. mypkg.nn:backprop) or a built-in name "
        f"({', '.join(builtins)})"
    )


def _attribute_of(module_name: str, attr: str, spec: str, directory: str | None) -> Any:
    """``module_name``'s ``attr``, or a UsageError saying why it could not be had."""
    try:
        return import_attribute(import_user_module(module_name, spec, directory), attr, spec)
    except UserCodeError as exc:
        raise UsageError(str(exc)) from None


def load_target(spec: str, *, directory: str | None = None) -> Callable:
    """The callable named by ``"package.module:attr"`` (``attr`` may be dotted) or a built-in.

    ``directory`` (default: the current directory) is put first on ``sys.path``, as
    ``python -m`` does.

    Raises:
        UsageError: malformed name, failed import (including a module that calls
            ``sys.exit`` while it is imported), missing attribute, not callable.
    """
    if ":" not in spec:
        return _builtin(spec)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{spec!r} is not MODULE:ATTR (e.g. mypkg.nn:backprop)")
    obj = _attribute_of(module_name, attr, spec, directory)
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a callable backprop")
    return obj


# ---------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------

_WORKERS: list[Any] = []
"""The worker processes of the implementations this run loaded; closed when it ends."""


def _load_in_worker(spec: str, directory: str | None) -> Callable:
    """``spec`` loaded by a new worker process, so that its module runs only there."""
    from gradverify.engine.isolation import ImplementationLoadError, load_isolated

    try:
        impl = load_isolated(
            functools.partial(load_target, spec, directory=directory), description=spec
        )
    except ImplementationLoadError as exc:
        raise UsageError(str(exc)) from None
    _WORKERS.append(impl)
    return impl


def close_worker(impl: Any) -> None:
    """Stop the worker process of an isolated implementation (no-op otherwise)."""
    close = getattr(impl, "close", None)
    if close is not None and hasattr(impl, "declare"):
        close()


def close_all_workers() -> None:
    """Stop every worker process this run started."""
    while _WORKERS:
        close_worker(_WORKERS.pop())


# ---------------------------------------------------------------------------
# Declaring what an implementation supports
# ---------------------------------------------------------------------------


@dataclass
class Target:
    """An implementation ready to run.

    ``impl`` is the loaded callable, wrapped with a new declaration only when it must be
    (a changed layout, or for ``scan``/``report``, which read the declaration), so that
    reproduction snippets can still import it by name. ``overrides`` are the
    activations/losses/dtypes and depth/widths/batch asked for (command line, config
    entry, config), which :func:`gradverify.exploration.search.search` takes as arguments.
    """

    spec: str
    impl: Callable
    name: str
    overrides: dict[str, Any]

    @property
    def dtypes(self) -> tuple[str, ...] | None:
        return self.overrides.get("dtypes")


def _changes(
    cli: dict[str, Any], config: GradverifyConfig, entry: ImplementationEntry | None
) -> dict[str, Any]:
    """The capability fields asked for, first wins: command line, config entry, config.

    Activations and losses written ``MODULE:ATTR`` are imported here (so registered) and
    replaced by their registered names (:func:`gradverify.edges.options.resolve_function_names`).
    """
    changes: dict[str, Any] = {}
    for field in ("activations", "losses", "dtypes", "layout", "labels", *ARCHITECTURE):
        value = cli.get(field)
        if value is None and entry is not None:
            value = getattr(entry, field)
        if value is None and field in NAME_LISTS:
            value = config.values.get(field)
        if value is not None:
            changes[field] = tuple(value) if field in NAME_LISTS else value
    for field in FUNCTION_DESTS:
        if field in changes:
            changes[field] = resolve_function_names(field, changes[field], directory=cli.get("cwd"))
    if "widths" in changes and "depth" not in changes:
        changes["depth"] = None  # new widths replace the declared depth too
    return changes


def _checked_capabilities(impl: Callable, changes: dict[str, Any]) -> Any:
    """The implementation's declaration with ``changes``; ValueError when they are invalid."""
    from gradverify.engine.implementations import capabilities_of
    from gradverify.exploration.strategies import problems
    from gradverify.model.dtypes import resolve_dtype

    caps = dataclasses.replace(capabilities_of(impl), **changes)
    for dtype in changes.get("dtypes", ()):
        resolve_dtype(dtype)
    problems(caps, dtypes=caps.dtypes)  # the search's own check of the capabilities
    return caps


def _declared(impl: Callable, caps: Any) -> Callable:
    """``impl`` declaring ``caps``: an isolated one in place, any other through a wrapper."""
    from gradverify.engine.implementations import CAPABILITIES_ATTRIBUTE

    if hasattr(impl, "declare"):  # isolated: no wrapper around it
        impl.declare(caps)
        return impl
    original = impl

    @functools.wraps(original)
    def declared_impl(*a: Any, **kw: Any) -> Any:
        return original(*a, **kw)

    setattr(declared_impl, CAPABILITIES_ATTRIBUTE, caps)
    return declared_impl


def prepare(spec: str, cli: dict[str, Any], config: GradverifyConfig, *, declare: bool) -> Target:
    """Load ``spec`` and gather, first wins, the command-line capability flags, its
    ``[[tool.gradverify.implementations]]`` entry and the config's ``dtypes``.

    ``declare``: also attach the activations, losses, dtypes and architecture (depth,
    widths, batch) to the implementation's declaration (for consumers that take no such
    arguments).

    Activations and losses named ``MODULE:ATTR`` are imported before the implementation is
    loaded, so that a worker process started for it receives their registration.
    """
    from gradverify.engine.implementations import implementation_name

    entry = config.entry_for(spec)
    where = f" (see {config.path})" if entry is not None else ""
    try:  # first: registered functions (MODULE:ATTR) must reach the worker's start-up
        changes = _changes(cli, config, entry)
    except ValueError as exc:
        raise UsageError(f"{spec}: {exc}{where}") from None
    if isolate_setting(cli, config):
        impl = _load_in_worker(spec, cli.get("cwd"))
    else:
        impl = load_target(spec, directory=cli.get("cwd"))
    try:
        caps = _checked_capabilities(impl, changes)
    except ValueError as exc:
        raise UsageError(f"{spec}: {exc}{where}") from None
    declared = {"layout", "labels"}  # read from the declaration, by the search too
    wrap_for = declared if not declare else {*declared, *NAME_LISTS, *ARCHITECTURE}
    if set(changes) & wrap_for:
        impl = _declared(impl, caps)
    name = entry.name if entry is not None and entry.name else implementation_name(impl)
    overrides = {k: v for k, v in changes.items() if k not in declared and v is not None}
    return Target(spec=spec, impl=impl, name=name, overrides=overrides)


def _resolve_command_line_functions(args: argparse.Namespace) -> None:
    """``--activations``/``--losses`` given as ``MODULE:ATTR``: imported (so registered) and
    replaced in ``args`` by their registered names, which every later reader then sees (the
    scan's list of functions to scan, the settings in the JSON)."""
    for field in FUNCTION_DESTS:
        given = getattr(args, field, None)
        if given is None:
            continue
        try:
            resolved = resolve_function_names(field, given, directory=getattr(args, "cwd", None))
        except ValueError as exc:
            raise UsageError(f"--{field}: {exc}") from None
        setattr(args, field, resolved)


def prepare_targets(
    args: argparse.Namespace,
    config: GradverifyConfig,
    *,
    builtins_by_default: bool,
    declare: bool = False,
) -> list[Target]:
    """The implementations named on the command line, else in the config, else (if asked)
    the built-ins, each prepared (see :func:`prepare`)."""
    _resolve_command_line_functions(args)
    specs = list(args.targets)
    if not specs:
        specs = [e.target for e in config.implementations]
    if not specs and builtins_by_default:
        specs = list(builtin_implementations())
    if not specs:
        raise UsageError(
            "no implementation to check: name them (gradverify check mypkg.nn:backprop) or "
            "list them in pyproject.toml under [[tool.gradverify.implementations]]"
        )
    return [prepare(spec, vars(args), config, declare=declare) for spec in specs]
