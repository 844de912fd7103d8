"""What kind of wrong is it? Hints computed from the numbers of one failing check.

Each hint is a sentence for the user, produced only when the numbers support it:

* the gradient is a constant multiple of the reference (the factor is named: the batch
  size, the number of outputs, 2, ...), or its negative (a sign flip): claimed only when the
  elementwise ratios agree, up to rounding, over enough independent entries;
* the gradient matches the transpose of the reference;
* only bias gradients, or only weight gradients, are wrong;
* the first layer, counting backward from the output, whose gradient disagrees;
* the errors look like a lower working precision: every tensor is off by about that
  precision's rounding and the values look rounded to it.

Conditions over many examples (only at batch > 1, only at depth >= k, only with a width-1
layer, only with an activation or a loss, only at saturation) come from variants of a failing
problem that the search runs; see :mod:`gradverify.engine.conditions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradverify.engine.results import TensorComparison
from gradverify.model.dtypes import resolve_dtype, ulp
from gradverify.model.network import Problem

__all__ = ["constant_factor", "diagnose_gradients", "name_factor"]

# A ratio value_j / reference_j is evidence for a factor only where rounding cannot move it
# much: an entry counts when its rounding allowance changes its ratio by at most _PINNED.
_PINNED = 1e-2
# A named factor (-1, 2, the batch size, ...) is a prediction rather than a fit, so a single
# independent entry can confirm it, but only one whose ratio is pinned this tightly.
_PINNED_ALONE = 1e-3
_FIT_ROUNDING = 1e-6  # constant_factor's default allowance, relative to ||reference||_2


@dataclass(frozen=True)
class _Entries:
    """One tensor as a factor fit sees it: value and reference divided by max |reference|."""

    a: np.ndarray
    r: np.ndarray
    allowance: float  # |a_j - c r_j| may reach |c| times this from rounding alone
    pinned: int  # entries whose ratio the allowance pins to within _PINNED
    pinned_tightly: int  # entries whose ratio it pins to within _PINNED_ALONE

    def explained_by(self, c: float) -> bool:
        """Whether every entry of ``a`` is ``c`` times ``r``, up to the rounding allowance."""
        with np.errstate(all="ignore"):
            return bool(c != 0 and np.all(np.abs(self.a - c * self.r) <= abs(c) * self.allowance))


def _entries(value: np.ndarray, reference: np.ndarray, rounding: float) -> _Entries | None:
    """``value`` against ``reference`` for a factor fit; None when no factor can be read off.

    ``rounding`` is the normwise relative error rounding alone may cause (a check passes
    within it). Twice that, times ``||reference||_2``, is every entry's allowance: a gradient
    within it of ``reference`` stays within it of ``c * reference`` after a fit of ``c``.
    """
    a = np.asarray(value, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if a.shape != r.shape or not (
        np.all(np.isfinite(a)) and np.all(np.isfinite(r)) and np.any(r) and np.isfinite(rounding)
    ):
        return None
    with np.errstate(all="ignore"):  # huge values overflow the scaling: then no fit
        scale = np.max(np.abs(r))
        a, r = a / scale, r / scale
        if not np.all(np.isfinite(a)):
            return None
        allowance = 2 * float(rounding) * float(np.linalg.norm(r))
        window = allowance / np.abs(r)  # how far rounding may move each ratio (inf at 0)
    return _Entries(
        a,
        r,
        allowance,
        int(np.count_nonzero(window <= _PINNED)),
        int(np.count_nonzero(window <= _PINNED_ALONE)),
    )


def _common_factor(group: Sequence[_Entries]) -> float | None:
    """The least-squares c over ``group``, if it explains every entry of every tensor."""
    a = np.concatenate([e.a for e in group])
    r = np.concatenate([e.r for e in group])
    with np.errstate(all="ignore"):
        c = float(a @ r / (r @ r))
    return c if np.isfinite(c) and all(e.explained_by(c) for e in group) else None


def constant_factor(
    value: np.ndarray, reference: np.ndarray, rounding: float = _FIT_ROUNDING
) -> float | None:
    """The c with ``value = c * reference`` entry by entry, if the elementwise ratios agree.

    Every entry must be within ``2 * rounding * ||reference||_2 * |c|`` of ``c * reference_j``,
    and at least two entries must have a ratio ``value_j / reference_j`` that this allowance
    pins to within 1% (one entry fits any factor). None otherwise, or for inf/NaN.
    """
    e = _entries(value, reference, rounding)
    if e is None or e.pinned < 2:
        return None
    return _common_factor([e])


def _named_factors(problem: Problem) -> list[float]:
    """The factors a bug typically introduces: -1, then +-n and +-1/n for the named n."""
    counts = [
        problem.batch_size,
        problem.spec.widths[-1],
        problem.batch_size * problem.spec.widths[-1],
        2,
    ]
    named = [-1.0]
    for n in dict.fromkeys(n for n in counts if n != 1):
        named.extend((float(n), 1.0 / n, -float(n), -1.0 / n))
    return named


def _independent_entries(
    problem: Problem,
    tensors: Sequence[TensorComparison],
    group: Sequence[int],
    entries: Sequence[_Entries],
) -> int:
    """How many entries of the tensors in ``group`` can differ in ratio independently.

    The gradients of layer l are linear in delta_l (width_l x batch numbers), and every
    layer below it receives its delta through the backward pass from delta_l. So, with l the
    outermost layer of ``group``, at most width_l x batch of their ratios are independent:
    with one unit and one sample, any error of that one number looks like a constant factor.
    """
    layer = max(tensors[i].layer for i in group)
    return min(problem.spec.widths[layer] * problem.batch_size, sum(e.pinned for e in entries))


def _factor_of(
    problem: Problem,
    tensors: Sequence[TensorComparison],
    group: Sequence[int],
    entries: dict[int, _Entries | None],
) -> float | None:
    """The one factor that explains every tensor in ``group``, if the entries support it.

    A named factor needs one independent entry pinned tightly, or two pinned ones; a fitted
    factor uses one entry up to fit it, so it needs two independent entries. None where 1
    explains the tensors (what is left is rounding).
    """
    found = {i: entries.get(i) for i in group}
    group_entries = [e for e in found.values() if e is not None]
    if len(group_entries) < len(group):
        return None
    evidence = _independent_entries(problem, tensors, group, group_entries)
    if evidence == 0 or all(e.explained_by(1.0) for e in group_entries):
        return None
    if evidence >= 2 or any(e.pinned_tightly for e in group_entries):
        for n in _named_factors(problem):
            if all(e.explained_by(n) for e in group_entries):
                return n
    return _common_factor(group_entries) if evidence >= 2 else None


def name_factor(c: float, problem: Problem) -> str:
    """Describe c in terms of the problem: 'the batch size (8)', '1/2', '-1', or a number."""
    batch, outputs = problem.batch_size, problem.spec.widths[-1]
    candidates = {
        "the batch size": batch,
        "the number of outputs": outputs,
        "the number of loss elements (batch x outputs)": batch * outputs,
        "2": 2,
    }
    for sign, prefix in ((1.0, ""), (-1.0, "minus ")):
        for name, n in candidates.items():
            if n == 1:
                continue
            if abs(sign * c - n) <= 1e-6 * n:
                return f"{prefix}{name} ({n:g})" if name != "2" else f"{prefix}2"
            if abs(sign * c - 1 / n) <= 1e-6 / n:
                shown = f"1/{n}" if name == "2" else f"1/({name} = {n})"
                return f"{prefix}{shown}"
    return f"{c:.6g}"


_LOWER_PRECISIONS = (("bfloat16", 8), ("float16", 11), ("float32", 24))  # fewest bits first


def _rounded_to(dtype: str, values: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> str:
    """How the values look rounded to ``dtype`` (a phrase for the hint), or "" if they do not.

    Either every entry is a ``dtype`` number (computed in it, then cast up), or every entry
    is within one ``dtype`` ulp of the exact gradient rounded to ``dtype``.
    """
    try:
        low = resolve_dtype(dtype)
    except ValueError:  # bfloat16 without ml_dtypes: unavailable, so no claim about it
        return ""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    with np.errstate(all="ignore"):
        if all(np.array_equal(a.astype(low).astype(np.float64), a) for a in arrays):
            return f"every entry is a {dtype} number"
        for a, r in zip(arrays, references, strict=True):
            rounded = np.asarray(r, dtype=np.float64).astype(low).astype(np.float64)
            if not np.all(np.abs(a - rounded) <= ulp(rounded, dtype)):
                return ""
    return f"every entry is within one {dtype} ulp of the exact gradient rounded to {dtype}"


def _matches(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    denom = np.linalg.norm(b)
    return bool(denom > 0 and np.linalg.norm(a - b) / denom < 1e-3)


def diagnose_gradients(
    problem: Problem,
    tensors: Sequence[TensorComparison],
    values: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    significand_bits: int,
) -> list[str]:
    """Hints for a failing check. ``values``/``references`` follow ``tensors`` (dW1, db1, ...)."""
    failed = [i for i, t in enumerate(tensors) if not t.passed]
    if not failed:
        return []
    return [
        *_factor_hints(problem, tensors, failed, values, references),
        *_transpose_hints(tensors, failed, values, references),
        *_kind_hints(tensors, failed),
        *_layer_hints(problem, tensors, failed),
        *_precision_hints(tensors, failed, values, references, significand_bits),
    ]


def _factor_hints(
    problem: Problem,
    tensors: Sequence[TensorComparison],
    failed: list[int],
    values: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
) -> list[str]:
    """One constant factor or a sign flip across every failing tensor, else per tensor.

    Only where the elementwise ratios agree over enough independent entries.
    """
    entries = {i: _entries(values[i], references[i], tensors[i].tolerance) for i in failed}
    common = _factor_of(problem, tensors, failed, entries)
    if common is not None:
        names = ", ".join(tensors[i].name for i in failed)
        if common == -1:
            return [f"the sign is flipped: {names} equal minus the exact gradient"]
        return [
            f"off by a constant factor: {names} equal "
            f"{name_factor(common, problem)} times the exact gradient"
        ]
    hints = []
    for i in failed:
        c = _factor_of(problem, tensors, [i], entries)
        if c is not None:
            hints.append(
                f"{tensors[i].name} equals {name_factor(c, problem)} times the exact gradient"
            )
    return hints


def _transpose_hints(
    tensors: Sequence[TensorComparison],
    failed: list[int],
    values: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
) -> list[str]:
    hints = []
    for i in failed:
        ref = np.asarray(references[i], dtype=np.float64)
        if ref.ndim == 2 and ref.shape[0] == ref.shape[1] and ref.shape[0] > 1:
            if _matches(values[i], ref.T):
                hints.append(f"{tensors[i].name} matches the transpose of the exact gradient")
    return hints


def _kind_hints(tensors: Sequence[TensorComparison], failed: list[int]) -> list[str]:
    """Only biases, or only weights, are wrong."""
    kinds = {tensors[i].kind for i in failed}
    if kinds == {"bias"}:
        return ["only bias gradients are wrong; every weight gradient agrees"]
    if kinds == {"weight"}:
        return ["only weight gradients are wrong; every bias gradient agrees"]
    return []


def _layer_hints(
    problem: Problem, tensors: Sequence[TensorComparison], failed: list[int]
) -> list[str]:
    """The first disagreeing layer, counting backward from the output."""
    depth = problem.spec.depth
    first = max(tensors[i].layer for i in failed)
    if depth <= 1:
        return []
    if first >= depth:
        return [f"the output layer ({depth}) already disagrees"]
    agree = f"layer {depth} agrees" if first + 1 == depth else f"layers {first + 1}..{depth} agree"
    return [
        f"counting backward from the output, layer {first} is the first whose gradient "
        f"disagrees; {agree}"
    ]


def _precision_hints(
    tensors: Sequence[TensorComparison],
    failed: list[int],
    values: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    significand_bits: int,
) -> list[str]:
    """A lower working precision: every tensor is off by about that precision's rounding.

    A logic bug is off in some tensors, or by more, and the values carry the precision's
    mark (see _rounded_to). A smooth bias at the same level, such as a small constant added
    to a denominator, does not.
    """
    levels = [t.normwise_error for t in tensors]
    if len(failed) != len(tensors) or not all(np.isfinite(r) and r > 0 for r in levels):
        return []
    bits = [-np.log2(r) for r in levels]
    for name, p in _LOWER_PRECISIONS:
        if not (p < significand_bits and all(p - 4 <= b <= p + 2 for b in bits)):
            continue
        mark = _rounded_to(name, values, references)
        if mark:
            return [
                f"the errors (about 2^-{min(bits):.0f}) look like {name} precision "
                f"({p} bits), and {mark}: is part of the computation done in {name}?"
            ]
    return []
