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

from collections.abc import Iterable
from typing import Any

from gradverify.edges.user_code import import_attribute, import_user_module

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
        obj = import_attribute(import_user_module(module_name, value, directory), attr, value)
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
