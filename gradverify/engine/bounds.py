"""A-priori rounding-error bounds: what correct float arithmetic may do to each gradient entry.

A tensor is never failed for an error that a correct computation of the same network, in
the dtype under test, may legitimately make. This module bounds that error *elementwise*,
from the magnitudes involved, by running error analysis (Higham, *Accuracy and Stability of
Numerical Algorithms*, ch. 2-3) along the layer recursion.

The model
---------
Every basic operation rounds correctly: ``fl(a op b) = (a op b)(1 + d) + e`` with ``|d| <= u``
(the unit roundoff of the dtype) and ``|e| <= eta``, the smallest normal number: a result
below it may be flushed to zero (flush-to-zero modes, library ``exp`` near its underflow).
A sum or dot product of ``n`` terms, in **any order**, errs by at most ``gamma_n sum |terms|``
with ``gamma_n = n u / (1 - n u)``. Every elementwise library function
(``exp``, ``tanh``, a sigmoid built from them, ``log``) is within :data:`FUNCTION_ROUNDINGS`
units of roundoff of its exact value *at its computed argument*. An error already in the
argument is carried through the function by its spread over the argument's error interval:
the condition of the function, not a constant.

With ``E`` the bound on an entry's absolute error and ``|.|`` taken elementwise:

    E(h_i)        = gamma_{n+1} (|W_i| |z_{i-1}| + |b_i|) + |W_i| E(z_{i-1})
    E(z_i)        = spread(act, h_i, E(h_i)) + c u |z_i|
    E(act'_i)     = spread(act', h_i, E(h_i)) + c u |act'_i|                 (stable form)
                  = spread(act'_from_z, z_i, E(z_i)) + c u |act'_i|          (autograd form)
    E(g)          = gamma_n |W_i|^T |delta_i| + |W_i|^T E(delta_i)           (g = W_i^T delta_i)
    E(delta_{i-1}) = E(g) |act'| + |g| E(act') + u |g act'|
    E(dW_i)       = gamma_B |delta_i| |z_{i-1}|^T + E(delta_i) |z_{i-1}|^T + |delta_i| E(z_{i-1})^T
    E(db_i)       = gamma_B sum_b |delta_i| + sum_b E(delta_i)

and the output delta's own error per loss (the loss's cancellation: ``sigmoid(h) - y``,
``softmax(h) sum(y) - y``, ``2 (z - y) act'``). An exact zero reached by cancellation is
then accepted at the scale of the terms that cancelled, ``|W|^T |delta|`` or ``|delta||z|^T``.

Two formulations are bounded. ``"stable"`` computes every ``act'`` from ``h`` in a stable
form; ``"autograd"`` computes ``sigma'`` and ``tanh'`` from the layer outputs as torch and jax
do, so a saturated unit may lose every bit of ``act'`` (the bound then allows an absolute
error of about ``u`` in ``act'``, which is ``e^|h| u`` relatively).

The bound is first order in ``u``; it is multiplied by :data:`SAFETY` to cover the
second-order terms and the float64 magnitudes it is computed from. Where no finite bound
exists (``n u >= 1/2``, only for very wide bfloat16 sums) an entry's bound is 0: the floor
then excuses nothing. Tests compare it with every summation order of small networks,
evaluated in the dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gradverify.model.dtypes import smallest_normal, unit_roundoff
from gradverify.model.functions import Activation, activation, has_fused_delta, loss_function
from gradverify.model.names import check_name
from gradverify.model.network import ForwardPass, Problem, output_delta

__all__ = [
    "FORMULATIONS",
    "FUNCTION_ROUNDINGS",
    "SAFETY",
    "Formulation",
    "rounding_error_bounds",
    "rounding_floors",
]

Formulation = Literal["stable", "autograd"]
FORMULATIONS: tuple[str, ...] = ("stable", "autograd")

FUNCTION_ROUNDINGS = 4.0
"""Units of roundoff within which one elementwise function value is assumed correct."""

SAFETY = 2.0
"""Factor on the first-order bound (second-order terms, float64 magnitudes)."""


def _gamma(n: int, u: float) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term sum in any order."""
    nu = n * u
    return nu / (1.0 - nu) if nu < 0.5 else np.inf


