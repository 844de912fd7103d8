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

__all__ = ["DirectionalCheck", "directional_check", "flatten_parameters", "unflatten_parameters"]


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
    """

    directions: int
    projected_fd: np.ndarray
    projected_fd_error: np.ndarray
    projected_gradient: np.ndarray
    unreliable: np.ndarray
    steps: np.ndarray | None = None
    evaluations: int = 0

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
    parts = [np.asarray(a).astype(np.float64).ravel() for a in (*weights, *biases)]
    return np.concatenate(parts) if parts else np.zeros(0)


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
    :func:`flatten_parameters`), drawn as normalised standard normals from
    ``np.random.default_rng(seed)``. The largest step along each is
    ``t ~ u^(1/5) * max(||theta||_2, 1)`` (a power of two), then t/2 and t/4; a direction
    whose stencil straddles a kink is retried with smaller steps like the full mode. Cost:
    ``7 * directions + 1`` evaluations of J (more with kink retries). A sparse error in g can
    hide from a few random directions; the full mode does not have that weakness.

    Args:
        problem: the network, parameters and batch.
        dweights, dbiases: the gradient g to check, shaped like the problem's parameters
            (any float dtype; used in float64).
        directions: k, the number of random directions.
        seed: the seed of the random directions.

    Raises:
        ValueError: if the gradient's shapes do not match the problem or ``directions < 1``.
    """
    spec = problem.spec
    _check_arguments(problem, dweights, dbiases, directions)
    p = Float64Problem.of(problem)
    gradient = flatten_parameters(dweights, dbiases)
    theta = flatten_parameters(p.weights, p.biases)
    rng = np.random.default_rng(seed)
    v_all = rng.standard_normal((directions, theta.size))
    v_all /= np.linalg.norm(v_all, axis=1, keepdims=True)
    step = float(
        np.exp2(np.round(np.log2(STEP_FACTOR * max(float(np.linalg.norm(theta)), TYPICAL_SCALE))))
    )
    eps_j = evaluation_error_bound(p)
    steps = np.full(directions, step)
    differences = np.empty((directions, NUM_STEPS))
    unreliable = np.empty(directions, dtype=bool)
    evaluations = 1
    with np.errstate(all="ignore"):
        projected_gradient = v_all @ gradient
    for k in range(directions):
        V, c = unflatten_parameters(v_all[k], spec)
        for attempt in range(KINK_RETRIES + 1):
            steps[k] = step * KINK_STEP_SHRINK**attempt
            differences[k], unreliable[k] = _directional_differences(p, V, c, steps[k])
            evaluations += 1 + len(STENCIL)
            if not unreliable[k]:
                break
    value, error = richardson(differences, steps, eps_j)
    return DirectionalCheck(
        directions=directions,
        projected_fd=value,
        projected_fd_error=error,
        projected_gradient=projected_gradient,
        unreliable=unreliable,
        steps=steps,
        evaluations=evaluations,
    )


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


def _directional_differences(
    p: Float64Problem, V: tuple[np.ndarray, ...], c: tuple[np.ndarray, ...], step: float
) -> tuple[np.ndarray, bool]:
    """Central differences of ``J(theta + t (V, c))`` at t = step, step/2, step/4.

    Returns the (NUM_STEPS,) differences and whether the stencil straddles a kink.
    """
    batch = p.x.shape[1]
    copies = 1 + len(STENCIL)  # copy 0 is the unperturbed point
    s_cols = np.repeat(np.concatenate([[0.0], step * STENCIL]), batch)[None, :]
    x_stack = np.tile(p.x, (1, copies))
    with np.errstate(all="ignore"):
        h0 = (p.weights[0] @ x_stack + p.biases[0][:, None]) + s_cols * (
            V[0] @ x_stack + c[0][:, None]
        )
    losses, straddles = stacked_losses(p, 0, h0, copies, direction=(V, c, s_cols))
    return central_differences(losses[1:], np.array([step]))[0], bool(np.any(straddles[1:]))
