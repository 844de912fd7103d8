"""Float64 finite differences of J with respect to every parameter, with error estimates.

Two modes:

* :func:`finite_difference_gradients` differentiates J with respect to each parameter in turn
  (``6 * P`` loss evaluations): central differences at steps ``h, h/2, h/4`` and Richardson
  extrapolation, with a step chosen per parameter and an error estimate per entry.
* :func:`directional_check` is for networks too large for that: it compares ``v^T g`` with one
  extrapolated directional difference along each of a few random unit directions ``v``.

Both always evaluate J in float64 on the problem's *exact* values (a float16 parameter is
converted to float64 without rounding), whatever the problem's dtype.

How a perturbed J is evaluated. Perturbing ``W_i[a, c]`` by ``d`` changes only row ``a`` of
``h_i``, by ``d * z_{i-1}[c, :]``. So layers before ``i`` are reused from one base forward pass,
the perturbation is added to ``h_i`` directly, and only layers ``i..L`` are recomputed, for a
whole batch of perturbations at once (they are stacked as extra columns, which are samples).
A side effect is that every stencil point is an *exact* perturbation of the real-valued
parameter: no rounding of ``theta +- h`` enters the difference. The directional mode does the
same with ``h_l = (W_l z + b_l) + s (V_l z + c_l)``.

Kinks. A difference whose stencil straddles a kink (relu at 0) measures nothing. For every
stencil point the sign of ``h - kink`` of every pre-activation of a layer with kinks is compared
with the unperturbed one; any change (including landing exactly on the kink) is a straddle.
A straddling entry is retried with smaller steps and marked unreliable only if it still
straddles with the smallest one. Only the stencil points are examined: a pre-activation that
leaves and re-enters its side of a kink *between* two stencil points is not seen (that cannot
happen in the perturbed layer itself, where ``h`` is linear in the parameter).

Error estimates (absolute, per entry) follow numdifftools: the difference between the last two
Richardson extrapolants plus a bound on the rounding error, which is a first-order running
error bound ``eps_J`` on one float64 evaluation of J propagated through the difference
formula (about ``6.6 eps_J / h``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradverify.common.errstate import with_own_errstate
from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.network import ForwardPass, NetworkSpec, Problem, forward, output_delta

__all__ = [
    "DirectionalCheck",
    "FiniteDifferenceGradients",
    "directional_check",
    "finite_difference_gradients",
    "flatten_parameters",
    "step_sizes",
    "unflatten_parameters",
]

UNIT_ROUNDOFF = 2.0**-53
"""u for float64: every evaluation here is in float64."""

STEP_FACTOR = UNIT_ROUNDOFF ** (1.0 / 5.0)
"""The largest step is about ``u^(1/5) * max(|theta|, TYPICAL_SCALE)`` (u^(1/5) ~ 6.4e-4).

