"""Activations and losses, each defined once: float form, mpmath form and kinks side by side.

Float forms take and return numpy arrays and compute in the dtype they are given
(so a float16 array is evaluated in float16 arithmetic as far as numpy allows).
They are the numerically *stable* forms; the deliberately naive forms used by the
built-in implementations live next to them, named as such.

mpmath forms take a private ``mpmath`` context and one ``mpf``; they never touch
the global ``mpmath.mp``. They are written so that no step cancels: for example
``sigmoid'(h)`` is ``e/(1+e)**2`` with ``e = exp(-|h|)``, never ``s*(1-s)``.

Conventions
-----------
* ``relu'(0) = 0`` (the subgradient convention of PyTorch and JAX). Its kink is at 0.
* Losses are elementwise over ``y`` (shape ``(n_L, batch)``) and the network loss is the
  **mean over all elements** of ``y``: ``J = sum(loss) / y.size``.
* ``bce`` expects a sigmoid output layer; ``softmax_ce`` applies a softmax over the
  output units of each sample (each column), so it expects an identity output layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.model.names import check_table, unknown_name

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Activation",
    "Loss",
    "activation",
    "loss_function",
]

Array = np.ndarray
MPContext = Any  # an ``mpmath.MPContext``
MPF = Any  # an ``mpf`` of that context


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """One activation function.

    Attributes:
        name: the name used in network specs and on the command line.
        forward: stable float form, ``h -> act(h)``, elementwise, dtype-preserving.
        derivative: stable float form of ``act'(h)``, elementwise, dtype-preserving.
        mp_forward: ``(ctx, h) -> act(h)`` for one mpf, free of cancellation.
        mp_derivative: ``(ctx, h) -> act'(h)`` for one mpf, free of cancellation.
        kinks: the points where ``act`` is not differentiable.
        saturates: whether ``act'(h) -> 0`` as ``|h|`` grows (sigmoid, tanh).
        derivative_from_output: the *conventional autograd* form of ``act'``, computed from
            the layer output ``z = act(h)`` as torch and jax autograd compute it
            (``z (1 - z)``, ``1 - z**2``); None where autograd uses ``h`` (relu, softplus).
    """

    name: str
    forward: Callable[[Array], Array]
    derivative: Callable[[Array], Array]
    mp_forward: Callable[[MPContext, MPF], MPF]
    mp_derivative: Callable[[MPContext, MPF], MPF]
    kinks: tuple[float, ...] = ()
    saturates: bool = False
    derivative_from_output: Callable[[Array], Array] | None = None

    def conventional_derivative(self, h: Array, z: Array) -> Array:
        """``act'`` as framework autograd computes it: from ``z`` where it can, else from ``h``.

        Where ``z`` has rounded to its limit (sigmoid's 1, tanh's +-1) this loses every bit
        that the stable :attr:`derivative` keeps; that is the accuracy torch and jax have.
        """
        if self.derivative_from_output is None:
            return self.derivative(h)
        return self.derivative_from_output(z)


def _one(h: Array) -> Array:
    return np.ones_like(h)


def _sigmoid(h: Array) -> Array:
    # exp(-|h|) never overflows; both branches are then free of cancellation.
    e = np.exp(-np.abs(h))
    one = np.ones_like(e)
    return np.where(h >= 0, one / (one + e), e / (one + e))


def _sigmoid_derivative(h: Array) -> Array:
    e = np.exp(-np.abs(h))
    one = np.ones_like(e)
    return e / ((one + e) * (one + e))


def _tanh_derivative(h: Array) -> Array:
    # sech(h)**2 = 4e/(1 + e)**2 with e = exp(-2|h|): no cancellation (as in 1 - tanh**2)
    # and no overflow (as in 1/cosh**2, which overflows float16 from |h| ~ 5.5).
    e = np.exp(-2 * np.abs(h))
    one = np.ones_like(e)
    return (4 * e) / ((one + e) * (one + e))


def _sigmoid_derivative_from_output(z: Array) -> Array:
    return z * (1 - z)


def _tanh_derivative_from_output(z: Array) -> Array:
    return 1 - z * z


def _relu(h: Array) -> Array:
    return np.maximum(h, np.zeros_like(h))


def _relu_derivative(h: Array) -> Array:
    return (h > 0).astype(h.dtype)


def _softplus(h: Array) -> Array:
    return np.maximum(h, np.zeros_like(h)) + np.log1p(np.exp(-np.abs(h)))


def _mp_sigmoid(ctx: MPContext, h: MPF) -> MPF:
    # Both branches keep full relative precision: no 1 - s is ever formed.
    if h >= 0:
        return 1 / (1 + ctx.exp(-h))
    e = ctx.exp(h)
    return e / (1 + e)


def _mp_sigmoid_derivative(ctx: MPContext, h: MPF) -> MPF:
    e = ctx.exp(-abs(h))
    return e / (1 + e) ** 2


def _mp_softplus(ctx: MPContext, h: MPF) -> MPF:
    return max(h, ctx.zero) + ctx.log1p(ctx.exp(-abs(h)))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            name="sigmoid",
            forward=_sigmoid,
            derivative=_sigmoid_derivative,
            mp_forward=_mp_sigmoid,
            mp_derivative=_mp_sigmoid_derivative,
            saturates=True,
            derivative_from_output=_sigmoid_derivative_from_output,
        ),
        Activation(
            name="tanh",
            forward=np.tanh,
            derivative=_tanh_derivative,
            mp_forward=lambda ctx, h: ctx.tanh(h),
            mp_derivative=lambda ctx, h: ctx.sech(h) ** 2,
            saturates=True,
            derivative_from_output=_tanh_derivative_from_output,
        ),
        Activation(
            name="relu",
            forward=_relu,
            derivative=_relu_derivative,
            mp_forward=lambda ctx, h: h if h > 0 else ctx.zero,
            mp_derivative=lambda ctx, h: ctx.one if h > 0 else ctx.zero,
            kinks=(0.0,),
        ),
        Activation(
            name="softplus",
            forward=_softplus,
            derivative=_sigmoid,
            mp_forward=_mp_softplus,
            mp_derivative=_mp_sigmoid,
        ),
        Activation(
            name="identity",
            forward=lambda h: h,
            derivative=_one,
            mp_forward=lambda ctx, h: h,
            mp_derivative=lambda ctx, h: ctx.one,
        ),
    )
}


check_table("activation", ACTIVATIONS)


def activation(name: str) -> Activation:
    """Look up an activation by name, with a message that lists the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise unknown_name("activation", name, ACTIVATIONS) from None


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """One loss, elementwise over the outputs; the network loss is its mean.

    All array arguments have shape ``(n_L, batch)``: ``h`` the output logits,
    ``z = act_L(h)`` the outputs, ``y`` the labels.

    Attributes:
        name: the name used in network specs and on the command line.
        output_activation: the output activation the loss requires, or None for any.
        value: stable float per-element loss ``(h, z, y) -> loss`` (from logits where possible).
        output_delta: stable float ``d loss / d h`` per element (the *fused* form).
        mp_value: exact per-element loss for object arrays of mpf, ``(ctx, h, z, y)``.
        mp_output_delta: exact ``d loss / d h`` for object arrays of mpf, ``(ctx, h, z, y)``.
        naive_output_gradient: ``d loss / d z`` as textbooks write it, ``(z, y)``;
            for ``bce`` this is ``(z - y) / (z (1 - z))``, which divides by zero at saturation.
    """

    name: str
    output_activation: str | None
    value: Callable[[Array, Array, Array], Array]
    output_delta: Callable[[Array, Array, Array], Array]
    mp_value: Callable[[MPContext, Array, Array, Array], Array]
    mp_output_delta: Callable[[MPContext, Array, Array, Array], Array]
    naive_output_gradient: Callable[[Array, Array], Array]


