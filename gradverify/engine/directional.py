"""Random directional checks: ``v^T g`` against a finite difference of J along ``v``.

:func:`directional_check` is for networks too large for full finite differences
(:mod:`gradverify.engine.finite_diff`): it compares ``v^T g`` with one extrapolated
directional difference along each of a few random unit directions ``v`` over the flattened
parameters (:func:`flatten_parameters`). J is evaluated in float64 on the problem's exact
values, at stacked perturbations ``h_l = (W_l z + b_l) + s (V_l z + c_l)``, as described in
:mod:`gradverify.engine.stencil`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.stencil import (
    KINK_RETRIES,
    KINK_STEP_SHRINK,
    NUM_STEPS,
    STENCIL,
    STEP_FACTOR,
    TYPICAL_SCALE,
    Float64Problem,
    central_differences,
    evaluation_error_bound,
    richardson,
    stacked_losses,
)
from gradverify.model.network import NetworkSpec, Problem

__all__ = [
    "DirectionalCheck",
    "directional_check",
    "flatten_parameters",
    "unflatten_parameters",
]


MAX_PASS_ELEMENTS = 15 * 1024
"""Upper bound on the entries of one array of a stacked forward pass: (widest layer) x
(stacked columns), 120 KiB of float64. glibc's malloc maps a block of 128 KiB or more
afresh from the operating system, and every page of it faults on first use: on a
[32, 256, 256, 1] network, four directions in one pass of 256 x 400 entries took about
3,000 page faults, more time than their arithmetic."""


@dataclass(frozen=True)
class DirectionalCheck:
    """Random directional checks: ``v^T g`` against a finite difference of J along ``v``.

    Attributes:
        directions: k, the number of random unit directions.
        projected_fd: shape (k,), float64: Richardson directional derivative dJ/dt of
            ``J(theta + t v)`` at t = 0 along each unit direction v.
        projected_fd_error: shape (k,), absolute error estimates of ``projected_fd``.
        projected_gradient: shape (k,), ``v^T g`` for the supplied gradient g (in float64).
        unreliable: shape (k,), bool: True where the stencil along v straddles a kink.
        steps: shape (k,), the largest step t used along each (unit) direction (smaller
            than the first choice where a kink forced a retry).
        evaluations: the number of float64 evaluations of J used.
        projected_magnitude: shape (k,), ``|v|^T |g|``: what bounds the rounding error of
            each ``v^T g`` (a dot product of k terms errs by at most about k u times it).
    """

    directions: int
    projected_fd: np.ndarray
    projected_fd_error: np.ndarray
    projected_gradient: np.ndarray
    unreliable: np.ndarray
    steps: np.ndarray | None = None
    evaluations: int = 0
    projected_magnitude: np.ndarray | None = None

    def relative_discrepancies(self) -> np.ndarray:
        """Per direction ``|v^T g - fd| / max(|fd|, fd_error, tiny)``; NaN where unreliable.

        The FD error estimate is part of the denominator so that a direction along which J
        is flat (``fd`` indistinguishable from 0) does not turn rounding noise into a huge
        relative discrepancy. ``tiny`` is the smallest normal float64.
        """
        fd, vg = self.projected_fd, self.projected_gradient
        with np.errstate(all="ignore"):
            denom = np.maximum(
                np.maximum(np.abs(fd), self.projected_fd_error), np.finfo(np.float64).tiny
            )
            rel = np.abs(vg - fd) / denom
        return np.where(self.unreliable, np.nan, rel)

    def max_relative_discrepancy(self) -> float:
        """The largest of :meth:`relative_discrepancies` over reliable directions.

        NaN if every direction straddles a kink (nothing can be said); ``inf`` if a
        reliable direction has a non-finite ``v^T g`` or ``fd``.
        """
        rel = self.relative_discrepancies()[~self.unreliable]
        if rel.size == 0:
            return float("nan")
        if np.any(np.isnan(rel)):
            return float("inf")
        return float(np.max(rel))


def flatten_parameters(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> np.ndarray:
    """One float64 vector: ``W_1, ..., W_L`` then ``b_1, ..., b_L``, each in C order.

    Conversion to float64 is exact for every supported dtype.
    """
    parts = [np.ravel(a) for a in (*weights, *biases)]
    return np.concatenate(parts, dtype=np.float64) if parts else np.zeros(0)


def unflatten_parameters(
    flat: np.ndarray, spec: NetworkSpec
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The inverse of :func:`flatten_parameters`: float64 ``(weights, biases)`` for ``spec``.

    Raises:
        ValueError: if ``flat`` does not hold exactly ``spec.parameter_count`` values.
    """
    flat = np.asarray(flat, dtype=np.float64).ravel()
    if flat.size != spec.parameter_count:
        raise ValueError(
            f"expected {spec.parameter_count} parameters for {spec.describe()}; got {flat.size}"
        )
    w = spec.widths
    shapes = [(w[i + 1], w[i]) for i in range(spec.depth)] + [
        (w[i + 1],) for i in range(spec.depth)
    ]
    arrays, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(flat[start : start + size].reshape(shape).copy())
        start += size
    return tuple(arrays[: spec.depth]), tuple(arrays[spec.depth :])


