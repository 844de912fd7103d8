"""Running the checks for a report and writing it: ``write_report`` and ``render_report``.

A report directory holds ``index.html`` (self-contained), ``summary.md`` (for a CI job
summary), ``report.json`` (the document ``gradverify.report/1``), the PNG figures and
``gradverify-manifest.json`` (the list of those files). It is written atomically (see
:mod:`gradverify.report.atomic`): an interrupted or failed run leaves the previous report as
it was, and a directory holding anything gradverify did not write is never replaced.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gradverify.common.errstate import with_own_errstate
from gradverify.common.progress import Progress, ProgressCallback
from gradverify.report.atomic import (
    check_output_directory,
    replace_directory,
    resolve_output_path,
)
from gradverify.report.document import SCHEMA, as_dict, build_document, to_json

__all__ = [
    "DEFAULT_TITLE",
    "REPORT_MAX_EXAMPLES",
    "render_report",
    "write_report",
    "write_report_from_results",
]

DEFAULT_TITLE = "gradverify report"
REPORT_MAX_EXAMPLES = 60
"""Search examples per implementation in a report (the search's own default is larger):
enough for the verdicts and thresholds of the built-ins, and the whole report stays
under a minute on two cores."""

INDEX, SUMMARY, DOCUMENT = "index.html", "summary.md", "report.json"

FIGURES = {
    "error_vs_saturation": (
        "Error against output saturation",
        "Bits of error (log2(1 + ulps)) of the gradient dJ/dh_L of a one-layer sigmoid + "
        "BCE network against the exact reference, as the scan sweeps the output logit h "
        "over each dtype's lattice: one row per dtype, one column per label y, one line per "
        "implementation. inf/NaN is drawn at the dtype's full width and its range shaded; "
        "vertical lines mark the first float with inf/NaN (dashed) or 100% error (dotted), "
        "with the value of h on top. With y = 1 and h > 0 (and y = 0, h < 0) the exact "
        "gradient is tiny (about e^-|h|), and every form that computes sigmoid(h) - y "
        "first, the stable baseline included, keeps only its absolute accuracy there: "
        "harmless for training, and not held against a verdict.",
    ),
    "layer_errors": (
        "Error per layer, from the output backward",
        "Normwise relative error of each layer's dJ/dW for one network with confident "
        "output logits (layer L first). An error made in delta_L travels back unchanged "
        "in relative terms through delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1}). The "
        "dashed line is a stable float implementation at the same dtype; the dotted line "
        "is the tolerance derived from it.",
    ),
    "hidden_underflow": (
        "Vanishing gradients: hidden-layer underflow",
        "Fraction of hidden-layer gradient entries (dW_i, db_i for i < L) that are exactly "
        "0 in float while the exact gradient is not, as the hidden pre-activations are "
        "scaled to saturation max |h_i|. It depends on the dtype's exponent range, not on "
        "how the output layer is handled.",
    ),
    "search_samples": (
        "Examples tried by the search",
        "Every example the property-based search generated, as worst bits of error "
        "against the largest |h| in the network; failures are crosses. Dashed verticals "
        "mark the saturation at which each dtype first failed.",
    ),
}


def _figure_data(
    doc_parts: Mapping[str, Any], searches: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Callable[[], Any]]]:
    """The figures that have data, as (id, draw) pairs in page order."""
    from gradverify.report import figures
    from gradverify.report.scan_data import PLOTTED_CRITERIA

    out: list[tuple[str, Callable[[], Any]]] = []
    sweeps = doc_parts["sweeps"]
    if sweeps:
        marks = [
            dict(t, kind=PLOTTED_CRITERIA[t["criterion"]])
            for t in doc_parts["thresholds"]
            if t.get("plot")
        ]
        out.append(
            ("error_vs_saturation", lambda: figures.error_vs_saturation_figure(sweeps, marks))
        )
    if doc_parts.get("layers") and doc_parts["layers"].get("panels"):
        out.append(("layer_errors", lambda: figures.layer_error_figure(doc_parts["layers"])))
    if doc_parts.get("hidden_underflow") and doc_parts["hidden_underflow"].get("series"):
        out.append(
            (
                "hidden_underflow",
                lambda: figures.vanishing_gradient_figure(doc_parts["hidden_underflow"]),
            )
        )
    with_samples = [s for s in searches if s.get("samples")]
    if with_samples:
        data = [
            {
                "implementation": s.get("implementation"),
                "samples": s["samples"],
                "thresholds": {
                    d: v.get("threshold_saturation") for d, v in (s.get("per_dtype") or {}).items()
                },
            }
            for s in with_samples
        ]
        out.append(("search_samples", lambda: figures.search_samples_figure(data)))
    return out


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
    from gradverify.model.dtypes import skipped_dtype_notes
    from gradverify.report.figures import figure_png
    from gradverify.report.html import render_html
    from gradverify.report.markdown import render_markdown

    start = time.perf_counter()
    # a dtype left out because it is unavailable here is named, with the reason, not dropped
    skipped = {
        d: why for r in (*searches, *scans) for d, why in (r.get("skipped_dtypes") or {}).items()
    }
    notes = list(dict.fromkeys([*skipped_dtype_notes(skipped), *notes]))
    parts = build_document(
        title=title,
        searches=searches,
        scans=scans,
        checks=checks,
        layers=layers,
        hidden_underflow=hidden_underflow,
    )
    drawers = _figure_data(parts, searches)
    steps.total = steps.done + len(drawers) + 1
    out = resolve_output_path(out_dir, what="report directory")
    with replace_directory(out, schema=SCHEMA) as tmp:
        images: dict[str, bytes] = {}
        figure_entries = []
        for fig_id, draw in drawers:
            steps.step(f"drawing {fig_id}")
            png = figure_png(draw())
            name = f"{fig_id}.png"
            (tmp / name).write_bytes(png)
            images[name] = png
            fig_title, caption = FIGURES[fig_id]
            figure_entries.append(
                {"id": fig_id, "file": name, "title": fig_title, "caption": caption}
            )
            steps.advance(f"drew {fig_id}")
        total = (elapsed_seconds or 0.0) + (time.perf_counter() - start)
        doc = build_document(
            title=title,
            searches=searches,
            scans=scans,
            checks=checks,
            layers=layers,
            hidden_underflow=hidden_underflow,
            settings=settings,
            figures=figure_entries,
            elapsed_seconds=total,
            notes=notes,
        )
        steps.step("writing index.html, summary.md, report.json")
        (tmp / INDEX).write_text(render_html(doc, images), encoding="utf-8")
        (tmp / SUMMARY).write_text(render_markdown(doc), encoding="utf-8")
        (tmp / DOCUMENT).write_text(to_json(doc), encoding="utf-8")
        steps.advance("report written")
    return out


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


def _implementations(implementations: Any) -> dict[str, Callable]:
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS, implementation_name

    if implementations is None:
        return dict(BUILTIN_IMPLEMENTATIONS)
    if isinstance(implementations, Mapping):
        items = list(implementations.items())
    elif callable(implementations):
        items = [(implementation_name(implementations), implementations)]
    else:
        items = [(implementation_name(i), i) for i in implementations]
    if not items:
        raise ValueError("no implementation to report on; pass None for the built-in three")
    for name, impl in items:
        if not callable(impl):
            raise TypeError(f"implementation {name!r} is not callable (got {type(impl).__name__})")
    return {str(name): impl for name, impl in items}


def _available(dtypes: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``dtypes`` without those unavailable here (the search names them as skipped)."""
    from gradverify.model.dtypes import unavailable_dtypes

    if dtypes is None:
        return None
    missing = unavailable_dtypes()
    return tuple(d for d in dtypes if d not in missing)


def _measure_dtypes(
    dtypes: Sequence[str] | None, searches: Sequence[Mapping[str, Any]]
) -> list[str]:
    from gradverify.model.dtypes import SUPPORTED_DTYPES, available_dtypes

    if dtypes:
        wanted = list(dtypes)
    else:
        wanted = [d for s in searches for d in (s.get("per_dtype") or {})]
        wanted = wanted or list(available_dtypes())
    usable = set(available_dtypes())
    return [d for d in SUPPORTED_DTYPES if d in wanted and d in usable]


def _isolate_each(fn: Callable) -> Callable:
    """Decorator: an ``isolate`` keyword runs every implementation in its own worker process
    for the duration of the call (see :mod:`gradverify.engine.isolation`)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, isolate: bool | None = False, **kwargs: Any) -> Any:
        if not isolate:
            return fn(*args, **kwargs)
        from gradverify.engine.isolation import isolated_if

        bound = signature.bind(*args, **kwargs)
        impls = _implementations(bound.arguments.get("implementations"))
        with contextlib.ExitStack() as workers:
            bound.arguments["implementations"] = {
                name: workers.enter_context(isolated_if(impl, True)) for name, impl in impls.items()
            }
            return fn(*bound.args, **bound.kwargs)

    keyword = inspect.Parameter(
        "isolate", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"
    )
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), keyword]
    )
    return wrapper


@with_own_errstate
@_isolate_each
def write_report(
    out_dir: str | Path = "reports",
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
        out_dir: the report directory (replaced atomically; default ``reports``).
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
            :func:`gradverify.search` and :func:`gradverify.scan`.
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
    from gradverify.report.measure import hidden_underflow, layer_errors

    impls = _implementations(implementations)
    # fail now, not after the search; and write where out_dir pointed at the start, even if
    # an implementation changes the working directory
    out_dir = check_output_directory(out_dir, what="report directory")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer; got {max_examples!r}")
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    start = time.perf_counter()
    dtype_args = tuple(dtypes) if dtypes else None
    total = 2 * len(impls) + (2 if measure else 0) + len(FIGURES) + 1
    searches, scans = [], []
    layers = hidden = None
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
            if "bce" not in caps.losses or "sigmoid" not in caps.activations:
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
                options.setdefault("progress", lambda what: steps.step(f"scan {what}"))
            try:
                scans.append(scan(impl, **options).to_dict())
            except ScanAborted as exc:  # it hung; the search has the error verdict
                notes.append(f"{name}: scan stopped: {exc}")
            steps.advance(f"{name}: scanned")
        if measure:
            measure_dtypes = _measure_dtypes(dtype_args, searches)
            steps.step("per-layer errors")
            layers = layer_errors(impls, measure_dtypes, timeout=timeout)
            steps.advance("per-layer errors")
            steps.step("hidden-layer underflow")
            hidden = hidden_underflow(
                impls,
                measure_dtypes,
                timeout=timeout,
                on_level=lambda level: steps.step(f"hidden-layer underflow, |h| = {level:g}"),
            )
            steps.advance("hidden-layer underflow")
            notes += [f"per-layer figure: {s}" for s in layers["skipped"]]
            notes += [f"underflow figure: {s}" for s in hidden["skipped"]]
        settings = {
            "dtypes": list(dtype_args) if dtype_args else None,
            "max_examples": max_examples,
            "seed": seed,
            "timeout": timeout,
        }
        return _render(
            out_dir,
            searches,
            scans,
            [],
            layers=layers,
            hidden_underflow=hidden,
            title=title,
            settings=settings,
            notes=notes,
            elapsed_seconds=time.perf_counter() - start,
            steps=steps,
        )
