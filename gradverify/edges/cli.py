"""The ``gradverify`` command: ``check`` (the CI check), ``scan`` and ``report``.

Exit codes:

- 0: every implementation was checked and every verdict passes (``scan``: every scan ran to
  the end and no call failed);
- 1: findings: ``incorrect`` or ``error`` verdicts, or ``unstable`` under ``--fail-on unstable``
  (``scan``: a call raised, hung or returned something malformed); also when an
  implementation stops the run itself (``sys.exit``);
- 2: a usage, configuration or import error, or an output that cannot be written, with a
  one-line reason;
- 3: an internal error of gradverify (``--debug`` shows the traceback);
- 130: interrupted (Ctrl-C); no output file is written.

``--exit-zero`` makes a command exit 0 whatever happened (the messages are still printed).
Implementations are named ``MODULE:ATTR`` (the current directory is importable, as with
``python -m``) or by a built-in name: naive, epsilon, fused.

Output paths (``--json``, ``--junit-xml``, ``--out``) are resolved against the working
directory at start-up and checked before anything runs; ``--json -`` writes the JSON to
stdout and everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradverify.common.version import __version__
from gradverify.edges.config import ConfigError, GradverifyConfig, find_config, load_config
from gradverify.edges.options import (
    Settings,
    add_cli_arguments,
    counts_as_failure,
    resolve_settings,
    search_arguments,
)
from gradverify.report.atomic import OutputPathError

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "load_target",
    "main",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

CHECK_SCHEMA = "gradverify.check/2"

STDOUT = "-"
"""``--json -``: the JSON goes to stdout, and every other line to stderr."""

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


NAME_LISTS = ("activations", "losses", "dtypes")
ARCHITECTURE = ("depth", "widths", "batch")


class UsageError(Exception):
    """Bad command line, configuration or implementation name; the message is one line."""


# ---------------------------------------------------------------------------
# Naming implementations
# ---------------------------------------------------------------------------


def _builtins() -> dict[str, Callable]:
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS

    return dict(BUILTIN_IMPLEMENTATIONS)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_target(spec: str, *, directory: str | None = None) -> Callable:
    """The callable named by ``"package.module:attr"`` (``attr`` may be dotted) or a built-in.

    ``directory`` (default: the current directory) is put first on ``sys.path``, as
    ``python -m`` does.

    Raises:
        UsageError: malformed name, failed import (including a module that calls
            ``sys.exit`` while it is imported), missing attribute, not callable.
    """
    if ":" not in spec:
        builtins = _builtins()
        if spec in builtins:
            return builtins[spec]
        raise UsageError(
            f"{spec!r} is not MODULE:ATTR (e.g. mypkg.nn:backprop) or a built-in name "
            f"({', '.join(builtins)})"
        )
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{spec!r} is not MODULE:ATTR (e.g. mypkg.nn:backprop)")
    cwd = directory if directory is not None else os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # files created since the last import are found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"cannot import {module_name!r} (for {spec}): no module named "
                f"{exc.name!r} (run from the project directory or install it)"
            ) from None
        raise UsageError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything
        raise UsageError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except SystemExit as exc:
        raise UsageError(
            f"importing {module_name!r} failed: it called sys.exit({exc.code!r}) "
            "while being imported (guard the script part with "
            "if __name__ == '__main__':)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{spec}: {module_name!r} has no attribute {attr!r}") from None
        except Exception as exc:  # noqa: BLE001 - a property or __getattr__ may raise
            raise UsageError(f"{spec}: getting {part!r} failed: {_one_line(exc)}") from None
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a callable backprop")
    return obj


@dataclass
class Target:
    """An implementation ready to run.

    ``impl`` is the loaded callable, wrapped with a new declaration only when it must be
    (a changed layout, or for ``scan``/``report``, which read the declaration), so that
    reproduction snippets can still import it by name. ``overrides`` are the
    activations/losses/dtypes and depth/widths/batch asked for (command line, config
    entry, config), which :func:`gradverify.exploration.search.search` takes as arguments.
    """

    spec: str
    impl: Callable
    name: str
    overrides: dict[str, Any]

    @property
    def dtypes(self) -> tuple[str, ...] | None:
        return self.overrides.get("dtypes")


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


_WORKERS: list[Any] = []
"""The worker processes of the implementations this run loaded; closed when it ends."""


def _isolate(cli: dict[str, Any], config: GradverifyConfig) -> bool:
    """Whether implementations run in worker processes: --isolate/--no-isolate, then the
    config's ``isolate``, else yes."""
    isolate = resolve_settings(cli, config.values).isolate
    return True if isolate is None else bool(isolate)