def _elementwise(ctx: MPContext, fn: Callable[..., MPF], *arrays: Array) -> Array:
    """Apply an mpf function elementwise to object arrays, returning an object array."""
    return np.frompyfunc(lambda *v: fn(ctx, *v), len(arrays), 1)(*arrays)


# --- binary cross-entropy on a sigmoid output -------------------------------


def _bce_value(h: Array, z: Array, y: Array) -> Array:
    # softplus(h) - y*h == -(y log s + (1-y) log(1-s)), without forming log(1-s).
    return _softplus(h) - y * h


def _bce_delta(h: Array, z: Array, y: Array) -> Array:
    return _sigmoid(h) - y


def _bce_naive_gradient(z: Array, y: Array) -> Array:
    return (z - y) / (z * (1 - z))


def _mp_bce_value_one(ctx: MPContext, h: MPF, y: MPF) -> MPF:
    # softplus(h) - y h, arranged so that y = 1 at h = 700 gives log1p(e^-700) ~ e^-700
    # instead of 700 + e^-700 - 700 cancelling to 0.
    if h >= 0:
        return (1 - y) * h + ctx.log1p(ctx.exp(-h))
    return ctx.log1p(ctx.exp(h)) - y * h


def _mp_bce_value(ctx: MPContext, h: Array, z: Array, y: Array) -> Array:
    return _elementwise(ctx, _mp_bce_value_one, h, y)


