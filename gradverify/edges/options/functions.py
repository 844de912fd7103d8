"""Activation and loss names given as ``MODULE:ATTR``: importing MODULE registers the function.

Wherever activations or losses are named (``--activations``, ``--losses``,
``[tool.gradverify]`` and its implementation tables, the pytest fixture's ``check``), a name
may also be ``MODULE:ATTR``, e.g. ``mypkg.acts:square_plus``. MODULE is imported (the
directory of the run first on ``sys.path``, as for implementations); ATTR (dotted for a
nested attribute) is the object :func:`gradverify.register_activation` or
``register_loss`` returned, or a string naming a function that MODULE registers on import.
The name used from then on is the registered one. The fixture also takes the returned
objects themselves.

Text is only checked for its form when it is read (:func:`check_function_spec`); the
import happens when the names are used (:func:`resolve_function_names`), after the command
line has set the directory to import from. Nothing here imports numpy until then.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FUNCTION_DESTS",
    "check_function_spec",
    "is_function_spec",
    "resolve_function_name",
    "resolve_function_names",
]

FUNCTION_DESTS: dict[str, str] = {"activations": "activation", "losses": "loss"}
"""The options whose names may be ``MODULE:ATTR``, by ``dest``, and the kind of each."""


def is_function_spec(value: object) -> bool:
    """Whether ``value`` is written ``MODULE:ATTR`` (not a plain name)."""
    return isinstance(value, str) and ":" in value


def check_function_spec(value: str) -> str:
    """``value`` if it is well formed as ``MODULE:ATTR``; else a one-line ValueError."""
    module, _, attr = value.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if not module or not attr or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{value!r} is not MODULE:ATTR (e.g. mypkg.acts:square_plus)")
    return value


def _import(module_name: str, spec: str, directory: str | None) -> Any:
    where = directory if directory is not None else os.getcwd()
    if where not in sys.path and "" not in sys.path:
        sys.path.insert(0, where)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(
                f"cannot import {module_name!r} (for {spec}): no module named {exc.name!r} "
                "(run from the project directory or install it)"
            ) from None
        raise ValueError(f"{spec}: importing {module_name!r} failed: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything
        raise ValueError(f"{spec}: importing {module_name!r} failed: {_one_line(exc)}") from None
    except SystemExit as exc:
        raise ValueError(
            f"{spec}: importing {module_name!r} failed: it called sys.exit({exc.code!r})"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _attribute(module: Any, attr: str, spec: str) -> Any:
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{spec}: {module.__name__!r} has no attribute {attr!r}") from None
    return obj


def _registered_name(kind: str, obj: Any, shown: str) -> str:
    """The name under which ``obj`` (a returned definition, or a name) is registered."""
    from gradverify.model import registry
    from gradverify.model.functions import Activation, Loss
    from gradverify.model.names import known_names

    expected = {"activation": Activation, "loss": Loss}[kind]
    if isinstance(obj, str):
        name = obj
    elif isinstance(obj, expected):
        name = obj.name
    else:
        other = "a loss" if isinstance(obj, Loss) else "an activation"
        what = other if isinstance(obj, Activation | Loss) else f"a {type(obj).__name__}"
        raise ValueError(
            f"{shown} is {what}, not a registered {kind} (the object "
            f"gradverify.register_{kind} returned, or its name)"
        )
    if registry.find(kind, name) is None and name not in known_names(kind):
        raise ValueError(
            f"{shown}: {kind} {name!r} is not registered (register it with "
            f"gradverify.register_{kind} when the module is imported)"
        )
    return name


def resolve_function_name(kind: str, value: Any, *, directory: str | None = None) -> Any:
    """The registered name for ``value`` of ``kind`` ("activation" or "loss").

    ``MODULE:ATTR`` is imported (``directory``, default the current one, first on
    ``sys.path``); a definition object gives its name; a plain name is returned unchanged (it
    is checked where names are checked).

    Raises:
        ValueError: one line: a malformed spec, a failed import, a missing attribute, an
            attribute that is no registered function of ``kind``.
    """
    if is_function_spec(value):
        module_name, _, attr = check_function_spec(value).partition(":")
        obj = _attribute(_import(module_name, value, directory), attr, value)
        return _registered_name(kind, obj, value)
    if isinstance(value, str):
        return value
    return _registered_name(kind, value, repr(value))


def resolve_function_names(
    dest: str, values: Iterable[Any] | None, *, directory: str | None = None
) -> tuple[Any, ...] | None:
    """:func:`resolve_function_name` on every value of the option ``dest`` (``"activations"``
    or ``"losses"``; the values of any other option are returned as they are)."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        values = (values,)
    kind = FUNCTION_DESTS.get(dest)
    if kind is None:
        return tuple(values)
    return tuple(resolve_function_name(kind, v, directory=directory) for v in values)
