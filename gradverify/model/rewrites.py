"""Problems made from a problem: each rewrite changes one feature and keeps the rest.

The checker and the search judge a failure by what happens on a rewritten problem:

* :func:`desaturated` is the *interior* companion: the same network and batch scaled so that
  no pre-activation exceeds a limit. Passing there makes a failure ``unstable``;
* the condition hints (:mod:`gradverify.engine.conditions`) try variants that each remove
  one feature of a failing problem: :func:`single_sample_variants`,
  :func:`shallower_variant`, :func:`widened_variant`, :func:`activation_variant`,
  :func:`loss_variant`, :func:`hidden_identity_variant`, :func:`symmetric_variant` and
  :func:`hard_label_variant`;
* the search's minimiser tries structurally smaller problems: :func:`shallower_variant`,
  :func:`without_hidden_layer`, :func:`without_sample` and :func:`without_units`;
* :func:`at_depth` builds a small problem at another depth, to see whether an
  implementation that fails at one depth works at others.

Every rewrite works on exact float64 copies (:meth:`Problem.float64_arrays`) and rounds the
result to the problem's own dtype. A rewrite that cannot apply returns None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gradverify.model.functions import loss_function
from gradverify.model.network import NetworkSpec, Problem, cap_saturation

__all__ = [
    "activation_variant",
    "at_depth",
    "desaturated",
    "hard_label_variant",
    "hidden_identity_variant",
    "loss_variant",
    "shallower_variant",
    "single_sample_variants",
    "square_backward_layers",
    "symmetric_variant",
    "widened_variant",
    "with_samples",
    "without_hidden_layer",
    "without_sample",
    "without_units",
]


def _rebuilt(
    problem: Problem,
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
) -> Problem:
    """A problem from rewritten float64 arrays, rounded to ``problem``'s dtype."""
    return Problem.from_arrays(spec, weights, biases, x, y, problem.dtype)


# ---------------------------------------------------------------------------
# Saturation
# ---------------------------------------------------------------------------


def desaturated(problem: Problem, limit: float = 1.0) -> Problem:
    """The same network and batch with each layer's W_i and b_i scaled so max |h_i| <= limit.

    This is the *interior* companion of a problem: where an implementation that fails on
    ``problem`` passes on ``desaturated(problem)``, its failure is one of saturation.
    """
    weights, biases, x, _ = problem.float64_arrays()
    cap_saturation(problem.spec, weights, biases, x, limit)
    return problem.with_parameters(weights, biases)


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------


def with_samples(problem: Problem, columns: Sequence[int]) -> Problem:
    """The same network and parameters on the samples ``columns`` of the batch, in that order."""
    weights, biases, x, y = problem.float64_arrays()
    cols = np.asarray(columns, dtype=np.intp)
    return _rebuilt(problem, problem.spec, weights, biases, x[:, cols], y[:, cols])


def single_sample_variants(problem: Problem) -> list[Problem]:
    """The problem restricted to each of its samples (batch 1); empty when batch is 1."""
    if problem.batch_size == 1:
        return []
    return [with_samples(problem, [j]) for j in range(problem.batch_size)]


def without_sample(problem: Problem, j: int) -> Problem | None:
    """The problem without sample ``j`` of its batch; None when it has only that one."""
    if problem.batch_size == 1:
        return None
    return with_samples(problem, [c for c in range(problem.batch_size) if c != j])


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def shallower_variant(problem: Problem, drop: int = 1) -> Problem | None:
    """The network without its first ``drop`` layers, fed with their outputs ``z_drop``.

    Every remaining ``h_i`` is unchanged (up to rounding ``z_drop`` to the dtype).
    """
    spec = problem.spec
    if not 1 <= drop < spec.depth:
        return None
    weights, biases, _, y = problem.float64_arrays()
    z = problem.forward64().z[drop - 1]
    if not np.all(np.isfinite(z)):
        return None
    shallow = NetworkSpec(spec.widths[drop:], spec.activations[drop:], spec.loss)
    return _rebuilt(problem, shallow, weights[drop:], biases[drop:], z, y)


def without_hidden_layer(problem: Problem, k: int) -> Problem | None:
    """Layer ``k`` (1-based, hidden) removed; layer k+1 absorbs it as if it were linear."""
    spec = problem.spec
    if not 1 <= k < spec.depth:
        return None
    weights, biases, x, y = problem.float64_arrays()
    with np.errstate(all="ignore"):
        merged_w = weights[k] @ weights[k - 1]
        merged_b = weights[k] @ biases[k - 1] + biases[k]
    if not (np.all(np.isfinite(merged_w)) and np.all(np.isfinite(merged_b))):
        return None
    weights[k - 1 : k + 1] = [merged_w]
    biases[k - 1 : k + 1] = [merged_b]
    widths = spec.widths[:k] + spec.widths[k + 1 :]
    acts = spec.activations[: k - 1] + spec.activations[k:]
    return _rebuilt(problem, NetworkSpec(widths, acts, spec.loss), weights, biases, x, y)


def at_depth(
    problem: Problem, depth: int, hidden_activation: str, hidden_width: int = 3
) -> Problem:
    """A small problem like ``problem`` (same input, labels, loss, dtype) at another depth.

    Hidden layers have width ``hidden_width`` and ``hidden_activation``; the output layer
    keeps its activation. The parameters are fixed pseudo-random values in [-1, 1].
    """
    spec = problem.spec
    widths = (spec.widths[0], *(hidden_width,) * (depth - 1), spec.widths[-1])
    acts = (*(hidden_activation,) * (depth - 1), spec.activations[-1])
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-1.0, 1.0, (widths[i + 1], widths[i])) for i in range(depth)]
    biases = [rng.uniform(-1.0, 1.0, widths[i + 1]) for i in range(depth)]
    _, _, x, y = problem.float64_arrays()
    return _rebuilt(problem, NetworkSpec(widths, acts, spec.loss), weights, biases, x, y)