Not the textbook u^(1/3): that is the best step for a *single* central difference, whose
error is O(h^2) + O(u/h). After two Richardson stages the value's error is O(h^6) + O(u/h)
and the error estimate (the last correction) is O(h^4) + O(u/h), which balance at
h ~ u^(1/5). Measured against the mpmath oracle of tests/test_finite_diff.py on small
tanh/sigmoid/softplus networks (inputs up to 100, weights up to x5), u^(1/3) gave relative
errors of about 1e-7 (median; worst 8e-7) because the h/4 difference is dominated by
rounding, and u^(1/5) about 1e-9 (median; worst 6e-9), with honest estimates for both.
Larger steps straddle relu kinks more often; those entries are retried with smaller steps
(see KINK_RETRIES).
"""

TYPICAL_SCALE = 1.0
"""The floor of the scale a step is proportional to, so that theta = 0 still gets a step."""

STEP_RATIO = 2.0
"""Successive steps are h, h/2, h/4: each Richardson stage removes one even power of h."""

KINK_STEP_SHRINK = 2.0**-6
"""An entry whose stencil straddles a kink is retried with its step multiplied by this ..."""

KINK_RETRIES = 2
"""... at most this many times (h = 2**-23 ~ 1.2e-7 at scale 1) before it is marked unreliable."""

NUM_STEPS = 3

_STENCIL = np.array([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
"""Stencil offsets in units of the largest step h: +-h, +-h/2, +-h/4 (pairs, largest first)."""

_MAX_CHUNK_ELEMENTS = 1 << 21
"""Upper bound on (widest layer) x (stacked columns) per vectorised evaluation, ~16 MB."""


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Parameter vectors and steps
# ---------------------------------------------------------------------------


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


def step_sizes(theta: np.ndarray) -> np.ndarray:
    """The largest central-difference step for each parameter value (float64, same shape).

    ``h ~ u^(1/5) * max(|theta|, 1)`` (see STEP_FACTOR), rounded to a power of two (so h/2,
    h/4 and ``d * z`` are exact scalings) and then made representable,
    ``h = (theta + h) - theta``, so that ``(theta + h) - theta == h`` holds exactly.
    """
    theta = np.asarray(theta, dtype=np.float64)
    scale = np.maximum(np.abs(theta), TYPICAL_SCALE)
    h = np.exp2(np.round(np.log2(STEP_FACTOR * scale)))
    return (theta + h) - theta


# ---------------------------------------------------------------------------
# Evaluation helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Float64Problem:
    spec: NetworkSpec
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    x: np.ndarray
    y: np.ndarray
    base: ForwardPass

    @classmethod
    def of(cls, problem: Problem) -> _Float64Problem:
        weights = tuple(w.astype(np.float64) for w in problem.weights)
        biases = tuple(b.astype(np.float64) for b in problem.biases)
        x, y = problem.x.astype(np.float64), problem.y.astype(np.float64)
        return cls(problem.spec, weights, biases, x, y, forward(problem.spec, weights, biases, x))


def _kink_side(h: np.ndarray, kinks: tuple[float, ...]) -> list[np.ndarray]:
    """The side (-1, 0, +1) of each kink on which each entry of ``h`` lies."""
    return [np.sign(h - k) for k in kinks]


def _stacked_losses(
    p: _Float64Problem,
    layer: int,
    h_stack: np.ndarray,
    copies: int,
    direction: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Finish the forward pass for ``copies`` stacked copies of the batch.

    ``h_stack`` is the pre-activation of layer ``layer`` (0-based), shape
    ``(n, copies * batch)``, copy ``k`` in columns ``k*batch:(k+1)*batch``. Copy 0 must be
    the unperturbed point. With ``direction = (V, c, s_cols)`` later layers are evaluated at
    ``W + s V``, ``b + s c`` as ``(W z + b) + s (V z + c)`` with ``s`` per column.

    Returns J per copy, shape (copies,), and a bool per copy: True where some pre-activation
    of a kinked layer (from ``layer`` on) is on a different side of a kink than in copy 0.
    """
    spec, batch = p.spec, p.x.shape[1]
    straddles = np.zeros(copies, dtype=bool)
    h, z = h_stack, h_stack
    with np.errstate(all="ignore"):
        for i in range(layer, spec.depth):
            if i > layer:
                h = p.weights[i] @ z + p.biases[i][:, None]
                if direction is not None:
                    V, c, s_cols = direction
                    h = h + s_cols * (V[i] @ z + c[i][:, None])
            act = activation(spec.activations[i])
            for side in _kink_side(h, act.kinks):
                side = side.reshape(side.shape[0], copies, batch)
                straddles |= np.any(side != side[:, :1, :], axis=(0, 2))
            z = act.forward(h)
        n_out = h.shape[0]
        y = np.tile(p.y, (1, copies))
        per_element = loss_function(spec.loss).value(h, z, y)
        losses = per_element.reshape(n_out, copies, batch).sum(axis=(0, 2)) / p.y.size
    return losses, straddles


