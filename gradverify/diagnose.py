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

from collections.abc import Callable, Sequence

import numpy as np

from gradverify.functions import loss_function
from gradverify.network import NetworkSpec, Problem
from gradverify.results import TensorComparison

__all__ = [
    "activation_variant",
    "condition_hints",
    "constant_factor",
    "diagnose_gradients",
    "hidden_identity_variant",
    "name_factor",
    "shallower_variant",
    "single_sample_variants",
    "square_backward_layers",
    "symmetric_variant",
    "widened_variant",
]

_FIT = 1e-6  # relative residual below which a fit explains the gradient


def constant_factor(value: np.ndarray, reference: np.ndarray) -> float | None:
    """The c with ``value ~= c * reference`` (least squares), if it explains ``value``."""
    a = np.asarray(value, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(a)) and np.any(r)):
        return None
    scale = np.max(np.abs(r))
    with np.errstate(all="ignore"):  # huge values overflow the fit: then it explains nothing
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

    # 1. one constant factor or a sign flip across every failing tensor. A fit says something
    # only with two or more non-zero entries and a factor away from 1 (near 1 it is rounding).
    factors = [constant_factor(values[i], references[i]) for i in failed]
    informative = sum(int(np.count_nonzero(references[i])) for i in failed) >= 2
    factors = [f if f is not None and informative and abs(f - 1) > 1e-3 else None
               for f in factors]
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
            agree = f"layer {depth} agrees" if first + 1 == depth else (
                f"layers {first + 1}..{depth} agree")
            hints.append(
                f"counting backward from the output, layer {first} is the first whose gradient "
                f"disagrees; {agree}"
            )
        else:
            hints.append(f"the output layer ({depth}) already disagrees")

    # 5. an error level that looks like a lower working precision: every tensor is off, and
    # each by about that precision's rounding (a logic bug is off in some tensors, or by more)
    levels = [t.normwise_error for t in tensors]
    if len(failed) == len(tensors) and all(np.isfinite(r) and r > 0 for r in levels):
        bits = [-np.log2(r) for r in levels]
        effective_bits = min(bits)
        for name, p in (("float16", 11), ("bfloat16", 8), ("float32", 24)):
            if p < significand_bits and all(p - 4 <= b <= p + 2 for b in bits):
                hints.append(
                    f"the errors (about 2^-{effective_bits:.0f}) look like {name} precision "
                    f"({p} bits): is part of the computation done in a lower precision?"
                )
                break
    return hints


# ---------------------------------------------------------------------------
# Conditions: which features of a failing problem are necessary for the failure
# ---------------------------------------------------------------------------
#
# Each variant below changes one feature of a failing problem and keeps the rest. When the
# implementation passes on every variant that removes a feature, that feature is necessary
# for the failure, and the hint says so. The verdicts come from running the checks; the
# caller passes ``fails(problem) -> bool``.


def _float64_arrays(problem: Problem) -> tuple[list, list, np.ndarray, np.ndarray]:
    return ([w.astype(np.float64) for w in problem.weights],
            [b.astype(np.float64) for b in problem.biases],
            problem.x.astype(np.float64), problem.y.astype(np.float64))


def single_sample_variants(problem: Problem) -> list[Problem]:
    """The problem restricted to each of its samples (batch 1); empty when batch is 1."""
    if problem.batch_size == 1:
        return []
    weights, biases, x, y = _float64_arrays(problem)
    return [Problem.from_arrays(problem.spec, weights, biases, x[:, j:j + 1], y[:, j:j + 1],
                                problem.dtype) for j in range(problem.batch_size)]


def shallower_variant(problem: Problem, drop: int = 1) -> Problem | None:
    """The network without its first ``drop`` layers, fed with their outputs ``z_drop``.

    Every remaining ``h_i`` is unchanged (up to rounding ``z_drop`` to the dtype).
    """
    spec = problem.spec
    if not 1 <= drop < spec.depth:
        return None
    weights, biases, _, y = _float64_arrays(problem)
    z = problem.forward64().z[drop - 1]
    if not np.all(np.isfinite(z)):
        return None
    shallow = NetworkSpec(spec.widths[drop:], spec.activations[drop:], spec.loss)
    return Problem.from_arrays(shallow, weights[drop:], biases[drop:], z, y, problem.dtype)


