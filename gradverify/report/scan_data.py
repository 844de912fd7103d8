"""Reading scan results (``gradverify.scan/1`` dicts) into the report's thresholds and sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["scan_sweeps", "scan_thresholds", "threshold_table"]


def scan_thresholds(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    return []


def scan_sweeps(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    return []


def threshold_table(thresholds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"columns": [], "rows": []}
