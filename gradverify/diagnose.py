"""What kind of wrong is it? Hints computed from the numbers of one failing check.

Each hint is a sentence for the user, produced only when the numbers support it:

* the gradient is a constant multiple of the reference (the factor is named: the batch
  size, the number of outputs, 2, ...), or its negative (a sign flip);
* the gradient matches the transpose of the reference;
* only bias gradients, or only weight gradients, are wrong;
* the first layer, counting backward from the output, whose gradient disagrees;
* the error level looks like a lower working precision.

Conditions over many examples (only at batch > 1, only at depth >= k, only with a width-1
layer, only at saturation) come from the search; see :mod:`gradverify.search`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradverify.network import Problem
from gradverify.results import TensorComparison

__all__ = ["diagnose_gradients", "constant_factor", "name_factor"]

_FIT = 1e-6  # relative residual below which a fit explains the gradient


def constant_factor(value: np.ndarray, reference: np.ndarray) -> float | None:
    """The c with ``value ~= c * reference`` (least squares), if it explains ``value``."""
    a = np.asarray(value, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(a)) and np.any(r)):
        return None
    scale = np.max(np.abs(r))
    a, r = a / scale, r / scale
    c = float(a @ r / (r @ r))
    residual = np.linalg.norm(a - c * r) / max(np.linalg.norm(a), np.linalg.norm(r))
    return c if residual < _FIT and c != 0 else None


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
    hints: list[str] = []

    # 1. one constant factor or a sign flip across every failing tensor
    factors = [constant_factor(values[i], references[i]) for i in failed]
    if all(f is not None for f in factors) and np.allclose(factors, factors[0], rtol=1e-6):
        c = float(factors[0])
        names = ", ".join(tensors[i].name for i in failed)
        if abs(c + 1) < 1e-6:
            hints.append(f"the sign is flipped: {names} equal minus the exact gradient")
        else:
            hints.append(f"off by a constant factor: {names} equal {name_factor(c, problem)} "
                         "times the exact gradient")
    else:
        for i, f in zip(failed, factors, strict=True):
            if f is not None:
                hints.append(f"{tensors[i].name} equals {name_factor(f, problem)} times the "
                             "exact gradient")

    # 2. transpose
    for i in failed:
        ref = np.asarray(references[i], dtype=np.float64)
        if ref.ndim == 2 and ref.shape[0] == ref.shape[1] and ref.shape[0] > 1:
            if _matches(values[i], ref.T):
                hints.append(f"{tensors[i].name} matches the transpose of the exact gradient")

    # 3. only biases or only weights
    kinds = {tensors[i].kind for i in failed}
    if kinds == {"bias"}:
        hints.append("only bias gradients are wrong; every weight gradient agrees")
    elif kinds == {"weight"}:
        hints.append("only weight gradients are wrong; every bias gradient agrees")

    # 4. first disagreeing layer, counting backward from the output
    depth = problem.spec.depth
    bad_layers = sorted({tensors[i].layer for i in failed}, reverse=True)
    first = bad_layers[0]
    if depth > 1:
        if first < depth:
            hints.append(
                f"counting backward from the output, layer {first} is the first whose gradient "
                f"disagrees; layers {first + 1}..{depth} agree"
            )
        else:
            hints.append(f"the output layer ({depth}) already disagrees")

    # 5. an error level that looks like a lower working precision
    worst_rel = max(tensors[i].max_relative_error for i in failed)
    if np.isfinite(worst_rel) and worst_rel > 0:
        effective_bits = -np.log2(worst_rel)
        for name, p in (("float16", 11), ("bfloat16", 8), ("float32", 24)):
            if p < significand_bits and p - 4 <= effective_bits <= p + 2:
                hints.append(
                    f"the errors (about 2^-{effective_bits:.0f}) look like {name} precision "
                    f"({p} bits): is part of the computation done in a lower precision?"
                )
                break
    return hints