# ---------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------

_UnitEdit = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray], int]
"""For one width index: what to do to the rows that make its units (the input's rows, or
W_k's rows, b_k and at the output y's rows), to the columns that read them (W_{k+1}'s),
and its new width."""


def _edit_units(problem: Problem, edits: dict[int, _UnitEdit]) -> Problem:
    """Apply ``edits`` (width index -> :data:`_UnitEdit`; 0 = the input, L = the output)."""
    spec = problem.spec
    weights, biases, x, y = problem.float64_arrays()
    widths = list(spec.widths)
    for k, (rows, columns, width) in edits.items():
        if k == 0:
            x = rows(x)
        else:
            weights[k - 1], biases[k - 1] = rows(weights[k - 1]), rows(biases[k - 1])
            if k == spec.depth:
                y = rows(y)
        if k < spec.depth:
            weights[k] = columns(weights[k])
        widths[k] = width
    edited = NetworkSpec(tuple(widths), spec.activations, spec.loss)
    return _rebuilt(problem, edited, weights, biases, x, y)


def _duplicated(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, a])


def _halved_twice(w: np.ndarray) -> np.ndarray:
    half = w / 2
    return np.concatenate([half, half], axis=1)


def _removal(j: int, width: int) -> _UnitEdit:
    return (lambda a: np.delete(a, j, axis=0), lambda w: np.delete(w, j, axis=1), width - 1)


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
    return _edit_units(problem, {k: (_duplicated, _halved_twice, 2) for k in chosen})


def without_units(problem: Problem, units: dict[int, int]) -> Problem | None:
    """The problem with unit ``units[k]`` removed from each width index ``k`` (0 = the input).

    None when a width would fall to 0, or when it would remove an output of a loss whose
    label columns are distributions (softmax_ce).
    """
    spec = problem.spec
    for k in units:
        distribution = loss_function(spec.loss).labels == "distribution"
        if spec.widths[k] <= 1 or (k == spec.depth and distribution):
            return None
    return _edit_units(problem, {k: _removal(j, spec.widths[k]) for k, j in units.items()})


# ---------------------------------------------------------------------------
# Activations, losses and weights
# ---------------------------------------------------------------------------


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
    weights, biases, x, y = problem.float64_arrays()
    return _rebuilt(
        problem, NetworkSpec(spec.widths, tuple(acts), spec.loss), weights, biases, x, y
    )


def loss_variant(problem: Problem, loss: str) -> Problem | None:
    """The same network, parameters and inputs with another loss; None where it cannot be.

    The output activation becomes the one ``loss`` requires (sigmoid for bce, identity for
    softmax_ce), or stays for a loss that leaves it free (mse, l1, huber). The labels stay,
    except that softmax_ce needs every column to be a distribution: each is divided by its
    sum (a column of zeros becomes uniform). None for the problem's own loss, for softmax_ce
    with one output, and for labels outside [0, 1] (bce and softmax_ce take probabilities).
    ``loss`` may be spelled in any way (``"huber(2.0)"``).
    """
    spec = problem.spec
    wanted = loss_function(loss)
    if wanted.name == spec.loss:
        return None
    weights, biases, x, y = problem.float64_arrays()
    if wanted.labels != "any" and not np.all((y >= 0) & (y <= 1)):
        return None
    if wanted.labels == "distribution":
        if spec.widths[-1] < wanted.min_outputs:
            return None
        totals = y.sum(axis=0, keepdims=True)
        y = np.where(totals > 0, y / np.where(totals > 0, totals, 1.0), 1.0 / spec.widths[-1])
    output = wanted.output_activation or spec.activations[-1]
    acts = (*spec.activations[:-1], output)
    return _rebuilt(problem, NetworkSpec(spec.widths, acts, wanted.name), weights, biases, x, y)


def hard_label_variant(problem: Problem) -> Problem | None:
    """The same network, parameters and inputs with every label made hard.

    For a loss of probabilities (bce) each label becomes 1 from 0.5 up, else 0; for one of
    distributions (softmax_ce) each column becomes one-hot at its largest entry (the first
    of a tie). None where the labels are hard already, and for a loss that takes any real
    label (mse, l1, huber), which has nothing to round.
    """
    kind = loss_function(problem.spec.loss).labels
    weights, biases, x, y = problem.float64_arrays()
    if kind == "probability":
        hard = (y >= 0.5).astype(np.float64)
    elif kind == "distribution":
        hard = np.zeros_like(y)
        hard[np.argmax(y, axis=0), np.arange(y.shape[1])] = 1.0
    else:
        return None
    if np.array_equal(hard, y):
        return None
    return _rebuilt(problem, problem.spec, weights, biases, x, hard)


def hidden_identity_variant(problem: Problem) -> Problem | None:
    """Every hidden activation replaced by identity; None if they all are identity already."""
    spec = problem.spec
    hidden = spec.activations[:-1]
    if all(a == "identity" for a in hidden):
        return None
    weights, biases, x, y = problem.float64_arrays()
    acts = ("identity",) * len(hidden) + (spec.activations[-1],)
    return _rebuilt(problem, NetworkSpec(spec.widths, acts, spec.loss), weights, biases, x, y)


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
    weights, biases, _, _ = problem.float64_arrays()
    for i in layers:
        weights[i - 1] = (weights[i - 1] + weights[i - 1].T) / 2
    return problem.with_parameters(weights, biases)