def _evaluation_error_bound(p: _Float64Problem) -> float:
    """A first-order bound on the absolute rounding error of one float64 evaluation of J.

    Running error analysis through the forward pass: ``|dh_i| <= (n+1) u (|W||z| + |b|) +
    |W| |dz_{i-1}|``, ``|dz_i| <= |act'(h_i)| |dh_i| + 4 u |z_i|``, then through the loss:
    ``sum |dJ/dh_L| |dh_L|`` (or ``dJ/dz_L`` for losses without a fused form), the loss's own
    rounding ``8 u (|l| + |y| (|h| + max_col |h|))`` per element and the final sum.
    """
    u, spec, fp = UNIT_ROUNDOFF, p.spec, p.base
    z, dz = p.x, np.zeros_like(p.x)
    with np.errstate(all="ignore"):
        for i in range(spec.depth):
            W, b, h = p.weights[i], p.biases[i], fp.h[i]
            n = W.shape[1]
            dh = (n + 1) * u * (np.abs(W) @ np.abs(z) + np.abs(b)[:, None]) + np.abs(W) @ dz
            act = activation(spec.activations[i])
            z = fp.z[i]
            dz = np.abs(act.derivative(h)) * dh + 4 * u * np.abs(z)
        h, y = fp.h[-1], p.y
        loss = loss_function(spec.loss)
        if has_fused_delta(loss):
            propagated = np.sum(np.abs(output_delta(spec, fp, y)) * dh)
        else:
            propagated = np.sum(np.abs(loss.naive_output_gradient(z, y)) * dz) / y.size
        per_element = np.abs(loss.value(h, z, y))
        colmax = np.max(np.abs(h), axis=0, keepdims=True)
        own = 8 * u * np.sum(per_element + np.abs(y) * (np.abs(h) + colmax)) / y.size
        summation = (y.size + 1) * u * np.sum(per_element) / y.size
        bound = float(propagated + own + summation)
    return bound if np.isfinite(bound) else float("inf")


def _richardson(
    differences: np.ndarray, steps: np.ndarray, eps_j: float
) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolate central differences at steps h, h/2, h/4 (columns) to h = 0.

    ``differences`` has shape (m, NUM_STEPS), ``steps`` (m,) is the largest step. The error
    estimate is ``|final - best previous extrapolant| + rounding``, where the rounding bound
    carries ``eps_j / h_s`` per difference (two evaluations, each within ``eps_j``, over
    ``2 h_s``) through the same linear combination, plus a few u of the values themselves.
    """
    table = [differences[:, s] for s in range(NUM_STEPS)]
    noise = [eps_j / (steps / STEP_RATIO**s) for s in range(NUM_STEPS)]
    previous = table[-1]
    with np.errstate(all="ignore"):
        for k in range(1, NUM_STEPS):
            factor = STEP_RATIO ** (2 * k)
            previous = table[-1]
            table = [
                (factor * table[s + 1] - table[s]) / (factor - 1) for s in range(len(table) - 1)
            ]
            noise = [
                (factor * noise[s + 1] + noise[s]) / (factor - 1) for s in range(len(noise) - 1)
            ]
        value = table[0]
        error = (
            np.abs(value - previous)
            + noise[0]
            + 8 * UNIT_ROUNDOFF * np.max(np.abs(differences), axis=1)
        )
    bad = ~np.isfinite(value) | ~np.isfinite(error)
    value = np.where(np.all(np.isfinite(differences), axis=1), value, np.nan)
    return value, np.where(bad, np.inf, error)


def _central_differences(losses: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(m, 6) losses at the stencil points -> (m, 3) central differences at h, h/2, h/4."""
    pairs = losses.reshape(-1, NUM_STEPS, 2)
    half_widths = steps[:, None] * _STENCIL[0::2][None, :]
    with np.errstate(all="ignore"):
        return (pairs[:, :, 0] - pairs[:, :, 1]) / (2 * half_widths)


# ---------------------------------------------------------------------------
# Full finite differences
# ---------------------------------------------------------------------------


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
            f"directions=k) compares v^T g along k random directions at 7 evaluations each."
        )
    p = _Float64Problem.of(problem)
    eps_j = _evaluation_error_bound(p)
    evaluations = 1  # the base forward pass
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("dw", "db", "ew", "eb", "uw", "ub", "sw", "sb")
    }
    for i in range(spec.depth):
        n_out, n_in = p.weights[i].shape
        # Weights and bias of layer i as one augmented matrix; its input gets a row of ones.
        theta = np.hstack([p.weights[i], p.biases[i][:, None]]).ravel()
        steps = step_sizes(theta)
        value = np.empty(theta.size)
        error = np.empty(theta.size)
        unreliable = np.empty(theta.size, dtype=bool)
        todo = np.arange(theta.size)
        for attempt in range(KINK_RETRIES + 1):
            if attempt:
                shrunk = steps[todo] * KINK_STEP_SHRINK
                steps[todo] = (theta[todo] + shrunk) - theta[todo]
            value[todo], error[todo], unreliable[todo], used = _layer_differences(
                p, i, todo, steps[todo], eps_j
            )
            evaluations += used
            todo = todo[unreliable[todo]]
            if todo.size == 0:
                break
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


