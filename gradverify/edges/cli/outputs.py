"""Where a run writes, checked before anything runs, and ``--json -`` (the JSON on stdout)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gradverify.edges.cli.common import UsageError
from gradverify.edges.config import GradverifyConfig
from gradverify.edges.options import Settings

__all__ = ["STDOUT", "Outputs", "path_argument", "resolve_outputs", "stdout_to_stderr"]

STDOUT = "-"
"""``--json -``: the JSON goes to stdout, and every other line to stderr."""


@dataclass
class Outputs:
    """Where a run writes: resolved against the start-up directory and checked before any
    implementation is loaded, so a bad path fails at once and code that changes directory
    cannot move an output."""

    json: Path | None = None
    json_to_stdout: bool = False
    junit_xml: Path | None = None
    report_dir: Path | None = None
    step_summary: Path | None = None


def path_argument(text: str) -> str:
    """argparse type of an output path: anything but the empty string."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _report_dir(
    args: argparse.Namespace, settings: Settings | None, config: GradverifyConfig | None
) -> Path:
    from gradverify.report.atomic import check_output_directory
    from gradverify.report.writer import DEFAULT_OUT_DIR

    from_config = (
        getattr(args, "report_dir", None) is None
        and config is not None
        and config.values.get("report_dir") is not None
    )
    what = f"report-dir ({config.path})" if from_config else "--out"
    return check_output_directory(
        (settings.report_dir if settings else None) or DEFAULT_OUT_DIR, what=what, base=args.cwd
    )


def resolve_outputs(
    args: argparse.Namespace,
    settings: Settings | None = None,
    config: GradverifyConfig | None = None,
) -> Outputs:
    """The output paths of this command, each checked (OutputPathError, UsageError)."""
    from gradverify.report.atomic import check_output_file

    base = args.cwd
    outputs = Outputs()
    json_path = getattr(args, "json", None)
    if json_path == STDOUT:
        outputs.json_to_stdout = True
    elif json_path is not None:
        outputs.json = check_output_file(json_path, what="--json", base=base)
    junit = getattr(args, "junit_xml", None)
    if junit == STDOUT:
        raise UsageError("--junit-xml -: only --json can write to stdout; give a file path")
    if junit is not None:
        outputs.junit_xml = check_output_file(junit, what="--junit-xml", base=base)
        if outputs.junit_xml == outputs.json:
            raise UsageError(f"--json and --junit-xml name the same file {outputs.json}")
    if args.command == "report":
        outputs.report_dir = _report_dir(args, settings, config)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.command == "check" and os.environ.get("GITHUB_ACTIONS") == "true" and summary:
        outputs.step_summary = check_output_file(summary, what="$GITHUB_STEP_SUMMARY", base=base)
    return outputs


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While ``enabled``, whatever is printed to stdout (ours, and an implementation's, from
    Python or, where stdout is a real file descriptor, from C code and child processes)
    goes to stderr, so that stdout carries only the JSON written afterwards."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = None
    try:
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
    except (AttributeError, OSError, ValueError):  # not real files (e.g. captured)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, out_fd)
            os.close(saved)