def widened_variant(problem: Problem, layers: Sequence[int] | None = None) -> Problem | None:
    """Width-1 layers (input, hidden or output) doubled by duplicating their unit.

    ``layers`` are width indices (0 = the input, L = the output); default: every width-1
    index. For the input and hidden layers the outgoing weights are halved, so the network
    computes the same function (halving is exact in binary floating point). A duplicated
    output unit duplicates its label. None when none of them has width 1.
    """
    spec = problem.spec
    chosen = [k for k, n in enumerate(spec.widths) if n == 1 and (layers is None or k in layers)]
    if not chosen:
        return None
    weights, biases, x, y = _float64_arrays(problem)
    widths = list(spec.widths)
    for k in chosen:
        if k == 0:
            x = np.vstack([x, x])
        else:
            weights[k - 1] = np.vstack([weights[k - 1], weights[k - 1]])
            biases[k - 1] = np.concatenate([biases[k - 1], biases[k - 1]])
            if k == spec.depth:
                y = np.vstack([y, y])
        if k < spec.depth:
            half = weights[k] / 2
            weights[k] = np.hstack([half, half])
        widths[k] = 2
    wide = NetworkSpec(tuple(widths), spec.activations, spec.loss)
    return Problem.from_arrays(wide, weights, biases, x, y, problem.dtype)


def activation_variant(problem: Problem, old: str, new: str) -> Problem | None:
    """Every ``old`` activation replaced by ``new`` where the loss allows; None if none is."""
    spec = problem.spec
    fixed_output = loss_function(spec.loss).output_activation is not None
    acts = list(spec.activations)
    changed = False
    for i, a in enumerate(acts):
        if a == old and not (fixed_output and i == spec.depth - 1):
            acts[i] = new
            changed = True
    if not changed:
        return None
    weights, biases, x, y = _float64_arrays(problem)
    return Problem.from_arrays(NetworkSpec(spec.widths, tuple(acts), spec.loss), weights, biases,
                               x, y, problem.dtype)


def hidden_identity_variant(problem: Problem) -> Problem | None:
    """Every hidden activation replaced by identity; None if they all are identity already."""
    spec = problem.spec
    hidden = spec.activations[:-1]
    if all(a == "identity" for a in hidden):
        return None
    weights, biases, x, y = _float64_arrays(problem)
    acts = ("identity",) * len(hidden) + (spec.activations[-1],)
    return Problem.from_arrays(NetworkSpec(spec.widths, acts, spec.loss), weights, biases, x, y,
                               problem.dtype)


def square_backward_layers(problem: Problem) -> list[int]:
    """1-based layers i >= 2 whose W_i is square, at least 2x2 and not symmetric.

    These are the matrices the backward pass multiplies by (``W_i^T delta_i``) where using
    ``W_i`` instead of ``W_i^T`` gives no shape error.
    """
    out = []
    for i, w in enumerate(problem.weights[1:], start=2):
        if w.shape[0] == w.shape[1] >= 2 and not np.array_equal(w, w.T):
            out.append(i)
    return out


def symmetric_variant(problem: Problem) -> Problem | None:
    """Each square backward-pass W_i (see :func:`square_backward_layers`) made symmetric."""
    layers = square_backward_layers(problem)
    if not layers:
        return None
    weights, biases, _, _ = _float64_arrays(problem)
    for i in layers:
        weights[i - 1] = (weights[i - 1] + weights[i - 1].T) / 2
    return problem.with_parameters(weights, biases)


_VERDICTS = ("pass", "incorrect", "unstable", "error")


def _outcome(verdicts: Sequence[str]) -> str:
    """'passes' when every variant passed, else the verdicts the variants got."""
    distinct = list(dict.fromkeys(verdicts))
    if distinct == ["pass"]:
        return "passes"
    return "gives " + " / ".join(distinct)


def _where(k: int, depth: int) -> str:
    return "the input" if k == 0 else ("the output layer" if k == depth else f"layer {k}")


