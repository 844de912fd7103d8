"""``gradverify scan``: the float-lattice scan of each implementation's sigmoid + BCE output.

``--activations`` and ``--losses`` (the options that declare what an implementation
supports) also name what to scan: the hidden-layer derivative of each named activation and
the output delta of each named loss (``bce``: the classic output scan). Without them the
scan is the default one (sigmoid + BCE output, sigmoid/tanh hidden underflow).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gradverify.edges.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    outcome,
    read_config,
    resolved_settings,
)
from gradverify.edges.cli.outputs import resolve_outputs, stdout_to_stderr
from gradverify.edges.cli.targets import Target, close_worker, prepare_targets
from gradverify.edges.options import Settings, search_arguments

__all__ = ["run_scan"]


def _scan_failures(result: Any) -> bool:
    """Whether any call of the scanned implementation failed (raised, hung, malformed)."""
    sides = [side for row in (*result.rows, *result.functions) for side in row.sides]
    return any(side.raises_anywhere for side in sides) or any(h.error_points for h in result.hidden)


def _require_sigmoid_bce(targets: list[Target], args: argparse.Namespace) -> None:
    """The default scan (no --activations/--losses) needs a sigmoid output with bce."""
    from gradverify.engine.implementations import capabilities_of

    if _named_functions(args):
        return
    for target in targets:
        caps = capabilities_of(target.impl)
        if "sigmoid" not in caps.activations or "bce" not in caps.losses:
            raise UsageError(
                f"{target.spec}: the scan needs a sigmoid output with loss "
                f"bce; it declares activations {', '.join(caps.activations)} "
                f"and losses {', '.join(caps.losses)}"
            )


def _named_functions(args: argparse.Namespace) -> dict[str, Any]:
    """``activations``/``losses`` given on the command line: what to scan besides declaring."""
    named = {k: getattr(args, k, None) for k in ("activations", "losses")}
    return {k: tuple(v) for k, v in named.items() if v is not None}


def _scan_each(
    targets: list[Target], settings: Settings, args: argparse.Namespace
) -> tuple[list[Any], list[str]]:
    """The scans that ran to the end, and one line per implementation with a problem."""
    from gradverify.common.progress import progress_enabled
    from gradverify.exploration.scan import ScanAborted, scan

    progress = progress_enabled(None)
    timeout = search_arguments(settings)
    timeout = {"timeout": timeout["timeout"]} if "timeout" in timeout else {}
    functions = _named_functions(args)
    results, problems = [], []
    for target in targets:
        try:
            result = scan(
                target.impl,
                dtypes=target.dtypes,
                name=target.name,
                progress=progress,
                exhaustive=args.exhaustive,
                **timeout,
                **functions,
            )
            close_worker(target.impl)  # one worker per implementation, for its scan
        except ValueError as exc:  # e.g. an architecture with no room for a probe
            raise UsageError(f"{target.spec}: {exc}") from None
        except ScanAborted as exc:
            problems.append(f"{target.name}: scan stopped: {exc}")
            continue
        results.append(result)
        if _scan_failures(result):
            problems.append(
                f"{target.name}: some calls raised, hung or returned something "
                "malformed (the raises column)"
            )
    return results, problems


def run_scan(args: argparse.Namespace) -> int:
    """``gradverify scan``: 0 when every scan ran to the end and no call failed, else 1."""
    from gradverify.exploration.scan import format_scan_table, scan_document
    from gradverify.report.atomic import write_file_atomic

    config = read_config(args)
    outputs = resolve_outputs(args, config=config)
    with stdout_to_stderr(outputs.json_to_stdout):
        targets = prepare_targets(args, config, builtins_by_default=True, declare=True)
        _require_sigmoid_bce(targets, args)
        results, problems = _scan_each(targets, resolved_settings(args, config), args)
        if results:
            print(format_scan_table(results), flush=True)
        failed = bool(problems) or len(results) != len(targets)
        if failed:
            for problem in problems:
                print(f"gradverify scan: {problem}")
            print(
                f"gradverify scan: {len(targets)} implementation(s), "
                f"{len(problems)} with failed calls -> {outcome(failed, args)}",
                flush=True,
            )
        document = json.dumps(scan_document(results), indent=2) + "\n"
        if outputs.json is not None:
            write_file_atomic(outputs.json, document, what="--json")
    if outputs.json_to_stdout:
        sys.stdout.write(document)
        sys.stdout.flush()
    return EXIT_FINDINGS if failed else EXIT_OK
