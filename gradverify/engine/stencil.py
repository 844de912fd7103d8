"""What both modes of finite differences share: steps, stencil, evaluation, extrapolation.

:mod:`gradverify.engine.finite_diff` (every parameter) and
:mod:`gradverify.engine.directional` (random directions) both evaluate J in float64 on the
problem's *exact* values (a float16 parameter is converted to float64 without rounding),
whatever the problem's dtype, at the points of one stencil, and extrapolate.

How a perturbed J is evaluated. Perturbing ``W_i[a, c]`` by ``d`` changes only row ``a`` of
``h_i``, by ``d * z_{i-1}[c, :]``. So layers before ``i`` are reused from one base forward pass,
the perturbation is added to ``h_i`` directly, and only layers ``i..L`` are recomputed, for a
whole batch of perturbations at once (they are stacked as extra columns, which are samples).
A side effect is that every stencil point is an *exact* perturbation of the real-valued
parameter: no rounding of ``theta +- h`` enters the difference. The directional mode does the
same with ``h_l = (W_l z + b_l) + s (V_l z + c_l)``.

Kinks. A difference whose stencil straddles a kink (relu, leaky_relu and elu at 0) measures
nothing. For every stencil point the sign of ``h - kink`` of every pre-activation of a layer
with kinks is compared with the unperturbed one; any change (including landing exactly on the
kink) is a straddle. The loss's kinks count too (``Loss.kink_sides``: l1 at ``z = y``, and
huber at ``|z - y| = delta``, where only its second derivative jumps, which is enough to
spoil Richardson extrapolation).
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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gradverify.model.functions import activation, has_fused_delta, loss_function
from gradverify.model.network import ForwardPass, NetworkSpec, Problem, output_delta

__all__ = [
    "KINK_RETRIES",
    "KINK_STEP_SHRINK",
    "NUM_STEPS",
    "STENCIL",
    "STEP_FACTOR",
    "STEP_RATIO",
    "TYPICAL_SCALE",
    "UNIT_ROUNDOFF",
    "Float64Problem",
    "Perturbation",
    "central_differences",
    "evaluation_error_bound",
    "richardson",
    "stacked_losses",
    "step_sizes",
]

UNIT_ROUNDOFF = 2.0**-53
"""u for float64: every evaluation here is in float64."""

STEP_FACTOR = UNIT_ROUNDOFF ** (1.0 / 5.0)
"""The largest step is about ``u^(1/5) * max(|theta|, TYPICAL_SCALE)`` (u^(1/5) ~ 6.4e-4).

Not the textbook u^(1/3): that is the best step for a *single* central difference, whose
error is O(h^2) + O(u/h). After two Richardson stages the value's error is O(h^6) + O(u/h)
and the error estimate (the last correction) is O(h^4) + O(u/h), which balance at
h ~ u^(1/5). Measured against the mpmath oracle of tests/unit/test_finite_diff.py on small
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

STENCIL = np.array([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
"""Stencil offsets in units of the largest step h: +-h, +-h/2, +-h/4 (pairs, largest first)."""


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
# Evaluation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Float64Problem:
    """A problem's exact float64 values and its base forward pass, shared by every point."""

    spec: NetworkSpec
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    x: np.ndarray
    y: np.ndarray
    base: ForwardPass

    @classmethod
    def of(cls, problem: Problem) -> Float64Problem:
        """The problem's values in float64 (exact; the problem's own read-only arrays when
        they are float64 already) and their forward pass."""
        weights, biases, x, y = (
            tuple(np.asarray(a, dtype=np.float64) for a in arrays)
            for arrays in (problem.weights, problem.biases, (problem.x,), (problem.y,))
        )
        return cls(problem.spec, weights, biases, x[0], y[0], problem.forward64())


def _kink_side(h: np.ndarray, kinks: tuple[float, ...]) -> list[np.ndarray]:
    """The side (-1, 0, +1) of each kink on which each entry of ``h`` lies."""
    return [np.sign(h - k) for k in kinks]


def _straddles(
    sides: list[np.ndarray], reference: list[np.ndarray] | None, copies: int, batch: int
) -> np.ndarray:
    """Per copy: whether any entry is on another side of a kink than in ``reference`` (the
    sides of one unstacked batch), or than in copy 0 when ``reference`` is None."""
    out = np.zeros(copies, dtype=bool)
    for k, side in enumerate(sides):
        side = side.reshape(side.shape[0], copies, batch)
        ref = side[:, :1, :] if reference is None else reference[k][:, None, :]
        out |= np.any(side != ref, axis=(0, 2))
    return out


Perturbation = Callable[[int, np.ndarray], np.ndarray]
"""``(i, z) -> dh``: what a perturbation of layer ``i``'s parameters adds to its pre-activation
``W_i z + b_i``, for stacked columns ``z`` (shape ``(n_out, copies * batch)``)."""


def stacked_losses(
    p: Float64Problem,
    layer: int,
    h_stack: np.ndarray,
    copies: int,
    perturbation: Perturbation | None = None,
    *,
    unperturbed_first: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Finish the forward pass for ``copies`` stacked copies of the batch.

    ``h_stack`` is the pre-activation of layer ``layer`` (0-based), shape
    ``(n, copies * batch)``, copy ``k`` in columns ``k*batch:(k+1)*batch``. With a
    ``perturbation`` later layers are evaluated as ``(W z + b) + perturbation(i, z)`` (the
    directional mode: ``s (V z + c)``, ``s`` per column).

    Returns J per copy, shape (copies,), and a bool per copy: True where some pre-activation
    of a kinked layer (from ``layer`` on) is on a different side of a kink than at the
    unperturbed point: copy 0 if ``unperturbed_first``, else the base forward pass.
    """
    spec, batch, base = p.spec, p.x.shape[1], p.base
    straddles = np.zeros(copies, dtype=bool)
    h, z = h_stack, h_stack
    with np.errstate(all="ignore"):
        for i in range(layer, spec.depth):
            if i > layer:
                h = p.weights[i] @ z + p.biases[i][:, None]
                if perturbation is not None:
                    h += perturbation(i, z)
            act = activation(spec.activations[i])
            if act.kinks:
                reference = None if unperturbed_first else _kink_side(base.h[i], act.kinks)
                straddles |= _straddles(_kink_side(h, act.kinks), reference, copies, batch)
            z = act.forward(h)
        n_out = h.shape[0]
        y = np.tile(p.y, (1, copies))
        loss = loss_function(spec.loss)
        if loss.kink_sides is not None:
            reference = None if unperturbed_first else loss.kink_sides(base.h[-1], base.z[-1], p.y)
            straddles |= _straddles(loss.kink_sides(h, z, y), reference, copies, batch)
        per_element = loss.value(h, z, y)
        losses = per_element.reshape(n_out, copies, batch).sum(axis=(0, 2)) / p.y.size
    return losses, straddles


def evaluation_error_bound(p: Float64Problem) -> float:
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


def richardson(
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


def central_differences(losses: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(m, 6) losses at the stencil points -> (m, 3) central differences at h, h/2, h/4."""
    pairs = losses.reshape(-1, NUM_STEPS, 2)
    half_widths = steps[:, None] * STENCIL[0::2][None, :]
    with np.errstate(all="ignore"):
        return (pairs[:, :, 0] - pairs[:, :, 1]) / (2 * half_widths)
