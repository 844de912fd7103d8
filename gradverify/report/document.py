"""The report document ``gradverify.report/1``: every number of a report, as plain JSON data.

The document is what ``report.json`` holds and what the HTML page, the Markdown summary
and the figures are drawn from. Its schema is ``gradverify/schemas/report.schema.json``;
the top level is:

``schema``            the string ``"gradverify.report/1"``
``title``             the report's title
``generator``         versions: gradverify, Python, numpy, mpmath (and its backend), matplotlib
``settings``          dtypes, max_examples, seed as requested (null: the defaults)
``elapsed_seconds``   wall time of the whole run
``overview``          the paragraph the report opens with (``text``), read from the results:
                      which forms are safe, and for each form that is not, where its
                      gradient is first lost per dtype (``forms[].breaks``: the scan's
                      first failing float, what the call returned there, the exact
                      gradient) and the search's own words for why (see
                      :mod:`gradverify.report.overview`)
``implementations``   one entry per checked implementation: ``name``, ``verdict``, ``source``
                      ("search" or "check"), ``examples``, ``worst_bits``, ``seed``,
                      ``saturation_range``, ``diagnosis``, ``dtypes`` (per dtype: ``verdict``,
                      ``examples``, ``worst_bits``, ``threshold_saturation``) and
                      ``counterexamples`` (``dtype``, ``verdict``, ``message``, ``saturation``,
                      ``network``, ``batch``, ``diagnosis``, ``worst``, ``reproduction``)
``thresholds``        one entry per scanned implementation x dtype x label x side x kind:
                      the first float logit h where the kind of failure starts
``threshold_summary`` per implementation x dtype, the first float (closest to 0) for
                      inf/NaN, 1e-3 and 100% error, as a table (columns, rows, note)
``threshold_table``   every threshold as a table (columns, rows, note)
``hidden_thresholds`` per scanned implementation x dtype x hidden activation x side: the
                      first float h where a saturated hidden unit's dJ/dW1 comes back 0
                      (``first_zero``) and where the exact value rounds to 0
                      (``representable_limit``), with bit patterns; ``hidden_table`` likewise
``sweeps``            error against |h_L| per implementation x dtype x label (figure 1)
``layers``            per-layer errors of one network (figure 2), or null
``hidden_underflow``  hidden-layer underflow fractions (figure 3), or null
``figures``           ``id``, ``file``, ``title``, ``caption`` of every PNG written
``notes``             remarks about the run (skipped dtypes, implementations, ...)
``results``           the full underlying results: ``searches``, ``scans`` (each with its own
                      versioned format) and ``checks``

Non-finite numbers are the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has none).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gradverify.common.formatting import as_float, format_bits, json_number

__all__ = [
    "SCHEMA",
    "SCHEMA_PATH",
    "as_dict",
    "build_document",
    "generator_info",
    "load_schema",
    "to_json",
]

SCHEMA = "gradverify.report/1"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


def load_schema() -> dict:
    """The JSON Schema (draft 2020-12) of the report document."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def as_dict(result: Any) -> dict:
    """A result object's ``to_dict()``, or the mapping itself."""
    if isinstance(result, Mapping):
        return dict(result)
    to_dict = getattr(result, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"expected a result with to_dict() or a dict; got {type(result).__name__}")
    return to_dict()


def _json_number(value: Any) -> float | str | None:
    """A number from a result dict (None, a float or "inf"/"nan") as stored in the document;
    anything else is None."""
    return json_number(as_float(value))


def generator_info() -> dict[str, str]:
    """The versions that produced a report."""
    import matplotlib
    import mpmath
    import numpy

    import gradverify
    from gradverify.exact.reference import mpmath_backend

    return {
        "gradverify": gradverify.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "mpmath": mpmath.__version__,
        "mpmath_backend": mpmath_backend(),
        "matplotlib": matplotlib.__version__,
    }


# ---------------------------------------------------------------------------
# Results -> the implementations section
# ---------------------------------------------------------------------------


def _network(spec: Mapping[str, Any] | None) -> str:
    if not spec:
        return "?"
    try:
        from gradverify.model.network import NetworkSpec

        return NetworkSpec(
            tuple(spec["widths"]), tuple(spec["activations"]), spec["loss"]
        ).describe()
    except (KeyError, TypeError, ValueError):
        return json.dumps(spec, sort_keys=True)


def _batch(check: Mapping[str, Any]) -> int | None:
    problem = check.get("problem") or {}
    x = problem.get("x")
    if isinstance(x, list) and x and isinstance(x[0], list):
        return len(x[0])
    return None


