"""Float64 finite differences of J with respect to every parameter, with error estimates.

Two modes:

* :func:`finite_difference_gradients` differentiates J with respect to each parameter in turn
  (``6 * P`` loss evaluations): central differences at steps ``h, h/2, h/4`` and Richardson
  extrapolation, with a step chosen per parameter and an error estimate per entry.
* :func:`directional_check` is for networks too large for that: it compares ``v^T g`` with one
  extrapolated directional difference along each of a few random unit directions ``v``
  (:mod:`gradverify.engine.directional`; its names are importable from here too).

Both always evaluate J in float64 on the problem's *exact* values (a float16 parameter is
converted to float64 without rounding), whatever the problem's dtype. How a perturbed J is
evaluated, how kinks are detected and how the error is estimated is shared by both modes and
described in :mod:`gradverify.engine.stencil`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradverify.common.errstate import with_own_errstate
from gradverify.engine.directional import (
    DirectionalCheck,
    directional_check,
    flatten_parameters,
    unflatten_parameters,
)
from gradverify.engine.stencil import (
    KINK_RETRIES,
    KINK_STEP_SHRINK,
    STENCIL,
    Float64Problem,
    central_differences,
    evaluation_error_bound,
    richardson,
    stacked_losses,
    step_sizes,
)
from gradverify.model.network import Problem

__all__ = [
    "DirectionalCheck",
    "FiniteDifferenceGradients",
    "directional_check",
    "finite_difference_gradients",
    "flatten_parameters",
    "step_sizes",
    "unflatten_parameters",
]

_MAX_CHUNK_ELEMENTS = 1 << 21
"""Upper bound on (widest layer) x (stacked columns) per vectorised evaluation, ~16 MB."""


@dataclass(frozen=True)
class FiniteDifferenceGradients:
    """Finite-difference gradients of J, one entry per parameter, all float64.

    Attributes:
        dweights: dJ/dW_i, same shapes as ``problem.weights`` (units of J per unit of W).
        dbiases: dJ/db_i, same shapes as ``problem.biases``.
        dweights_error: absolute error estimate of each entry of ``dweights`` (Richardson
            convergence plus a rounding bound); ``inf`` where J was not finite.
        dbiases_error: the same for ``dbiases``.
        dweights_unreliable: bool masks, True where the stencil straddles or touches a kink
            (relu at 0) even at the smallest retried step; the value is still returned but
            must not be compared.
        dbiases_unreliable: the same for ``dbiases``.
        evaluations: the number of float64 evaluations of J used.
        dweights_step: the largest stencil step h used for each weight (the others are h/2
            and h/4); same shapes as ``problem.weights``.
        dbiases_step: the same for the biases.
    """

    dweights: tuple[np.ndarray, ...]
    dbiases: tuple[np.ndarray, ...]
    dweights_error: tuple[np.ndarray, ...]
    dbiases_error: tuple[np.ndarray, ...]
    dweights_unreliable: tuple[np.ndarray, ...]
    dbiases_unreliable: tuple[np.ndarray, ...]
    evaluations: int
    dweights_step: tuple[np.ndarray, ...] = ()
    dbiases_step: tuple[np.ndarray, ...] = ()

    @property
    def unreliable_count(self) -> int:
        """How many entries straddle a kink."""
        return int(
            sum(np.count_nonzero(m) for m in (*self.dweights_unreliable, *self.dbiases_unreliable))
        )


@with_own_errstate
def finite_difference_gradients(
    problem: Problem, *, max_parameters: int | None = None
) -> FiniteDifferenceGradients:
    """dJ/dtheta for every parameter by Richardson-extrapolated central differences.

    J is evaluated in float64 on the problem's exact values, whatever its dtype. Each
    parameter gets its own step (see :func:`step_sizes`); the differences at h, h/2 and h/4
    are extrapolated to h = 0. An entry whose stencil straddles a kink is retried with the
    step shrunk by ``KINK_STEP_SHRINK`` (at most ``KINK_RETRIES`` times) and is marked
    unreliable only if it still straddles. Cost: about ``6 * P`` evaluations of J, each
    recomputing only the layers from the perturbed one on.

    Args:
        problem: the network, parameters and batch.
        max_parameters: refuse problems with more parameters than this.

    Returns:
        float64 gradients with per-entry error estimates, kink masks and steps.

    Raises:
        ValueError: if the problem has more than ``max_parameters`` parameters.
    """
    spec = problem.spec
    count = spec.parameter_count
    if max_parameters is not None and count > max_parameters:
        raise ValueError(
            f"the problem has {count} parameters, more than max_parameters={max_parameters}; "
            f"full finite differences would need about {6 * count} loss evaluations. Use the "
            f"directional mode instead: directional_check(problem, dweights, dbiases, "
            f"directions=k) compares v^T g along k random directions at 6 evaluations each."
        )
    p = Float64Problem.of(problem)
    eps_j = evaluation_error_bound(p)
    evaluations = 1  # the base forward pass
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("dw", "db", "ew", "eb", "uw", "ub", "sw", "sb")
    }
    for i in range(spec.depth):
        n_out, n_in = p.weights[i].shape
        value, error, unreliable, steps, used = _layer_with_retries(p, i, eps_j)
        evaluations += used
        for arr, w_key, b_key in (
            (value, "dw", "db"),
            (error, "ew", "eb"),
            (unreliable, "uw", "ub"),
            (steps, "sw", "sb"),
        ):
            grid = arr.reshape(n_out, n_in + 1)
            out[w_key].append(grid[:, :n_in].copy())
            out[b_key].append(grid[:, n_in].copy())
    return FiniteDifferenceGradients(
        dweights=tuple(out["dw"]),
        dbiases=tuple(out["db"]),
        dweights_error=tuple(out["ew"]),
        dbiases_error=tuple(out["eb"]),
        dweights_unreliable=tuple(out["uw"]),
        dbiases_unreliable=tuple(out["ub"]),
        evaluations=evaluations,
        dweights_step=tuple(out["sw"]),
        dbiases_step=tuple(out["sb"]),
    )


def _layer_with_retries(
    p: Float64Problem, layer: int, eps_j: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every parameter of one layer, kink straddles retried with smaller steps.

    Returns value, error estimate, unreliable flag and largest step per entry of the
    layer's augmented matrix ``[W_i | b_i]`` (a row of ones appended to its input), flat in
    C order, and the number of evaluations of J used.
    """
    theta = np.hstack([p.weights[layer], p.biases[layer][:, None]]).ravel()
    steps = step_sizes(theta)
    value = np.empty(theta.size)
    error = np.empty(theta.size)
    unreliable = np.empty(theta.size, dtype=bool)
    todo = np.arange(theta.size)
    evaluations = 0
    for attempt in range(KINK_RETRIES + 1):
        if attempt:
            shrunk = steps[todo] * KINK_STEP_SHRINK
            steps[todo] = (theta[todo] + shrunk) - theta[todo]
        value[todo], error[todo], unreliable[todo], used = _layer_differences(
            p, layer, todo, steps[todo], eps_j
        )
        evaluations += used
        todo = todo[unreliable[todo]]
        if todo.size == 0:
            break
    return value, error, unreliable, steps, evaluations


