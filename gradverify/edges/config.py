"""``[tool.gradverify]`` in ``pyproject.toml``: the implementations to check and the options.

Example::

    [tool.gradverify]
    max-examples = 200
    fail-on = "unstable"
    dtypes = ["float32", "float64"]
    activations = ["sigmoid", "mypkg.acts:square_plus"]   # for every implementation

    [[tool.gradverify.implementations]]
    target = "mypkg.nn:backprop"
    activations = ["sigmoid", "tanh"]
    losses = ["bce"]
    layout = "columns"
    labels = "hard"              # only labels in {0, 1}; default "any"
    depth = 2                    # or [2, 3]; widths = [784, 30, 10] or [784, "any", 10]

An activation or loss written ``MODULE:ATTR`` is one that MODULE registers
(:func:`gradverify.register_activation`); it is imported when the implementations are
prepared (:mod:`gradverify.edges.options.functions`), and only its form is checked here.

The keys besides ``implementations`` are the options of :mod:`gradverify.edges.options`. Unknown
keys and values of the wrong type raise :class:`ConfigError`, whose one-line message names
the file and the key (with a suggestion for a misspelt key).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradverify.edges.options import (
    FREE_WIDTH,
    LABEL_CHOICES,
    LAYOUT_CHOICES,
    Option,
    option_by_config_key,
    parse_width,
    validate_architecture,
    validate_names,
)

__all__ = [
    "ConfigError",
    "GradverifyConfig",
    "ImplementationEntry",
    "find_config",
    "load_config",
    "parse_section",
]

SECTION = "[tool.gradverify]"
IMPLEMENTATION_KEYS: tuple[str, ...] = (
    "target",
    "name",
    "activations",
    "losses",
    "dtypes",
    "layout",
    "labels",
    "depth",
    "widths",
    "batch",
)


class ConfigError(Exception):
    """A problem in the configuration file; the message is one line naming file and key."""


@dataclass(frozen=True)
class ImplementationEntry:
    """One ``[[tool.gradverify.implementations]]`` table."""

    target: str  # "package.module:attribute"
    name: str | None = None
    activations: tuple[str, ...] | None = None
    losses: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    layout: str | None = None
    labels: str | None = None
    depth: int | tuple[int, int] | None = None
    widths: tuple[int | None, ...] | None = None
    batch: int | tuple[int, int] | None = None


@dataclass(frozen=True)
class GradverifyConfig:
    """The parsed section: option values by ``dest`` and the implementation entries."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    implementations: tuple[ImplementationEntry, ...] = ()

    def entry_for(self, target: str) -> ImplementationEntry | None:
        """The entry whose ``target`` is ``target``, if any."""
        for entry in self.implementations:
            if entry.target == target:
                return entry
        return None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _unknown_key(where: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
    return ConfigError(f"{where} unknown key {key!r}{hint}")


def _names(where: str, key: str, value: Any, dest: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where} {key!r} must be an array of strings, e.g. "
            f'["float32", "float64"]; got {_type_name(value)} {value!r}'
        )
    if not value:
        raise ConfigError(f"{where} {key!r} must not be empty")
    try:
        validate_names(dest, value)
    except ValueError as exc:
        raise ConfigError(f"{where} {key!r}: {exc}") from None
    return tuple(value)


def _option_value(where: str, key: str, option: Option, value: Any) -> Any:
    kind = option.kind
    if kind == "names":
        return _names(where, key, value, option.dest)
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    else:  # "choice", "path"
        ok = isinstance(value, str)
        expected = "a string"
    if not ok:
        raise ConfigError(f"{where} {key!r} must be {expected}; got {_type_name(value)} {value!r}")
    try:
        return option.check(value)
    except ValueError as exc:
        raise ConfigError(f"{where} {key!r}: {exc}") from None


def _architecture(where: str, key: str, value: Any) -> Any:
    """``depth``/``batch`` (N or [MIN, MAX]) or ``widths`` (["any" for a free one]) of a table."""
    if key == "widths":
        example = '[784, 30, 10] or [784, "any", 10]'
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) or v == FREE_WIDTH for v in value
        )
    else:
        example = "2 or [2, 3]"
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
    if not ok:
        raise ConfigError(
            f"{where} {key!r} must be like {example}; got {_type_name(value)} {value!r}"
        )
    if key == "widths":
        value = [parse_width(v) for v in value]
    try:
        return validate_architecture({key: value})[key]
    except ValueError as exc:
        raise ConfigError(f"{where} {key!r}: {exc}") from None


