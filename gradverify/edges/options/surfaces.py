"""The options on each surface (argparse, pytest's flags and ini keys) and their resolution.

Precedence, first wins: command line, pytest ini (plugin only), ``[tool.gradverify]``, the
default in the table.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from gradverify.edges.options.table import OPTIONS

__all__ = [
    "Settings",
    "add_cli_arguments",
    "add_pytest_options",
    "counts_as_failure",
    "negative_flag",
    "resolve_settings",
    "search_arguments",
    "values_from_pytest",
]


def add_cli_arguments(parser: argparse.ArgumentParser, subcommand: str) -> None:
    """Add the options offered by ``gradverify <subcommand>`` to ``parser``.

    Options not given stay absent from the namespace (``argparse.SUPPRESS``), so
    :func:`resolve_settings` can tell them from defaults.
    """
    for option in OPTIONS:
        if option.cli_flag is None or subcommand not in option.subcommands:
            continue
        if option.kind == "bool":  # --isolate and --no-isolate
            parser.add_argument(
                option.cli_flag,
                dest=option.dest,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=option.help,
            )
            continue
        parser.add_argument(
            option.cli_flag,
            dest=option.dest,
            type=option.argparse_type(),
            metavar=option.metavar
            or ("{" + ",".join(option.choices) + "}" if option.choices else None),
            default=argparse.SUPPRESS,
            help=option.help,
        )


def negative_flag(flag: str) -> str:
    """``--gradverify-isolate`` -> ``--gradverify-no-isolate``, ``--isolate`` -> ``--no-isolate``"""
    if flag.startswith("--gradverify-"):
        return "--gradverify-no-" + flag[len("--gradverify-") :]
    return "--no-" + flag[2:]


def add_pytest_options(parser: Any) -> None:
    """Add the plugin's command-line options and ini keys to pytest's ``parser``."""
    group = parser.getgroup("gradverify", "gradverify: gradient checking")
    for option in OPTIONS:
        if option.pytest_flag and option.kind == "bool":  # --gradverify-[no-]isolate
            group.addoption(
                option.pytest_flag,
                dest=option.pytest_dest,
                default=None,
                action="store_const",
                const=True,
                help=option.help,
            )
            group.addoption(
                negative_flag(option.pytest_flag),
                dest=option.pytest_dest,
                action="store_const",
                const=False,
                help=f"not {option.pytest_flag}",
            )
        elif option.pytest_flag:
            group.addoption(
                option.pytest_flag,
                dest=option.pytest_dest,
                default=None,
                metavar=option.metavar
                or ("{" + ",".join(option.choices) + "}" if option.choices else None),
                help=option.help,
            )
        if option.ini_name:
            parser.addini(
                option.ini_name, help=f"default for {option.pytest_flag}", type="string", default=""
            )


def values_from_pytest(config: Any, *, ini: bool) -> dict[str, Any]:
    """The options given on pytest's command line (``ini=False``) or in its ini file (True).

    Raises ValueError "--gradverify-max-examples: expected an integer, got 'x'".
    """
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if ini:
            if not option.ini_name:
                continue
            text, where = config.getini(option.ini_name), option.ini_name
        else:
            if not option.pytest_flag:
                continue
            text, where = config.getoption(option.pytest_dest), option.pytest_flag
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        try:
            values[option.dest] = option.parse(str(text))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return values


class Settings(SimpleNamespace):
    """Resolved option values by ``dest`` (``settings.max_examples``, ...)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def resolve_settings(*layers: Mapping[str, Any]) -> Settings:
    """Merge option values; earlier layers win, the table's defaults come last.

    Unknown keys are ignored, so an argparse namespace's ``vars()`` may be passed whole.
    """
    values = {}
    for option in OPTIONS:
        value = option.default
        for layer in layers:
            if layer.get(option.dest) is not None:
                value = layer[option.dest]
                break
        values[option.dest] = value
    return Settings(**values)


def search_arguments(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for :func:`gradverify.exploration.search.search` from resolved settings."""
    kwargs: dict[str, Any] = {
        "tolerance_factor": settings.tolerance_factor,
        "policy": settings.policy,
    }
    for dest in ("dtypes", "max_examples", "seed", "timeout"):
        value = getattr(settings, dest)
        if value is not None:
            kwargs[dest] = tuple(value) if dest == "dtypes" else value
    return kwargs


def counts_as_failure(verdict: Any, fail_on: str) -> bool:
    """Whether ``verdict`` ("pass", "unstable", "incorrect", "error") fails under ``fail_on``."""
    verdict = str(verdict)
    if verdict == "pass":
        return False
    if verdict == "unstable":
        return fail_on == "unstable"
    return True
