"""``gradverify check``: search each implementation, print the verdicts, write the CI outputs."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gradverify.common.version import __version__
from gradverify.edges.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    outcome,
    read_config,
    resolved_settings,
)
from gradverify.edges.cli.outputs import Outputs, resolve_outputs, stdout_to_stderr
from gradverify.edges.cli.targets import Target, close_worker, prepare_targets
from gradverify.edges.options import Settings, counts_as_failure, search_arguments
from gradverify.report.atomic import OutputPathError

__all__ = ["CHECK_SCHEMA", "run_check"]

CHECK_SCHEMA = "gradverify.check/2"

VERDICTS = ("pass", "unstable", "incorrect", "error")


def _source_location(impl: Callable, start: str | None = None) -> tuple[str, int] | None:
    """(path relative to ``start``, default the current directory, and first line) of
    ``impl``'s source, if it lies below ``start``."""
    isolated = getattr(impl, "__gradverify_source__", False)  # found by its worker process
    try:
        if isolated is False:
            path = inspect.getsourcefile(impl)
            _, line = inspect.getsourcelines(impl)
        else:
            path, line = isolated
    except (TypeError, OSError):
        return None
    if not path:
        return None
    try:
        rel = os.path.relpath(path, start)
    except ValueError:
        return None
    return (rel, max(line, 1)) if not rel.startswith("..") else None


def _check_document(results: Sequence[Any], settings: Settings, failed: bool) -> dict:
    return {
        "schema": CHECK_SCHEMA,
        "gradverify_version": __version__,
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.as_dict().items()
        },
        "failed": failed,
        "results": [r.to_dict() for r in results],
    }


def _search_each(targets: list[Target], settings: Settings) -> list[Any]:
    """One search per implementation, each printed as it ends."""
    from gradverify.exploration.search import search

    kwargs = search_arguments(settings)
    kwargs.pop("dtypes", None)  # per target, after its declaration and config entry
    results = []
    for target in targets:
        result = search(target.impl, name=target.name, **target.overrides, **kwargs)
        close_worker(target.impl)  # one worker per implementation, for its check
        results.append(result)
        print(str(result), end="\n\n", flush=True)
    return results


def _summarise(
    results: list[Any], targets: list[Target], settings: Settings, args: argparse.Namespace
) -> bool:
    """Print the summary line; whether the check failed."""
    verdicts = [str(r.verdict) for r in results]
    # a pass needs a verdict for every target, each of them passing
    failed = (
        len(results) != len(targets)
        or not results
        or any(counts_as_failure(v, settings.fail_on) for v in verdicts)
    )
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts)
    print(
        f"gradverify check: {len(results)} implementation(s): {counts} "
        f"[fail-on {settings.fail_on}] -> {outcome(failed, args)}",
        flush=True,
    )
    return failed


def _github_outputs(
    results: list[Any],
    targets: list[Target],
    settings: Settings,
    outputs: Outputs,
    args: argparse.Namespace,
) -> None:
    """Annotations on stdout and the Markdown table in $GITHUB_STEP_SUMMARY."""
    from gradverify.edges.ci_outputs import append_step_summary, github_annotations, step_summary

    locations = {t.name: loc for t in targets if (loc := _source_location(t.impl, args.cwd))}
    for line in github_annotations(results, fail_on=settings.fail_on, locations=locations):
        print(line)
    if outputs.step_summary is not None:
        try:
            append_step_summary(
                step_summary(results, fail_on=settings.fail_on), outputs.step_summary
            )
        except OSError as exc:
            raise OutputPathError(
                f"$GITHUB_STEP_SUMMARY {outputs.step_summary}: cannot append: {exc.strerror or exc}"
            ) from None
    sys.stdout.flush()


def _write_files(results: list[Any], settings: Settings, outputs: Outputs, document: str) -> None:
    """--json and --junit-xml, each written whole or not at all."""
    from gradverify.report.atomic import write_file_atomic

    if outputs.json is not None:
        write_file_atomic(outputs.json, document, what="--json")
    if outputs.junit_xml is not None:
        from gradverify.edges.ci_outputs import junit_xml

        write_file_atomic(
            outputs.junit_xml, junit_xml(results, fail_on=settings.fail_on), what="--junit-xml"
        )


def run_check(args: argparse.Namespace) -> int:
    """``gradverify check``: 0 when every verdict passes, 1 for findings."""
    config = read_config(args)
    settings = resolved_settings(args, config)
    outputs = resolve_outputs(args, settings, config)

    with stdout_to_stderr(outputs.json_to_stdout):
        targets = prepare_targets(args, config, builtins_by_default=False)
        results = _search_each(targets, settings)
        failed = _summarise(results, targets, settings, args)
        document = (
            json.dumps(_check_document(results, settings, failed), indent=2, allow_nan=False) + "\n"
        )
        _write_files(results, settings, outputs, document)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            _github_outputs(results, targets, settings, outputs, args)
    if outputs.json_to_stdout:
        sys.stdout.write(document)
        sys.stdout.flush()
    return EXIT_FINDINGS if failed else EXIT_OK
