"""Everything one scan found (:class:`ScanResult`), as a table and as a JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gradverify.exact.reference import mpmath_backend
from gradverify.exploration.scan.criteria import CRITERIA, HIDDEN_CRITERIA, SCHEMA
from gradverify.exploration.scan.records import FunctionScan, HiddenUnderflow, ScanRow, SweepSeries
from gradverify.exploration.scan.table import scan_table

__all__ = ["ScanResult", "format_scan_table", "scan_document", "scan_schema"]


@dataclass(frozen=True)
class ScanResult:
    """Everything :func:`gradverify.exploration.scan.scan` found for one implementation.

    ``settings`` records the arguments that shaped the scan (``check_points``,
    ``neighbourhood``, ``exhaustive``, ``sweep_points``, ``timeout``); ``elapsed`` is in
    seconds.
    """

    implementation: str
    dtypes: tuple[str, ...]
    labels: tuple[float, ...]
    rows: list[ScanRow]
    sweeps: list[SweepSeries]
    hidden: list[HiddenUnderflow]
    elapsed: float
    settings: dict[str, Any] = field(default_factory=dict)
    skipped_dtypes: dict[str, str] = field(default_factory=dict)
    """``{dtype: why}`` for declared dtypes that are unavailable here."""
    functions: list[FunctionScan] = field(default_factory=list)
    """The scans of named activations and losses (``scan(activations=..., losses=...)``);
    in the JSON only when there are any."""

    def row(self, dtype: str, label: float) -> ScanRow:
        for r in self.rows:
            if r.dtype == dtype and r.label == label:
                return r
        raise KeyError(f"no scan row for dtype {dtype!r} and label {label!r}")

    def function(
        self, dtype: str, kind: str, name: str, label: float | None = None
    ) -> FunctionScan:
        """The function scan of ``name`` (``kind``: "activation" or "loss") on ``dtype``."""
        for f in self.functions:
            if (f.dtype, f.kind, f.function) == (dtype, kind, name) and (
                label is None or f.labels["positive"] == label
            ):
                return f
        raise KeyError(f"no {kind} scan of {name!r} for dtype {dtype!r}")

    def to_dict(self) -> dict:
        out = {
            "schema": SCHEMA,
            "implementation": self.implementation,
            "dtypes": list(self.dtypes),
            "skipped_dtypes": dict(self.skipped_dtypes),
            "labels": list(self.labels),
            "settings": dict(self.settings),
            "elapsed": self.elapsed,
            "rows": [r.to_dict() for r in self.rows],
            "hidden": [h.to_dict() for h in self.hidden],
            "sweeps": [s.to_dict() for s in self.sweeps],
        }
        if self.functions:
            out["functions"] = [f.to_dict() for f in self.functions]
        return out

    def __str__(self) -> str:
        return format_scan_table([self])


def format_scan_table(results: Sequence[ScanResult]) -> str:
    """A fixed-width table: one row per implementation x dtype x label (one line per side).

    Each cell is the first float h, moving outward from 0, that fails the column's
    criterion: its value (6 significant digits) and its exact bit pattern in the dtype.
    ``*`` marks a criterion that is not monotone (good again somewhere past it).
    """
    if isinstance(results, ScanResult):
        results = [results]
    return scan_table(
        [row for r in results for row in r.rows],
        [h for r in results for h in r.hidden],
        {d: why for r in results for d, why in r.skipped_dtypes.items()},
        [f for r in results for f in r.functions],
    )


def scan_document(results: Sequence[ScanResult]) -> dict:
    """The versioned JSON document (``"schema": "gradverify.scan/1"``) for several scans."""
    from gradverify.common.version import __version__

    return {
        "schema": SCHEMA,
        "gradverify_version": __version__,
        "mpmath_backend": mpmath_backend(),
        "criteria": {**CRITERIA, **HIDDEN_CRITERIA},
        "scans": [r.to_dict() for r in results],
    }


def scan_schema() -> dict:
    """The JSON Schema (draft 2020-12) of :func:`scan_document`; ``$defs/scan`` is one scan.

    It is the file ``gradverify/schemas/scan.schema.json``.
    """
    import json
    from importlib import resources

    text = resources.files("gradverify").joinpath("schemas/scan.schema.json").read_text("utf-8")
    return json.loads(text)
