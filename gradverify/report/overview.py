"""The paragraph a report opens with: which forms are safe, where each unsafe form first
breaks in each dtype, and what the results say went wrong there.

Everything in it is read from the results, never guessed:

* the verdicts (overall and per dtype) and the search's own words for its shrunk
  counterexample (``message``) and its hints (``diagnosis``);
* from the scan, per dtype, the first float logit h (moving out from 0, exact, with its bit
  pattern) where the gradient is lost: the call returns inf/NaN, the call fails, or, where
  the exact gradient stays about +-1 (:func:`~gradverify.report.scan_data.gradient_stays_large`),
  the relative error reaches 100%; with what the call returned there and the exact gradient.

A mechanism ("it divides by y_hat (1 - y_hat)") is not in the results, so it is not in the
paragraph: what the implementation returned and where is.

A form is called safe only when it was searched, passed overall and at every dtype, and the
scan (if it ran) found no break. Single-problem checks (the pytest plugin's report) are
merged per name and, when they pass, are said to have passed, not to be safe.

``overview(implementations, scans)`` gives ``{"text", "opening", "safe", "forms",
"definition"}``; each form has ``implementation``, ``verdict``, ``safe``, ``checks_only``,
``scanned``, ``breaks`` (one per dtype that breaks: ``dtype``, ``value``, ``decimal``,
``bits``, ``settled``, ``criterion``, ``label``, ``side``, ``status``, ``returned``,
``exact``, ``message``) and ``sentence``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gradverify.common.formatting import (
    as_float,
    format_label,
    format_logit,
    format_number,
    format_side,
    format_threshold,
    json_number,
    shorten,
)
from gradverify.model.names import DTYPE_NAMES
from gradverify.report.scan_data import gradient_stays_large

__all__ = ["BREAK_CRITERIA", "VERDICT_MEANING", "form_breaks", "overview"]

VERDICT_MEANING = {
    "unstable": "right in the interior, wrong or inf/NaN only at saturation",
    "incorrect": "wrong at ordinary, unsaturated values: a logic bug",
    "error": "raised, hung or returned something malformed",
}
"""What each failing verdict means, in the words of the verdict table."""

BREAK_CRITERIA = ("nonfinite", "raises", "error_1")
"""The scan criteria that mean the gradient is lost: inf/NaN, a failed call, and (where
the exact gradient stays about +-1) a relative error of 100%."""

BREAK_DEFINITION = (
    "A form breaks at the first float logit h, moving out from 0, where the scan's one-layer "
    "sigmoid + BCE gradient comes back inf/NaN, the call fails, or, where the exact "
    "gradient stays about ±1, it is 100% wrong."
)


# ---------------------------------------------------------------------------
# Where each form breaks: the scan's first failing floats
# ---------------------------------------------------------------------------


def _failing_thresholds(scan: Mapping[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Every found threshold of ``name`` in ``scan`` under a break criterion."""
    for row in scan.get("rows", []):
        if str(row.get("implementation", scan.get("implementation"))) != name:
            continue
        for side_name, side in (row.get("sides") or {}).items():
            for criterion, t in (side.get("thresholds") or {}).items():
                if criterion not in BREAK_CRITERIA or not t.get("found"):
                    continue
                if criterion == "error_1" and not gradient_stays_large(row.get("label"), side_name):
                    continue
                yield {
                    "dtype": row.get("dtype"),
                    "label": row.get("label"),
                    "side": side_name,
                    "criterion": criterion,
                    "threshold": t,
                }


def _break_record(found: Mapping[str, Any]) -> dict[str, Any]:
    t = found["threshold"]
    return {
        "dtype": found["dtype"],
        "value": json_number(as_float(t.get("value"))),
        "decimal": t.get("decimal"),
        "bits": t.get("bits"),
        "settled": bool(t.get("settled", True)),
        "criterion": found["criterion"],
        "label": found["label"],
        "side": found["side"],
        "status": t.get("status"),
        "returned": json_number(as_float(t.get("gradient"))),
        "exact": json_number(as_float(t.get("exact"))),
        "message": t.get("message"),
    }


