"""The report page: one self-contained HTML file built from the report document.

Self-contained means no request leaves the page: the CSS is inline, the figures are inline
``data:`` URIs (the PNG files written next to the page are named in each caption), and
there is no script, web font or CDN. Every string that comes from results or from the
user (implementation names, messages, snippets, the title) goes through ``html.escape``.

Order of the page: the answer (which forms are safe, where the others first break and
why, from :mod:`gradverify.report.overview`), verdicts, the threshold table, the figures,
the worst elements, then each shrunk counterexample with its reproduction snippet. Every
table sits in its own horizontally scrolling box, so a wide one never widens the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gradverify.common.formatting import (
    format_bits,
    format_duration,
    format_fd_error,
    format_gradient,
    format_logit,
    format_relative_error,
    format_ulps,
)
from gradverify.report.document import beyond_stable_cell

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1180px;padding:1rem 1.5rem 3rem;color:#1b1b1b;line-height:1.45;
overflow-wrap:break-word}.scroll{overflow-x:auto;max-width:100%}
.answer{background:#f4f8fd;border:1px solid #c9dcf2;border-radius:.4rem;padding:.7rem 1rem;
margin:1rem 0}.answer p{margin:.35rem 0}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1.05rem;margin-bottom:.3rem}
.lead{color:#444;margin-top:0}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d0d0;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.v{font-weight:600;padding:.05rem .45rem;border-radius:.3rem;white-space:nowrap}
.v-pass{background:#d7f3dc;color:#11561f}.v-unstable{background:#fff1c9;color:#6b4b00}
.v-incorrect{background:#fbd5d5;color:#7a1010}.v-error{background:#e6d5f5;color:#4a1a6e}
.v-none{background:#eee;color:#555}figure{margin:1.2rem 0}figure img{max-width:100%;
height:auto;border:1px solid #e3e3e3}figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:.7rem;overflow:auto;font-size:.82rem;
line-height:1.35}code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:#666;font-size:.88rem}details{margin:.5rem 0}summary{cursor:pointer;
color:#0b4f9c}ul.hints{margin:.3rem 0}.card{border:1px solid #ddd;
border-radius:.4rem;padding:.4rem 1rem .8rem;margin:1rem 0}
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def verdict_badge(verdict: Any) -> str:
    """A coloured badge for a verdict ('pass', 'unstable', 'incorrect', 'error')."""
    text = "-" if verdict is None else str(verdict)
    css = text if text in ("pass", "unstable", "incorrect", "error") else "none"
    return f'<span class="v v-{css}">{_e(text.upper())}</span>'


def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()
) -> str:
    """A table from already-escaped cell HTML."""
    numeric = set(numeric)
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _answer(doc: Mapping[str, Any]) -> str:
    """The paragraph the page opens with: the opening sentence, then one per form (its
    name in code type), then what a break is."""
    overview = doc.get("overview") or {}
    if not overview:
        return ""
    parts = [f"<p><b>{_e(overview.get('opening'))}</b></p>"]
    for form in overview.get("forms", []):
        name, sentence = str(form["implementation"]), str(form["sentence"])
        rest = sentence[len(name) :] if sentence.startswith(name) else f": {sentence}"
        parts.append(f"<p><code>{_e(name)}</code>{_e(rest)}</p>")
    if overview.get("definition"):
        parts.append(f'<p class="muted">{_e(overview["definition"])}</p>')
    return f'<section class="answer" id="answer">{"".join(parts)}</section>'


def _summary(doc: Mapping[str, Any]) -> str:
    impls = doc.get("implementations", [])
    if not impls:
        return "<p>No implementation was checked.</p>"
    dtypes = list(dict.fromkeys(d["dtype"] for i in impls for d in i.get("dtypes", [])))
    header = [
        "implementation",
        "verdict",
        "examples",
        "worst bits beyond the stable baseline",
        *[f"{_e(d)}: verdict, first failing |h|" for d in dtypes],
    ]
    rows = []
    for impl in impls:
        per = {d["dtype"]: d for d in impl.get("dtypes", [])}
        cells = [
            f"<code>{_e(impl['name'])}</code>",
            verdict_badge(impl.get("verdict")),
            _e(impl.get("examples", "-")),
            _e(format_bits(impl.get("worst_bits"))),
        ]
        for d in dtypes:
            item = per.get(d)
            if item is None:
                cells.append('<span class="muted">not run</span>')
                continue
            threshold = item.get("threshold_saturation")
            where = "" if threshold is None else f", |h| &ge; {_e(format_logit(threshold))}"
            cells.append(verdict_badge(item.get("verdict")) + where + _e(beyond_stable_cell(item)))
        rows.append(cells)
    explain = (
        '<p class="muted"><b>pass</b>: within the tolerance (a multiple of a stable float '
        "implementation's own error against the exact reference) everywhere it was tried. "
        "<b>unstable</b>: right in the interior, wrong or inf/NaN only at saturation. "
        "<b>incorrect</b>: wrong at ordinary values, a logic bug. <b>error</b>: raised, hung "
        "or returned something malformed.</p>"
    )
    return _table(header, rows, numeric=(2, 3)) + explain


def _plain_table(table: Mapping[str, Any]) -> str:
    header = [_e(c) for c in table.get("columns", [])]
    body = [[_e(c) for c in row] for row in table.get("rows", [])]
    note = table.get("note")
    return _table(header, body) + (f'<p class="muted">{_e(note)}</p>' if note else "")


def _thresholds(doc: Mapping[str, Any]) -> str:
    table = doc.get("threshold_table") or {}
    if not table.get("rows"):
        return '<p class="muted">No scan was run, so there are no thresholds.</p>'
    out = _plain_table(doc.get("threshold_summary") or {})
    out += (
        "<details><summary>Every output-layer threshold (each label and side)</summary>"
        + _plain_table(table)
        + "</details>"
    )
    hidden = doc.get("hidden_table") or {}
    if hidden.get("rows"):
        out += (
            "<details><summary>Hidden layer: where a saturated unit's gradient "
            "underflows</summary>" + _plain_table(hidden) + "</details>"
        )
    return out


def _figures(doc: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    parts = []
    for fig in doc.get("figures", []):
        data = images.get(fig["file"])
        if data is None:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        alt = f"{fig['title']} {fig.get('caption', '').split('. ')[0]}".strip()
        parts.append(
            f'<figure id="{_e(fig["id"])}"><h3>{_e(fig["title"])}</h3>'
            f'<img src="{uri}" alt="{_e(alt)}" data-file="{_e(fig["file"])}">'
            f"<figcaption>{_e(fig.get('caption', ''))} File: "
            f'<a href="{_e(fig["file"])}"><code>{_e(fig["file"])}</code></a></figcaption>'
            "</figure>"
        )
    return "".join(parts) or '<p class="muted">No figures.</p>'


def _element_rows(worst: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for w in worst:
        index = ", ".join(str(i) for i in w.get("index", []))
        fd = (
            "-"
            if w.get("fd") is None
            else (
                _e(format_gradient(w.get("fd")))
                + (
                    f" &plusmn; {_e(format_fd_error(w.get('fd_error')))}"
                    if w.get("fd_error") is not None
                    else ""
                )
            )
        )
        rows.append(
            [
                f"<code>{_e(w.get('tensor'))}[{_e(index)}]</code>",
                _e(format_gradient(w.get("value"))),
                _e(format_gradient(w.get("reference"))),
                fd,
                _e(format_relative_error(w.get("relative_error"))),
                _e(format_ulps(w.get("ulps"))),
                _e(format_bits(w.get("bits"))),
            ]
        )
    return rows


_ELEMENT_HEADER = ["entry", "got", "exact", "finite differences", "rel. error", "ulp", "bits"]


def _worst(doc: Mapping[str, Any]) -> str:
    parts = []
    for impl in doc.get("implementations", []):
        for cx in impl.get("counterexamples", []):
            if cx.get("worst"):
                parts.append(
                    f"<h3><code>{_e(impl['name'])}</code>, {_e(cx.get('dtype'))}, "
                    f"max |h| = {_e(format_logit(cx.get('saturation')))}</h3>"
                    + _table(
                        _ELEMENT_HEADER, _element_rows(cx["worst"]), numeric=(1, 2, 3, 4, 5, 6)
                    )
                )
                break
    return "".join(parts) or '<p class="muted">No failing elements: nothing failed.</p>'


def _counterexamples(doc: Mapping[str, Any]) -> str:
    parts = []
    for impl in doc.get("implementations", []):
        for cx in impl.get("counterexamples", []):
            hints = "".join(f"<li>{_e(h)}</li>" for h in cx.get("diagnosis", []))
            snippet = cx.get("reproduction")
            parts.append(
                f'<div class="card"><h3><code>{_e(impl["name"])}</code> '
                f"{verdict_badge(cx.get('verdict'))} at {_e(cx.get('dtype'))}</h3>"
                f"<p>Network {_e(cx.get('network'))}; batch {_e(cx.get('batch'))}; "
                f"max |h| = {_e(format_logit(cx.get('saturation')))}.</p>"
                + (f"<p>{_e(cx.get('message'))}</p>" if cx.get("message") else "")
                + (f'<ul class="hints">{hints}</ul>' if hints else "")
                + (
                    "<p>Reproduce it:</p><pre><code>" + _e(snippet) + "</code></pre>"
                    if snippet
                    else '<p class="muted">No reproduction snippet.</p>'
                )
                + "</div>"
            )
    return "".join(parts) or '<p class="muted">No counterexamples: nothing failed.</p>'


def _provenance(doc: Mapping[str, Any]) -> str:
    gen = doc.get("generator", {})
    settings = doc.get("settings", {})
    items = [f"{_e(k)} {_e(v)}" for k, v in gen.items()]
    setting_items = [f"{_e(k)} = {_e(v)}" for k, v in settings.items() if v is not None]
    notes = "".join(f"<li>{_e(n)}</li>" for n in doc.get("notes", []))
    return (
        f'<p class="muted">Generated by {", ".join(items)}. '
        f"Settings: {', '.join(setting_items) or 'defaults'}. "
        f"Elapsed: {_e(format_duration(doc.get('elapsed_seconds')))}. "
        "All numbers are in <code>report.json</code> (schema "
        f"<code>{_e(doc.get('schema'))}</code>).</p>"
        + (f'<ul class="muted">{notes}</ul>' if notes else "")
    )


def render_html(doc: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The complete page for a report document, with ``images`` ({file name: PNG}) inlined."""
    title = doc.get("title") or "gradverify report"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        '<p class="lead">Is the gradient right, and where does floating point make it wrong? '
        "Every gradient below is judged against an exact (mpmath) reference.</p>"
        f"{_answer(doc)}"
        f'<h2 id="verdicts">Verdicts</h2>{_summary(doc)}'
        f'<h2 id="thresholds">Thresholds: where each dtype breaks</h2>{_thresholds(doc)}'
        f'<h2 id="figures">Figures</h2>{_figures(doc, images)}'
        f'<h2 id="worst">Worst elements</h2>{_worst(doc)}'
        f'<h2 id="counterexamples">Shrunk counterexamples</h2>{_counterexamples(doc)}'
        f'<h2 id="about">About this report</h2>{_provenance(doc)}'
        "</body></html>\n"
    )