def _spread(fn: Callable[[np.ndarray], np.ndarray], t: np.ndarray, err: np.ndarray) -> np.ndarray:
    """max |fn(t +- err) - fn(t)|: how far an argument error of ``err`` moves ``fn``.

    The offset is widened to what float64 resolves at ``t`` (at most a few float64 ulps) so
    that a tiny ``err`` is not lost; a non-finite evaluation contributes nothing.
    """
    step = np.maximum(err, 4 * np.spacing(np.abs(t)))
    centre = fn(t)
    moved = np.maximum(np.abs(fn(t + step) - centre), np.abs(fn(t - step) - centre))
    return np.where(np.isfinite(moved), moved, 0.0)


def _softmax_ce_error(
    h: np.ndarray, y: np.ndarray, e_h: np.ndarray, epsilon: float, u: float
) -> np.ndarray:
    """Bound on the error of ``softmax(h) sum(t) - t`` (before the division by N).

    ``t = (1 - epsilon) y + epsilon/K`` are the smoothed targets (``y`` at epsilon 0); with
    label smoothing each ``t`` rounds up to three times.
    """
    c = FUNCTION_ROUNDINGS
    rows = h.shape[0]
    t = y if epsilon == 0.0 else (1.0 - epsilon) * y + epsilon / rows
    shifted = h - h.max(axis=0, keepdims=True)
    log_total = np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    log_p = shifted - log_total
    p = np.exp(log_p)
    target_sum = t.sum(axis=0, keepdims=True)
    # the exponent t_k = (h_k - max) - log(sum): its rounding and the argument errors
    e_t = (
        u * (np.abs(shifted) + np.abs(log_p))
        + (c + 1) * u * np.abs(log_total)
        + c * u
        + _gamma(rows, u)
        + 2 * e_h.max(axis=0, keepdims=True)
    )
    e_p = p * (e_t + c * u) * (1 + e_t)
    e_scaled = (
        e_p * np.abs(target_sum)
        + p * _gamma(rows, u) * np.abs(t).sum(axis=0)
        + u * p * np.abs(target_sum)
    )
    if epsilon != 0.0:
        e_scaled = e_scaled + 3 * u * (p * np.abs(t).sum(axis=0) + np.abs(t))
    return e_scaled


def _output_delta_error(
    problem: Problem,
    h: np.ndarray,
    z: np.ndarray,
    e_h: np.ndarray,
    e_z: np.ndarray,
    delta: np.ndarray,
    formulation: Formulation,
    u: float,
    eta: float,
) -> np.ndarray:
    """Bound on the error of dJ/dh_L = dloss/dh_L / N, per entry (shape (n_L, batch))."""
    spec, y = problem.spec, problem.y.astype(np.float64)
    n = float(y.size)
    loss = loss_function(spec.loss)
    d = np.abs(delta) * n  # |dloss/dh_L|, before the division by N
    if loss.labels == "distribution":  # softmax_ce(epsilon)
        e_d = _softmax_ce_error(h, y, e_h, loss.parameter or 0.0, u) + u * d
    elif has_fused_delta(loss):  # bce: sigmoid(h) - y, with z = sigmoid(h)
        e_d = e_z + u * d
    else:  # dloss/dz (.) act'(h_L): 2 (z - y), sign(z - y), clip(z - y)
        act = activation(spec.activations[-1])
        slope, e_slope = _derivative_and_error(act, h, z, e_h, e_z, formulation, problem.dtype, eta)
        g = np.abs(loss.naive_output_gradient(z, y))
        e_g = loss.output_gradient_error(z, y, e_z, u)
        e_d = e_g * np.abs(slope) + g * e_slope + u * g * np.abs(slope)
    return e_d / n + u * np.abs(delta) + eta


def _own_error(
    bound: Callable[[np.ndarray, np.dtype], np.ndarray] | None,
    t: np.ndarray,
    value: np.ndarray,
    dtype: np.dtype,
) -> np.ndarray:
    """A float form's own error at its computed argument: ``bound`` or ``c u |value|``."""
    if bound is None:
        return FUNCTION_ROUNDINGS * unit_roundoff(dtype) * np.abs(value)
    return bound(t, dtype)


