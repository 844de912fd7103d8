"""Option values from text (command line, ini) and TOML, checked: names, numbers, ranges, widths.

Imported by the pytest plugin at start-up, so it imports nothing heavy: the architecture
check imports :mod:`gradverify.engine.implementations` (numpy) only when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gradverify.edges.options.functions import (
    FUNCTION_DESTS,
    check_function_spec,
    is_function_spec,
)
from gradverify.model.names import validate_names as validate_known_names

__all__ = [
    "FREE_WIDTH",
    "NAME_KINDS",
    "parse_bool",
    "parse_count_range",
    "parse_float",
    "parse_int",
    "parse_name_list",
    "parse_width",
    "parse_widths",
    "validate_architecture",
    "validate_names",
]


def parse_name_list(text: str) -> tuple[str, ...]:
    """``"float32, float64"`` or ``"float32 float64"`` -> ``("float32", "float64")``."""
    names = tuple(n for n in text.replace(",", " ").split() if n)
    if not names:
        raise ValueError("expected at least one name, e.g. float32,float64")
    return names


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def parse_count_range(text: str) -> int | tuple[int, int]:
    """``"2"`` -> 2, ``"2,3"`` -> (2, 3) (min, max)."""
    parts = text.replace(",", " ").split()
    if len(parts) not in (1, 2):
        raise ValueError(f"expected N or MIN,MAX (e.g. 2 or 2,3); got {text!r}")
    values = tuple(parse_int(p) for p in parts)
    return values[0] if len(values) == 1 else (values[0], values[1])


FREE_WIDTH = "any"
"""How text surfaces (command line, TOML) spell a free width, None in Python."""


def parse_width(value: object) -> object:
    """One width as given in text or TOML: ``"any"`` -> None, digits -> int, else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == FREE_WIDTH:
            return None
        return parse_int(text)
    return value


def parse_widths(text: str) -> tuple:
    """``"784,30,10"`` -> (784, 30, 10); ``"any,30,any"`` -> (None, 30, None)."""
    parts = text.replace(",", " ").split()
    try:
        return tuple(parse_width(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"expected widths such as 784,30,10 or any,30,any (input first); got {text!r}"
        ) from None


def validate_architecture(values: Mapping[str, Any]) -> dict[str, Any]:
    """``depth``, ``widths`` and ``batch`` values checked together (lists made tuples).

    Raises ValueError with the reason (a non-positive number, widths whose length
    contradicts the depth, ...). Imports :mod:`gradverify.engine.implementations` (numpy) lazily,
    so call it only when such values are given.
    """
    from gradverify.engine.implementations import Capabilities

    Capabilities(**values)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def parse_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"expected true or false, got {text!r}") from None


def parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


NAME_KINDS = {"activations": "activation", "losses": "loss", "dtypes": "dtype"}
"""The options that hold names, by ``dest``, and the kind of name each holds."""


def validate_names(dest: str, names: Iterable[str]) -> None:
    """ValueError naming the first unknown activation, loss or dtype in ``names``.

    ``dest`` is the option's (``"activations"``, ``"losses"``, ``"dtypes"``); any other
    option is left alone. The check is :func:`gradverify.model.names.validate_names`'s.
    An activation or loss written ``MODULE:ATTR`` is only checked for its form here: it
    names a function its module registers, known once the module is imported
    (:func:`gradverify.edges.options.functions.resolve_function_names`).
    """
    if dest not in NAME_KINDS:
        return
    names = tuple(names)
    if dest in FUNCTION_DESTS:
        for name in filter(is_function_spec, names):
            check_function_spec(name)
        names = tuple(n for n in names if not is_function_spec(n))
    validate_known_names(NAME_KINDS[dest], names, empty_ok=True)