def _layer_differences(
    p: Float64Problem, layer: int, entries: np.ndarray, steps: np.ndarray, eps_j: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Extrapolated differences for some parameters of one layer.

    ``entries`` index the layer's augmented matrix ``[W_i | b_i]`` in C order (column
    ``n_{i-1}`` is the bias); ``steps`` are their largest steps. Returns value, error
    estimate, kink straddle flag per entry, and the number of evaluations of J used.
    """
    spec, batch = p.spec, p.x.shape[1]
    n_out, n_in = p.weights[layer].shape
    source = np.vstack([p.base.layer_input(layer), np.ones((1, batch))])
    rows, cols = np.divmod(entries, n_in + 1)
    points = len(STENCIL)
    value = np.empty(entries.size)
    error = np.empty(entries.size)
    straddle = np.empty(entries.size, dtype=bool)
    widest = max(spec.widths[layer + 1 :])
    per_chunk = max(1, _MAX_CHUNK_ELEMENTS // (widest * batch * points))
    evaluations = 0
    for start in range(0, entries.size, per_chunk):
        sl = slice(start, min(start + per_chunk, entries.size))
        m = sl.stop - sl.start
        copies = 1 + points * m  # copy 0 is the unperturbed point
        offsets = (steps[sl, None] * STENCIL[None, :]).ravel()
        h_stack = np.tile(p.base.h[layer], (1, copies)).reshape(n_out, copies, batch)
        h_stack[np.repeat(rows[sl], points), 1 + np.arange(copies - 1), :] += (
            offsets[:, None] * source[np.repeat(cols[sl], points)]
        )
        losses, straddles = stacked_losses(p, layer, h_stack.reshape(n_out, -1), copies)
        evaluations += copies
        differences = central_differences(losses[1:], steps[sl])
        value[sl], error[sl] = richardson(differences, steps[sl], eps_j)
        straddle[sl] = straddles[1:].reshape(m, points).any(axis=1)
    return value, error, straddle, evaluations
