"""The :class:`Loss` record and the losses: bce, mse, softmax_ce(epsilon), l1, huber(delta).

Losses are elementwise over ``y`` (shape ``(n_L, batch)``) and the network loss is the
**mean over all elements** of ``y``: ``J = sum(loss) / y.size``.

=====================  ===================================================  =================
name                   per element (``d = z - y``)                          d loss / d z
=====================  ===================================================  =================
``bce``                ``-(y log z + (1-y) log(1-z))``, sigmoid output,     fused: ``s(h) - y``
                       soft labels ``y`` in [0, 1] too
``mse``                ``d^2``                                              ``2 d``
``softmax_ce(eps)``    ``-t_k log softmax(h)_k``, identity output,          fused:
                       ``t = (1 - eps) y + eps/K`` (K outputs), eps = 0.0   ``p sum(t) - t``
``l1``                 ``|d|`` (kink at d = 0)                              ``sign(d)``, 0 at 0
``huber(delta)``       ``d^2/2`` if ``|d| < delta`` else                    ``clip(d, +-delta)``
                       ``delta (|d| - delta/2)``; delta = 1.0
=====================  ===================================================  =================

``softmax_ce(eps)`` is torch's ``CrossEntropyLoss(label_smoothing=eps)`` for index and for
probability targets alike. ``huber`` is torch's ``HuberLoss(delta=...)``; its kinks at
``|d| = delta`` are in the second derivative only, but finite differences treat them as
kinks (Richardson extrapolation needs a smooth second derivative).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.model.activations import MPF, Array, MPContext, mp_sigmoid, sigmoid_float

__all__ = ["Loss", "bce", "huber", "l1", "mse", "softmax_ce", "unfused"]


@dataclass(frozen=True)
class Loss:
    """One loss, elementwise over the outputs; the network loss is its mean.

    All array arguments have shape ``(n_L, batch)``: ``h`` the output logits,
    ``z = act_L(h)`` the outputs, ``y`` the labels.

    Attributes:
        name: the canonical name (``"huber(2.0)"``; the bare name at the default).
        output_activation: the output activation the loss requires, or None for any.
        value: stable float per-element loss ``(h, z, y) -> loss`` (from logits where possible).
        output_delta: stable float ``d loss / d h`` per element (the *fused* form).
        mp_value: exact per-element loss for object arrays of mpf, ``(ctx, h, z, y)``.
        mp_output_delta: exact ``d loss / d h`` for object arrays of mpf, ``(ctx, h, z, y)``.
        naive_output_gradient: ``d loss / d z`` as textbooks write it, ``(z, y)``;
            for ``bce`` this is ``(z - y) / (z (1 - z))``, which divides by zero at saturation.
        mp_output_gradient: exact ``d loss / d z`` for object arrays of mpf, ``(ctx, z, y)``,
            used with ``act_L'`` where the loss has no fused delta.
        output_gradient_error: ``(z, y, e_z, u) -> bound`` on the error of the float
            ``d loss / d z`` when ``z`` errs by at most ``e_z`` (float64 arrays).
        kink_sides: ``(h, z, y) -> [sides]``: arrays whose sign changes where the loss has
            a kink (l1: ``z - y``), for finite differences; None: no kink.
        labels: ``"any"``, ``"probability"`` (each label in [0, 1]) or ``"distribution"``
            (each column a probability distribution, at least 2 outputs).
        parameter: the value of the one float parameter (huber, softmax_ce), else None.
    """

    name: str
    output_activation: str | None
    value: Callable[[Array, Array, Array], Array]
    output_delta: Callable[[Array, Array, Array], Array]
    mp_value: Callable[[MPContext, Array, Array, Array], Array]
    mp_output_delta: Callable[[MPContext, Array, Array, Array], Array]
    naive_output_gradient: Callable[[Array, Array], Array]
    mp_output_gradient: Callable[[MPContext, Array, Array], Array] | None = None
    output_gradient_error: Callable[[Array, Array, Array, float], Array] | None = None
    kink_sides: Callable[[Array, Array, Array], list[Array]] | None = None
    labels: str = "any"
    parameter: float | None = None

    @property
    def min_outputs(self) -> int:
        """The fewest output units the loss has a gradient with (2 for a softmax)."""
        return 2 if self.labels == "distribution" else 1


def _elementwise(ctx: MPContext, fn: Callable[..., MPF], *arrays: Array) -> Array:
    """Apply an mpf function elementwise to object arrays, returning an object array."""
    return np.frompyfunc(lambda *v: fn(ctx, *v), len(arrays), 1)(*arrays)


def unfused(*_: Any) -> Array:
    """The ``output_delta`` of a loss without a fused form; raises."""
    raise NotImplementedError("this loss has no fused output delta")


def _name(base: str, value: float, default: float) -> str:
    return base if value == default else f"{base}({float(value)!r})"


# --- binary cross-entropy on a sigmoid output (hard or soft labels) ----------


def _softplus(h: Array) -> Array:
    return np.maximum(h, np.zeros_like(h)) + np.log1p(np.exp(-np.abs(h)))


def _mp_bce_value_one(ctx: MPContext, h: MPF, y: MPF) -> MPF:
    # softplus(h) - y h, arranged so that y = 1 at h = 700 gives log1p(e^-700) ~ e^-700
    # instead of 700 + e^-700 - 700 cancelling to 0. Right for any y in [0, 1].
    if h >= 0:
        return (1 - y) * h + ctx.log1p(ctx.exp(-h))
    return ctx.log1p(ctx.exp(h)) - y * h


def _mp_bce_delta_one(ctx: MPContext, h: MPF, y: MPF) -> MPF:
    # sigmoid(h) - y without forming 1 - sigmoid(h): for h >= 0 it is (1 - y) - sigmoid(-h),
    # so y = 1 at h = 700 gives -sigmoid(-700) ~ -e^-700 instead of cancelling to 0. With a
    # soft label the two terms may cancel (sigmoid(h) near y): that cancellation is the
    # value's own, and the reference's two precisions see it.
    if h >= 0:
        return (1 - y) - mp_sigmoid(ctx, -h)
    return mp_sigmoid(ctx, h) - y


def bce() -> Loss:
    return Loss(
        name="bce",
        output_activation="sigmoid",
        value=lambda h, z, y: _softplus(h) - y * h,
        output_delta=lambda h, z, y: sigmoid_float(h) - y,
        mp_value=lambda ctx, h, z, y: _elementwise(ctx, _mp_bce_value_one, h, y),
        mp_output_delta=lambda ctx, h, z, y: _elementwise(ctx, _mp_bce_delta_one, h, y),
        naive_output_gradient=lambda z, y: (z - y) / (z * (1 - z)),
        labels="probability",
    )


# --- elementwise regression losses: mse, l1, huber ----------------------------


def _difference_error(z: Array, y: Array, e_z: Array, u: float) -> Array:
    """Bound on the error of the float ``z - y``: the error of z and one rounding."""
    return e_z + u * np.abs(z - y)


def mse() -> Loss:
    # no fused form: d loss/dh = 2 (z - y) act'(h), formed by the network code
    return Loss(
        name="mse",
        output_activation=None,
        value=lambda h, z, y: (z - y) ** 2,
        output_delta=unfused,
        mp_value=lambda ctx, h, z, y: _elementwise(ctx, lambda c, a, b: (a - b) ** 2, z, y),
        mp_output_delta=unfused,
        naive_output_gradient=lambda z, y: 2 * (z - y),
        mp_output_gradient=lambda ctx, z, y: 2 * (z - y),
        output_gradient_error=lambda z, y, e_z, u: 2 * _difference_error(z, y, e_z, u),
    )


def _mp_sign(ctx: MPContext, d: MPF) -> MPF:
    if d > 0:
        return ctx.one
    return -ctx.one if d < 0 else ctx.zero


def l1() -> Loss:
    """``|z - y|``; torch's L1Loss: ``sign(z - y)``, 0 where ``z = y``."""
    return Loss(
        name="l1",
        output_activation=None,
        value=lambda h, z, y: np.abs(z - y),
        output_delta=unfused,
        mp_value=lambda ctx, h, z, y: _elementwise(ctx, lambda c, a, b: abs(a - b), z, y),
        mp_output_delta=unfused,
        naive_output_gradient=lambda z, y: np.sign(z - y),
        mp_output_gradient=lambda ctx, z, y: _elementwise(ctx, _mp_sign, z - y),
        # the sign is wrong (by up to 2) only where z itself may be on the other side of y
        output_gradient_error=lambda z, y, e_z, u: np.where(np.abs(z - y) <= e_z, 2.0, 0.0),
        kink_sides=lambda h, z, y: [np.sign(z - y)],
    )


