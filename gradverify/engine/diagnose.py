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
problem that the search runs; see :func:`condition_hints` and :mod:`gradverify.exploration.search`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradverify.engine.results import TensorComparison
from gradverify.model.dtypes import resolve_dtype, ulp
from gradverify.model.functions import loss_function
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "activation_variant",
    "condition_hints",
    "constant_factor",
    "diagnose_gradients",
    "hidden_identity_variant",
    "loss_variant",
    "name_factor",
    "shallower_variant",
    "single_sample_variants",
    "square_backward_layers",
    "symmetric_variant",
    "widened_variant",
]

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
    hints: list[str] = []

    # 1. one constant factor or a sign flip across every failing tensor, else per tensor:
    # only where the elementwise ratios agree over enough independent entries
    entries = {i: _entries(values[i], references[i], tensors[i].tolerance) for i in failed}
    common = _factor_of(problem, tensors, failed, entries)
    if common is not None:
        names = ", ".join(tensors[i].name for i in failed)
        if common == -1:
            hints.append(f"the sign is flipped: {names} equal minus the exact gradient")
        else:
            hints.append(
                f"off by a constant factor: {names} equal "
                f"{name_factor(common, problem)} times the exact gradient"
            )
    else:
        for i in failed:
            c = _factor_of(problem, tensors, [i], entries)
            if c is not None:
                hints.append(
                    f"{tensors[i].name} equals {name_factor(c, problem)} times the exact gradient"
                )

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
            agree = (
                f"layer {depth} agrees"
                if first + 1 == depth
                else (f"layers {first + 1}..{depth} agree")
            )
            hints.append(
                f"counting backward from the output, layer {first} is the first whose gradient "
                f"disagrees; {agree}"
            )
        else:
            hints.append(f"the output layer ({depth}) already disagrees")

    # 5. a lower working precision: every tensor is off by about that precision's rounding
    # (a logic bug is off in some tensors, or by more), and the values carry its mark (see
    # _rounded_to). A smooth bias at the same level, such as a small constant added to a
    # denominator, does not.
    levels = [t.normwise_error for t in tensors]
    if len(failed) == len(tensors) and all(np.isfinite(r) and r > 0 for r in levels):
        bits = [-np.log2(r) for r in levels]
        for name, p in _LOWER_PRECISIONS:
            if not (p < significand_bits and all(p - 4 <= b <= p + 2 for b in bits)):
                continue
            mark = _rounded_to(name, values, references)
            if mark:
                hints.append(
                    f"the errors (about 2^-{min(bits):.0f}) look like {name} precision "
                    f"({p} bits), and {mark}: is part of the computation done in {name}?"
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
    return (
        [w.astype(np.float64) for w in problem.weights],
        [b.astype(np.float64) for b in problem.biases],
        problem.x.astype(np.float64),
        problem.y.astype(np.float64),
    )


def single_sample_variants(problem: Problem) -> list[Problem]:
    """The problem restricted to each of its samples (batch 1); empty when batch is 1."""
    if problem.batch_size == 1:
        return []
    weights, biases, x, y = _float64_arrays(problem)
    return [
        Problem.from_arrays(
            problem.spec, weights, biases, x[:, j : j + 1], y[:, j : j + 1], problem.dtype
        )
        for j in range(problem.batch_size)
    ]


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
    return Problem.from_arrays(
        NetworkSpec(spec.widths, tuple(acts), spec.loss), weights, biases, x, y, problem.dtype
    )


def loss_variant(problem: Problem, loss: str) -> Problem | None:
    """The same network, parameters and inputs with another loss; None where it cannot be.

    The output activation becomes the one ``loss`` requires (sigmoid for bce, identity for
    softmax_ce), or stays for a loss that leaves it free (mse). The labels stay, except that
    softmax_ce needs every column to be a distribution: each is divided by its sum (a column
    of zeros becomes uniform). None for the problem's own loss, for softmax_ce with one
    output, and for labels outside [0, 1] (bce and softmax_ce take probabilities).
    """
    spec = problem.spec
    wanted = loss_function(loss)
    if wanted.name == spec.loss:
        return None
    weights, biases, x, y = _float64_arrays(problem)
    if wanted.name in ("bce", "softmax_ce") and not np.all((y >= 0) & (y <= 1)):
        return None
    if wanted.name == "softmax_ce":
        if spec.widths[-1] < 2:
            return None
        totals = y.sum(axis=0, keepdims=True)
        y = np.where(totals > 0, y / np.where(totals > 0, totals, 1.0), 1.0 / spec.widths[-1])
    output = wanted.output_activation or spec.activations[-1]
    acts = (*spec.activations[:-1], output)
    return Problem.from_arrays(
        NetworkSpec(spec.widths, acts, wanted.name), weights, biases, x, y, problem.dtype
    )


def hidden_identity_variant(problem: Problem) -> Problem | None:
    """Every hidden activation replaced by identity; None if they all are identity already."""
    spec = problem.spec
    hidden = spec.activations[:-1]
    if all(a == "identity" for a in hidden):
        return None
    weights, biases, x, y = _float64_arrays(problem)
    acts = ("identity",) * len(hidden) + (spec.activations[-1],)
    return Problem.from_arrays(
        NetworkSpec(spec.widths, acts, spec.loss), weights, biases, x, y, problem.dtype
    )


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
    losses: Sequence[str] = (),
    admits: Callable[[Problem], bool] | None = None,
) -> list[str]:
    """Which features of the failing ``problem`` are necessary for its failure of ``kind``.

    Args:
        problem: a (small, shrunk) problem on which the implementation fails with ``kind``.
        verdict_of: runs the implementation's check on a variant and returns its verdict
            ("pass", "incorrect", "unstable" or "error").
        kind: the verdict of ``problem`` ("incorrect", "error", ...).
        activations: the activations the implementation supports (alternatives to try).
        losses: the losses the implementation supports (alternatives to try).
        admits: whether a variant is inside the implementation's declared architecture
            (depth, widths, batch); a variant outside it is skipped, never run.

    A feature is reported as necessary when no variant that removes it fails with
    ``kind``: only at batch size > 1, only at depth >= k, only where a width is 1, only
    with a given activation, only with a given loss, only with non-identity hidden
    activations, and only with non-symmetric square weight matrices (``W_i`` used where
    ``W_i^T`` belongs). The hint says what the variants gave instead. When some other
    losses fail too and some do not, the hint names both. No hints when ``problem`` itself
    does not fail with ``kind``.
    """
    kind = str(kind)
    if verdict_of(problem) != kind:
        return []
    hints: list[str] = []
    spec = problem.spec
    inside = admits or (lambda variant: True)

    def allowed(variants: Sequence[Problem | None]) -> list[Problem]:
        return [v for v in variants if v is not None and inside(v)]

    def gone(variants: Sequence[Problem]) -> tuple[bool, list[str]]:
        verdicts = [verdict_of(p) for p in variants]
        known = all(v in _VERDICTS for v in verdicts)  # e.g. not "not checked"
        return bool(verdicts) and known and kind not in verdicts, verdicts

    singles = allowed(single_sample_variants(problem))
    holds, verdicts = gone(singles)
    if holds:
        hints.append(
            f"{kind} only at batch size > 1: each of the {len(singles)} samples alone "
            f"(batch size 1) {_outcome(verdicts)}"
        )

    if spec.depth > 1:
        by_depth = {}
        for drop in range(1, spec.depth):
            variant = shallower_variant(problem, drop)
            if variant is not None and inside(variant):
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
    holds, verdicts = gone(allowed([widened_variant(problem)]))
    if ones and holds:
        necessary = ones
        if len(ones) > 1:
            alone = {
                k: verdict_of(v) for k in ones for v in allowed([widened_variant(problem, [k])])
            }
            necessary = [k for k, v in alone.items() if v in _VERDICTS and v != kind]
        where = ", ".join(_where(k, spec.depth) for k in (necessary or ones))
        hints.append(
            f"{kind} only where a width is 1 ({where}): the same network with "
            f"{'that layer' if len(necessary or ones) == 1 else 'those layers'} widened to 2 "
            f"(the unit duplicated, the same function) {_outcome(verdicts)}"
        )

    used = sorted(
        set(spec.activations[:-1])
        | ({spec.activations[-1]} if _output_is_free(spec.loss) else set())
    )
    for old in used:
        alternatives = {}
        for new in activations:
            if new != old:
                variant = activation_variant(problem, old, new)
                if variant is not None and inside(variant):
                    alternatives[new] = variant
        holds, verdicts = gone(list(alternatives.values()))
        if holds:
            hints.append(
                f"{kind} only with {old} layers: the same problem with {old} replaced by "
                f"{', '.join(alternatives)} {_outcome(verdicts)}"
            )

    loss_hint = _loss_hint(
        problem, kind, verdict_of, {new: loss_variant(problem, new) for new in losses}, inside
    )
    if loss_hint:
        hints.append(loss_hint)

    if "identity" in activations:
        holds, verdicts = gone(allowed([hidden_identity_variant(problem)]))
        if holds:
            hints.append(
                f"{kind} only with non-identity hidden activations: with every hidden "
                f"activation replaced by identity (derivative 1) it {_outcome(verdicts)}; "
                "suspect an activation derivative in the backward pass (missing or wrong)"
            )

    holds, verdicts = gone(allowed([symmetric_variant(problem)]))
    if holds:
        layers = ", ".join(f"W_{i}" for i in square_backward_layers(problem))
        hints.append(
            f"{kind} only with non-symmetric square weights: with {layers} made symmetric it "
            f"{_outcome(verdicts)}; the backward pass probably uses W_i where W_i^T belongs"
        )
    return hints