def _random_directions(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` random unit vectors of length ``size``, shape ``(count, size)``, float64.

    Each entry is drawn uniformly from [-1/2, 1/2), then each row is scaled to unit length.
    The distribution is continuous: before the scaling, given the other entries, ``v_i e_i``
    is uniform over an interval of width ``|e_i|``, so ``P(|v^T e| < t) <= 2 t / max_i |e_i|``
    for any fixed error ``e``, and ``v^T e = 0`` has probability 0 unless ``e = 0``. Uniform
    draws cost about a quarter of standard normals.
    """
    v = rng.random((count, size))
    v -= 0.5
    v /= np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    return v


def _largest_step(p: Float64Problem) -> float:
    """``u^(1/5) * max(||theta||_2, 1)`` rounded to a power of two (see STEP_FACTOR)."""
    theta_norm = float(np.sqrt(sum(np.vdot(a, a) for a in (*p.weights, *p.biases))))
    return float(np.exp2(np.round(np.log2(STEP_FACTOR * max(theta_norm, TYPICAL_SCALE)))))


@with_own_errstate
def directional_check(
    problem: Problem,
    dweights: Sequence[np.ndarray],
    dbiases: Sequence[np.ndarray],
    *,
    directions: int = 4,
    seed: int = 0,
) -> DirectionalCheck:
    """Compare ``v^T g`` with a Richardson directional difference of J along random ``v``.

    The directions are unit vectors over the flattened parameters (see
    :func:`flatten_parameters`): entries drawn uniformly from [-1/2, 1/2) by
    ``np.random.default_rng(seed)``, each row scaled to unit length (a continuous
    distribution, so an error ``e != 0`` in g is orthogonal to v with probability 0). The
    largest step along each is ``t ~ u^(1/5) * max(||theta||_2, 1)`` (a power of two), then
    t/2 and t/4; a direction whose stencil straddles a kink is retried with smaller steps
    like the full mode. The stencil points are evaluated as stacked columns of a few forward
    passes (at most :data:`MAX_PASS_ELEMENTS` entries per array), kinks judged against the
    unperturbed forward pass: ``6 * directions + 1`` evaluations of J (more with kink
    retries). A sparse error in g can hide from a few random directions; the full mode does
    not have that weakness.

    Args:
        problem: the network, parameters and batch.
        dweights, dbiases: the gradient g to check, shaped like the problem's parameters
            (any float dtype; used in float64).
        directions: k, the number of random directions.
        seed: the seed of the random directions.

    Raises:
        ValueError: if the gradient's shapes do not match the problem or ``directions < 1``.
    """
    _check_arguments(problem, dweights, dbiases, directions)
    p = Float64Problem.of(problem)
    gradient = flatten_parameters(dweights, dbiases)
    step = _largest_step(p)
    rng = np.random.default_rng(seed)
    size = problem.spec.parameter_count
    per_group = max(1, MAX_PASS_ELEMENTS // size)
    parts: list[tuple[np.ndarray, ...]] = []
    evaluations = 1  # the base forward pass
    for start in range(0, directions, per_group):
        v = _random_directions(rng, min(per_group, directions - start), size)
        differences, unreliable, steps, used = _retried_differences(p, v, step)
        parts.append((differences, unreliable, steps, *_projections(v, gradient)))
        evaluations += used
    differences, unreliable, steps, projected, magnitude = (
        np.concatenate([part[i] for part in parts]) for i in range(5)
    )
    value, error = richardson(differences, steps, evaluation_error_bound(p))
    return DirectionalCheck(
        directions=directions,
        projected_fd=value,
        projected_fd_error=error,
        projected_gradient=projected,
        unreliable=unreliable,
        steps=steps,
        evaluations=evaluations,
        projected_magnitude=magnitude,
    )


def _projections(v: np.ndarray, gradient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v^T g`` and ``|v|^T |g|`` for each row of ``v``, which is overwritten.

    ``|v|^T |g|`` is computed as ``copysign(|v|, g)^T g`` in place, without a temporary
    as large as the parameters.
    """
    with np.errstate(all="ignore"):
        projected = v @ gradient
        np.copysign(v, gradient, out=v)
        return projected, v @ gradient


def _check_arguments(
    problem: Problem,
    dweights: Sequence[np.ndarray],
    dbiases: Sequence[np.ndarray],
    directions: int,
) -> None:
    """Raise ValueError unless ``directions >= 1`` and g is shaped like the parameters."""
    depth = problem.spec.depth
    if directions < 1:
        raise ValueError(f"directions must be at least 1; got {directions}")
    if len(dweights) != depth or len(dbiases) != depth:
        raise ValueError(
            f"expected {depth} weight and bias gradients; got {len(dweights)} and {len(dbiases)}"
        )
    for i in range(depth):
        for name, g, ref in (
            ("dW", dweights[i], problem.weights[i]),
            ("db", dbiases[i], problem.biases[i]),
        ):
            if np.shape(g) != ref.shape:
                raise ValueError(f"{name}_{i + 1} should have shape {ref.shape}; got {np.shape(g)}")


def _retried_differences(
    p: Float64Problem, v_all: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Central differences along every row of ``v_all``, kink straddles retried.

    A direction whose stencil straddles a kink is evaluated again, with the other such
    directions, at its step times KINK_STEP_SHRINK, at most KINK_RETRIES times. Returns the
    (k, NUM_STEPS) differences, the directions that still straddle, the largest step used
    along each, and the number of evaluations of J.
    """
    k = v_all.shape[0]
    differences = np.empty((k, NUM_STEPS))
    unreliable = np.ones(k, dtype=bool)
    steps = np.full(k, step)
    pending = np.arange(k)
    evaluations = 0
    for attempt in range(KINK_RETRIES + 1):
        steps[pending] = step * KINK_STEP_SHRINK**attempt
        rows = v_all if attempt == 0 else v_all[pending]  # no copy on the first attempt
        differences[pending], unreliable[pending] = _line_differences(p, rows, steps[pending])
        evaluations += len(STENCIL) * pending.size
        pending = pending[unreliable[pending]]
        if pending.size == 0:
            break
    return differences, unreliable, steps, evaluations


def _direction_blocks(
    v_rows: np.ndarray, spec: NetworkSpec
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Views of m flattened directions as per-layer blocks: ``V_l`` (m, n_l, n_{l-1}), ``c_l``
    (m, n_l), in the order of :func:`flatten_parameters`."""
    w, m = spec.widths, v_rows.shape[0]
    blocks, start = [], 0
    for shape in [(w[i + 1], w[i]) for i in range(spec.depth)] + [
        (w[i + 1],) for i in range(spec.depth)
    ]:
        size = int(np.prod(shape))
        blocks.append(v_rows[:, start : start + size].reshape(m, *shape))
        start += size
    return blocks[: spec.depth], blocks[spec.depth :]


def _line_differences(
    p: Float64Problem, v_rows: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of ``J(theta + t v)`` at t = step, step/2, step/4, for m directions.

    The m * 6 stencil points are stacked as columns, in passes of at most
    :data:`MAX_PASS_ELEMENTS` entries per array. Returns the (m, NUM_STEPS) differences and
    whether each direction's stencil straddles a kink (against the base forward pass).
    """
    m, points = v_rows.shape[0], len(STENCIL)
    V, c = _direction_blocks(v_rows, p.spec)
    owner = np.repeat(np.arange(m), points)  # the direction of each stencil point
    offsets = (steps[:, None] * STENCIL[None, :]).ravel()
    losses = np.empty(m * points)
    straddles = np.empty(m * points, dtype=bool)
    per_pass = max(1, MAX_PASS_ELEMENTS // (max(p.spec.widths) * p.x.shape[1]))
    for start in range(0, m * points, per_pass):
        sl = slice(start, min(start + per_pass, m * points))
        losses[sl], straddles[sl] = _stacked_points(p, V, c, owner[sl], offsets[sl])
    differences = central_differences(losses.reshape(m, points), steps)
    return differences, straddles.reshape(m, points).any(axis=1)


def _stacked_points(
    p: Float64Problem,
    V: list[np.ndarray],
    c: list[np.ndarray],
    owner: np.ndarray,
    offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """J and kink straddles at ``theta + s v_j`` for each (direction ``j``, offset ``s``).

    One stacked forward pass, one copy of the batch per point; every layer's pre-activation
    is ``(W_l z + b_l) + s (V_l z + c_l)``.
    """
    batch, copies = p.x.shape[1], owner.size
    s_cols = np.repeat(offsets, batch)[None, :]
    directions, first = np.unique(owner, return_index=True)
    runs = list(zip(directions, first, np.diff(np.append(first, copies)), strict=True))

    def perturbation(i: int, z: np.ndarray) -> np.ndarray:
        term = np.empty((V[i].shape[1], copies * batch))
        for j, start, count in runs:
            cols = slice(start * batch, (start + count) * batch)
            term[:, cols] = V[i][j] @ z[:, cols] + c[i][j][:, None]
        term *= s_cols
        return term

    with np.errstate(all="ignore"):
        h0 = np.tile(p.base.h[0], (1, copies)) + perturbation(0, np.tile(p.x, (1, copies)))
    return stacked_losses(p, 0, h0, copies, perturbation, unperturbed_first=False)
