"""The Markdown summary: the answer, verdicts, thresholds and counterexamples for a CI job
summary.

GitHub limits a job summary to 1 MiB, so the text is kept under :data:`MAX_BYTES`: when
it would be larger, whole sections are dropped from the end (counterexamples last in,
first out) and a note says what was cut and where the full report is. Strings from
results are escaped for Markdown tables and inline HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gradverify.common.formatting import (
    format_bits,
    format_gradient,
    format_logit,
    format_relative_error,
)
from gradverify.report.document import beyond_stable_cell

__all__ = ["MAX_BYTES", "render_markdown"]

MAX_BYTES = 1024 * 1024 - 16 * 1024
"""The summary's size limit in UTF-8 bytes: 1 MiB with room for whatever CI adds."""


def _text(value: Any) -> str:
    """Escape a value for Markdown text and table cells (no HTML, no column breaks)."""
    s = "" if value is None else str(value)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    s = s.replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("]", "\\]")
    return " ".join(s.split())


def _fence(code: str) -> str:
    """A fenced code block whose fence is longer than any backtick run in ``code``."""
    longest = run = 0
    for ch in code:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n{code.rstrip()}\n{fence}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _answer(doc: Mapping[str, Any]) -> list[str]:
    """The report's opening paragraph (:mod:`gradverify.report.overview`): its first
    sentence in bold, then one item per form, name in bold; nothing without an overview."""
    overview = doc.get("overview") or {}
    if not overview:
        return []
    items = []
    for form in overview.get("forms", []):
        name, sentence = str(form["implementation"]), str(form["sentence"])
        rest = sentence[len(name) :] if sentence.startswith(name) else f": {sentence}"
        items.append(f"- **{_text(name)}**{' ' if rest[:1].isspace() else ''}{_text(rest)}")
    sections = [f"**{_text(overview.get('opening'))}**"]
    sections += ["\n".join(items)] if items else []
    if overview.get("definition"):
        sections.append(f"*{_text(overview['definition'])}*")
    return sections


def _verdicts(doc: Mapping[str, Any]) -> str:
    impls = doc.get("implementations", [])
    if not impls:
        return "No implementation was checked."
    dtypes = list(dict.fromkeys(d["dtype"] for i in impls for d in i.get("dtypes", [])))
    rows = []
    for impl in impls:
        per = {d["dtype"]: d for d in impl.get("dtypes", [])}
        row = [
            _text(impl["name"]),
            f"**{_text(str(impl.get('verdict', '-')).upper())}**",
            "-" if impl.get("examples") is None else str(impl["examples"]),
            _text(format_bits(impl.get("worst_bits"))),
        ]
        for d in dtypes:
            item = per.get(d)
            if item is None:
                row.append("not run")
                continue
            threshold = item.get("threshold_saturation")
            row.append(
                _text(item.get("verdict", "-"))
                + ("" if threshold is None else f", \\|h\\| >= {_text(format_logit(threshold))}")
                + beyond_stable_cell(item)
            )
        rows.append(row)
    header = [
        "implementation",
        "verdict",
        "examples",
        "worst bits beyond baseline",
        *[f"{_text(d)} (verdict, first failing \\|h\\|)" for d in dtypes],
    ]
    return _table(header, rows)


def _plain(table: Mapping[str, Any]) -> str:
    out = _table(
        [_text(c) for c in table["columns"]], [[_text(c) for c in row] for row in table["rows"]]
    )
    return out + (f"\n\n{_text(table['note'])}" if table.get("note") else "")


def _thresholds(doc: Mapping[str, Any]) -> str:
    summary = doc.get("threshold_summary") or {}
    if not summary.get("rows"):
        return "No scan was run, so there are no thresholds."
    out = _plain(summary)
    table = doc.get("threshold_table") or {}
    if table.get("rows"):
        out += (
            "\n\n<details><summary>Every output-layer threshold</summary>\n\n"
            + _plain(table)
            + "\n\n</details>"
        )
    return out


def _counterexamples(doc: Mapping[str, Any]) -> list[str]:
    sections = []
    for impl in doc.get("implementations", []):
        for cx in impl.get("counterexamples", []):
            lines = [
                f"### {_text(impl['name'])}: {_text(str(cx.get('verdict')).upper())} at "
                f"{_text(cx.get('dtype'))}",
                f"Network {_text(cx.get('network'))}; batch {_text(cx.get('batch'))}; "
                f"max \\|h\\| = {_text(format_logit(cx.get('saturation')))}.",
            ]
            if cx.get("message"):
                lines.append(_text(cx["message"]))
            lines += [f"- {_text(h)}" for h in cx.get("diagnosis", [])]
            worst = cx.get("worst") or []
            if worst:
                lines.append(
                    _table(
                        ["entry", "got", "exact", "rel. error", "bits"],
                        [
                            [
                                _text(
                                    f"{w.get('tensor')}[{', '.join(map(str, w.get('index', [])))}]"
                                ),
                                _text(format_gradient(w.get("value"))),
                                _text(format_gradient(w.get("reference"))),
                                _text(format_relative_error(w.get("relative_error"))),
                                _text(format_bits(w.get("bits"))),
                            ]
                            for w in worst
                        ],
                    )
                )
            if cx.get("reproduction"):
                lines += ["Reproduce it:", _fence(str(cx["reproduction"]))]
            sections.append("\n\n".join(lines))
    return sections


def render_markdown(doc: Mapping[str, Any], *, max_bytes: int = MAX_BYTES) -> str:
    """The Markdown summary of a report document, at most ``max_bytes`` UTF-8 bytes."""
    title = _text(doc.get("title") or "gradverify report")
    figures = ", ".join(f"`{_text(f['file'])}`" for f in doc.get("figures", []))
    notes = [f"- {_text(n)}" for n in doc.get("notes", [])]  # e.g. "skipped bfloat16: ..."
    head = [
        f"## {title}",
        *_answer(doc),
        _verdicts(doc),
        *(["\n".join(notes)] if notes else []),
        "### Thresholds: where each dtype breaks",
        _thresholds(doc),
    ]
    tail = (
        f"Figures: {figures}. The full report is `index.html` next to this file; "
        "all numbers are in `report.json`."
        if figures
        else "The full report is `index.html` next to this file; all numbers are in `report.json`."
    )
    body = _counterexamples(doc)
    if body:
        head.append("### Shrunk counterexamples")

    def assemble(sections: list[str], note: str | None) -> str:
        parts = head + sections + ([note] if note else []) + [tail]
        return "\n\n".join(parts) + "\n"

    text = assemble(body, None)
    dropped = 0
    while len(text.encode("utf-8")) > max_bytes and body:
        body = body[:-1]
        dropped += 1
        text = assemble(
            body,
            f"*{dropped} more counterexample(s) left out to keep this "
            "summary under the CI limit; see index.html.*",
        )
    if len(text.encode("utf-8")) > max_bytes:  # even the tables are too large
        note = "\n\n*Summary truncated to fit the CI limit; see index.html and report.json.*\n"
        budget = max_bytes - len(note.encode("utf-8"))
        text = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore") + note
    return text
