"""Stability scanner: the exact floats where an implementation's BCE gradient breaks.

:func:`scan` walks the float lattice of each dtype (float16, bfloat16, float32, float64)
outward from 0 and finds, for any implementation of the backprop protocol, the **first
float** at which its gradient goes wrong (in float16 and bfloat16: among every float), and
how its error grows on the way there: for a saturated output unit (thresholds per
criterion, side of 0 and label) and a saturated hidden unit (where its weight gradient
underflows to 0, against where the dtype forces it to).

Any activation or loss (``scan(impl, activations=("softplus",), losses=("mse",))``): the
hidden-layer derivative of each named activation and the output delta of each named loss,
with the same criteria, thresholds and sweeps (:class:`FunctionScan`; the probe networks
are described in :mod:`.designs`).

The result is a :class:`ScanResult`; :func:`format_scan_table` prints results as a table
and :func:`scan_document` writes them as the versioned JSON document
``"schema": "gradverify.scan/1"``, whose JSON Schema is
``gradverify/schemas/scan.schema.json`` (:func:`scan_schema`). The fields are described on
the record classes of :mod:`.records`.

The modules, in the order a scan uses them:

* :mod:`.criteria`: what counts as bad, and the error measure;
* :mod:`.exact_forms`: the probe networks' exact gradients, at verified precision;
* :mod:`.designs`: the probe networks of named activations and losses, and their exact
  gradients;
* :mod:`.probes`, :mod:`.function_probe` and :mod:`.observations`: one call at one float,
  judged;
* :mod:`.locate`: the first bad float on one side, bisected then verified (float32,
  float64);
* :mod:`.batched`, :mod:`.certified` and :mod:`.every_float`: float16 and bfloat16, where
  every float is judged: many floats per call, exact gradients of a whole side at once;
* :mod:`.sides`: which floats verify it; one side's thresholds, underflow and sweep;
* :mod:`.function_scans`: what named activations and losses ask for; one function scan;
* :mod:`.run`: :func:`scan` itself;
* :mod:`.records`, :mod:`.result`, :mod:`.table`: what it returns, as data and as text.
"""

from __future__ import annotations

from gradverify.exploration.scan.criteria import (
    CRITERIA,
    ERROR_LEVELS,
    HIDDEN_ACTIVATIONS,
    HIDDEN_CRITERIA,
    SCHEMA,
    SIDES,
)
from gradverify.exploration.scan.designs import PROBE_LOSSES, exact_design_gradient
from gradverify.exploration.scan.exact_forms import exact_hidden_gradient, exact_output_gradient
from gradverify.exploration.scan.locate import (
    DENSE_WINDOW,
    MAX_DENSE_WINDOWS,
    MAX_DESCENTS,
    MAX_RECOVERIES,
    REFINED_RECOVERIES,
)
from gradverify.exploration.scan.probes import MAX_TIMEOUTS, ScanAborted
from gradverify.exploration.scan.records import (
    FunctionScan,
    HiddenUnderflow,
    ScanRow,
    SideScan,
    SweepSeries,
    Threshold,
)
from gradverify.exploration.scan.result import (
    ScanResult,
    format_scan_table,
    scan_document,
    scan_schema,
)
from gradverify.exploration.scan.run import scan

__all__ = [
    "CRITERIA",
    "DENSE_WINDOW",
    "ERROR_LEVELS",
    "HIDDEN_ACTIVATIONS",
    "HIDDEN_CRITERIA",
    "MAX_DENSE_WINDOWS",
    "MAX_DESCENTS",
    "MAX_RECOVERIES",
    "MAX_TIMEOUTS",
    "PROBE_LOSSES",
    "REFINED_RECOVERIES",
    "SCHEMA",
    "SIDES",
    "FunctionScan",
    "HiddenUnderflow",
    "ScanAborted",
    "ScanResult",
    "ScanRow",
    "SideScan",
    "SweepSeries",
    "Threshold",
    "exact_design_gradient",
    "exact_hidden_gradient",
    "exact_output_gradient",
    "format_scan_table",
    "scan",
    "scan_document",
    "scan_schema",
]