def counterexample(
    check: Mapping[str, Any],
    reproduction: str | None = None,
    diagnosis: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The page's view of one failing CheckResult dict."""
    return {
        "implementation": check.get("implementation"),
        "dtype": check.get("dtype"),
        "verdict": check.get("verdict"),
        "message": check.get("message") or "",
        "saturation": _json_number(check.get("saturation")),
        "network": _network(check.get("spec")),
        "batch": _batch(check),
        "diagnosis": list(diagnosis if diagnosis is not None else check.get("diagnosis") or []),
        "worst": list(check.get("worst") or []),
        "reproduction": reproduction,
    }


def beyond_stable_cell(dtype_entry: Mapping[str, Any]) -> str:
    """``", +12.0 bits beyond stable (dW1)"`` for a passing dtype entry, else ``""``."""
    beyond = dtype_entry.get("beyond_stable")
    if dtype_entry.get("verdict") != "pass" or not beyond:
        return ""
    bits = as_float(beyond.get("bits"))
    if bits is None:
        return ""
    if bits < 0.05:
        return ", as accurate as stable"
    tensor = beyond.get("tensor")
    return f", +{format_bits(bits)} bits beyond stable" + (f" ({tensor})" if tensor else "")


def _from_search(search: Mapping[str, Any]) -> dict[str, Any]:
    per_dtype = search.get("per_dtype") or {}
    dtypes, counterexamples = [], []
    for dtype, summary in per_dtype.items():
        dtypes.append(
            {
                "dtype": dtype,
                "verdict": summary.get("verdict"),
                "examples": summary.get("examples"),
                "worst_bits": _json_number(summary.get("worst_bits")),
                "threshold_saturation": _json_number(summary.get("threshold_saturation")),
                "beyond_stable": summary.get("beyond_stable"),
            }
        )
        if summary.get("counterexample"):
            counterexamples.append(
                counterexample(summary["counterexample"], summary.get("reproduction"))
            )
    primary = search.get("counterexample")
    if primary:
        cx = counterexample(primary, search.get("reproduction"))
        rest = [c for c in counterexamples if c["dtype"] != cx["dtype"]]
        counterexamples = [cx, *rest]
    saturation_range = search.get("saturation_range")
    return {
        "name": str(search.get("implementation")),
        "verdict": search.get("verdict"),
        "source": "search",
        "examples": search.get("examples"),
        "worst_bits": _json_number(search.get("worst_bits")),
        "seed": search.get("seed"),
        "elapsed_seconds": _json_number(search.get("elapsed_seconds", search.get("elapsed"))),
        "saturation_range": (
            [_json_number(v) for v in saturation_range] if saturation_range else None
        ),
        "diagnosis": list(search.get("diagnosis") or []),
        "dtypes": dtypes,
        "counterexamples": counterexamples,
    }


def _from_check(check: Mapping[str, Any]) -> dict[str, Any]:
    bits = [
        as_float(t.get("max_excess_bits", t.get("max_bits"))) for t in check.get("tensors") or []
    ]
    worst_bits = (
        None
        if check.get("verdict") == "error"  # an error has no bits of error
        else max((b for b in bits if b is not None), default=None)
    )
    failed = check.get("verdict") != "pass"
    return {
        "name": str(check.get("implementation")),
        "verdict": check.get("verdict"),
        "source": "check",
        "examples": 1,
        "worst_bits": _json_number(worst_bits),
        "seed": None,
        "elapsed_seconds": _json_number(check.get("elapsed_seconds")),
        "saturation_range": [_json_number(check.get("saturation"))] * 2,
        "diagnosis": list(check.get("diagnosis") or []),
        "dtypes": [
            {
                "dtype": check.get("dtype"),
                "verdict": check.get("verdict"),
                "examples": 1,
                "worst_bits": _json_number(worst_bits),
                "threshold_saturation": None,
            }
        ],
        "counterexamples": [counterexample(check)] if failed else [],
    }


# ---------------------------------------------------------------------------
# The whole document
# ---------------------------------------------------------------------------


def build_document(
    *,
    title: str,
    searches: Sequence[Mapping[str, Any]] = (),
    scans: Sequence[Mapping[str, Any]] = (),
    checks: Sequence[Mapping[str, Any]] = (),
    layers: Mapping[str, Any] | None = None,
    hidden_underflow: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    figures: Sequence[Mapping[str, Any]] = (),
    elapsed_seconds: float | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Assemble the report document from result dicts (``to_dict()`` of the results)."""
    from gradverify.report.overview import overview
    from gradverify.report.scan_data import (
        hidden_table,
        hidden_thresholds,
        scan_sweeps,
        scan_thresholds,
        threshold_summary,
        threshold_table,
    )

    implementations = [_from_search(s) for s in searches] + [_from_check(c) for c in checks]
    thresholds = [t for s in scans for t in scan_thresholds(s)]
    hidden_rows = [h for s in scans for h in hidden_thresholds(s)]
    return {
        "schema": SCHEMA,
        "title": str(title),
        "generator": generator_info(),
        "settings": dict(settings or {}),
        "elapsed_seconds": _json_number(elapsed_seconds),
        "overview": overview(implementations, scans),
        "implementations": implementations,
        "thresholds": thresholds,
        "threshold_summary": threshold_summary(thresholds),
        "threshold_table": threshold_table(thresholds),
        "hidden_thresholds": hidden_rows,
        "hidden_table": hidden_table(hidden_rows),
        "sweeps": [s for scan in scans for s in scan_sweeps(scan)],
        "layers": dict(layers) if layers is not None else None,
        "hidden_underflow": dict(hidden_underflow) if hidden_underflow is not None else None,
        "figures": [dict(f) for f in figures],
        "notes": [str(n) for n in notes],
        "results": {
            "searches": [dict(s) for s in searches],
            "scans": [dict(s) for s in scans],
            "checks": [dict(c) for c in checks],
        },
    }


def to_json(doc: Mapping[str, Any]) -> str:
    """The document as compact JSON text (``python -m json.tool`` pretty-prints it).

    Non-finite floats are an error here: the document stores them as strings.
    """
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False) + "\n"
