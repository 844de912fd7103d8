"""What a search found: per dtype (:class:`DtypeSummary`) and overall (:class:`SearchResult`).

Plain data, JSON-serialisable with ``to_dict()`` (format :data:`SEARCH_SCHEMA`); ``str()`` of
a :class:`SearchResult` is the failure report the CLI and the pytest plugin print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gradverify.engine.compare import DEFAULT_POLICY, POLICIES
from gradverify.engine.results import (
    CheckResult,
    Verdict,
    WarningCount,
    json_number,
    precision_note,
    warning_lines,
)
from gradverify.model.dtypes import skipped_dtype_notes

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "NOTABLE_LOSS_BITS",
    "SEARCH_SCHEMA",
    "BeyondStable",
    "DtypeSummary",
    "SearchResult",
]

SEARCH_SCHEMA = "gradverify.search/2"
"""Format name and major version of :meth:`SearchResult.to_dict`."""

DEFAULT_MAX_EXAMPLES = 150
"""Generated examples per dtype (shrinking a failure runs further examples)."""

NOTABLE_LOSS_BITS = 2.0
"""Bits beyond the stable formulation above which a loss is located by saturation."""


@dataclass(frozen=True)
class BeyondStable:
    """Precision lost beyond the best stable formulation, over the passing examples.

    Attributes:
        bits: the most bits of error any entry had beyond the stable baseline's.
        tensor: the tensor where that happened (``dW1``, ...).
        saturation: max |h| of that example.
        notable_from: the smallest max |h| of any example losing more than
            :data:`NOTABLE_LOSS_BITS` bits (None: no example did).
    """

    bits: float
    tensor: str | None
    saturation: float
    notable_from: float | None

    @classmethod
    def from_samples(cls, samples: Sequence[dict]) -> BeyondStable | None:
        if not samples:
            return None
        worst = max(samples, key=lambda s: s["bits"])
        notable = [s["saturation"] for s in samples if s["bits"] > NOTABLE_LOSS_BITS]
        return cls(
            float(worst["bits"]),
            worst.get("tensor"),
            float(worst["saturation"]),
            min(notable) if notable else None,
        )

    def describe(self) -> str:
        """``loses up to 12.0 bits beyond the stable formulation (dW1, at max |h| = 9.3; ...)``."""
        text = precision_note(
            self.bits, self.tensor, self.saturation if self.bits >= 0.05 else None
        )
        if self.notable_from is not None:
            text += (
                f"; more than {NOTABLE_LOSS_BITS:g} bits only from max |h| = "
                f"{self.notable_from:.4g}"
            )
        return text

    def to_dict(self) -> dict:
        return {
            "bits": json_number(self.bits),
            "tensor": self.tensor,
            "saturation": json_number(self.saturation),
            "notable_from": json_number(self.notable_from),
        }


@dataclass
class DtypeSummary:
    """What the search found at one dtype.

    Attributes:
        dtype: the dtype name.
        verdict: the worst verdict over every example tried.
        examples: checks run (generation, targeting and shrinking).
        worst_bits: the largest bits of error beyond the stable baseline's seen in any example
            (see CheckResult.worst_bits); None for an ``error`` verdict, which is about what
            the implementation did (raised, hung, ...), not about the bits it returned.
        threshold_saturation: for ``unstable``: the smallest max |h| (over all layers) at
            which a failure was observed, refined by bisection; None otherwise.
        max_passing_saturation: the largest max |h| at which an example passed.
        counterexample: the shrunk failure of the worst kind, checked again with FD.
        reproduction: Python source reproducing ``counterexample``.
        failures: the shrunk counterexample of every failure kind found, by verdict name.
        diagnosis: hints (per-problem and from which variants fail).
        saturation_range: (min, max) of max |h| over the examples tried.
        elapsed: seconds.
        beyond_stable: precision the passing examples lose beyond the stable formulation.
    """

    dtype: str
    verdict: Verdict
    examples: int
    worst_bits: float | None
    threshold_saturation: float | None = None
    max_passing_saturation: float | None = None
    counterexample: CheckResult | None = None
    reproduction: str | None = None
    failures: dict[str, CheckResult] = field(default_factory=dict)
    diagnosis: list[str] = field(default_factory=list)
    saturation_range: tuple[float, float] = (0.0, 0.0)
    elapsed: float = 0.0
    stopped_early: str | None = None
    beyond_stable: BeyondStable | None = None

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "verdict": self.verdict.value,
            "examples": self.examples,
            "worst_bits": json_number(self.worst_bits),
            "threshold_saturation": json_number(self.threshold_saturation),
            "max_passing_saturation": json_number(self.max_passing_saturation),
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "reproduction": self.reproduction,
            "failures": {k: v.to_dict() for k, v in self.failures.items()},
            "diagnosis": list(self.diagnosis),
            "saturation_range": [json_number(v) for v in self.saturation_range],
            "elapsed_seconds": self.elapsed,
            "stopped_early": self.stopped_early,
            "beyond_stable": self.beyond_stable.to_dict() if self.beyond_stable else None,
        }


@dataclass
class SearchResult:
    """The outcome of :func:`search` over all dtypes; ``str()`` is the failure report."""

    implementation: str
    verdict: Verdict
    dtypes: tuple[str, ...]
    seed: int | None
    examples: int
    elapsed: float
    saturation_range: tuple[float, float]
    per_dtype: dict[str, DtypeSummary]
    samples: list[dict] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    counterexample: CheckResult | None = None
    reproduction: str | None = None
    derandomize: bool = False
    database: str | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    skipped_dtypes: dict[str, str] = field(default_factory=dict)
    """``{dtype: why}`` for dtypes asked for or declared but unavailable here."""
    warnings: list[WarningCount] = field(default_factory=list)
    """Warnings the implementation raised during the search, one entry per source location."""
    policy: str = DEFAULT_POLICY

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def worst_bits(self) -> float | None:
        """The worst bits of error of any dtype; None for an ``error`` verdict."""
        if self.verdict is Verdict.ERROR:
            return None
        return max(
            (s.worst_bits for s in self.per_dtype.values() if s.worst_bits is not None), default=0.0
        )

    @property
    def thresholds(self) -> dict[str, float | None]:
        """``{dtype: max |h| where it first fails}`` for the unstable dtypes, else None."""
        return {d: s.threshold_saturation for d, s in self.per_dtype.items()}

    def to_dict(self) -> dict:
        return {
            "schema": SEARCH_SCHEMA,
            "policy": self.policy,
            "implementation": self.implementation,
            "verdict": self.verdict.value,
            "dtypes": list(self.dtypes),
            "skipped_dtypes": dict(self.skipped_dtypes),
            "seed": self.seed,
            "derandomize": self.derandomize,
            "database": self.database,
            "max_examples": self.max_examples,
            "examples": self.examples,
            "elapsed_seconds": self.elapsed,
            "saturation_range": [json_number(v) for v in self.saturation_range],
            "worst_bits": json_number(self.worst_bits),
            "thresholds": {d: json_number(t) for d, t in self.thresholds.items()},
            "per_dtype": {d: s.to_dict() for d, s in self.per_dtype.items()},
            "diagnosis": list(self.diagnosis),
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "reproduction": self.reproduction,
            "samples": [
                {k: json_number(v) if k in ("saturation", "bits") else v for k, v in s.items()}
                for s in self.samples
            ],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def seed_line(self) -> str:
        if self.seed is not None:
            return f"seed: {self.seed} (rerun the same search with seed={self.seed})"
        return "seed: none, derandomized (the same examples on every run)"

    def __str__(self) -> str:
        lo, hi = self.saturation_range
        lines = [
            f"gradverify search: {self.implementation} -> {self.verdict.value.upper()} "
            f"({', '.join(self.dtypes)}; {self.examples} examples in {self.elapsed:.1f} s, "
            f"max |h| covered {lo:.3g} .. {hi:.3g})"
        ]
        if self.verdict is Verdict.PASS:
            lines.append(
                f"  pass: {POLICIES.get(self.policy, self.policy)} (policy {self.policy!r})"
            )
        lines.extend(_dtype_line(s) for s in self.per_dtype.values())
        lines.extend(f"  {note}" for note in skipped_dtype_notes(self.skipped_dtypes))
        if self.diagnosis:
            lines.append("diagnosis:")
            lines.extend(f"  - {hint}" for hint in self.diagnosis)
        if self.counterexample is not None:
            lines.extend(_counterexample_lines(self.counterexample))
        if self.reproduction:
            lines.append("reproduce with:")
            lines.extend(f"    {line}" if line else "" for line in self.reproduction.splitlines())
        lines.extend(warning_lines(self.warnings, indent=""))
        lines.append(self.seed_line())
        return "\n".join(lines)


def _dtype_line(s: DtypeSummary) -> str:
    """One dtype's line of the report: verdict, examples, worst bits or precision, threshold."""
    extra = ""
    if s.threshold_saturation is not None:
        extra = f", first fails at max |h| = {s.threshold_saturation:.6g}"
        if s.max_passing_saturation is not None:
            extra += f" (passes up to {s.max_passing_saturation:.6g} in other examples)"
    if s.stopped_early:
        extra += f"; stopped early: {s.stopped_early}"
    if s.verdict is Verdict.PASS and s.beyond_stable is not None:
        return f"  {s.dtype}: pass, {s.examples} examples; {s.beyond_stable.describe()}{extra}"
    bits = "" if s.worst_bits is None else f", worst {s.worst_bits:.1f} bits of error"
    return f"  {s.dtype}: {s.verdict.value}, {s.examples} examples{bits}{extra}"


def _counterexample_lines(counterexample: CheckResult) -> list[str]:
    """The shrunk counterexample's report, with its parameters and batch when they are few."""
    lines = ["shrunk counterexample:"]
    lines.extend(f"  {line}" for line in str(counterexample).splitlines())
    problem = counterexample.problem
    if problem is not None and problem.spec.parameter_count <= 64:
        lines.append("  parameters and batch:")
        for i, (w, b) in enumerate(zip(problem.weights, problem.biases, strict=True)):
            lines.append(
                f"    W_{i + 1} = {w.astype(float).tolist()}, "
                f"b_{i + 1} = {b.astype(float).tolist()}"
            )
        lines.append(f"    x = {problem.x.astype(float).tolist()}")
        lines.append(f"    y = {problem.y.astype(float).tolist()}")
    return lines
