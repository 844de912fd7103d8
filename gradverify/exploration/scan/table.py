"""The fixed-width text table of scan results (``gradverify scan``'s output)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gradverify.common.formatting import format_bits, format_label, format_side, threshold_cell
from gradverify.exploration.scan.criteria import CRITERIA
from gradverify.exploration.scan.records import (
    FunctionScan,
    HiddenUnderflow,
    ScanRow,
    SideScan,
    Threshold,
)
from gradverify.model.dtypes import skipped_dtype_notes

__all__ = ["scan_table"]

_HEADINGS = {
    "nonfinite": "inf/NaN",
    "error_1e-3": "err>=1e-3",
    "error_1e-1": "err>=0.1",
    "error_1": "err>=100%",
    "raises": "raises",
}

_OUTPUT_TITLE = (
    "Output layer (1 -> 1, sigmoid + bce, h = b exactly): first float h, moving out "
    "from 0, where dJ/db goes bad"
)
_HIDDEN_TITLE = (
    "Hidden layer (1 -> 1 -> 1, hidden pre-activation h = b1 exactly): first "
    "float h where dJ/dW1 comes back exactly 0"
)
_HIDDEN_HEADER = (
    "implementation",
    "dtype",
    "hidden",
    "side",
    "returns 0 from",
    "exact rounds to 0 from",
    "",
)


def _cell(t: Threshold, side: SideScan | None = None) -> str:
    """The threshold's cell (``side``: of an output-layer criterion, which can be "finite")."""
    return threshold_cell(
        t.value if t.found else None,
        t.bits,
        criterion=t.criterion if side is not None else "",
        settled=t.settled,
        monotone=t.monotone,
        raises_anywhere=side is not None and side.raises_anywhere,
    )


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[k])) for r in (header, *lines)) for k in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for r in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return out


def _output_lines(rows: Sequence[ScanRow], criteria: Sequence[str]) -> list[list[str]]:
    """One line per row and side: the first side's line names the row."""
    lines = []
    for row in rows:
        for k, side in enumerate(row.sides):
            cells = [_cell(side.thresholds[c], side) for c in criteria]
            lead = [row.implementation, row.dtype, format_label(row.label)] if k == 0 else [""] * 3
            side_text = format_side(side.side, compact=True)
            lines.append([*lead, side_text, *cells, format_bits(side.max_error_bits)])
    return lines


def _output_notes(rows: Sequence[ScanRow | FunctionScan], criteria: Sequence[str]) -> list[str]:
    thresholds = [s.thresholds[c] for row in rows for s in row.sides for c in criteria]
    notes = [
        "err = relative error against the exact gradient (a correctly rounded result "
        "counts as exact); max bits = worst log2(1 + ulps) over the checked floats."
    ]
    sampled = {row.dtype for row in rows if any(s.verification == "sampled" for s in row.sides)}
    if sampled:
        notes.append(
            f"Checked on sampled floats ({', '.join(sorted(sampled))}): a bad float "
            "isolated between checked floats below a threshold can be missed (float16 "
            "and bfloat16 output and hidden scans are checked at every float)."
        )
    if any(t.found and not t.monotone for t in thresholds):  # the cells marked *
        notes.append(
            "* not monotone: the gradient is good again by this column's measure "
            "somewhere past this float (regions in the JSON output)."
        )
    if any(t.found and not t.settled for t in thresholds):  # the cells marked <=
        notes.append(
            "<= noisy: bad floats continue below this one past the search limit, so "
            "the first is at or below it."
        )
    return notes


def _hidden_line(h: HiddenUnderflow) -> list[str]:
    zero, limit = _cell(h.first_zero), _cell(h.representable_limit)
    early = ""
    if h.first_zero.found and h.representable_limit.found:
        if abs(h.first_zero.value) < abs(h.representable_limit.value):
            early = "early"
    return [
        h.implementation,
        h.dtype,
        h.activation,
        format_side(h.side, compact=True),
        zero,
        limit,
        early,
    ]


_FUNCTION_TITLES = {
    "activation": (
        "Hidden-layer derivative (1 -> 1 -> 1, hidden pre-activation h = b1 exactly; probe "
        "output and labels in the probe column): first float h where dJ/dW1 goes bad"
    ),
    "loss": (
        "Output delta (1 -> 1, 2 outputs for softmax_ce, logit h = b exactly): first float "
        "h where dJ/db goes bad"
    ),
}


def _function_lines(scans: Sequence[FunctionScan], criteria: Sequence[str]) -> list[list[str]]:
    """One line per function scan and side: the first side's line names the scan."""
    lines = []
    for f in scans:
        probe = f"{f.probe_output}+{f.probe_loss}"
        for k, side in enumerate(f.sides):
            y = format_label(f.labels[side.side])
            lead = [f.implementation, f.dtype, f.function, probe] if k == 0 else [""] * 4
            cells = [_cell(side.thresholds[c], side) for c in criteria]
            side_text = format_side(side.side, compact=True)
            lines.append([*lead, y, side_text, *cells, format_bits(side.max_error_bits)])
    return lines


def _function_sections(scans: Sequence[FunctionScan], criteria: Sequence[str]) -> list[str]:
    out = []
    for kind, title in _FUNCTION_TITLES.items():
        chosen = [f for f in scans if f.kind == kind]
        if not chosen:
            continue
        header = [
            "implementation",
            "dtype",
            kind,
            "probe",
            "y",
            "side",
            *(_HEADINGS[c] for c in criteria),
            "max bits",
        ]
        out += ["", title, *_table(header, _function_lines(chosen, criteria))]
    return out


def scan_table(
    rows: Sequence[ScanRow],
    hidden: Sequence[HiddenUnderflow],
    skipped: Mapping[str, str],
    functions: Sequence[FunctionScan] = (),
) -> str:
    """The table of output-layer ``rows``, ``hidden`` underflow and the scans of named
    ``functions``, with notes on ``skipped`` dtypes (``{dtype: why}``); see
    :func:`.result.format_scan_table`."""
    criteria = [c for c in CRITERIA if c != "raises"]
    scanned = [*rows, *functions]
    if any(s.raises_anywhere for row in scanned for s in row.sides):
        criteria.append("raises")
    header = ["implementation", "dtype", "y", "side", *(_HEADINGS[c] for c in criteria), "max bits"]
    out = [_OUTPUT_TITLE, *_table(header, _output_lines(rows, criteria))] if rows else []
    notes = _output_notes(scanned, criteria)
    if hidden:
        out += ["", _HIDDEN_TITLE, *_table(_HIDDEN_HEADER, [_hidden_line(h) for h in hidden])]
        notes.append("early = the returned gradient underflows before the dtype forces it to.")
    if functions:
        out += _function_sections(functions, criteria)
        notes.append(
            "Function scans: an exact gradient of exactly 0 (relu, h < 0) fails only where "
            "a nonzero or inf/NaN value is returned; at a kink (relu at 0) only inf/NaN "
            "and failed calls count."
        )
    notes.extend(f"{note}." for note in skipped_dtype_notes(dict(skipped)))
    return "\n".join([*(out[1:] if out and not out[0] else out), "", *notes])
