"""The table of options: :class:`Option` and :data:`OPTIONS`, each with its every spelling."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradverify.edges.options.parsing import (
    parse_bool,
    parse_count_range,
    parse_float,
    parse_int,
    parse_name_list,
    parse_widths,
    validate_architecture,
)

__all__ = [
    "FAIL_ON_CHOICES",
    "LABEL_CHOICES",
    "LAYOUT_CHOICES",
    "MAX_EXAMPLES_LIMIT",
    "OPTIONS",
    "POLICY_CHOICES",
    "SUBCOMMANDS",
    "Option",
    "option_by_config_key",
]

FAIL_ON_CHOICES: tuple[str, ...] = ("incorrect", "unstable")
POLICY_CHOICES: tuple[str, ...] = ("autograd", "strict")  # gradverify.engine.compare.POLICIES
LAYOUT_CHOICES: tuple[str, ...] = ("columns", "rows")
LABEL_CHOICES: tuple[str, ...] = ("any", "hard")  # gradverify.engine.capabilities.LABEL_KINDS
SUBCOMMANDS: tuple[str, ...] = ("check", "scan", "report")
MAX_EXAMPLES_LIMIT = 1_000_000
"""The most search examples an option may ask for, per implementation and dtype. At
milliseconds to seconds per example a million already takes hours to weeks; a larger value
(10**22) is a mistake, refused before anything runs instead of running forever."""


def _parse_path(text: str) -> str:
    if not text:
        raise ValueError("expected a path, got an empty string")
    return text


def _as_is(text: str) -> str:
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "names": parse_name_list,
    "int": parse_int,
    "float": parse_float,
    "choice": _as_is,
    "bool": parse_bool,
    "range": parse_count_range,
    "widths": parse_widths,
}
"""How each kind of option reads text; any other kind ("path") is a non-empty string."""


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
        return self.check(_PARSERS.get(self.kind, _parse_path)(text.strip()))

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
        "MODULE:ATTR for one your module registers (e.g. mypkg.acts:square_plus); "
        "overrides its declaration",
        metavar="NAMES",
        cli_flag="--activations",
        config_key="activations",
    ),
    Option(
        "losses",
        "names",
        None,
        "losses the implementation supports, comma-separated (e.g. bce); MODULE:ATTR for one "
        "your module registers; overrides its declaration",
        metavar="NAMES",
        cli_flag="--losses",
        config_key="losses",
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
        "labels",
        "choice",
        None,
        "hard: the implementation takes only labels in {0, 1} (class indices, as one-hot "
        "columns, for softmax_ce), and the search generates only those; any: hard and soft "
        "labels; overrides the declaration",
        choices=LABEL_CHOICES,
        cli_flag="--labels",
        subcommands=("check", "report"),
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
        "'gradverify-report' by default; the pytest plugin writes one only when this is set)",
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
