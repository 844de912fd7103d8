"""The argparse parser of the ``gradverify`` command: its subcommands and their flags.

The options shared with pytest and ``[tool.gradverify]`` come from
:func:`gradverify.edges.options.add_cli_arguments`; the flags here exist only on the
command line (targets, ``--config``, outputs, ``--exit-zero``, ``--debug``, ...).
"""

from __future__ import annotations

import argparse

from gradverify.common.version import __version__
from gradverify.edges.cli.outputs import path_argument
from gradverify.edges.options import add_cli_arguments

__all__ = ["CHECK_EPILOG", "build_parser"]

CHECK_EPILOG = """\
exit codes:
  0    every verdict is pass
  1    findings: incorrect or error verdicts, or unstable under --fail-on unstable
  2    usage, configuration or import error, or an unusable output path (one-line
       reason on stderr)
  3    internal error of gradverify (--debug shows the traceback)
  130  interrupted; no output file written
  --exit-zero turns every code except 130 into 0.

under GitHub Actions (GITHUB_ACTIONS=true) findings are also annotations (at most 10
errors and 10 warnings, then one notice) and a Markdown table is appended to
$GITHUB_STEP_SUMMARY."""

ABOUT = {
    "check": (
        "search each implementation for inputs where its gradient is wrong (the CI check)",
        "implementations to check (default: the config's)",
    ),
    "scan": (
        "find the logits where each dtype makes an implementation's BCE gradient inf/NaN or wrong",
        "implementations to scan (default: the built-ins)",
    ),
    "report": (
        "write an HTML/Markdown/JSON report with plots",
        "implementations to report on (default: the built-ins)",
    ),
}
"""subcommand -> (its summary, the help of its targets)."""


def _add_outputs(sub: argparse.ArgumentParser, name: str) -> None:
    """The output flags of ``name``: --json (check, scan), --junit-xml (check)."""
    if name in ("check", "scan"):
        sub.add_argument(
            "--json",
            metavar="PATH",
            type=path_argument,
            help="write the results as JSON ('-': to stdout, and every other line to stderr)",
        )
    if name == "check":
        sub.add_argument(
            "--junit-xml",
            metavar="PATH",
            type=path_argument,
            help="write JUnit XML: one test case per implementation x dtype",
        )


def _add_command_flags(sub: argparse.ArgumentParser, name: str) -> None:
    """The flags only one subcommand has: --exhaustive (scan), --title (report)."""
    if name == "scan":
        sub.add_argument(
            "--exhaustive",
            action="store_true",
            help="call the implementation once per float at every finite float16 and "
            "bfloat16 value, for every scan including --activations/--losses (slow; "
            "the default already judges every 16-bit float of the output and hidden "
            "scans, from batched calls checked against single ones)",
        )
    if name == "report":
        sub.add_argument("--title", help="title of the report page")


def _add_subcommand(commands: argparse._SubParsersAction, name: str) -> None:
    summary, targets_help = ABOUT[name]
    sub = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=CHECK_EPILOG if name == "check" else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument(
        "targets",
        nargs="*",
        metavar="MODULE:ATTR",
        help=f"{targets_help}; a built-in name (naive, epsilon, fused) also works",
    )
    add_cli_arguments(sub, name)
    sub.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file with a [tool.gradverify] table (default: ./pyproject.toml if it has one)",
    )
    _add_outputs(sub, name)
    sub.add_argument(
        "--exit-zero",
        action="store_true",
        help="always exit 0 (findings and errors are still printed)",
    )
    _add_command_flags(sub, name)
    sub.add_argument("--debug", action="store_true", help="show the traceback of an internal error")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``gradverify`` command."""
    parser = argparse.ArgumentParser(
        prog="gradverify",
        description="Verify backpropagation against exact (mpmath) gradients, and find where "
        "floating point breaks it.",
    )
    parser.add_argument("--version", action="version", version=f"gradverify {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in ABOUT:
        _add_subcommand(commands, name)
    return parser
