"""Results as plain data: verdicts, per-tensor comparisons, worst elements.

Everything here is JSON-serialisable through ``to_dict()`` and readable through ``str()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gradverify.common.formatting import (
    format_bits,
    format_fd_error,
    format_gradient,
    format_logit,
    format_relative_error,
    format_ulps,
    json_number,
)

__all__ = [
    "CheckResult",
    "ElementError",
    "TensorComparison",
    "Verdict",
    "WarningCount",
    "json_number",
    "merge_warnings",
    "warning_lines",
    "worst_verdict",
]


def _beyond_stable_dict(bits: float, tensor: str | None, saturation: float | None) -> dict:
    return {"bits": json_number(bits), "tensor": tensor, "saturation": json_number(saturation)}


class Verdict(StrEnum):
    """The four answers gradverify gives about an implementation."""

    PASS = "pass"
    INCORRECT = "incorrect"  # wrong at ordinary, unsaturated values: a logic bug
    UNSTABLE = "unstable"  # right in the interior, wrong or non-finite only at saturation
    ERROR = "error"  # raised, hung, or returned something malformed


_SEVERITY = {Verdict.PASS: 0, Verdict.UNSTABLE: 1, Verdict.INCORRECT: 2, Verdict.ERROR: 3}


def worst_verdict(verdicts: Any) -> Verdict:
    """The most severe of ``verdicts`` (error > incorrect > unstable > pass); pass if empty."""
    return max((Verdict(v) for v in verdicts), key=_SEVERITY.__getitem__, default=Verdict.PASS)


def precision_note(bits: float, tensor: str | None, saturation: float | None) -> str:
    """``"loses up to 12.0 bits beyond the stable formulation (dW1, at max |h| = 8.2)"``."""
    if not bits >= 0.05:
        return "loses no bits beyond the stable formulation"
    at = None if saturation is None else f"at max |h| = {format_logit(saturation)}"
    where = [w for w in (tensor, at) if w]
    return f"loses up to {format_bits(bits)} bits beyond the stable formulation" + (
        f" ({', '.join(where)})" if where else ""
    )


@dataclass(frozen=True)
class TensorComparison:
    """How one gradient tensor (dW_i or db_i) compares with the exact reference.

    Errors are dimensionless: relative errors, ULPs of the dtype under test, and bits
    (``log2(1 + ulps)``, a non-finite value counting as the dtype's full width).
    """

    name: str
    layer: int
    kind: str  # "weight" or "bias"
    shape: tuple[int, ...]
    normwise_error: float  # ||a - r|| / ||r||
    max_relative_error: float  # max_j |a_j - r_j| / |r_j|
    max_ulps: float
    max_bits: float
    nonfinite: int  # entries that are inf/NaN while the reference is finite
    baseline_error: float  # normwise error of the stable float baseline at this dtype
    tolerance: float  # normwise tolerance derived from the baseline
    passed: bool
    fd_max_error: float | None = None  # max |FD - reference| / |reference| (second opinion)
    # max over entries of (bits of error) - (the stable baseline's bits there), floored at 0:
    # the error the implementation adds to what the dtype and a stable form cannot avoid
    max_excess_bits: float = 0.0
    # normwise error of the conventional autograd baseline (None under the strict policy)
    autograd_baseline_error: float | None = None
    # ||max(|a - r| - rounding floor, 0)|| / ||r||: what is compared with the tolerance
    error_beyond_floor: float = 0.0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "layer": self.layer,
            "kind": self.kind,
            "shape": list(self.shape),
            "normwise_error": json_number(self.normwise_error),
            "max_relative_error": json_number(self.max_relative_error),
            "max_ulps": json_number(self.max_ulps),
            "max_bits": json_number(self.max_bits),
            "nonfinite": self.nonfinite,
            "baseline_error": json_number(self.baseline_error),
            "tolerance": json_number(self.tolerance),
            "passed": self.passed,
            "fd_max_error": json_number(self.fd_max_error),
            "max_excess_bits": json_number(self.max_excess_bits),
            "autograd_baseline_error": json_number(self.autograd_baseline_error),
            "error_beyond_floor": json_number(self.error_beyond_floor),
        }


@dataclass(frozen=True)
class ElementError:
    """One gradient entry: implementation value, exact reference, FD second opinion."""

    tensor: str
    index: tuple[int, ...]
    value: float
    reference: float
    relative_error: float
    ulps: float
    bits: float
    fd: float | None = None
    fd_error: float | None = None  # the FD error estimate (absolute)

    def to_dict(self) -> dict:
        return {
            "tensor": self.tensor,
            "index": list(self.index),
            "value": json_number(self.value),
            "reference": json_number(self.reference),
            "relative_error": json_number(self.relative_error),
            "ulps": json_number(self.ulps),
            "bits": json_number(self.bits),
            "fd": json_number(self.fd),
            "fd_error": json_number(self.fd_error),
        }

    def describe(self, bits: bool = True) -> str:
        """One line: where, value, exact value, FD, errors (``bits=False``: no bits of error)."""
        where = f"{self.tensor}[{', '.join(map(str, self.index))}]"
        fd = (
            ""
            if self.fd is None
            else f", FD {format_gradient(self.fd)} (+-{format_fd_error(self.fd_error)})"
        )
        return (
            f"{where}: got {format_gradient(self.value)}, exact {format_gradient(self.reference)}"
            f"{fd}; rel. error {format_relative_error(self.relative_error)}, "
            f"{format_ulps(self.ulps)} ulp" + (f", {format_bits(self.bits)} bits" if bits else "")
        )


@dataclass(frozen=True)
class WarningCount:
    """A warning the implementation raised, once per source location, with how often."""

    category: str  # e.g. "RuntimeWarning"
    message: str  # the first message seen at this location
    filename: str
    lineno: int
    count: int

    @property
    def location(self) -> tuple[str, str, int]:
        return (self.category, self.filename, self.lineno)

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "message": self.message,
            "filename": self.filename,
            "lineno": self.lineno,
            "count": self.count,
        }

    def describe(self) -> str:
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"{self.filename}:{self.lineno}: {self.category}: {self.message} ({times})"


def merge_warnings(*groups: Any) -> list[WarningCount]:
    """Warnings from several calls or checks, summed per source location (first message kept)."""
    merged: dict[tuple[str, str, int], WarningCount] = {}
    for group in groups:
        for w in group:
            seen = merged.get(w.location)
            merged[w.location] = (
                w
                if seen is None
                else WarningCount(
                    seen.category, seen.message, seen.filename, seen.lineno, seen.count + w.count
                )
            )
    return list(merged.values())


def warning_lines(warnings: Any, indent: str = "  ") -> list[str]:
    """The lines ``str()`` of a result shows for the implementation's warnings."""
    if not warnings:
        return []
    return [
        f"{indent}warnings raised by the implementation (each location once):",
        *(f"{indent}  {w.describe()}" for w in warnings),
    ]


def _tensor_table(tensors: list[TensorComparison], bits: bool) -> list[str]:
    """The fixed-width table of ``str(CheckResult)``: one line per gradient tensor
    (``bits=False``: without the bits-of-error columns, for an error verdict)."""
    if not tensors:
        return []
    lines = [
        "  tensor  normwise err  beyond floor  tolerance  max ulp    "
        + ("max bits  beyond stable  " if bits else "")
        + "non-finite  ok"
    ]
    for t in tensors:
        lines.append(
            f"  {t.name:<7} {format_relative_error(t.normwise_error):<12}  "
            f"{format_relative_error(t.error_beyond_floor):<12}  "
            f"{format_relative_error(t.tolerance):<9}  {format_ulps(t.max_ulps):<9}  "
            + (
                f"{format_bits(t.max_bits):<8}  {format_bits(t.max_excess_bits):<13}  "
                if bits
                else ""
            )
            + f"{t.nonfinite:<10d}  {'yes' if t.passed else 'NO'}"
        )
    return lines


@dataclass
class CheckResult:
    """The verdict on one implementation for one problem at one dtype."""

    implementation: str
    verdict: Verdict
    dtype: str
    spec: Any  # NetworkSpec
    saturation: float  # max |h| over all layers of the problem
    tensors: list[TensorComparison] = field(default_factory=list)
    worst: list[ElementError] = field(default_factory=list)
    message: str = ""
    diagnosis: list[str] = field(default_factory=list)
    reference_precision: int | None = None
    reference_backend: str | None = None
    problem: Any = None  # the Problem, kept for reproduction
    interior_verdict: Verdict | None = None  # verdict on the same network scaled to |h| <= 1
    elapsed: float = 0.0
    # second opinion for networks too large for full FD: max |v.g_ref - FD_v| / |FD_v| over
    # random directions v (see gradverify.engine.finite_diff.directional_check)
    fd_directional_discrepancy: float | None = None
    policy: str = "autograd"  # the accuracy bar: "autograd" or "strict"
    # warnings the implementation raised in this check, one entry per source location
    warnings: list[WarningCount] = field(default_factory=list)
    # for an error verdict from the call itself: "raised", "timed_out", "crashed" or
    # "malformed" (gradverify.engine.harness.CallFailure); None otherwise
    call_failure: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def precision_beyond_stable(self) -> tuple[float, str | None]:
        """(bits, tensor): the most bits any entry loses beyond the stable formulation."""
        worst = max(self.tensors, key=lambda t: t.max_excess_bits, default=None)
        if worst is None:
            return 0.0, None
        return worst.max_excess_bits, worst.name

    def precision_note(self) -> str:
        """One line on precision lost beyond the best formulation (reported even on a pass)."""
        bits, tensor = self.precision_beyond_stable()
        if tensor is None:
            return ""
        return precision_note(bits, tensor, self.saturation)

    @property
    def worst_bits(self) -> float | None:
        """Bits of error beyond the stable baseline's, worst entry of any tensor.

        A passing implementation scores a few bits at most; inf/NaN where the baseline is
        finite scores about the dtype's full width. (Raw bits against the exact value, in
        ``TensorComparison.max_bits``, can be large for a correct implementation where the
        exact gradient underflows the dtype.) None for an ``error`` verdict: it says what the
        implementation did (raised, hung, returned inf/NaN or a malformed result), and a
        count of bits would suggest a gradient that was merely inaccurate.
        """
        if self.verdict is Verdict.ERROR:
            return None
        return max((t.max_excess_bits for t in self.tensors), default=0.0)

    @property
    def worst_normwise_error(self) -> float:
        return max((t.normwise_error for t in self.tensors), default=0.0)

    def failed_tensors(self) -> list[TensorComparison]:
        return [t for t in self.tensors if not t.passed]

    def to_dict(self) -> dict:
        return {
            "implementation": self.implementation,
            "verdict": self.verdict.value,
            "dtype": self.dtype,
            "spec": self.spec.to_dict() if self.spec is not None else None,
            "saturation": json_number(self.saturation),
            "message": self.message,
            "diagnosis": list(self.diagnosis),
            "tensors": [t.to_dict() for t in self.tensors],
            "worst": [w.to_dict() for w in self.worst],
            "reference": {
                "precision_bits": self.reference_precision,
                "backend": self.reference_backend,
            },
            "interior_verdict": self.interior_verdict.value if self.interior_verdict else None,
            "policy": self.policy,
            "beyond_stable": (
                _beyond_stable_dict(*self.precision_beyond_stable(), self.saturation)
                if self.tensors
                else None
            ),
            "fd_directional_discrepancy": json_number(self.fd_directional_discrepancy),
            "call_failure": self.call_failure,
            "warnings": [w.to_dict() for w in self.warnings],
            "elapsed_seconds": self.elapsed,
            "problem": (
                self.problem.to_dict()
                if self.problem is not None and self.problem.spec.parameter_count <= 10_000
                else None
            ),
        }

    def __str__(self) -> str:
        spec = self.spec.describe() if self.spec is not None else "?"
        batch = f", batch {self.problem.batch_size}" if self.problem is not None else ""
        lines = [
            f"gradverify: {self.implementation} -> {self.verdict.value.upper()} "
            f"({self.dtype}, network {spec}{batch}, max |h| = {format_logit(self.saturation)})"
        ]
        if self.message:
            lines.append(f"  {self.message}")
        if self.verdict is Verdict.PASS and self.tensors:
            from gradverify.engine.compare import POLICIES

            lines.append(
                f"  pass: {POLICIES.get(self.policy, self.policy)}; {self.precision_note()}"
            )
        for hint in self.diagnosis:
            lines.append(f"  hint: {hint}")
        bits = self.verdict is not Verdict.ERROR  # an error verdict shows no bits of error
        lines.extend(_tensor_table(self.tensors, bits))
        if self.worst and self.verdict is not Verdict.PASS:
            lines.append("  worst elements:")
            lines.extend(f"    {w.describe(bits)}" for w in self.worst)
        if self.fd_directional_discrepancy is not None:
            lines.append(
                f"  finite differences (random directions) agree with the reference to "
                f"{format_relative_error(self.fd_directional_discrepancy)} relative"
            )
        lines.extend(warning_lines(self.warnings))
        if self.reference_precision:
            lines.append(
                f"  reference: exact reverse mode at {self.reference_precision} bits "
                f"(backend {self.reference_backend})"
            )
        return "\n".join(lines)