def _huber_value(delta: float) -> Callable[[Array, Array, Array], Array]:
    def value(h: Array, z: Array, y: Array) -> Array:
        d = np.abs(z - y)
        dt = d.dtype.type
        return np.where(d < dt(delta), dt(0.5) * d * d, dt(delta) * (d - dt(0.5 * delta)))

    return value


def _huber_gradient(delta: float) -> Callable[[Array, Array], Array]:
    def gradient(z: Array, y: Array) -> Array:
        d = z - y
        dt = d.dtype.type
        return np.clip(d, dt(-delta), dt(delta))

    return gradient


def huber(delta: float = 1.0) -> Loss:
    """torch's ``HuberLoss(delta=...)``: ``d^2/2`` for ``|d| < delta``, else linear."""
    k = float(delta)

    def mp_value_one(ctx: MPContext, z: MPF, y: MPF) -> MPF:
        d, dk = abs(z - y), ctx.mpf(k)
        return d * d / 2 if d < dk else dk * (d - dk / 2)

    def mp_gradient_one(ctx: MPContext, d: MPF) -> MPF:
        dk = ctx.mpf(k)
        return -dk if d < -dk else (dk if d > dk else d)

    return Loss(
        name=_name("huber", k, 1.0),
        output_activation=None,
        value=_huber_value(k),
        output_delta=unfused,
        mp_value=lambda ctx, h, z, y: _elementwise(ctx, mp_value_one, z, y),
        mp_output_delta=unfused,
        naive_output_gradient=_huber_gradient(k),
        mp_output_gradient=lambda ctx, z, y: _elementwise(ctx, mp_gradient_one, z - y),
        # clip is 1-Lipschitz; a rounded delta errs by u delta
        output_gradient_error=lambda z, y, e_z, u: _difference_error(z, y, e_z, u) + u * k,
        kink_sides=lambda h, z, y: [np.sign(np.abs(z - y) - k)],
        parameter=k,
    )