def _mp_bce_delta_one(ctx: MPContext, h: MPF, y: MPF) -> MPF:
    # sigmoid(h) - y without forming 1 - sigmoid(h): for h >= 0 it is (1 - y) - sigmoid(-h),
    # so y = 1 at h = 700 gives -sigmoid(-700) ~ -e^-700 instead of cancelling to 0.
    if h >= 0:
        return (1 - y) - _mp_sigmoid(ctx, -h)
    return _mp_sigmoid(ctx, h) - y


def _mp_bce_delta(ctx: MPContext, h: Array, z: Array, y: Array) -> Array:
    return _elementwise(ctx, _mp_bce_delta_one, h, y)


# --- mean squared error -----------------------------------------------------


def _mse_value(h: Array, z: Array, y: Array) -> Array:
    return (z - y) ** 2


def _mse_naive_gradient(z: Array, y: Array) -> Array:
    return 2 * (z - y)


def _mp_mse_value(ctx: MPContext, h: Array, z: Array, y: Array) -> Array:
    return _elementwise(ctx, lambda c, zv, yv: (zv - yv) ** 2, z, y)


# mse has no fused form: d loss/dh = 2 (z - y) act'(h), formed by the network code.


# --- softmax with cross-entropy (softmax over each column) ------------------


def _log_softmax(h: Array) -> Array:
    shifted = h - h.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def _softmax_ce_value(h: Array, z: Array, y: Array) -> Array:
    return -y * _log_softmax(z)


def _softmax_ce_delta(h: Array, z: Array, y: Array) -> Array:
    p = np.exp(_log_softmax(z))
    return p * y.sum(axis=0, keepdims=True) - y


def _softmax_ce_naive_gradient(z: Array, y: Array) -> Array:
    # With an identity output layer z = h, so the fused delta is also d loss/dz.
    return _softmax_ce_delta(z, z, y)


def _mp_log_softmax(ctx: MPContext, h: Array) -> Array:
    out = np.empty(h.shape, dtype=object)
    for j in range(h.shape[1]):
        column = list(h[:, j])
        top = max(column)
        log_total = ctx.log(ctx.fsum(ctx.exp(v - top) for v in column))
        for k, v in enumerate(column):
            out[k, j] = v - top - log_total
    return out


def _mp_softmax_ce_value(ctx: MPContext, h: Array, z: Array, y: Array) -> Array:
    return -y * _mp_log_softmax(ctx, z)


def _mp_softmax_ce_delta(ctx: MPContext, h: Array, z: Array, y: Array) -> Array:
    # p_k sum_j y_j - y_k == sum_{j != k} (y_j p_k - y_k p_j) since sum_j p_j = 1: this form
    # never subtracts a p_k near 1 from a label 1, so saturated columns keep their tiny deltas.
    p = _elementwise(ctx, lambda c, v: c.exp(v), _mp_log_softmax(ctx, z))
    out = np.empty(p.shape, dtype=object)
    rows = range(p.shape[0])
    for col in range(p.shape[1]):
        for k in rows:
            out[k, col] = ctx.fsum(
                y[j, col] * p[k, col] - y[k, col] * p[j, col] for j in rows if j != k
            )
    return out


def _unfused(*_: Any) -> Array:
    raise NotImplementedError("this loss has no fused output delta")


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            name="bce",
            output_activation="sigmoid",
            value=_bce_value,
            output_delta=_bce_delta,
            mp_value=_mp_bce_value,
            mp_output_delta=_mp_bce_delta,
            naive_output_gradient=_bce_naive_gradient,
        ),
        Loss(
            name="mse",
            output_activation=None,
            value=_mse_value,
            output_delta=_unfused,
            mp_value=_mp_mse_value,
            mp_output_delta=_unfused,
            naive_output_gradient=_mse_naive_gradient,
        ),
        Loss(
            name="softmax_ce",
            output_activation="identity",
            value=_softmax_ce_value,
            output_delta=_softmax_ce_delta,
            mp_value=_mp_softmax_ce_value,
            mp_output_delta=_mp_softmax_ce_delta,
            naive_output_gradient=_softmax_ce_naive_gradient,
        ),
    )
}


check_table("loss", LOSSES)


def loss_function(name: str) -> Loss:
    """Look up a loss by name, with a message that lists the known ones."""
    try:
        return LOSSES[name]
    except KeyError:
        raise unknown_name("loss", name, LOSSES) from None


def has_fused_delta(loss: Loss) -> bool:
    """Whether ``loss.output_delta`` gives ``d loss / d h`` directly (bce, softmax_ce)."""
    return loss.output_delta is not _unfused
