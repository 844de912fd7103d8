"""What every command shares: exit codes, the usage error, the configuration and settings."""

from __future__ import annotations

import argparse
from typing import Any

from gradverify.edges.config import ConfigError, GradverifyConfig, find_config, load_config
from gradverify.edges.options import Settings, resolve_settings
from gradverify.edges.user_code import one_line

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "isolate_setting",
    "one_line",
    "outcome",
    "read_config",
    "resolved_settings",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command line, configuration or implementation name; the message is one line."""


def read_config(args: argparse.Namespace) -> GradverifyConfig:
    """``--config PATH``, else ``./pyproject.toml`` if it has a ``[tool.gradverify]`` table."""
    try:
        if getattr(args, "config", None):
            return load_config(args.config)
        found = find_config(".")
        return load_config(found) if found is not None else GradverifyConfig()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def isolate_setting(cli: dict[str, Any], config: GradverifyConfig) -> bool:
    """Whether implementations run in worker processes: --isolate/--no-isolate, then the
    config's ``isolate``, else yes."""
    isolate = resolve_settings(cli, config.values).isolate
    return True if isolate is None else bool(isolate)


def resolved_settings(args: argparse.Namespace, config: GradverifyConfig) -> Settings:
    """The options of this run: the command line first, then the config, then the defaults."""
    settings = resolve_settings(vars(args), config.values)
    settings.isolate = isolate_setting(vars(args), config)  # as run, in the JSON's settings too
    return settings


def outcome(failed: bool, args: argparse.Namespace) -> str:
    """The end of a command's summary line: ``ok``, ``FAILED`` or ``FAILED (exit code 0: ...)``."""
    text = "FAILED" if failed else "ok"
    if failed and args.exit_zero:
        text += " (exit code 0: --exit-zero)"
    return text
