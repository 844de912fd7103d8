"""The options of gradverify, defined once for the command line, pytest and ``pyproject.toml``.

Each :class:`Option` names its spelling on every surface: a ``gradverify`` command-line
flag, a pytest flag, a pytest ini key and a ``[tool.gradverify]`` key. The CLI, the pytest
plugin and the config loader all read :data:`OPTIONS`, so an option is added in one place.

Precedence, first wins: command line, pytest ini (plugin only), ``[tool.gradverify]``,
the default in the table.

This module is imported by the pytest plugin at start-up, so it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

__all__ = [
    "FAIL_ON_CHOICES",
    "LAYOUT_CHOICES",
    "MAX_EXAMPLES_LIMIT",
    "OPTIONS",
    "POLICY_CHOICES",
    "Option",
    "Settings",
    "add_cli_arguments",
    "add_pytest_options",
    "counts_as_failure",
    "option_by_config_key",
    "parse_name_list",
    "parse_width",
    "validate_architecture",
    "values_from_pytest",
    "resolve_settings",
    "search_arguments",
    "validate_names",
]

FAIL_ON_CHOICES: tuple[str, ...] = ("incorrect", "unstable")
POLICY_CHOICES: tuple[str, ...] = ("autograd", "strict")  # gradverify.engine.compare.POLICIES
LAYOUT_CHOICES: tuple[str, ...] = ("columns", "rows")
SUBCOMMANDS: tuple[str, ...] = ("check", "scan", "report")
MAX_EXAMPLES_LIMIT = 1_000_000
"""The most search examples an option may ask for, per implementation and dtype. At
milliseconds to seconds per example a million already takes hours to weeks; a larger value
(10**22) is a mistake, refused before anything runs instead of running forever."""


def parse_name_list(text: str) -> tuple[str, ...]:
    """``"float32, float64"`` or ``"float32 float64"`` -> ``("float32", "float64")``."""
    names = tuple(n for n in text.replace(",", " ").split() if n)
    if not names:
        raise ValueError("expected at least one name, e.g. float32,float64")
    return names


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _parse_count_range(text: str) -> int | tuple[int, int]:
    """``"2"`` -> 2, ``"2,3"`` -> (2, 3) (min, max)."""
    parts = text.replace(",", " ").split()
    if len(parts) not in (1, 2):
        raise ValueError(f"expected N or MIN,MAX (e.g. 2 or 2,3); got {text!r}")
    values = tuple(_parse_int(p) for p in parts)
    return values[0] if len(values) == 1 else (values[0], values[1])


FREE_WIDTH = "any"
"""How text surfaces (command line, TOML) spell a free width, None in Python."""


def parse_width(value: object) -> object:
    """One width as given in text or TOML: ``"any"`` -> None, digits -> int, else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == FREE_WIDTH:
            return None
        return _parse_int(text)
    return value


def _parse_widths(text: str) -> tuple:
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


def _parse_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"expected true or false, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