def _derivative_and_error(
    act: Activation,
    h: np.ndarray,
    z: np.ndarray,
    e_h: np.ndarray,
    e_z: np.ndarray,
    formulation: Formulation,
    dtype: np.dtype,
    eta: float,
) -> tuple[np.ndarray, np.ndarray]:
    """act'(h) in float64 and the bound on its computed value's error.

    The argument's error is carried by the spread of the exact derivative (of ``z`` for a
    form from the outputs); the form's own rounding by the activation's error bound, which
    for a form that cancels (torch's GELU backward) comes from the magnitudes of its terms.
    """
    slope = act.derivative(h)
    if formulation == "autograd" and act.derivative_from_output is not None:
        moved = _spread(act.derivative_from_output, z, e_z)
        own = _own_error(None, h, slope, dtype)
    elif formulation == "autograd" and act.conventional_from_input is not None:
        moved = _spread(act.derivative, h, e_h)
        own = _own_error(act.conventional_error, h, slope, dtype)
    else:
        moved = _spread(act.derivative, h, e_h)
        own = _own_error(act.derivative_error, h, slope, dtype)
    return slope, moved + own + eta


@dataclass(frozen=True)
class _Forward:
    """The float64 forward pass and the bounds on the errors of its rounded values."""

    fp: ForwardPass
    inputs: list[np.ndarray]  # z_0 .. z_{L-1}
    e_inputs: list[np.ndarray]  # their error bounds (0 for x)
    e_hs: list[np.ndarray]
    e_zs: list[np.ndarray]


def _forward_errors(
    problem: Problem,
    fp: ForwardPass,
    acts: list[Activation],
    weights: list[np.ndarray],
    u: float,
    eta: float,
    formulation: Formulation = "stable",
) -> _Forward:
    """Bounds on the errors of each layer's h and z as the dtype computes them.

    ``fp`` is the float64 forward pass on the problem's values. Under ``"autograd"`` an
    activation whose conventional forward differs (torch's GELU, which cancels for
    negative h) has that form's error bound.
    """
    spec = problem.spec
    biases = [np.abs(b.astype(np.float64)) for b in problem.biases]
    inputs = [fp.x, *fp.z[:-1]]  # z_0 .. z_{L-1}
    e_inputs = [np.zeros_like(fp.x)]
    e_hs, e_zs = [], []
    for i, act in enumerate(acts):
        terms = weights[i] @ np.abs(inputs[i]) + biases[i][:, None]
        e_h = (
            _gamma(spec.widths[i] + 1, u) * terms
            + weights[i] @ e_inputs[i]
            + (spec.widths[i] + 1) * eta
        )
        bound = act.forward_error
        if formulation == "autograd" and act.conventional_forward is not None:
            bound = act.conventional_forward_error
        own = _own_error(bound, fp.h[i], fp.z[i], problem.dtype)
        e_z = _spread(act.forward, fp.h[i], e_h) + own + eta
        e_hs.append(e_h)
        e_zs.append(e_z)
        e_inputs.append(e_z)
    return _Forward(fp, inputs, e_inputs, e_hs, e_zs)