def _layer_differences(
    p: _Float64Problem, layer: int, entries: np.ndarray, steps: np.ndarray, eps_j: float
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
    points = len(_STENCIL)
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
        offsets = (steps[sl, None] * _STENCIL[None, :]).ravel()
        h_stack = np.tile(p.base.h[layer], (1, copies)).reshape(n_out, copies, batch)
        h_stack[np.repeat(rows[sl], points), 1 + np.arange(copies - 1), :] += (
            offsets[:, None] * source[np.repeat(cols[sl], points)]
        )
        losses, straddles = _stacked_losses(p, layer, h_stack.reshape(n_out, -1), copies)
        evaluations += copies
        differences = _central_differences(losses[1:], steps[sl])
        value[sl], error[sl] = _richardson(differences, steps[sl], eps_j)
        straddle[sl] = straddles[1:].reshape(m, points).any(axis=1)
    return value, error, straddle, evaluations


# ---------------------------------------------------------------------------
# Directional mode
# ---------------------------------------------------------------------------


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
    if directions < 1:
        raise ValueError(f"directions must be at least 1; got {directions}")
    if len(dweights) != spec.depth or len(dbiases) != spec.depth:
        raise ValueError(
            f"expected {spec.depth} weight and bias gradients; "
            f"got {len(dweights)} and {len(dbiases)}"
        )
    for i in range(spec.depth):
        for name, g, ref in (
            ("dW", dweights[i], problem.weights[i]),
            ("db", dbiases[i], problem.biases[i]),
        ):
            if np.shape(g) != ref.shape:
                raise ValueError(f"{name}_{i + 1} should have shape {ref.shape}; got {np.shape(g)}")
    p = _Float64Problem.of(problem)
    gradient = flatten_parameters(dweights, dbiases)
    theta = flatten_parameters(p.weights, p.biases)
    rng = np.random.default_rng(seed)
    v_all = rng.standard_normal((directions, theta.size))
    v_all /= np.linalg.norm(v_all, axis=1, keepdims=True)
    step = float(
        np.exp2(np.round(np.log2(STEP_FACTOR * max(float(np.linalg.norm(theta)), TYPICAL_SCALE))))
    )
    eps_j = _evaluation_error_bound(p)
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
            evaluations += 1 + len(_STENCIL)
            if not unreliable[k]:
                break
    value, error = _richardson(differences, steps, eps_j)
    return DirectionalCheck(
        directions=directions,
        projected_fd=value,
        projected_fd_error=error,
        projected_gradient=projected_gradient,
        unreliable=unreliable,
        steps=steps,
        evaluations=evaluations,
    )


def _directional_differences(
    p: _Float64Problem, V: tuple[np.ndarray, ...], c: tuple[np.ndarray, ...], step: float
) -> tuple[np.ndarray, bool]:
    """Central differences of ``J(theta + t (V, c))`` at t = step, step/2, step/4.

    Returns the (NUM_STEPS,) differences and whether the stencil straddles a kink.
    """
    batch = p.x.shape[1]
    copies = 1 + len(_STENCIL)  # copy 0 is the unperturbed point
    s_cols = np.repeat(np.concatenate([[0.0], step * _STENCIL]), batch)[None, :]
    x_stack = np.tile(p.x, (1, copies))
    with np.errstate(all="ignore"):
        h0 = (p.weights[0] @ x_stack + p.biases[0][:, None]) + s_cols * (
            V[0] @ x_stack + c[0][:, None]
        )
    losses, straddles = _stacked_losses(p, 0, h0, copies, direction=(V, c, s_cols))
    return _central_differences(losses[1:], np.array([step]))[0], bool(np.any(straddles[1:]))
