"""The options of gradverify, defined once for the command line, pytest and ``pyproject.toml``.

Each :class:`Option` names its spelling on every surface: a ``gradverify`` command-line
flag, a pytest flag, a pytest ini key and a ``[tool.gradverify]`` key. The CLI, the pytest
plugin and the config loader all read :data:`OPTIONS`, so an option is added in one place.

Precedence, first wins: command line, pytest ini (plugin only), ``[tool.gradverify]``,
the default in the table.

This package is imported by the pytest plugin at start-up, so it imports nothing heavy.
Its modules:

- :mod:`~gradverify.edges.options.table`: :class:`Option` and the table :data:`OPTIONS`;
- :mod:`~gradverify.edges.options.parsing`: values from text and TOML, checked (names go
  through :mod:`gradverify.model.names`);
- :mod:`~gradverify.edges.options.functions`: activations and losses named ``MODULE:ATTR``
  (importing MODULE registers them), resolved to their registered names;
- :mod:`~gradverify.edges.options.surfaces`: argparse, pytest's flags and ini keys, and
  the resolution of the layers into :class:`Settings`.
"""

from __future__ import annotations

from gradverify.edges.options.functions import (
    FUNCTION_DESTS,
    is_function_spec,
    resolve_function_name,
    resolve_function_names,
)
from gradverify.edges.options.parsing import FREE_WIDTH as FREE_WIDTH
from gradverify.edges.options.parsing import NAME_KINDS as NAME_KINDS
from gradverify.edges.options.parsing import (
    parse_name_list,
    parse_width,
    validate_architecture,
    validate_names,
)
from gradverify.edges.options.surfaces import (
    Settings,
    add_cli_arguments,
    add_pytest_options,
    counts_as_failure,
    resolve_settings,
    search_arguments,
    values_from_pytest,
)
from gradverify.edges.options.surfaces import negative_flag as negative_flag
from gradverify.edges.options.table import (
    FAIL_ON_CHOICES,
    LABEL_CHOICES,
    LAYOUT_CHOICES,
    MAX_EXAMPLES_LIMIT,
    OPTIONS,
    POLICY_CHOICES,
    Option,
    option_by_config_key,
)
from gradverify.edges.options.table import SUBCOMMANDS as SUBCOMMANDS

__all__ = [
    "FAIL_ON_CHOICES",
    "FUNCTION_DESTS",
    "LABEL_CHOICES",
    "LAYOUT_CHOICES",
    "MAX_EXAMPLES_LIMIT",
    "OPTIONS",
    "POLICY_CHOICES",
    "Option",
    "Settings",
    "add_cli_arguments",
    "add_pytest_options",
    "counts_as_failure",
    "is_function_spec",
    "option_by_config_key",
    "parse_name_list",
    "parse_width",
    "validate_architecture",
    "values_from_pytest",
    "resolve_function_name",
    "resolve_function_names",
    "resolve_settings",
    "search_arguments",
    "validate_names",
]