def _layer_bounds(
    delta: np.ndarray,
    e_delta: np.ndarray,
    z_in: np.ndarray,
    e_in: np.ndarray,
    batch: int,
    u: float,
    eta: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the errors of one layer's dW and db, from its delta and input (and bounds)."""
    gamma_batch = _gamma(batch, u)
    magnitude = np.abs(delta) @ z_in.T
    dw = (gamma_batch + 2 * u) * magnitude + e_delta @ z_in.T + np.abs(delta) @ e_in.T + batch * eta
    db = (gamma_batch + 2 * u) * np.abs(delta).sum(axis=1) + e_delta.sum(axis=1) + batch * eta
    return dw, db


@dataclass(frozen=True)
class _Setup:
    """What every formulation's bounds of one problem share."""

    problem: Problem
    u: float
    eta: float
    weights: list[np.ndarray]  # |W_i| in float64
    signed_weights: list[np.ndarray]  # W_i in float64
    acts: list[Activation]
    fp: ForwardPass

    @classmethod
    def of(cls, problem: Problem) -> _Setup:
        signed = [w.astype(np.float64) for w in problem.weights]
        return cls(
            problem,
            unit_roundoff(problem.dtype),
            smallest_normal(problem.dtype),
            [np.abs(w) for w in signed],
            signed,
            [activation(name) for name in problem.spec.activations],
            problem.forward64(),
        )

    def forward_errors(self, formulation: Formulation) -> _Forward:
        return _forward_errors(
            self.problem, self.fp, self.acts, self.weights, self.u, self.eta, formulation
        )

    def changes_forward(self, formulation: Formulation) -> bool:
        """Whether ``formulation`` bounds some layer's forward pass differently from stable."""
        return formulation == "autograd" and any(
            act.conventional_forward is not None for act in self.acts
        )


def _bounds(setup: _Setup, fw: _Forward, formulation: Formulation) -> list[np.ndarray]:
    """The bounds of one formulation, given its forward errors (see rounding_error_bounds)."""
    problem, u, eta, weights = setup.problem, setup.u, setup.eta, setup.weights
    spec, fp = problem.spec, fw.fp
    with np.errstate(all="ignore"):
        # the exact deltas' magnitudes, from a stable float64 backward pass
        delta = output_delta(spec, fp, problem.y.astype(np.float64))
        e_delta = _output_delta_error(
            problem, fp.h[-1], fp.z[-1], fw.e_hs[-1], fw.e_zs[-1], delta, formulation, u, eta
        )
        bounds: list[np.ndarray] = [np.empty(0)] * (2 * spec.depth)
        for i in reversed(range(spec.depth)):
            bounds[2 * i], bounds[2 * i + 1] = _layer_bounds(
                delta, e_delta, np.abs(fw.inputs[i]), fw.e_inputs[i], problem.batch_size, u, eta
            )
            if i > 0:
                g = setup.signed_weights[i].T @ delta
                e_g = (
                    _gamma(spec.widths[i + 1], u) * (weights[i].T @ np.abs(delta))
                    + weights[i].T @ e_delta
                    + spec.widths[i + 1] * eta
                )
                slope, e_slope = _derivative_and_error(
                    setup.acts[i - 1],
                    fp.h[i - 1],
                    fp.z[i - 1],
                    fw.e_hs[i - 1],
                    fw.e_zs[i - 1],
                    formulation,
                    problem.dtype,
                    eta,
                )
                delta = g * slope
                e_delta = e_g * np.abs(slope) + np.abs(g) * e_slope + u * np.abs(delta) + eta
    # where no finite bound exists (n u >= 1/2), the floor allows nothing: the baselines decide
    return [SAFETY * np.where(np.isfinite(b), b, 0.0) for b in bounds]


def rounding_error_bounds(
    problem: Problem, formulation: Formulation = "stable"
) -> list[np.ndarray]:
    """Elementwise bounds on |computed - exact| for dW_1, db_1, ..., dW_L, db_L (float64).

    Args:
        problem: the network, parameters and batch, in the dtype under test.
        formulation: ``"stable"`` (act' from h) or ``"autograd"`` (sigma', tanh' from z).

    Returns:
        One float64 array per gradient tensor, in the order of
        :meth:`gradverify.exact.reference.ReferenceGradients.tensors`, each of that tensor's shape.
    """
    check_name("formulation", formulation, FORMULATIONS)
    setup = _Setup.of(problem)
    with np.errstate(all="ignore"):
        return _bounds(setup, setup.forward_errors(formulation), formulation)


def rounding_floors(problem: Problem, formulations: Sequence[Formulation]) -> list[np.ndarray]:
    """The elementwise largest of :func:`rounding_error_bounds` over ``formulations``.

    The same arrays as taking ``np.maximum`` of each formulation's bounds, computed once per
    problem where the formulations agree: the float64 forward pass, the weights' magnitudes
    and (unless an activation has a conventional forward form) the forward errors.
    """
    for formulation in formulations:
        check_name("formulation", formulation, FORMULATIONS)
    setup = _Setup.of(problem)
    floors: list[np.ndarray] | None = None
    stable_forward = None
    with np.errstate(all="ignore"):
        for formulation in formulations:
            if setup.changes_forward(formulation):
                fw = setup.forward_errors(formulation)
            else:
                stable_forward = stable_forward or setup.forward_errors("stable")
                fw = stable_forward
            bounds = _bounds(setup, fw, formulation)
            floors = (
                bounds
                if floors is None
                else [np.maximum(a, b) for a, b in zip(floors, bounds, strict=True)]
            )
    if floors is None:
        raise ValueError("rounding_floors needs at least one formulation")
    return floors
