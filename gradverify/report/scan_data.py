"""Reading scan results (``gradverify.scan/1`` dicts) into the report's thresholds and sweeps.

The scan reports, per implementation x dtype x label x side of 0, the first float logit h
where each criterion (inf/NaN, relative error >= 1e-3, 0.1, 1, the call failing) starts,
and sweeps of the error against |h|. Here they become flat rows for ``report.json``,
the table on the page, and the series of the error-vs-saturation figure (both sides of
0 joined into one line over the signed logit h).

Scans of named activations and losses (the optional ``functions`` of a scan) become series
and threshold marks of the same figure style (:func:`function_sweeps`,
:func:`function_marks`): one panel column per activation, or per loss and label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gradverify.common.formatting import (
    as_float,
    format_bits,
    format_label,
    format_side,
    threshold_cell,
)

__all__ = [
    "CRITERIA_HEADINGS",
    "PLOTTED_CRITERIA",
    "function_marks",
    "function_sweeps",
    "hidden_table",
    "hidden_thresholds",
    "scan_sweeps",
    "gradient_stays_large",
    "scan_thresholds",
    "threshold_summary",
    "threshold_table",
]

CRITERIA_HEADINGS = {
    "nonfinite": "inf/NaN",
    "error_1e-3": "rel. err >= 1e-3",
    "error_1e-1": "rel. err >= 0.1",
    "error_1": "rel. err >= 100%",
    "raises": "call fails",
}
"""The scan's output-layer criteria, in table order, with their column headings."""

PLOTTED_CRITERIA = {"nonfinite": "inf/NaN", "error_1": "100% error"}
"""Criteria marked on the error-vs-saturation figure (the others are in the table)."""


def _float(value: Any) -> float:
    """A number from scan data; NaN where there is none."""
    return as_float(value, math.nan)


