"""What ``gradverify check`` tells CI: JUnit XML, GitHub Actions annotations, a step summary.

All three are built from the same cases, one per implementation x dtype (:func:`check_cases`),
judged under the ``fail-on`` policy of :func:`gradverify.edges.options.counts_as_failure`.
The results are duck-typed SearchResults (``implementation``, ``verdict``, ``dtypes``,
``per_dtype``, ``elapsed``, ``__str__``), so this module imports nothing heavy.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gradverify.common.formatting import format_bits, format_logit
from gradverify.edges.options import counts_as_failure
from gradverify.report.atomic import append_file_atomic

__all__ = [
    "GITHUB_MAX_ERRORS",
    "GITHUB_MAX_WARNINGS",
    "CheckCase",
    "append_step_summary",
    "check_cases",
    "github_annotations",
    "junit_xml",
    "step_summary",
]

GITHUB_MAX_ERRORS = 10
GITHUB_MAX_WARNINGS = 10
"""GitHub Actions shows at most 10 error and 10 warning annotations per step."""

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub rejects a step summary larger than 1 MiB."""


@dataclass(frozen=True)
class CheckCase:
    """One implementation at one dtype, as CI reports it."""

    implementation: str
    dtype: str
    verdict: str  # "pass", "unstable", "incorrect", "error"
    failed: bool  # a finding under the fail-on policy
    examples: int | None
    worst_bits: float | None
    threshold_saturation: float | None  # max |h| at which it first fails, if known
    summary: str  # one line
    details: str  # the counterexample, its diagnosis and the reproduction snippet
    beyond_stable: str | None = None  # precision a pass loses beyond the stable formulation


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _case(result: Any, dtype: str, fail_on: str) -> CheckCase:
    summary = (getattr(result, "per_dtype", None) or {}).get(dtype)
    source = summary if summary is not None else result
    verdict = str(getattr(source, "verdict", result.verdict))
    example = getattr(source, "counterexample", None)
    reproduction = getattr(source, "reproduction", None)
    threshold = getattr(summary, "threshold_saturation", None)
    worst = None if verdict == "error" else getattr(source, "worst_bits", None)
    if summary is None or verdict == "pass":
        details = "" if verdict == "pass" else str(result)
    else:
        details = str(example) if example is not None else str(result)
        if reproduction:
            details += "\n\nReproduce with:\n" + reproduction
    beyond = _beyond_stable(result, summary) if verdict == "pass" else None
    if verdict == "pass":
        line = f"{result.implementation} passes at {dtype}" + (f"; {beyond}" if beyond else "")
    else:
        reason = _first_line(getattr(example, "message", "") or "") if example else ""
        where = f" first at max |h| = {format_logit(threshold)}" if threshold is not None else ""
        line = f"{result.implementation} is {verdict.upper()} at {dtype}{where}"
        line += f": {reason}" if reason else ""
    return CheckCase(
        implementation=result.implementation,
        dtype=dtype,
        verdict=verdict,
        failed=counts_as_failure(verdict, fail_on),
        examples=getattr(source, "examples", None),
        worst_bits=None if worst is None else float(worst),
        threshold_saturation=threshold,
        summary=line,
        details=details,
        beyond_stable=beyond,
    )


def _beyond_stable(result: Any, summary: Any) -> str | None:
    """The precision-loss note of a passing search dtype or check, if there is one."""
    if summary is not None:
        beyond = getattr(summary, "beyond_stable", None)
        return beyond.describe() if beyond is not None else None
    note = getattr(result, "precision_note", None)
    return note() or None if callable(note) else None


def check_cases(results: Sequence[Any], fail_on: str) -> list[CheckCase]:
    """One case per implementation x dtype searched, in the order of ``results``."""
    cases = []
    for result in results:
        dtypes = tuple(getattr(result, "dtypes", ()) or ())
        if not dtypes:
            dtypes = tuple((getattr(result, "per_dtype", None) or {}).keys()) or ("-",)
        cases.extend(_case(result, dtype, fail_on) for dtype in dtypes)
    return cases


