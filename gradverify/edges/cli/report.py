"""``gradverify report``: the HTML/Markdown/JSON report, and its verdicts as the exit code.

It writes to ``--out`` (or ``report-dir`` in the configuration), else to
``gradverify-report/`` in the working directory
(:data:`gradverify.report.writer.DEFAULT_OUT_DIR`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gradverify.edges.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    outcome,
    read_config,
    resolved_settings,
)
from gradverify.edges.cli.outputs import resolve_outputs
from gradverify.edges.cli.targets import Target, prepare_targets
from gradverify.edges.options import Settings, counts_as_failure

__all__ = ["run_report"]


def _report_verdicts(path: Path) -> list[tuple[str, str]]:
    """(name, verdict) of every implementation in the report just written at ``path``."""
    doc = json.loads((path / "report.json").read_text(encoding="utf-8"))
    return [(str(i.get("name")), str(i.get("verdict"))) for i in doc.get("implementations", [])]


def _report_arguments(
    args: argparse.Namespace, settings: Settings, targets: list[Target]
) -> dict[str, Any]:
    """Keyword arguments of :func:`gradverify.report.write_report` besides the implementations."""
    kwargs: dict[str, Any] = {}
    for dest in ("max_examples", "seed", "timeout"):
        if getattr(settings, dest) is not None:
            kwargs[dest] = getattr(settings, dest)
    requested = [d for t in targets for d in (t.dtypes or ())]
    if requested:
        kwargs["dtypes"] = tuple(dict.fromkeys(requested))
    if args.title:
        kwargs["title"] = args.title
    return kwargs


def run_report(args: argparse.Namespace) -> int:
    """``gradverify report``: 0 when every implementation in the report passes, else 1."""
    from gradverify.report import write_report

    config = read_config(args)
    settings = resolved_settings(args, config)
    outputs = resolve_outputs(args, settings, config)
    targets = prepare_targets(args, config, builtins_by_default=True, declare=True)
    path = write_report(
        outputs.report_dir,
        implementations={t.name: t.impl for t in targets},
        **_report_arguments(args, settings, targets),
    )
    print(f"gradverify report: written to {path}")
    verdicts = _report_verdicts(path)
    failing = [
        f"{name} ({verdict})"
        for name, verdict in verdicts
        if counts_as_failure(verdict, settings.fail_on)
    ]
    failed = bool(failing) or len(verdicts) != len(targets)
    if failed:
        print(
            f"gradverify report: {len(failing)} of {len(targets)} implementation(s) not "
            f"passing [fail-on {settings.fail_on}]: {', '.join(failing) or '-'} -> "
            f"{outcome(failed, args)}"
        )
    return EXIT_FINDINGS if failed else EXIT_OK