def scan_thresholds(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per implementation x dtype x label x side x criterion.

    Keys: ``implementation``, ``dtype``, ``label``, ``side``, ``criterion``, ``found``,
    ``value`` (the signed logit h, exact), ``saturation`` (|h|), ``decimal``, ``bits`` (the
    bit pattern in the dtype), ``monotone``, ``settled`` (False: an upper bound, earlier bad
    floats may exist), ``finite_throughout`` (of the side), ``plot``.
    """
    rows = []
    for row in scan.get("rows", []):
        for side_name, side in (row.get("sides") or {}).items():
            for criterion, t in (side.get("thresholds") or {}).items():
                found = bool(t.get("found"))
                value = t.get("value") if found else None
                rows.append(
                    {
                        "implementation": row.get("implementation", scan.get("implementation")),
                        "dtype": row.get("dtype"),
                        "label": row.get("label"),
                        "side": side_name,
                        "criterion": criterion,
                        "found": found,
                        "value": value,
                        "saturation": abs(_float(value)) if found else None,
                        "decimal": t.get("decimal"),
                        "bits": t.get("bits"),
                        "monotone": bool(t.get("monotone", True)),
                        "settled": bool(t.get("settled", True)),
                        "finite_throughout": bool(side.get("finite_throughout", False)),
                        "raises_anywhere": bool(side.get("raises_anywhere", False)),
                        "max_error_bits": side.get("max_error_bits"),
                        "plot": found and criterion in PLOTTED_CRITERIA,
                    }
                )
    return rows


def _cell(t: Mapping[str, Any]) -> str:
    return threshold_cell(
        t["value"] if t["found"] else None,
        t.get("bits"),
        criterion=t["criterion"],
        settled=t.get("settled", True),
        monotone=t["monotone"],
        raises_anywhere=t["raises_anywhere"],
    )


def threshold_table(thresholds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The thresholds as a table: one row per implementation x dtype x label x side.

    Returns ``{"columns": [...], "rows": [[str, ...], ...], "note": str}``.
    """
    if not thresholds:
        return {"columns": [], "rows": [], "note": ""}
    criteria = [c for c in CRITERIA_HEADINGS if c != "raises"]
    if any(t["criterion"] == "raises" and t["found"] for t in thresholds):
        criteria.append("raises")
    groups: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for t in thresholds:
        key = (t["implementation"], t["dtype"], t["label"], t["side"])
        groups.setdefault(key, {})[t["criterion"]] = t
    rows, starred = [], False
    unsettled = any(not t.get("settled", True) for t in thresholds if t["found"])
    for (impl, dtype, label, side), by_criterion in groups.items():
        cells = [_cell(by_criterion[c]) if c in by_criterion else "-" for c in criteria]
        starred = starred or any(c.endswith("*") for c in cells)
        any_t = next(iter(by_criterion.values()))
        max_bits = format_bits(any_t.get("max_error_bits"))
        rows.append(
            [str(impl), str(dtype), format_label(label), format_side(side), *cells, max_bits]
        )
    note = (
        "Each cell is the first float h, moving out from 0, where the gradient of a "
        "one-layer sigmoid + BCE network (h = b exactly) meets the column's criterion: "
        "its value and its bit pattern in the dtype. Relative error is against the "
        "exact gradient; a correctly rounded result counts as exact. max bits: the "
        "worst log2(1 + ulps) over the checked floats."
    )
    if starred:
        note += (
            " * not monotone: the criterion holds again somewhere past this float "
            "(the regions are in report.json)."
        )
    if unsettled:
        note += (
            " <= : the first bad float found; the search for earlier ones stopped at "
            "its limit, so the true threshold may be lower."
        )
    return {
        "columns": [
            "implementation",
            "dtype",
            "y",
            "side",
            *(CRITERIA_HEADINGS[c] for c in criteria),
            "max bits",
        ],
        "rows": rows,
        "note": note,
    }


SUMMARY_CRITERIA = ("nonfinite", "error_1e-3", "error_1")


def gradient_stays_large(label: Any, side: str) -> bool:
    """Whether dJ/dh = sigmoid(h) - y tends to a non-zero limit on this side of 0.

    It tends to 1 - y as h -> +inf and to -y as h -> -inf: for y = 0 only h > 0 (a
    confidently wrong prediction) keeps a gradient of about 1; there the relative error
    says how wrong the update is. On the other side the exact gradient is about e^-|h|,
    and any form that computes sigmoid(h) - y keeps only its absolute accuracy.
    """
    y = _float(label)
    return y < 1.0 if side == "positive" else y > 0.0


def _summary_cell(items: Sequence[Mapping[str, Any]], criterion: str) -> str:
    """The threshold closest to 0 among ``items`` for ``criterion``, with where it is."""
    found = [
        t
        for t in items
        if t["criterion"] == criterion
        and t["found"]
        and (criterion == "nonfinite" or gradient_stays_large(t["label"], t["side"]))
    ]
    if not found:
        return threshold_cell(None, criterion=criterion)
    first = min(found, key=lambda t: (abs(_float(t["value"])), t["side"]))
    return threshold_cell(
        first["value"],
        first["bits"],
        settled=first.get("settled", True),
        where=f"y={format_label(first['label'])}, {format_side(first['side'])}",
    )


def threshold_summary(thresholds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One row per implementation x dtype: for each criterion, the float closest to 0 where
    it starts, with the label and side it was found at. inf/NaN counts on every label and
    side; the error levels only where the exact gradient stays large
    (:func:`gradient_stays_large`)."""
    if not thresholds:
        return {"columns": [], "rows": [], "note": ""}
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for t in thresholds:
        groups.setdefault((t["implementation"], t["dtype"]), []).append(t)
    rows = [
        [str(impl), str(dtype), *(_summary_cell(items, c) for c in SUMMARY_CRITERIA)]
        for (impl, dtype), items in groups.items()
    ]
    return {
        "columns": [
            "implementation",
            "dtype",
            "first inf/NaN at h =",
            "first rel. err >= 1e-3 at h = (gradient about +-1)",
            "first rel. err >= 100% at h = (gradient about +-1)",
        ],
        "rows": rows,
        "note": (
            "The float logit closest to 0 where the gradient of a one-layer sigmoid + "
            "BCE network (h = b exactly) first meets each criterion. inf/NaN: over "
            "both labels and both sides of 0. Relative error: where the exact gradient "
            "sigmoid(h) - y stays about +-1, i.e. a confident wrong prediction "
            "(y = 0, h > 0 or y = 1, h < 0); on the other side it is about e^-|h| and "
            "every form that computes sigmoid(h) - y, the stable baseline included, "
            "keeps only its absolute accuracy (see the full table and the figure)."
        ),
    }


def hidden_thresholds(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Hidden-unit underflow rows: where dJ/dW1 of a saturated hidden unit comes back 0."""
    out = []
    for h in scan.get("hidden", []):
        zero, limit = h.get("first_zero") or {}, h.get("representable_limit") or {}
        out.append(
            {
                "implementation": h.get("implementation", scan.get("implementation")),
                "dtype": h.get("dtype"),
                "activation": h.get("activation"),
                "side": h.get("side"),
                "first_zero": zero.get("value") if zero.get("found") else None,
                "first_zero_bits": zero.get("bits") if zero.get("found") else None,
                "representable_limit": limit.get("value") if limit.get("found") else None,
                "representable_limit_bits": limit.get("bits") if limit.get("found") else None,
            }
        )
    return out


def hidden_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The hidden-unit underflow rows as a table (columns, rows, note)."""
    if not rows:
        return {"columns": [], "rows": [], "note": ""}

    body = []
    for r in rows:
        early = ""
        if (
            r["first_zero"] is not None
            and r["representable_limit"] is not None
            and abs(_float(r["first_zero"])) < abs(_float(r["representable_limit"]))
        ):
            early = "yes"
        body.append(
            [
                str(r["implementation"]),
                str(r["dtype"]),
                str(r["activation"]),
                format_side(r["side"]),
                threshold_cell(r["first_zero"], r["first_zero_bits"]),
                threshold_cell(r["representable_limit"], r["representable_limit_bits"]),
                early,
            ]
        )
    return {
        "columns": [
            "implementation",
            "dtype",
            "hidden activation",
            "side",
            "returns 0 from h =",
            "exact rounds to 0 from h =",
            "early",
        ],
        "rows": body,
        "note": (
            "A 1 -> 1 -> 1 network whose hidden pre-activation is h exactly: the first "
            "float h where the returned dJ/dW1 is exactly 0 although the exact value "
            "is not, and where the exact value itself rounds to 0 in the dtype. "
            "early: the implementation underflows before the dtype forces it to."
        ),
    }


def scan_sweeps(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sweep series with both sides of 0 joined, ordered by the signed logit h.

    Keys: ``implementation``, ``dtype``, ``label``, ``h``, ``saturation`` (|h|), ``bits``,
    ``relative_error``, ``nonfinite``, ``error`` (lists of equal length).
    """
    joined: dict[tuple, list[tuple]] = {}
    for s in scan.get("sweeps", []):
        key = (s.get("implementation", scan.get("implementation")), s.get("dtype"), s.get("label"))
        points = joined.setdefault(key, [])
        for h, bits, rel, nonfinite, error in zip(
            s.get("h", []),
            s.get("bits", []),
            s.get("relative_error", []),
            s.get("nonfinite", []),
            s.get("error", []),
            strict=True,
        ):
            points.append((_float(h), bits, rel, bool(nonfinite), bool(error)))
    out = []
    for (impl, dtype, label), points in joined.items():
        points.sort(key=lambda p: p[0])
        out.append(
            {
                "implementation": impl,
                "dtype": dtype,
                "label": label,
                "h": [p[0] for p in points],
                "saturation": [abs(p[0]) for p in points],
                "bits": [p[1] for p in points],
                "relative_error": [p[2] for p in points],
                "nonfinite": [p[3] for p in points],
                "error": [p[4] for p in points],
            }
        )
    return out


def _function_column(f: Mapping[str, Any]) -> str:
    """The panel a function scan is drawn in: ``"softplus"``, ``"mse y=0"``."""
    name = str(f.get("function"))
    if f.get("kind") == "loss":
        label = (f.get("labels") or {}).get("positive")
        return f"{name} y={format_label(label)}"
    return name


def function_sweeps(scan: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The sweeps of a scan's ``kind`` function scans ("activation" or "loss"), both sides
    of 0 joined as in :func:`scan_sweeps`, with ``column`` (the panel) instead of a label."""
    out = []
    for f in scan.get("functions", []):
        if f.get("kind") != kind:
            continue
        # an activation's probe has a label per side: join the sides by the panel instead
        sides = [dict(s, label=None) for s in f.get("sweeps", [])]
        joined = {"implementation": f.get("implementation", scan.get("implementation"))}
        for series in scan_sweeps({**joined, "sweeps": sides}):
            out.append(dict(series, column=_function_column(f)))
    return out


def function_marks(scan: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The thresholds of a scan's ``kind`` function scans drawn on its figure (inf/NaN and
    100% error), as marks: ``implementation``, ``dtype``, ``column``, ``value``, ``kind``."""
    out = []
    for f in scan.get("functions", []):
        if f.get("kind") != kind:
            continue
        for side in (f.get("sides") or {}).values():
            for criterion, t in (side.get("thresholds") or {}).items():
                if criterion in PLOTTED_CRITERIA and t.get("found"):
                    out.append(
                        {
                            "implementation": f.get("implementation", scan.get("implementation")),
                            "dtype": f.get("dtype"),
                            "column": _function_column(f),
                            "label": None,
                            "value": t.get("value"),
                            "kind": PLOTTED_CRITERIA[criterion],
                        }
                    )
    return out