# ---------------------------------------------------------------------------
# JUnit XML
# ---------------------------------------------------------------------------

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a parser would reject the file)."""
    return _XML_ILLEGAL.sub("?", text)


def junit_xml(results: Sequence[Any], *, fail_on: str, name: str = "gradverify") -> str:
    """A JUnit XML document: one ``<testcase>`` per implementation x dtype.

    A case that is a finding under ``fail_on`` gets a ``<failure>`` whose ``type`` is the
    verdict and whose text is the counterexample with its reproduction snippet. An unstable
    case tolerated by ``--fail-on incorrect`` passes, with the verdict in ``<system-out>``.
    """
    cases = check_cases(results, fail_on)
    failures = sum(c.failed for c in cases)
    elapsed = sum(float(getattr(r, "elapsed", 0.0) or 0.0) for r in results)
    root = ET.Element(
        "testsuites",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        time=f"{elapsed:.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{elapsed:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="fail-on", value=fail_on)
    for case in cases:
        element = ET.SubElement(
            suite,
            "testcase",
            classname=_xml_text(f"gradverify.{case.implementation}"),
            name=case.dtype,
        )
        info = f"verdict {case.verdict}; examples {case.examples}"
        if case.worst_bits is not None:  # none for an error verdict
            info += f"; worst error {format_bits(case.worst_bits)} bits"
        if case.failed:
            failure = ET.SubElement(
                element, "failure", type=case.verdict, message=_xml_text(case.summary)
            )
            failure.text = _xml_text(f"{info}\n{case.details}".rstrip())
        else:
            note = f"{info}\n{case.details}" if case.verdict != "pass" else info
            ET.SubElement(element, "system-out").text = _xml_text(note.rstrip())
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ---------------------------------------------------------------------------
# GitHub Actions
# ---------------------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(
    level: str, message: str, *, title: str | None = None, location: tuple[str, int] | None = None
) -> str:
    props = []
    if location is not None:
        props += [f"file={_escape_property(location[0])}", f"line={int(location[1])}"]
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{level}" + (" " + ",".join(props) if props else "")
    return f"{head}::{_escape_data(message)}"


def _annotation_message(case: CheckCase, limit: int = 4000) -> str:
    text = case.summary
    if case.details:
        text += "\n" + case.details
    return text if len(text) <= limit else text[: limit - 20] + "\n... (truncated)"


def github_annotations(
    results: Sequence[Any],
    *,
    fail_on: str,
    locations: Mapping[str, tuple[str, int]] | None = None,
    max_errors: int = GITHUB_MAX_ERRORS,
    max_warnings: int = GITHUB_MAX_WARNINGS,
) -> list[str]:
    """Workflow commands (``::error ...``) for every non-passing case.

    Findings under ``fail_on`` are errors; a tolerated unstable case is a warning. Past
    GitHub's per-step limits the rest are counted in one ``::notice``.

    Args:
        locations: implementation name -> (file, line) of its source, to anchor annotations.
    """
    lines: list[str] = []
    shown = {"error": 0, "warning": 0}
    limits = {"error": max_errors, "warning": max_warnings}
    left_out = 0
    for case in check_cases(results, fail_on):
        if case.verdict == "pass":
            continue
        level = "error" if case.failed else "warning"
        if shown[level] >= limits[level]:
            left_out += 1
            continue
        shown[level] += 1
        lines.append(
            _command(
                level,
                _annotation_message(case),
                title=f"gradverify: {case.implementation} {case.dtype} {case.verdict}",
                location=(locations or {}).get(case.implementation),
            )
        )
    if left_out:
        lines.append(
            _command(
                "notice",
                f"{left_out} more gradverify finding(s) not annotated: GitHub shows at most "
                f"{max_errors} errors and {max_warnings} warnings per step. "
                "All of them are in the job summary.",
                title="gradverify: annotations left out",
            )
        )
    return lines


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def step_summary(results: Sequence[Any], *, fail_on: str) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: a table of cases, then each finding's details.

    Details are dropped (and the drop said) when the text would pass GitHub's 1 MiB limit.
    """
    cases = check_cases(results, fail_on)
    failed = sum(c.failed for c in cases)
    head = [
        f"## gradverify check: {failed} of {len(cases)} case(s) failing (fail-on {fail_on})",
        "",
        "| implementation | dtype | verdict | examples | worst error (bits) "
        "| first fails at max \\|h\\| | precision beyond the stable formulation |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        mark = ("**" + c.verdict.upper() + "**") if c.failed else c.verdict
        threshold = format_logit(c.threshold_saturation)
        head.append(
            f"| {_md_cell(c.implementation)} | {c.dtype} | {mark} | "
            f"{'-' if c.examples is None else c.examples} | {format_bits(c.worst_bits)} | "
            f"{threshold} | {_md_cell(c.beyond_stable or '-')} |"
        )
    text = "\n".join(head) + "\n"
    budget = STEP_SUMMARY_LIMIT // 2  # leave room for other steps of the same job
    for c in cases:
        if c.verdict == "pass" or not c.details:
            continue
        block = (
            f"\n<details><summary>{_md_cell(c.implementation)} {c.dtype}: "
            f"{c.verdict}</summary>\n\n{_md_fence(c.details)}\n\n</details>\n"
        )
        if len((text + block).encode()) > budget:
            text += "\n(further details left out to stay within GitHub's summary size limit)\n"
            break
        text += block
    return text


def append_step_summary(markdown: str, path: str | os.PathLike | None = None) -> bool:
    """Append ``markdown`` to ``path`` (default ``$GITHUB_STEP_SUMMARY``); False if unset.

    The append is atomic (:func:`gradverify.report.atomic.append_file_atomic`): the file
    holds what earlier steps wrote, then either nothing or the whole of ``markdown``.

    Raises:
        gradverify.report.atomic.OutputPathError: the file cannot be appended to
            (``"$GITHUB_STEP_SUMMARY PATH: cannot append: REASON"``).
    """
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    append_file_atomic(path, text, what="$GITHUB_STEP_SUMMARY")
    return True