def _implementation(where: str, index: int, table: Any) -> ImplementationEntry:
    here = f"{where} implementations[{index}]:"
    if not isinstance(table, dict):
        raise ConfigError(
            f'{here} must be a table such as {{target = "pkg.mod:fn"}}; got '
            f"{_type_name(table)} {table!r}"
        )
    for key in table:
        if key not in IMPLEMENTATION_KEYS:
            raise _unknown_key(here, key, list(IMPLEMENTATION_KEYS))
    target = table.get("target")
    if not isinstance(target, str) or ":" not in target:
        got = "nothing" if target is None else f"{_type_name(target)} {target!r}"
        raise ConfigError(f"{here} 'target' must be a string \"module:attribute\"; got {got}")
    name = table.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{here} 'name' must be a string; got {_type_name(name)} {name!r}")
    layout = table.get("layout")
    if layout is not None and layout not in LAYOUT_CHOICES:
        raise ConfigError(
            f"{here} 'layout' must be one of {', '.join(LAYOUT_CHOICES)}; got {layout!r}"
        )
    labels = table.get("labels")
    if labels is not None and labels not in LABEL_CHOICES:
        raise ConfigError(
            f"{here} 'labels' must be one of {', '.join(LABEL_CHOICES)}; got {labels!r}"
        )
    lists = {
        key: _names(here, key, table[key], key)
        for key in ("activations", "losses", "dtypes")
        if key in table
    }
    shape = {
        key: _architecture(here, key, table[key])
        for key in ("depth", "widths", "batch")
        if key in table
    }
    try:
        validate_architecture(shape)  # together: widths must agree with depth
    except ValueError as exc:
        raise ConfigError(f"{here} {exc}") from None
    return ImplementationEntry(
        target=target, name=name, layout=layout, labels=labels, **lists, **shape
    )


def parse_section(section: Mapping[str, Any], path: Path | str) -> GradverifyConfig:
    """Validate a ``[tool.gradverify]`` table already read from ``path``."""
    where = f"{path}: {SECTION}"
    options = option_by_config_key()
    known = [*options, "implementations"]
    values: dict[str, Any] = {}
    implementations: tuple[ImplementationEntry, ...] = ()
    for key, value in section.items():
        if key == "implementations":
            if not isinstance(value, list):
                raise ConfigError(
                    f"{where} 'implementations' must be an array of tables "
                    f"([[tool.gradverify.implementations]]); got "
                    f"{_type_name(value)}"
                )
            implementations = tuple(_implementation(where, i, t) for i, t in enumerate(value))
        elif key in options:
            values[options[key].dest] = _option_value(where, key, options[key], value)
        else:
            raise _unknown_key(where, key, known)
    return GradverifyConfig(path=Path(path), values=values, implementations=implementations)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if path.exists() and not path.is_file():  # a directory; a FIFO would block forever
            raise ConfigError(f"{path}: cannot read: not a regular file")
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); TOML files must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def _section(document: dict[str, Any]) -> Any:
    tool = document.get("tool", {})
    return tool.get("gradverify") if isinstance(tool, dict) else None


def load_config(path: str | Path, *, required: bool = True) -> GradverifyConfig:
    """Read and validate ``[tool.gradverify]`` from the TOML file at ``path``.

    Args:
        path: a ``pyproject.toml`` (or any TOML file with a ``[tool.gradverify]`` table).
        required: raise when the file has no ``[tool.gradverify]`` table; otherwise return
            an empty configuration.

    Raises:
        ConfigError: missing or unreadable file, invalid TOML, unknown key, wrong type.
    """
    path = Path(path)
    section = _section(_read_toml(path))
    if section is None:
        if required:
            raise ConfigError(f"{path}: no {SECTION} table")
        return GradverifyConfig(path=path)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {SECTION} must be a table; got {_type_name(section)}")
    return parse_section(section, path)


def find_config(directory: str | Path = ".") -> Path | None:
    """``directory/pyproject.toml`` if it exists and has a ``[tool.gradverify]`` table.

    A ``pyproject.toml`` that is not valid TOML raises :class:`ConfigError`.
    """
    path = Path(directory) / "pyproject.toml"
    if not path.is_file():
        return None
    return path if _section(_read_toml(path)) is not None else None
