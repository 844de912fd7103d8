"""The :class:`Activation` record and the five original activations.

Their conventional (framework autograd) forms: sigmoid and tanh differentiate from the output
(``z (1 - z)``, ``1 - z**2``), as torch and jax do; softplus is torch's ``nn.Softplus()``,
which returns ``x`` and the slope 1 above :data:`SOFTPLUS_THRESHOLD` (jax's ``logaddexp``
form is as accurate as the stable one); relu and identity compute what the stable forms do.

Float forms take and return numpy arrays and keep their dtype; the mpmath forms take a private
``mpmath`` context and one ``mpf`` and never cancel catastrophically. The GELU family, SiLU,
leaky ReLU and ELU are in :mod:`gradverify.model.extra_activations`; the lookup by name (any
spelling, parametrised or not) is :func:`gradverify.model.functions.activation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.model.dtypes import unit_roundoff

__all__ = ["Activation", "ORIGINAL_ACTIVATIONS", "sigmoid_float", "mp_sigmoid"]

Array = np.ndarray
MPContext = Any  # an ``mpmath.MPContext`` (or the Arb context of the flint reference)
MPF = Any  # an ``mpf`` of that context
ErrorBound = Callable[[Array, np.dtype], Array]
"""``(h, dtype) -> bound``: float64 ``h`` (exact arguments) to a float64 elementwise bound on
the absolute error of a float form evaluated for an array of ``dtype``."""


@dataclass(frozen=True)
class Activation:
    """One activation function.

    Attributes:
        name: the canonical name (``"leaky_relu(0.2)"``; the bare name at the default).
        forward: stable float form, ``h -> act(h)``, elementwise, dtype-preserving.
        derivative: stable float form of ``act'(h)``, elementwise, dtype-preserving.
        mp_forward: ``(ctx, h) -> act(h)`` for one mpf, free of cancellation.
        mp_derivative: ``(ctx, h) -> act'(h)`` for one mpf, free of cancellation.
        kinks: the points where ``act`` is not differentiable.
        saturates: whether ``act'(h) -> 0`` as ``|h|`` grows (sigmoid, tanh).
        derivative_from_output: the *conventional autograd* form of ``act'``, computed from
            the layer output ``z = act(h)`` as torch and jax autograd compute it
            (``z (1 - z)``, ``1 - z**2``); None where autograd uses ``h``.
        conventional_from_input: the conventional autograd form of ``act'`` computed from
            ``h`` where it differs from :attr:`derivative`: torch's backward formula, term by
            term (GELU's ``cdf + x pdf``, SiLU's ``s (1 + x (1 - s))``); None where autograd
            computes what :attr:`derivative` computes.
        conventional_forward: the forward as torch computes it where that differs from
            :attr:`forward` (GELU's ``x (1 + erf(x/sqrt 2))/2``, which cancels for negative
            ``x``); the conventional baseline runs its forward pass with it. None: ``forward``.
        conventional_forward_error: a bound on that form's error (from its terms' magnitudes).
        parameter: the value of the one float parameter (leaky_relu, elu), else None.
        forward_error, derivative_error: bounds on the error of :attr:`forward` and
            :attr:`derivative` (see :data:`ErrorBound`) where ``4 u |value|`` is not one
            (forms evaluated in float64 whose float64 rounding is amplified, e.g. in the
            Gaussian tail); None: ``4 u |value|``.
        conventional_error: a bound on the error of the conventional form from ``h``
            (:attr:`conventional_from_input`) from the magnitudes of its terms, not of its
            result, since it may cancel (torch's GELU backward at negative ``h``).
    """

    name: str
    forward: Callable[[Array], Array]
    derivative: Callable[[Array], Array]
    mp_forward: Callable[[MPContext, MPF], MPF]
    mp_derivative: Callable[[MPContext, MPF], MPF]
    kinks: tuple[float, ...] = ()
    saturates: bool = False
    derivative_from_output: Callable[[Array], Array] | None = None
    conventional_from_input: Callable[[Array], Array] | None = None
    parameter: float | None = None
    forward_error: ErrorBound | None = None
    derivative_error: ErrorBound | None = None
    conventional_error: ErrorBound | None = None
    conventional_forward: Callable[[Array], Array] | None = None
    conventional_forward_error: ErrorBound | None = None

    def conventional_derivative(self, h: Array, z: Array) -> Array:
        """``act'`` as framework autograd computes it: from ``z`` where it can, else from ``h``.

        Where ``z`` has rounded to its limit (sigmoid's 1, tanh's +-1) this loses every bit
        that the stable :attr:`derivative` keeps; that is the accuracy torch and jax have.
        """
        if self.derivative_from_output is not None:
            return self.derivative_from_output(z)
        if self.conventional_from_input is not None:
            return self.conventional_from_input(h)
        return self.derivative(h)


def _one(h: Array) -> Array:
    return np.ones_like(h)


def sigmoid_float(h: Array) -> Array:
    """The stable sigmoid in the dtype of ``h``: exp(-|h|) never overflows, no cancellation."""
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


ROUNDINGS = 4.0
"""Units of roundoff one elementwise library function may be off (as in the bounds)."""


def opmath(dtype: np.dtype) -> np.dtype:
    """torch's compute type: float32 for the 16-bit formats, else the dtype itself."""
    return np.dtype(np.float32) if dtype.itemsize == 2 else dtype


def in_opmath(fn: Callable[[Array, type], Array]) -> Callable[[Array], Array]:
    """``fn(x, T)`` evaluated in torch's compute type ``T`` and rounded to the dtype of ``h``."""

    def conventional(h: Array) -> Array:
        h = np.asarray(h)
        ct = opmath(h.dtype)
        with np.errstate(all="ignore"):
            return fn(h.astype(ct), ct.type).astype(h.dtype)

    return conventional


SOFTPLUS_THRESHOLD = 20.0
"""torch's ``nn.Softplus()`` (beta 1, threshold 20) returns ``x`` above it, and 1 as the slope."""


def _softplus_torch(x: Array, t: type) -> Array:
    cut = t(SOFTPLUS_THRESHOLD)
    return np.where(x > cut, x, np.log1p(np.exp(np.minimum(x, cut))))


def _softplus_backward_torch(x: Array, t: type) -> Array:
    z = np.exp(np.minimum(x, t(SOFTPLUS_THRESHOLD)))
    return np.where(x > t(SOFTPLUS_THRESHOLD), t(1), z / (z + t(1)))


def _softplus_torch_error(h: Array, dtype: np.dtype) -> Array:
    # log1p(exp(x)) errs by a few u of its value and of sigmoid(x); above the threshold x
    # leaves out log1p(exp(-x)) < exp(-x)
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(all="ignore"):
        terms = np.abs(_softplus(h)) + sigmoid_float(h)
        cut = np.where(h > SOFTPLUS_THRESHOLD, np.exp(-np.abs(h)), 0.0)
    return ROUNDINGS * unit_roundoff(dtype) * terms + cut


def _softplus_backward_torch_error(h: Array, dtype: np.dtype) -> Array:
    # z / (z + 1) errs by a few u of its value; above the threshold 1 leaves out sigmoid(-x)
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(all="ignore"):
        cut = np.where(h > SOFTPLUS_THRESHOLD, sigmoid_float(-h), 0.0)
    return ROUNDINGS * unit_roundoff(dtype) * sigmoid_float(h) + cut


def mp_sigmoid(ctx: MPContext, h: MPF) -> MPF:
    """sigmoid(h) in mpmath; both branches keep full relative precision (no 1 - s)."""
    if h >= 0:
        return 1 / (1 + ctx.exp(-h))
    e = ctx.exp(h)
    return e / (1 + e)


def _mp_sigmoid_derivative(ctx: MPContext, h: MPF) -> MPF:
    e = ctx.exp(-abs(h))
    return e / (1 + e) ** 2


def _mp_softplus(ctx: MPContext, h: MPF) -> MPF:
    return max(h, ctx.zero) + ctx.log1p(ctx.exp(-abs(h)))


ORIGINAL_ACTIVATIONS: tuple[Activation, ...] = (
    Activation(
        name="sigmoid",
        forward=sigmoid_float,
        derivative=_sigmoid_derivative,
        mp_forward=mp_sigmoid,
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
    Activation(  # its conventional forms are torch's, cut off at SOFTPLUS_THRESHOLD
        name="softplus",
        forward=_softplus,
        derivative=sigmoid_float,
        mp_forward=_mp_softplus,
        mp_derivative=mp_sigmoid,
        conventional_from_input=in_opmath(_softplus_backward_torch),
        conventional_error=_softplus_backward_torch_error,
        conventional_forward=in_opmath(_softplus_torch),
        conventional_forward_error=_softplus_torch_error,
    ),
    Activation(
        name="identity",
        forward=lambda h: h,
        derivative=_one,
        mp_forward=lambda ctx, h: h,
        mp_derivative=lambda ctx, h: ctx.one,
    ),
)
"""sigmoid, tanh, relu (relu'(0) = 0), softplus, identity."""
