"""Running the checks for a report and writing it: ``write_report`` and ``render_report``.

A report directory holds ``index.html`` (self-contained), ``summary.md`` (for a CI job
summary), ``report.json`` (the document ``gradverify.report/1``), the PNG figures and
``gradverify-manifest.json`` (the list of those files). It is written atomically (see
:mod:`gradverify.report.atomic`): an interrupted or failed run leaves the previous report as
it was, and a directory holding anything gradverify did not write is never replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gradverify.common.errstate import with_own_errstate
from gradverify.common.progress import Progress, ProgressCallback
from gradverify.report.arguments import (
    implementations_to_run,
    isolate_each,
    measure_dtypes,
    run_dtypes,
)
from gradverify.report.atomic import (
    check_output_directory,
    replace_directory,
    resolve_output_path,
)
from gradverify.report.document import SCHEMA, as_dict, build_document, to_json
from gradverify.report.figures.catalog import FIGURES, figure_drawers

__all__ = [
    "DEFAULT_OUT_DIR",
    "DEFAULT_TITLE",
    "REPORT_MAX_EXAMPLES",
    "render_report",
    "write_report",
    "write_report_from_results",
]

DEFAULT_TITLE = "gradverify report"
DEFAULT_OUT_DIR = "gradverify-report"
"""Where ``write_report`` and ``gradverify report`` write when no directory is given, relative
to the working directory: a name of its own, so that it cannot be a folder the user keeps
for something else, and one a project can ignore (gradverify's own ``.gitignore`` does; its
committed sample report lives in ``reports/``, written with ``gradverify report --out
reports``)."""
REPORT_MAX_EXAMPLES = 60
"""Search examples per implementation in a report (the search's own default is larger):
enough for the verdicts and thresholds of the built-ins, and the whole report stays
under a minute on two cores."""

INDEX, SUMMARY, DOCUMENT = "index.html", "summary.md", "report.json"


@with_own_errstate
def render_report(
    out_dir: str | Path,
    search_results: Sequence[Any] = (),
    scan_results: Sequence[Any] = (),
    check_results: Sequence[Any] = (),
    *,
    layers: Mapping[str, Any] | None = None,
    hidden_underflow: Mapping[str, Any] | None = None,
    title: str = DEFAULT_TITLE,
    settings: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    elapsed_seconds: float | None = None,
    progress: bool | None | ProgressCallback = None,
) -> Path:
    """Write a report from precomputed results; return the report directory (absolute).

    Args:
        out_dir: the report directory; replaced atomically.
        search_results: SearchResults (or their ``to_dict()``).
        scan_results: ScanResults (or their ``to_dict()``).
        check_results: CheckResults (or their ``to_dict()``) of single problems.
        layers, hidden_underflow: data from :mod:`gradverify.report.measure`, if computed.
        title: the page title (escaped, like every string on the page).
        settings, notes, elapsed_seconds: recorded in the document.
        progress: as for :func:`write_report`.

    Raises:
        gradverify.report.atomic.OutputDirectoryError: ``out_dir`` cannot be replaced.
    """
    searches = [as_dict(r) for r in search_results]
    scans = [as_dict(r) for r in scan_results]
    checks = [as_dict(r) for r in check_results]
    with Progress(len(FIGURES) + 1, title="gradverify report", progress=progress) as steps:
        return _render(
            out_dir,
            searches,
            scans,
            checks,
            layers=layers,
            hidden_underflow=hidden_underflow,
            title=title,
            settings=settings,
            notes=notes,
            elapsed_seconds=elapsed_seconds,
            steps=steps,
        )


def _render(
    out_dir: str | Path,
    searches: list[dict],
    scans: list[dict],
    checks: list[dict],
    *,
    layers: Mapping[str, Any] | None,
    hidden_underflow: Mapping[str, Any] | None,
    title: str,
    settings: Mapping[str, Any] | None,
    notes: Sequence[str],
    elapsed_seconds: float | None,
    steps: Progress,
) -> Path:
    start = time.perf_counter()
    notes = _with_skipped_dtypes(notes, (*searches, *scans))
    results = {
        "searches": searches,
        "scans": scans,
        "checks": checks,
        "layers": layers,
        "hidden_underflow": hidden_underflow,
    }
    drawers = figure_drawers(build_document(title=title, **results), searches)
    steps.total = steps.done + len(drawers) + 1
    out = resolve_output_path(out_dir, what="report directory")
    with replace_directory(out, schema=SCHEMA) as tmp:
        images, figure_entries = _draw_figures(tmp, drawers, steps)
        doc = build_document(
            title=title,
            **results,
            settings=settings,
            figures=figure_entries,
            elapsed_seconds=(elapsed_seconds or 0.0) + (time.perf_counter() - start),
            notes=notes,
        )
        steps.step("writing index.html, summary.md, report.json")
        _write_documents(tmp, doc, images)
        steps.advance("report written")
    return out


def _with_skipped_dtypes(notes: Sequence[str], results: Sequence[Mapping[str, Any]]) -> list[str]:
    """``notes`` after one note per dtype a search or scan left out because it is unavailable
    here (named, with the reason, not dropped), without repeats."""
    from gradverify.model.dtypes import skipped_dtype_notes

    skipped = {d: why for r in results for d, why in (r.get("skipped_dtypes") or {}).items()}
    return list(dict.fromkeys([*skipped_dtype_notes(skipped), *notes]))


def _draw_figures(
    tmp: Path, drawers: Sequence[tuple[str, Callable[[], Any]]], steps: Progress
) -> tuple[dict[str, bytes], list[dict[str, str]]]:
    """Draw each figure into ``tmp`` as ``ID.png``; return {file: PNG} and the document's
    figure entries."""
    from gradverify.report.figures import figure_png

    images: dict[str, bytes] = {}
    entries = []
    for fig_id, draw in drawers:
        steps.step(f"drawing {fig_id}")
        png = figure_png(draw())
        name = f"{fig_id}.png"
        (tmp / name).write_bytes(png)
        images[name] = png
        fig_title, caption = FIGURES[fig_id]
        entries.append({"id": fig_id, "file": name, "title": fig_title, "caption": caption})
        steps.advance(f"drew {fig_id}")
    return images, entries


def _write_documents(tmp: Path, doc: Mapping[str, Any], images: Mapping[str, bytes]) -> None:
    """``index.html``, ``summary.md`` and ``report.json`` of ``doc``, into ``tmp``."""
    from gradverify.report.html import render_html
    from gradverify.report.markdown import render_markdown

    (tmp / INDEX).write_text(render_html(doc, images), encoding="utf-8")
    (tmp / SUMMARY).write_text(render_markdown(doc), encoding="utf-8")
    (tmp / DOCUMENT).write_text(to_json(doc), encoding="utf-8")


@with_own_errstate
def write_report_from_results(
    out_dir: str | Path, results: Sequence[Any], *, title: str = DEFAULT_TITLE
) -> Path:
    """A report from a mix of SearchResults and CheckResults (objects or dicts), e.g. the
    checks made during a pytest session. No search or scan is run."""
    searches, checks = [], []
    for result in results:
        data = as_dict(result)
        (searches if "per_dtype" in data else checks).append(data)
    return render_report(
        out_dir,
        searches,
        (),
        checks,
        title=title,
        notes=[
            f"{len(results)} result(s) collected from checks that ran "
            "elsewhere (e.g. a test session); no scan was run."
        ],
    )


def _available(dtypes: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``dtypes`` without those unavailable here (the search names them as skipped)."""
    from gradverify.model.dtypes import unavailable_dtypes

    if dtypes is None:
        return None
    missing = unavailable_dtypes()
    return tuple(d for d in dtypes if d not in missing)


@with_own_errstate
@isolate_each
def write_report(
    out_dir: str | Path = DEFAULT_OUT_DIR,
    implementations: Mapping[str, Callable] | Sequence[Callable] | Callable | None = None,
    dtypes: Sequence[str] | None = None,
    max_examples: int = REPORT_MAX_EXAMPLES,
    seed: int | None = None,
    progress: bool | None | ProgressCallback = None,
    title: str = DEFAULT_TITLE,
    *,
    timeout: float = 10.0,
    measure: bool = True,
    search_options: Mapping[str, Any] | None = None,
    scan_options: Mapping[str, Any] | None = None,
) -> Path:
    """Search and scan each implementation, draw the figures and write the report.

    Args:
        out_dir: the report directory (replaced atomically; default
            :data:`DEFAULT_OUT_DIR`, ``gradverify-report``).
        implementations: ``{name: backprop}`` (or a list of backprops); None: the three
            built-ins (naive, epsilon, fused).
        dtypes: dtypes to check (default: what each implementation declares and is
            available here).
        max_examples: search examples per implementation and dtype.
        seed: the search's seed (None: random, recorded in the report).
        progress: True/False to force the stderr progress line, None for automatic (only
            on a terminal and never when ``CI`` is set), or a callable
            ``(step, done, total)``.
        title: the page title.
        timeout: seconds per call of an implementation.
        measure: also compute the per-layer and hidden-underflow figures.
        search_options, scan_options: further keyword arguments for
            :func:`gradverify.search` and :func:`gradverify.scan`; ``scan_options`` naming
            ``activations`` or ``losses`` adds their scans (and figures) to the report.
        isolate: run each implementation in its own supervised worker process, one for
            its search, scan and measurements (see :mod:`gradverify.engine.isolation`).

    Returns:
        The report directory, as an absolute path.

    Raises:
        ValueError, TypeError: bad arguments (one-line messages).
        gradverify.report.atomic.OutputDirectoryError: ``out_dir`` cannot be replaced.
    """
    from gradverify.engine.implementations import capabilities_of
    from gradverify.exploration.scan import ScanAborted, scan
    from gradverify.exploration.search import search

    impls = implementations_to_run(implementations)
    # fail now, not after the search; and write where out_dir pointed at the start, even if
    # an implementation changes the working directory
    out_dir = check_output_directory(out_dir, what="report directory")
    dtype_args = run_dtypes(dtypes, max_examples)
    start = time.perf_counter()
    total = 2 * len(impls) + (2 if measure else 0) + len(FIGURES) + 1
    searches, scans = [], []
    notes: list[str] = []
    with Progress(total, title="gradverify report", progress=progress) as steps:
        for name, impl in impls.items():

            def on_example(what: str, done: int, planned: int) -> None:
                steps.step(f"{what} {done}/{planned}")  # "search NAME (DTYPE) 3/60"

            steps.step(f"{name}: search")
            options = {
                "dtypes": dtype_args,
                "max_examples": max_examples,
                "seed": seed,
                "timeout": timeout,
                "name": name,
                **(search_options or {}),
            }
            if steps.enabled:
                options.setdefault("progress", on_example)
            searches.append(search(impl, **options).to_dict())
            steps.advance(f"{name}: searched")
            caps = capabilities_of(impl)
            named = any((scan_options or {}).get(k) is not None for k in ("activations", "losses"))
            if not named and ("bce" not in caps.losses or "sigmoid" not in caps.activations):
                notes.append(
                    f"{name}: not scanned (the scanner varies a sigmoid output with "
                    "loss bce, which it does not declare)"
                )
                steps.advance(f"{name}: no scan")
                continue
            steps.step(f"{name}: scan")
            options = {
                "dtypes": _available(dtype_args),
                "name": name,
                "timeout": timeout,
                **(scan_options or {}),
            }
            if steps.enabled:
                options.setdefault("progress", lambda what, done, total: steps.step(f"scan {what}"))
            try:
                scans.append(scan(impl, **options).to_dict())
            except ScanAborted as exc:  # it hung; the search has the error verdict
                notes.append(f"{name}: scan stopped: {exc}")
            steps.advance(f"{name}: scanned")
        layers, hidden = (
            _measure(impls, measure_dtypes(dtype_args, searches), timeout, steps, notes)
            if measure
            else (None, None)
        )
        return _render(
            out_dir,
            searches,
            scans,
            [],
            layers=layers,
            hidden_underflow=hidden,
            title=title,
            settings={
                "dtypes": list(dtype_args) if dtype_args else None,
                "max_examples": max_examples,
                "seed": seed,
                "timeout": timeout,
            },
            notes=notes,
            elapsed_seconds=time.perf_counter() - start,
            steps=steps,
        )


def _measure(
    impls: Mapping[str, Callable],
    dtypes: list[str],
    timeout: float,
    steps: Progress,
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-layer errors and the hidden-layer underflow (two progress steps); what they
    skipped is added to ``notes``."""
    from gradverify.report.measure import hidden_underflow, layer_errors

    steps.step("per-layer errors")
    layers = layer_errors(impls, dtypes, timeout=timeout)
    steps.advance("per-layer errors")
    steps.step("hidden-layer underflow")
    hidden = hidden_underflow(
        impls,
        dtypes,
        timeout=timeout,
        on_level=lambda level: steps.step(f"hidden-layer underflow, |h| = {level:g}"),
    )
    steps.advance("hidden-layer underflow")
    notes += [f"per-layer figure: {s}" for s in layers["skipped"]]
    notes += [f"underflow figure: {s}" for s in hidden["skipped"]]
    return layers, hidden
