"""The entry point: parse, run one command, and turn whatever happened into an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from gradverify.common.version import __version__
from gradverify.edges.cli.check import run_check
from gradverify.edges.cli.common import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    one_line,
)
from gradverify.edges.cli.parser import build_parser
from gradverify.edges.cli.report import run_report
from gradverify.edges.cli.scan import run_scan
from gradverify.edges.cli.targets import close_all_workers
from gradverify.report.atomic import OutputPathError

__all__ = ["COMMANDS", "main"]

COMMANDS = {"check": run_check, "scan": run_scan, "report": run_report}
"""Each subcommand and the function that runs it (returning the exit code)."""


def _run(command: str, args: object, debug: bool) -> int:
    """Run ``command``; every way it can end becomes an exit code and one message."""
    try:
        return COMMANDS[command](args)
    except (UsageError, OutputPathError) as exc:
        print(f"gradverify {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ngradverify {command}: interrupted; no output files written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # gradverify raises none past argparse: an implementation did
        print(
            f"gradverify {command}: error: an implementation stopped the run with "
            f"sys.exit({exc.code!r}); no verdict, no output files written",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    except Exception as exc:  # noqa: BLE001 - the catch-all that turns bugs into exit 3
        if debug:
            traceback.print_exc()
        print(
            f"gradverify {command}: internal error: {one_line(exc)}\n"
            "This is a bug in gradverify. Please report it with the command you ran and "
            f"the output of the same command with --debug (gradverify {__version__}).",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        close_all_workers()


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and a one-line error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        args.cwd = os.getcwd()  # every relative path is taken from here, whatever runs later
    except OSError as exc:
        print(
            f"gradverify {args.command}: error: the current directory is not usable: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _run(args.command, args, args.debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gradverify`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = _main(args)
    if code != EXIT_INTERRUPTED and args and args[0] in COMMANDS and "--exit-zero" in args:
        code = EXIT_OK
    if argv is None and _left_behind_threads():
        # an implementation run in this process (--no-isolate) left a thread running, which
        # would keep the interpreter from exiting: leave without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _left_behind_threads() -> bool:
    import threading

    return any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    )