def _load_in_worker(spec: str, directory: str | None) -> Callable:
    """``spec`` loaded by a new worker process, so that its module runs only there."""
    import functools

    from gradverify.engine.isolation import ImplementationLoadError, load_isolated

    try:
        impl = load_isolated(
            functools.partial(load_target, spec, directory=directory), description=spec
        )
    except ImplementationLoadError as exc:
        raise UsageError(str(exc)) from None
    _WORKERS.append(impl)
    return impl


def _close_worker(impl: Any) -> None:
    """Stop the worker process of an isolated implementation (no-op otherwise)."""
    close = getattr(impl, "close", None)
    if close is not None and hasattr(impl, "declare"):
        close()


def _prepare(spec: str, cli: dict[str, Any], config: GradverifyConfig, *, declare: bool) -> Target:
    """Load ``spec`` and gather, first wins, the command-line capability flags, its
    ``[[tool.gradverify.implementations]]`` entry and the config's ``dtypes``.

    ``declare``: also attach the activations, losses, dtypes and architecture (depth,
    widths, batch) to the implementation's declaration (for consumers that take no such
    arguments).
    """
    import dataclasses
    import functools

    from gradverify.engine.implementations import (
        CAPABILITIES_ATTRIBUTE,
        capabilities_of,
        implementation_name,
    )
    from gradverify.exploration.strategies import problems
    from gradverify.model.dtypes import resolve_dtype

    if _isolate(cli, config):
        impl = _load_in_worker(spec, cli.get("cwd"))
    else:
        impl = load_target(spec, directory=cli.get("cwd"))
    entry = config.entry_for(spec)
    declared = capabilities_of(impl)
    changes: dict[str, Any] = {}
    for field in ("activations", "losses", "dtypes", "layout", *ARCHITECTURE):
        value = cli.get(field)
        if value is None and entry is not None:
            value = getattr(entry, field)
        if value is None and field == "dtypes":
            value = config.values.get("dtypes")
        if value is not None:
            changes[field] = tuple(value) if field in NAME_LISTS else value
    if "widths" in changes and "depth" not in changes:
        changes["depth"] = None  # new widths replace the declared depth too
    where = f" (see {config.path})" if entry is not None else ""
    try:
        caps = dataclasses.replace(declared, **changes)
        for dtype in changes.get("dtypes", ()):
            resolve_dtype(dtype)
        problems(caps, dtypes=caps.dtypes)  # the search's own check of the capabilities
    except ValueError as exc:
        raise UsageError(f"{spec}: {exc}{where}") from None
    wrap_for = {"layout"} if not declare else {"layout", *NAME_LISTS, *ARCHITECTURE}
    if set(changes) & wrap_for and hasattr(impl, "declare"):  # isolated: no wrapper around it
        impl.declare(caps)
    elif set(changes) & wrap_for:
        original = impl

        @functools.wraps(original)
        def declared_impl(*a: Any, **kw: Any) -> Any:
            return original(*a, **kw)

        setattr(declared_impl, CAPABILITIES_ATTRIBUTE, caps)
        impl = declared_impl
    name = entry.name if entry is not None and entry.name else implementation_name(impl)
    overrides = {k: v for k, v in changes.items() if k != "layout" and v is not None}
    return Target(spec=spec, impl=impl, name=name, overrides=overrides)


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------


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