def condition_hints(
    problem: Problem,
    verdict_of: Callable[[Problem], str],
    kind: str,
    activations: Sequence[str] = (),
) -> list[str]:
    """Which features of the failing ``problem`` are necessary for its failure of ``kind``.

    Args:
        problem: a (small, shrunk) problem on which the implementation fails with ``kind``.
        verdict_of: runs the implementation's check on a variant and returns its verdict
            ("pass", "incorrect", "unstable" or "error").
        kind: the verdict of ``problem`` ("incorrect", "error", ...).
        activations: the activations the implementation supports (alternatives to try).

    A feature is reported as necessary when no variant that removes it fails with
    ``kind``: only at batch size > 1, only at depth >= k, only where a width is 1, only
    with a given activation, only with non-identity hidden activations, and only with
    non-symmetric square weight matrices (``W_i`` used where ``W_i^T`` belongs). The hint
    says what the variants gave instead. No hints when ``problem`` itself does not fail
    with ``kind``.
    """
    kind = str(kind)
    if verdict_of(problem) != kind:
        return []
    hints: list[str] = []
    spec = problem.spec

    def gone(variants: Sequence[Problem]) -> tuple[bool, list[str]]:
        verdicts = [verdict_of(p) for p in variants]
        known = all(v in _VERDICTS for v in verdicts)  # e.g. not "not checked"
        return bool(verdicts) and known and kind not in verdicts, verdicts

    singles = single_sample_variants(problem)
    holds, verdicts = gone(singles)
    if holds:
        hints.append(f"{kind} only at batch size > 1: each of the {len(singles)} samples alone "
                     f"(batch size 1) {_outcome(verdicts)}")

    if spec.depth > 1:
        by_depth = {}
        for drop in range(1, spec.depth):
            variant = shallower_variant(problem, drop)
            if variant is not None:
                by_depth[spec.depth - drop] = verdict_of(variant)
        failing = [d for d, v in by_depth.items() if v == kind] + [spec.depth]
        k = min(failing)
        shallower = {d: v for d, v in by_depth.items() if d < k}
        if k > 1 and shallower and all(v in _VERDICTS for v in shallower.values()):
            depths = ", ".join(str(d) for d in sorted(shallower))
            hints.append(
                f"{kind} only at depth >= {k}: the same network without its first layers "
                f"(depth {depths}, fed with their activations) {_outcome(list(shallower.values()))}"
            )

    ones = [k for k, n in enumerate(spec.widths) if n == 1]
    holds, verdicts = gone([v for v in [widened_variant(problem)] if v is not None])
    if ones and holds:
        necessary = ones
        if len(ones) > 1:
            alone = {k: verdict_of(widened_variant(problem, [k])) for k in ones}
            necessary = [k for k, v in alone.items() if v in _VERDICTS and v != kind]
        where = ", ".join(_where(k, spec.depth) for k in (necessary or ones))
        hints.append(
            f"{kind} only where a width is 1 ({where}): the same network with "
            f"{'that layer' if len(necessary or ones) == 1 else 'those layers'} widened to 2 "
            f"(the unit duplicated, the same function) {_outcome(verdicts)}"
        )

    used = sorted(set(spec.activations[:-1]) | (
        {spec.activations[-1]} if _output_is_free(spec.loss) else set()))
    for old in used:
        alternatives = {}
        for new in activations:
            if new != old:
                variant = activation_variant(problem, old, new)
                if variant is not None:
                    alternatives[new] = variant
        holds, verdicts = gone(list(alternatives.values()))
        if holds:
            hints.append(
                f"{kind} only with {old} layers: the same problem with {old} replaced by "
                f"{', '.join(alternatives)} {_outcome(verdicts)}"
            )

    if "identity" in activations:
        plain = hidden_identity_variant(problem)
        holds, verdicts = gone([plain] if plain is not None else [])
        if holds:
            hints.append(
                f"{kind} only with non-identity hidden activations: with every hidden "
                f"activation replaced by identity (derivative 1) it {_outcome(verdicts)}; "
                "suspect an activation derivative in the backward pass (missing or wrong)"
            )

    sym = symmetric_variant(problem)
    holds, verdicts = gone([sym] if sym is not None else [])
    if holds:
        layers = ", ".join(f"W_{i}" for i in square_backward_layers(problem))
        hints.append(
            f"{kind} only with non-symmetric square weights: with {layers} made symmetric it "
            f"{_outcome(verdicts)}; the backward pass probably uses W_i where W_i^T belongs"
        )
    return hints


def _output_is_free(loss: str) -> bool:
    return loss_function(loss).output_activation is None