def _loss_hint(
    problem: Problem,
    kind: str,
    verdict_of: Callable[[Problem], str],
    variants: dict[str, Problem | None],
    inside: Callable[[Problem], bool],
) -> str:
    """The loss a failure needs, from the same network with each other loss; "" if none.

    Said only when some other loss passes: a failure of another kind there (an error, say)
    would not show that the loss matters.
    """
    verdicts = {loss: verdict_of(v) for loss, v in variants.items() if v is not None and inside(v)}
    if not verdicts or not all(v in _VERDICTS for v in verdicts.values()):
        return ""
    failing = [loss for loss, v in verdicts.items() if v == kind]
    others: dict[str, list[str]] = {}
    for loss, v in verdicts.items():
        if v != kind:
            others.setdefault(v, []).append(loss)
    if "pass" not in others:
        return ""
    instead = ", with ".join(
        f"{' and '.join(names)} {'passes' if v == 'pass' else f'gives {v}'}"
        for v, names in others.items()
    )
    own = problem.spec.loss
    if not failing:
        return f"{kind} only with loss {own}: the same network with loss {instead}"
    return (
        f"{kind} with loss {own} and with {' and '.join(failing)}, but the same network "
        f"with loss {instead}"
    )


def _output_is_free(loss: str) -> bool:
    return loss_function(loss).output_activation is None