@dataclass(frozen=True)
class Option:
    """One setting and its spelling on each surface (``None``: not offered there).

    ``kind`` is one of "names" (a list of names), "int", "float", "choice", "path",
    "range" (N or MIN,MAX), "widths" (N,N,..., ``any`` for a free one) or "bool" (a
    ``--flag``/``--no-flag`` pair on the command lines; true/false in ini and TOML).
    ``minimum`` and ``maximum`` bound "int" and "float" values (inclusive); a "float" must
    also be finite (nan and inf are refused), and a "path" must not be empty.
    """

    dest: str
    kind: str
    default: Any
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    cli_flag: str | None = None
    subcommands: tuple[str, ...] = SUBCOMMANDS
    pytest_flag: str | None = None
    ini_name: str | None = None
    config_key: str | None = None

    @property
    def pytest_dest(self) -> str:
        return f"gradverify_{self.dest}"

    def parse(self, text: str) -> Any:
        """A value from command-line or ini text; ValueError with a one-line reason."""
        text = text.strip()
        if self.kind == "names":
            value: Any = parse_name_list(text)
        elif self.kind == "int":
            value = _parse_int(text)
        elif self.kind == "float":
            value = _parse_float(text)
        elif self.kind == "choice":
            value = text
        elif self.kind == "bool":
            value = _parse_bool(text)
        elif self.kind == "range":
            value = _parse_count_range(text)
        elif self.kind == "widths":
            value = _parse_widths(text)
        else:
            if not text:
                raise ValueError("expected a path, got an empty string")
            value = text
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` if it is valid for this option (already typed), else ValueError."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}; got {value!r}")
        if self.kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"expected true or false; got {value!r}")
        if self.kind == "float" and not math.isfinite(value):
            raise ValueError(f"expected a finite number; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"expected a value >= {self.minimum:g}; got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"expected a value <= {self.maximum:,}; got {value!r}")
        if self.kind == "path" and not value:
            raise ValueError("expected a path, got an empty string")
        if self.kind in ("range", "widths"):
            return validate_architecture({self.dest: value})[self.dest]
        return value

    def argparse_type(self) -> Callable[[str], Any]:
        def convert(text: str) -> Any:
            try:
                return self.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        convert.__name__ = self.kind  # argparse names the type in some messages
        return convert


OPTIONS: tuple[Option, ...] = (
    Option(
        "dtypes",
        "names",
        None,
        "dtypes to check, comma-separated (float16, bfloat16, float32, float64); "
        "default: the dtypes each implementation declares",
        metavar="DTYPES",
        cli_flag="--dtypes",
        pytest_flag="--gradverify-dtypes",
        ini_name="gradverify_dtypes",
        config_key="dtypes",
    ),
    Option(
        "activations",
        "names",
        None,
        "activations the implementation supports, comma-separated (e.g. sigmoid,tanh); "
        "overrides its declaration",
        metavar="NAMES",
        cli_flag="--activations",
    ),
    Option(
        "losses",
        "names",
        None,
        "losses the implementation supports, comma-separated (e.g. bce); overrides its declaration",
        metavar="NAMES",
        cli_flag="--losses",
    ),
    Option(
        "depth",
        "range",
        None,
        "the number of layers (weight matrices) the implementation handles: N or MIN,MAX "
        "(e.g. 2); the search stays inside it; overrides its declaration",
        metavar="N",
        cli_flag="--depth",
    ),
    Option(
        "widths",
        "widths",
        None,
        "every width the implementation handles, input first, 'any' for a free one (e.g. "
        "784,30,10 or any,30,any); fixes the depth; overrides its declaration",
        metavar="N,N,...",
        cli_flag="--widths",
    ),
    Option(
        "batch",
        "range",
        None,
        "the batch sizes the implementation handles: N or MIN,MAX (e.g. 1); overrides its "
        "declaration",
        metavar="N",
        cli_flag="--batch",
    ),
    Option(
        "layout",
        "choice",
        None,
        "rows: x and y are passed as (batch, n) instead of (n, batch); overrides the declaration",
        choices=LAYOUT_CHOICES,
        cli_flag="--layout",
    ),
    Option(
        "max_examples",
        "int",
        None,
        "examples the Hypothesis search tries per implementation "
        "(default: the search's own default)",
        metavar="N",
        minimum=1,
        maximum=MAX_EXAMPLES_LIMIT,
        cli_flag="--max-examples",
        subcommands=("check", "report"),
        pytest_flag="--gradverify-max-examples",
        ini_name="gradverify_max_examples",
        config_key="max-examples",
    ),
    Option(
        "seed",
        "int",
        None,
        "seed of the search, for a reproducible run (default: random, or derandomized "
        "under Hypothesis's settings)",
        metavar="S",
        cli_flag="--seed",
        subcommands=("check", "report"),
        pytest_flag="--gradverify-seed",
        ini_name="gradverify_seed",
        config_key="seed",
    ),
    Option(
        "tolerance_factor",
        "float",
        32.0,
        "a tensor passes when its error is within this many times the error of a "
        "numerically stable implementation at the same dtype",
        metavar="F",
        minimum=1.0,
        cli_flag="--tolerance-factor",
        subcommands=("check",),
        pytest_flag="--gradverify-tolerance-factor",
        ini_name="gradverify_tolerance_factor",
        config_key="tolerance-factor",
    ),
    Option(
        "policy",
        "choice",
        "autograd",
        "the accuracy bar: 'autograd' (default) passes code as accurate as framework autograd "
        "(torch, jax); 'strict' requires the accuracy of the best stable formulation",
        choices=POLICY_CHOICES,
        cli_flag="--policy",
        subcommands=("check",),
        pytest_flag="--gradverify-policy",
        ini_name="gradverify_policy",
        config_key="policy",
    ),
    Option(
        "fail_on",
        "choice",
        "unstable",
        "the least severe verdict that fails: 'unstable' (default) or 'incorrect' "
        "(then unstable implementations only warn); error verdicts always fail",
        choices=FAIL_ON_CHOICES,
        cli_flag="--fail-on",
        subcommands=("check", "report"),
        pytest_flag="--gradverify-fail-on",
        ini_name="gradverify_fail_on",
        config_key="fail-on",
    ),
    Option(
        "timeout",
        "float",
        None,
        "seconds one call of an implementation may take before it is judged to hang "
        "(default: 10); an isolated call over it is killed",
        metavar="SECONDS",
        minimum=0.01,
        cli_flag="--timeout",
        pytest_flag="--gradverify-timeout",
        ini_name="gradverify_timeout",
        config_key="timeout",
    ),
    Option(
        "isolate",
        "bool",
        None,
        "run each implementation in a supervised worker process, so that exiting, crashing "
        "or hanging (even in C code) is an error verdict and cannot end or block this run "
        "(default: on for the command line; in pytest on, except under --pdb, --trace or an "
        "attached debugger); --no-isolate runs it in this process",
        cli_flag="--isolate",
        pytest_flag="--gradverify-isolate",
        ini_name="gradverify_isolate",
        config_key="isolate",
    ),
    Option(
        "report_dir",
        "path",
        None,
        "directory for the HTML/Markdown/JSON report (the CLI's report command writes to "
        "'reports' by default; the pytest plugin writes one only when this is set)",
        metavar="DIR",
        cli_flag="--out",
        subcommands=("report",),
        pytest_flag="--gradverify-report",
        ini_name="gradverify_report",
        config_key="report-dir",
    ),
)
"""Every option, once. The config loader adds only ``implementations`` to these keys."""


def option_by_config_key() -> dict[str, Option]:
    """``{"max-examples": Option, ...}`` for the options that ``[tool.gradverify]`` accepts."""
    return {o.config_key: o for o in OPTIONS if o.config_key}


def validate_names(dest: str, names: Iterable[str]) -> None:
    """ValueError naming the first unknown activation, loss or dtype in ``names``.

    Imports :mod:`gradverify.model.functions` (numpy) lazily, so call it only when names are given.
    """
    if dest == "dtypes":
        from gradverify.model.dtypes import SUPPORTED_DTYPES as known
    elif dest == "activations":
        from gradverify.model.functions import ACTIVATIONS as known
    elif dest == "losses":
        from gradverify.model.functions import LOSSES as known
    else:
        return
    kind = {"dtypes": "dtype", "activations": "activation", "losses": "loss"}[dest]
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")


# ---------------------------------------------------------------------------
# Surfaces
# ---------------------------------------------------------------------------


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