# --- softmax with cross-entropy and label smoothing ---------------------------


def _log_softmax(h: Array) -> Array:
    shifted = h - h.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def smoothed_targets(y: Array, epsilon: float) -> Array:
    """``(1 - epsilon) y + epsilon / K`` in the dtype of ``y`` (``y`` itself at epsilon 0)."""
    if epsilon == 0.0:
        return y
    dt = y.dtype.type
    return dt(1.0 - epsilon) * y + dt(epsilon / y.shape[0])


def _mp_log_softmax(ctx: MPContext, h: Array) -> Array:
    out = np.empty(h.shape, dtype=object)
    for j in range(h.shape[1]):
        column = list(h[:, j])
        top = max(column)
        log_total = ctx.log(ctx.fsum(ctx.exp(v - top) for v in column))
        for k, v in enumerate(column):
            out[k, j] = v - top - log_total
    return out


def _mp_smoothed(ctx: MPContext, y: Array, epsilon: float) -> Array:
    if epsilon == 0.0:
        return y
    eps = ctx.mpf(epsilon)
    return (1 - eps) * y + eps / y.shape[0]


def _mp_softmax_ce_delta(ctx: MPContext, z: Array, t: Array) -> Array:
    # p_k sum_j t_j - t_k == sum_{j != k} (t_j p_k - t_k p_j) since sum_j p_j = 1: this form
    # never subtracts a p_k near 1 from a target 1, so saturated columns keep their tiny deltas.
    p = _elementwise(ctx, lambda c, v: c.exp(v), _mp_log_softmax(ctx, z))
    out = np.empty(p.shape, dtype=object)
    rows = range(p.shape[0])
    for col in range(p.shape[1]):
        for k in rows:
            out[k, col] = ctx.fsum(
                t[j, col] * p[k, col] - t[k, col] * p[j, col] for j in rows if j != k
            )
    return out


def softmax_ce(epsilon: float = 0.0) -> Loss:
    """Softmax over each column with cross-entropy against ``(1 - eps) y + eps/K``."""
    eps = float(epsilon)

    def delta(h: Array, z: Array, y: Array) -> Array:
        t = smoothed_targets(y, eps)
        p = np.exp(_log_softmax(z))
        return p * t.sum(axis=0, keepdims=True) - t

    return Loss(
        name=_name("softmax_ce", eps, 0.0),
        output_activation="identity",
        value=lambda h, z, y: -smoothed_targets(y, eps) * _log_softmax(z),
        output_delta=delta,
        mp_value=lambda ctx, h, z, y: -_mp_smoothed(ctx, y, eps) * _mp_log_softmax(ctx, z),
        mp_output_delta=lambda ctx, h, z, y: _mp_softmax_ce_delta(
            ctx, z, _mp_smoothed(ctx, y, eps)
        ),
        # with an identity output layer z = h, so the fused delta is also d loss/dz
        naive_output_gradient=lambda z, y: delta(z, z, y),
        labels="distribution",
        parameter=eps,
    )