def form_breaks(name: str, scans: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per dtype (narrowest first), the float closest to 0 where ``name``'s gradient is lost
    in the scans (ties: inf/NaN before a failed call before 100% error)."""
    first: dict[str, tuple[tuple[float, int], dict[str, Any]]] = {}
    order = {c: k for k, c in enumerate(BREAK_CRITERIA)}
    for scan in scans:
        for found in _failing_thresholds(scan, name):
            key = (abs(as_float(found["threshold"].get("value"), 0.0)), order[found["criterion"]])
            best = first.get(found["dtype"])
            if best is None or key < best[0]:
                first[found["dtype"]] = (key, found)
    ranked = sorted(first, key=lambda d: DTYPE_NAMES.index(d) if d in DTYPE_NAMES else 99)
    return [_break_record(first[d][1]) for d in ranked]


# ---------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------


def _series(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _returned(b: Mapping[str, Any]) -> str:
    """What the call gave at the break: ``returns NaN``, ``returns 0``, ``fails (...)``."""
    if b["status"] == "error":
        return "fails" + (f" ({shorten(b['message'], 80)})" if b.get("message") else "")
    value = as_float(b["returned"])
    if value is None:
        return "returns nothing comparable"
    return "returns " + format_number(value, ".4g")


def _where(b: Mapping[str, Any]) -> str:
    """``y = 0, h > 0``."""
    return f"y = {format_label(b['label'])}, {format_side(b['side'])}"


def _confidently_wrong(b: Mapping[str, Any]) -> bool:
    label = as_float(b["label"])
    return (label == 0.0 and b["side"] == "positive") or (label == 1.0 and b["side"] == "negative")


def _at(b: Mapping[str, Any], *, with_where: bool) -> str:
    """``h = 7.625 (0x47a0) in float16``; ``<=`` for an upper bound."""
    sign = "=" if b["settled"] else "≤"
    bits = b.get("bits")
    detail = [bits] if bits else []
    if with_where:
        detail.append(_where(b))
    if not b["settled"]:
        detail.append("an upper bound")
    inner = f" ({'; '.join(detail)})" if detail else ""
    return f"h {sign} {format_threshold(b['value'])}{inner} in {b['dtype']}"


def _grouped(breaks: Sequence[Mapping[str, Any]], text: Any) -> list[tuple[str, list[str]]]:
    """``[(text(b), [dtypes]), ...]`` in first-seen order."""
    groups: dict[str, list[str]] = {}
    for b in breaks:
        groups.setdefault(text(b), []).append(b["dtype"])
    return list(groups.items())


def _what_happens(breaks: Sequence[Mapping[str, Any]]) -> str:
    """``it returns NaN where the exact gradient is about 1``, per dtype where they differ."""
    returned = _grouped(breaks, _returned)
    if len(returned) == 1:
        does = returned[0][0]
    else:
        does = " and ".join(f"{r} in {_series(d)}" for r, d in returned)
    known = [b for b in breaks if as_float(b["exact"]) is not None]
    exact = _grouped(known, lambda b: format_number(b["exact"], ".2g"))
    if not known:
        return f"it {does}"
    if len(exact) == 1 and len(known) == len(breaks):
        is_ = f"about {exact[0][0]}"
    else:
        is_ = _series([f"{format_number(b['exact'], '.4g')} in {b['dtype']}" for b in known])
    return f"it {does}, where the exact gradient is {is_}"


def _breaks_sentence(breaks: Sequence[Mapping[str, Any]]) -> str:
    """Where and how the gradient is first lost, one sentence for every dtype."""
    places = _grouped(breaks, _where)
    shared = len(places) == 1
    at = _series([_at(b, with_where=not shared) for b in breaks])
    sentence = f"Its gradient is first lost at {at}; there"
    if shared:
        wrong = " (a confident wrong prediction)" if _confidently_wrong(breaks[0]) else ""
        sentence += f", with {places[0][0].replace(', ', ' and ')}{wrong},"
    return f"{sentence} {_what_happens(breaks)}."


_SEVERITY = ("error", "incorrect", "unstable", "pass")


def _dtype_verdicts(impl: Mapping[str, Any]) -> str:
    """``incorrect at float64 and unstable at float16 and float32`` (worst first), or ``""``
    when every dtype has the same verdict."""
    groups = _grouped(impl.get("dtypes") or [], lambda d: str(d.get("verdict")))
    if len(groups) < 2:
        return ""
    groups.sort(key=lambda g: _SEVERITY.index(g[0]) if g[0] in _SEVERITY else -1)
    return _series([f"{v} at {_series(d)}" for v, d in groups])


def _why(impl: Mapping[str, Any]) -> str:
    """The search's own words for its first counterexample, and its hints."""
    cxs = impl.get("counterexamples") or []
    own = (cxs[0].get("diagnosis") or []) if cxs else []
    hints = list(dict.fromkeys([*(impl.get("diagnosis") or []), *own]))
    parts = []
    if cxs and cxs[0].get("message"):
        cx = cxs[0]
        what = (
            "failing check" if impl.get("source") == "check" else "search's shrunk counterexample"
        )
        parts.append(f"The {what} ({cx.get('dtype')}): {cx['message']}.")
    if hints:
        parts.append("Hints: " + "; ".join(str(h) for h in hints) + ".")
    return " ".join(parts)


def _checked(impl: Mapping[str, Any]) -> str:
    """``all 240 search examples at float16 and float32``, ``its 3 checks at float64``."""
    dtypes = _series([str(d.get("dtype")) for d in impl.get("dtypes") or []]) or "every dtype"
    n = impl.get("examples")
    if impl.get("source") == "check":
        return (f"its {n} checks" if n and n > 1 else "its check") + f" at {dtypes}"
    return (f"all {n} search examples" if n is not None else "every search example") + (
        f" at {dtypes}"
    )


def _unscanned_failures(impl: Mapping[str, Any], breaks: Sequence[Mapping[str, Any]]) -> str:
    """Failing dtypes the scan has no break for (or all of them, without a scan)."""
    broken = {b["dtype"] for b in breaks}
    missing = [
        d
        for d in impl.get("dtypes") or []
        if d.get("verdict") not in (None, "pass") and d.get("dtype") not in broken
    ]
    if not missing:
        return ""
    places = [
        f"{d['dtype']} ({d['verdict']}"
        + (
            f" from max |h| = {format_logit(d['threshold_saturation'])})"
            if d.get("threshold_saturation") is not None
            else ")"
        )
        for d in missing
    ]
    return f"The search fails it in {_series(places)}."


def _head(impl: Mapping[str, Any], form: Mapping[str, Any]) -> str:
    """The first sentence about a form that is not safe: its verdict and what it means."""
    name, verdict = form["implementation"], form["verdict"]
    if verdict == "pass":
        return f"{name} passed {_checked(impl)}, but is not safe."
    per_dtype = _dtype_verdicts(impl)
    if per_dtype:
        return f"{name} is not safe: {per_dtype}."
    meaning = VERDICT_MEANING.get(str(verdict))
    return f"{name} is not safe: {verdict}" + (f" ({meaning})." if meaning else ".")


def _sentence(impl: Mapping[str, Any], form: Mapping[str, Any]) -> str:
    name, breaks = form["implementation"], form["breaks"]
    if form["safe"]:
        scan = (
            ", and the scan of the float lattice finds no inf/NaN, no failed call and no 100% "
            "error where the gradient is about ±1"
            if form["scanned"]
            else "; it was not scanned float by float"
        )
        return f"{name} is safe: it passed {_checked(impl)}{scan}."
    if _passed_checks_only(impl, breaks):
        return (
            f"{name} passed {_checked(impl)}: single problems, neither searched nor scanned, "
            "so this says nothing about other inputs."
        )
    parts = [
        _head(impl, form),
        _breaks_sentence(breaks) if breaks else "",
        "" if form["scanned"] else "It was not scanned float by float.",
        _unscanned_failures(impl, breaks),
        _why(impl),
    ]
    return " ".join(p for p in parts if p)


def _opening(forms: Sequence[Mapping[str, Any]]) -> str:
    """``Safe: a. Passed single checks only: b. Not safe: c (unstable).``"""
    if not forms:
        return "No implementation was checked."
    safe = [f["implementation"] for f in forms if f["safe"]]
    checked = [f["implementation"] for f in forms if f["checks_only"]]
    unsafe = [
        f"{f['implementation']} ({f['verdict']})"
        for f in forms
        if not f["safe"] and not f["checks_only"]
    ]
    parts = [f"Safe: {_series(safe)}."] if safe else []
    parts += [f"Passed single checks only: {_series(checked)}."] if checked else []
    if unsafe:
        parts.append(f"{'Not safe' if parts else 'No form is safe'}: {_series(unsafe)}.")
    return " ".join(parts)


def _passes(impl: Mapping[str, Any], breaks: Sequence[Mapping[str, Any]]) -> bool:
    """Passed overall and at every dtype it ran, and the scan found no break."""
    dtypes = impl.get("dtypes") or []
    return (
        impl.get("verdict") == "pass"
        and all(d.get("verdict") == "pass" for d in dtypes)
        and not breaks
    )


def _passed_checks_only(impl: Mapping[str, Any], breaks: Sequence[Mapping[str, Any]]) -> bool:
    """Passed, but only single-problem checks ran: too little to call it safe."""
    return impl.get("source") == "check" and _passes(impl, breaks)


def _is_safe(impl: Mapping[str, Any], breaks: Sequence[Mapping[str, Any]]) -> bool:
    """Searched, passed overall and at every dtype, and the scan found no break."""
    return impl.get("source", "search") == "search" and _passes(impl, breaks)


def _worst(verdicts: Sequence[Any]) -> Any:
    known = [v for v in verdicts if v in _SEVERITY]
    return min(known, key=_SEVERITY.index) if known else (verdicts[0] if verdicts else None)


def _merge_checks(implementations: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries, with the single-problem checks of one name merged into one (the pytest
    plugin's report holds a check per test): worst verdict overall and per dtype, every
    counterexample and hint, the number of checks as ``examples``."""
    merged: dict[str, dict[str, Any]] = {}
    out: list[Mapping[str, Any]] = []
    for impl in implementations:
        if impl.get("source") != "check":
            out.append(impl)
            continue
        name = str(impl.get("name"))
        entry = merged.get(name)
        if entry is None:
            entry = merged[name] = {
                "name": name,
                "source": "check",
                "examples": 0,
                "verdicts": [],
                "per_dtype": {},
                "counterexamples": [],
                "diagnosis": [],
            }
            out.append(entry)
        entry["examples"] += 1
        entry["verdicts"].append(impl.get("verdict"))
        for d in impl.get("dtypes") or []:
            entry["per_dtype"].setdefault(d.get("dtype"), []).append(d.get("verdict"))
        entry["counterexamples"] += impl.get("counterexamples") or []
        entry["diagnosis"] += impl.get("diagnosis") or []
    for entry in merged.values():
        entry["verdict"] = _worst(entry.pop("verdicts"))
        per_dtype = entry.pop("per_dtype")
        entry["dtypes"] = [{"dtype": d, "verdict": _worst(v)} for d, v in per_dtype.items()]
    return out


def overview(
    implementations: Sequence[Mapping[str, Any]], scans: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The opening paragraph of a report, from the document's ``implementations`` entries
    and the raw scan dicts (``gradverify.scan/1``)."""
    scanned_names = {
        str(row.get("implementation", s.get("implementation")))
        for s in scans
        for row in s.get("rows", [])
    }
    forms = []
    for impl in _merge_checks(implementations):
        name = str(impl.get("name"))
        breaks = form_breaks(name, scans)
        form = {
            "implementation": name,
            "verdict": impl.get("verdict"),
            "safe": _is_safe(impl, breaks),
            "checks_only": _passed_checks_only(impl, breaks),
            "scanned": name in scanned_names,
            "breaks": breaks,
        }
        form["sentence"] = _sentence(impl, form)
        forms.append(form)
    sentences = [_opening(forms), *(f["sentence"] for f in forms)]
    if any(f["breaks"] for f in forms):
        sentences.append(BREAK_DEFINITION)
    return {
        "text": " ".join(sentences),
        "opening": sentences[0],
        "safe": [f["implementation"] for f in forms if f["safe"]],
        "forms": forms,
        "definition": BREAK_DEFINITION if any(f["breaks"] for f in forms) else None,
    }