def _path_argument(text: str) -> str:
    """argparse type of an output path: anything but the empty string."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _outputs(
    args: argparse.Namespace,
    settings: Settings | None = None,
    config: GradverifyConfig | None = None,
) -> Outputs:
    from gradverify.report.atomic import check_output_directory, check_output_file

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
        from_config = (
            getattr(args, "report_dir", None) is None
            and config is not None
            and config.values.get("report_dir") is not None
        )
        what = f"report-dir ({config.path})" if from_config else "--out"
        outputs.report_dir = check_output_directory(
            (settings.report_dir if settings else None) or "reports", what=what, base=base
        )
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.command == "check" and os.environ.get("GITHUB_ACTIONS") == "true" and summary:
        outputs.step_summary = check_output_file(summary, what="$GITHUB_STEP_SUMMARY", base=base)
    return outputs


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
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


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> GradverifyConfig:
    try:
        if getattr(args, "config", None):
            return load_config(args.config)
        found = find_config(".")
        return load_config(found) if found is not None else GradverifyConfig()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _settings(args: argparse.Namespace, config: GradverifyConfig) -> Settings:
    settings = resolve_settings(vars(args), config.values)
    settings.isolate = _isolate(vars(args), config)  # as run, in the JSON's settings too
    return settings


def _targets(
    args: argparse.Namespace,
    config: GradverifyConfig,
    *,
    builtins_by_default: bool,
    declare: bool = False,
) -> list[Target]:
    specs = list(args.targets)
    if not specs:
        specs = [e.target for e in config.implementations]
    if not specs and builtins_by_default:
        specs = list(_builtins())
    if not specs:
        raise UsageError(
            "no implementation to check: name them (gradverify check mypkg.nn:backprop) or "
            "list them in pyproject.toml under [[tool.gradverify.implementations]]"
        )
    return [_prepare(spec, vars(args), config, declare=declare) for spec in specs]


def _outcome(failed: bool, args: argparse.Namespace) -> str:
    outcome = "FAILED" if failed else "ok"
    if failed and args.exit_zero:
        outcome += " (exit code 0: --exit-zero)"
    return outcome


def _run_check(args: argparse.Namespace) -> int:
    config = _config(args)
    settings = _settings(args, config)
    outputs = _outputs(args, settings, config)

    from gradverify.edges.ci_outputs import append_step_summary, github_annotations, step_summary
    from gradverify.exploration.search import search
    from gradverify.report.atomic import write_file_atomic

    with _stdout_to_stderr(outputs.json_to_stdout):
        targets = _targets(args, config, builtins_by_default=False)
        kwargs = search_arguments(settings)
        kwargs.pop("dtypes", None)  # per target, after its declaration and config entry
        results = []
        for target in targets:
            result = search(target.impl, name=target.name, **target.overrides, **kwargs)
            _close_worker(target.impl)  # one worker per implementation, for its check
            results.append(result)
            print(str(result), end="\n\n", flush=True)

        verdicts = [str(r.verdict) for r in results]
        # a pass needs a verdict for every target, each of them passing
        failed = (
            len(results) != len(targets)
            or not results
            or any(counts_as_failure(v, settings.fail_on) for v in verdicts)
        )
        counts = ", ".join(
            f"{verdicts.count(v)} {v}"
            for v in ("pass", "unstable", "incorrect", "error")
            if v in verdicts
        )
        print(
            f"gradverify check: {len(results)} implementation(s): {counts} "
            f"[fail-on {settings.fail_on}] -> {_outcome(failed, args)}",
            flush=True,
        )

        document = (
            json.dumps(_check_document(results, settings, failed), indent=2, allow_nan=False) + "\n"
        )
        if outputs.json is not None:
            write_file_atomic(outputs.json, document, what="--json")
        if outputs.junit_xml is not None:
            from gradverify.edges.ci_outputs import junit_xml

            write_file_atomic(
                outputs.junit_xml, junit_xml(results, fail_on=settings.fail_on), what="--junit-xml"
            )
        if os.environ.get("GITHUB_ACTIONS") == "true":
            locations = {
                t.name: loc for t in targets if (loc := _source_location(t.impl, args.cwd))
            }
            for line in github_annotations(results, fail_on=settings.fail_on, locations=locations):
                print(line)
            if outputs.step_summary is not None:
                try:
                    append_step_summary(
                        step_summary(results, fail_on=settings.fail_on), outputs.step_summary
                    )
                except OSError as exc:
                    raise OutputPathError(
                        f"$GITHUB_STEP_SUMMARY {outputs.step_summary}: "
                        f"cannot append: {exc.strerror or exc}"
                    ) from None
            sys.stdout.flush()
    if outputs.json_to_stdout:
        sys.stdout.write(document)
        sys.stdout.flush()
    return EXIT_FINDINGS if failed else EXIT_OK


def _scan_failures(result: Any) -> bool:
    """Whether any call of the scanned implementation failed (raised, hung, malformed)."""
    sides = [side for row in result.rows for side in row.sides]
    return any(side.raises_anywhere for side in sides) or any(h.error_points for h in result.hidden)


def _run_scan(args: argparse.Namespace) -> int:
    from gradverify.common.progress import progress_enabled
    from gradverify.engine.implementations import capabilities_of
    from gradverify.exploration.scan import ScanAborted, format_scan_table, scan, scan_document
    from gradverify.report.atomic import write_file_atomic

    config = _config(args)
    outputs = _outputs(args, config=config)
    with _stdout_to_stderr(outputs.json_to_stdout):
        targets = _targets(args, config, builtins_by_default=True, declare=True)
        for target in targets:
            caps = capabilities_of(target.impl)
            if "sigmoid" not in caps.activations or "bce" not in caps.losses:
                raise UsageError(
                    f"{target.spec}: the scan needs a sigmoid output with loss "
                    f"bce; it declares activations {', '.join(caps.activations)} "
                    f"and losses {', '.join(caps.losses)}"
                )
        progress = progress_enabled(None)
        timeout = search_arguments(_settings(args, config))
        timeout = {"timeout": timeout["timeout"]} if "timeout" in timeout else {}
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
                )
                _close_worker(target.impl)  # one worker per implementation, for its scan
            except ScanAborted as exc:
                problems.append(f"{target.name}: scan stopped: {exc}")
                continue
            results.append(result)
            if _scan_failures(result):
                problems.append(
                    f"{target.name}: some calls raised, hung or returned something "
                    "malformed (the raises column)"
                )
        if results:
            print(format_scan_table(results), flush=True)
        failed = bool(problems) or len(results) != len(targets)
        if failed:
            for problem in problems:
                print(f"gradverify scan: {problem}")
            print(
                f"gradverify scan: {len(targets)} implementation(s), "
                f"{len(problems)} with failed calls -> {_outcome(failed, args)}",
                flush=True,
            )
        document = json.dumps(scan_document(results), indent=2) + "\n"
        if outputs.json is not None:
            write_file_atomic(outputs.json, document, what="--json")
    if outputs.json_to_stdout:
        sys.stdout.write(document)
        sys.stdout.flush()
    return EXIT_FINDINGS if failed else EXIT_OK


def _report_verdicts(path: Path) -> list[tuple[str, str]]:
    """(name, verdict) of every implementation in the report just written at ``path``."""
    doc = json.loads((path / "report.json").read_text(encoding="utf-8"))
    return [(str(i.get("name")), str(i.get("verdict"))) for i in doc.get("implementations", [])]


def _run_report(args: argparse.Namespace) -> int:
    from gradverify.report import write_report

    config = _config(args)
    settings = _settings(args, config)
    outputs = _outputs(args, settings, config)
    targets = _targets(args, config, builtins_by_default=True, declare=True)
    kwargs: dict[str, Any] = {}
    for dest in ("max_examples", "seed", "timeout"):
        if getattr(settings, dest) is not None:
            kwargs[dest] = getattr(settings, dest)
    requested = [d for t in targets for d in (t.dtypes or ())]
    if requested:
        kwargs["dtypes"] = tuple(dict.fromkeys(requested))
    if args.title:
        kwargs["title"] = args.title
    path = write_report(
        outputs.report_dir, implementations={t.name: t.impl for t in targets}, **kwargs
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
            f"{_outcome(failed, args)}"
        )
    return EXIT_FINDINGS if failed else EXIT_OK


# ---------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``gradverify`` command."""
    parser = argparse.ArgumentParser(
        prog="gradverify",
        description="Verify backpropagation against exact (mpmath) gradients, and find where "
        "floating point breaks it.",
    )
    parser.add_argument("--version", action="version", version=f"gradverify {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    about = {
        "check": (
            "search each implementation for inputs where its gradient is wrong (the CI check)",
            "implementations to check (default: the config's)",
        ),
        "scan": (
            "find the logits where each dtype makes an implementation's BCE gradient "
            "inf/NaN or wrong",
            "implementations to scan (default: the built-ins)",
        ),
        "report": (
            "write an HTML/Markdown/JSON report with plots",
            "implementations to report on (default: the built-ins)",
        ),
    }
    for name, (summary, targets_help) in about.items():
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
            help="TOML file with a [tool.gradverify] table (default: "
            "./pyproject.toml if it has one)",
        )
        if name in ("check", "scan"):
            sub.add_argument(
                "--json",
                metavar="PATH",
                type=_path_argument,
                help="write the results as JSON ('-': to stdout, and every other line to stderr)",
            )
        if name == "check":
            sub.add_argument(
                "--junit-xml",
                metavar="PATH",
                type=_path_argument,
                help="write JUnit XML: one test case per implementation x dtype",
            )
        sub.add_argument(
            "--exit-zero",
            action="store_true",
            help="always exit 0 (findings and errors are still printed)",
        )
        if name == "scan":
            sub.add_argument(
                "--exhaustive",
                action="store_true",
                help="check every finite float of float16 and bfloat16 instead of "
                "bisecting and sampling (slower; catches isolated first-bad "
                "floats that sampling can miss)",
            )
        if name == "report":
            sub.add_argument("--title", help="title of the report page")
        sub.add_argument(
            "--debug", action="store_true", help="show the traceback of an internal error"
        )
    return parser


_RUNNERS = {"check": _run_check, "scan": _run_scan, "report": _run_report}


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and a one-line error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = args.debug
    try:
        args.cwd = os.getcwd()  # every relative path is taken from here, whatever runs later
    except OSError as exc:
        print(
            f"gradverify {args.command}: error: the current directory is not usable: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return _RUNNERS[args.command](args)
    except (UsageError, OutputPathError) as exc:
        print(f"gradverify {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ngradverify {args.command}: interrupted; no output files written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # gradverify raises none past argparse: an implementation did
        print(
            f"gradverify {args.command}: error: an implementation stopped the run with "
            f"sys.exit({exc.code!r}); no verdict, no output files written",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    except Exception as exc:  # noqa: BLE001 - the catch-all that turns bugs into exit 3
        if debug:
            traceback.print_exc()
        print(
            f"gradverify {args.command}: internal error: {_one_line(exc)}\n"
            "This is a bug in gradverify. Please report it with the command you ran and "
            f"the output of the same command with --debug (gradverify {__version__}).",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        while _WORKERS:
            _close_worker(_WORKERS.pop())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gradverify`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = _main(args)
    if code != EXIT_INTERRUPTED and args and args[0] in _RUNNERS and "--exit-zero" in args:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
