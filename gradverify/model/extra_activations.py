"""GELU (erf and tanh forms), SiLU, leaky ReLU and ELU: stable, conventional and exact forms.

=======================  ==========================================  ======================
name                     function                                    kink, act' there
=======================  ==========================================  ======================
``gelu``                 ``x Phi(x)`` (erf form)                     none
``gelu_tanh``            ``x/2 (1 + tanh(k (x + 0.044715 x^3)))``,   none
                         ``k = sqrt(2/pi)``
``silu``                 ``x sigmoid(x)``                            none
``leaky_relu(s)``        ``x`` if ``x > 0`` else ``s x``; s = 0.01   0, ``s`` (as torch)
``elu(a)``               ``x`` if ``x > 0`` else ``a (e^x - 1)``;    0 unless a = 1,
                         a = 1.0, a > 0                              ``a`` (as torch)
=======================  ==========================================  ======================

* **Stable forms** (the baseline of the best formulation) are evaluated in float64 and rounded
  once to the dtype of their argument: numpy has no ``erf``, so ``math.erf``/``math.erfc``
  elementwise; the others the same way, for one rule. The tanh-GELU is ``x sigmoid(2 u)``
  and its derivative ``sigmoid(2u) + 2 x u' sigmoid(2u) sigmoid(-2u)``, so neither forms
  ``1 + tanh`` (which cancels for negative ``x``).
* **Conventional forms** are torch's forward and backward formulas, term by term (GELU's
  forward ``x (1 + erf(x/sqrt 2))/2`` cancels for negative ``x`` as its backward does), in
  torch's compute
  type (float32 for float16 and bfloat16, "opmath"), rounded to the dtype: GELU
  ``cdf + x pdf`` with ``cdf = (1 + erf(x/sqrt 2))/2`` (which cancels for negative ``x``),
  the tanh-GELU's ``(1 + t)/2 + x/2 (1 - t^2) k (1 + 3 0.044715 x^2)``, SiLU's
  ``s (1 + x (1 - s))`` with ``s = 1/(1 + exp(-x))`` (0 once ``exp(-x)`` overflows). torch's
  leaky ReLU differentiates from the input in a form as accurate as the stable one (the
  slope), so its conventional form is the stable one. For ELU the frameworks differ:
  torch's out-of-place backward is ``a exp(x)``, as accurate as the stable form, but jax
  differentiates its forward ``a expm1(x)`` into ``a (expm1(x) + 1)``, which cancels for
  negative ``x`` (about ``u e^-x`` relative error, and 0 once ``expm1(x)`` rounds to -1,
  below -17.3 in float32). The conventional form is jax's, computed in the dtype as jax
  does: code as accurate as either framework passes under the autograd policy, and the
  precision it loses is reported. Each cancelling form has an error bound from the
  magnitudes of its terms
  (:attr:`~gradverify.model.activations.Activation.conventional_error`).
* **Exact forms** use the mathematical constants (``sqrt(2/pi)``, the decimal 0.044715) and
  the parameters' float values. Near the root of ``gelu'`` and ``silu'`` (about -0.75 and
  -1.28) the two terms cancel, as any form of a function at a simple root does; the
  reference's agreement of two precisions covers it. No form cancels as ``|x|`` grows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gradverify.model.activations import (
    MPF,
    ROUNDINGS,
    Activation,
    Array,
    MPContext,
    in_opmath,
    mp_sigmoid,
    opmath,
)
from gradverify.model.activations import sigmoid_float as _sigmoid
from gradverify.model.dtypes import unit_roundoff

__all__ = ["elu", "gelu", "gelu_tanh", "leaky_relu", "silu"]

U64 = 2.0**-53

M_2_SQRTPI = 1.12837916709551257390
M_SQRT1_2 = 0.707106781186547524401
M_SQRT2 = 1.41421356237309504880
INV_SQRT_2PI = M_2_SQRTPI * M_SQRT1_2 * 0.5  # torch's kBeta for GELU
TANH_K = M_SQRT2 * M_2_SQRTPI * 0.5  # torch's kBeta for the tanh form: sqrt(2/pi)
TANH_C = 0.044715

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _in_float64(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """``fn`` evaluated in float64 and rounded once to the dtype of its argument."""

    def rounded(h: Array) -> Array:
        h = np.asarray(h)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(h.astype(np.float64)), dtype=np.float64)
            return np.broadcast_to(out, h.shape).astype(h.dtype)

    return rounded


def _sigmoid_slope(t: Array) -> Array:
    """sigmoid'(t) = e/(1 + e)^2 with e = exp(-|t|), in float64."""
    e = np.exp(-np.abs(t))
    return e / ((1 + e) * (1 + e))


# --- GELU, erf form ----------------------------------------------------------


def _cdf(x: Array) -> Array:
    return 0.5 * _erfc(-x * M_SQRT1_2)


def _pdf(x: Array) -> Array:
    return INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _gelu_derivative64(x: Array) -> Array:
    return _cdf(x) + x * _pdf(x)


def _gelu_backward_torch(x: Array, t: type) -> Array:
    cdf = t(0.5) * (t(1) + _erf(x * t(M_SQRT1_2)).astype(x.dtype))
    pdf = t(INV_SQRT_2PI) * np.exp(x * x * t(-0.5))
    return cdf + x * pdf


def _gelu_torch(x: Array, t: type) -> Array:
    return x * t(0.5) * (t(1) + _erf(x * t(M_SQRT1_2)).astype(x.dtype))


def _gelu_torch_error(h: Array, dtype: np.dtype) -> Array:
    # 1 + erf errs by about u absolutely; erf's argument by |x| u, moving erf by |x| pdf u
    cdf_terms = 0.5 * (1 + np.abs(_erf(h * M_SQRT1_2)))
    return ROUNDINGS * unit_roundoff(dtype) * np.abs(h) * (cdf_terms + np.abs(h) * _pdf(h))


def _gelu_forward_error(h: Array, dtype: np.dtype) -> Array:
    # erfc's argument rounds in float64: relative error about x^2 U64 in the tail
    z = np.abs(h * _cdf(h))
    return ROUNDINGS * (unit_roundoff(dtype) * z + U64 * z * (2 + h * h))


def _gelu_derivative_error(h: Array, dtype: np.dtype) -> Array:
    terms = _cdf(h) + np.abs(h) * _pdf(h)
    slope = np.abs(_gelu_derivative64(h))
    return ROUNDINGS * (unit_roundoff(dtype) * slope + U64 * terms * (2 + h * h))


def _gelu_conventional_error(h: Array, dtype: np.dtype) -> Array:
    # cdf = (1 + erf)/2 errs by about u at every x; x pdf by x^2 u through exp(-x^2/2)
    cdf_terms = 0.5 * (1 + np.abs(_erf(h * M_SQRT1_2)))
    return ROUNDINGS * unit_roundoff(dtype) * (cdf_terms + np.abs(h) * _pdf(h) * (2 + h * h))


def _mp_cdf(ctx: MPContext, x: MPF) -> MPF:
    return ctx.erfc(-x / ctx.sqrt(2)) / 2


def _mp_gelu_derivative(ctx: MPContext, x: MPF) -> MPF:
    return _mp_cdf(ctx, x) + x * ctx.exp(-x * x / 2) / ctx.sqrt(2 * ctx.pi)


def gelu() -> Activation:
    """``x Phi(x)``, torch's ``nn.GELU()``."""
    return Activation(
        name="gelu",
        forward=_in_float64(lambda x: x * _cdf(x)),
        derivative=_in_float64(_gelu_derivative64),
        mp_forward=lambda ctx, x: x * _mp_cdf(ctx, x),
        mp_derivative=_mp_gelu_derivative,
        conventional_from_input=in_opmath(_gelu_backward_torch),
        forward_error=_gelu_forward_error,
        derivative_error=_gelu_derivative_error,
        conventional_error=_gelu_conventional_error,
        conventional_forward=in_opmath(_gelu_torch),
        conventional_forward_error=_gelu_torch_error,
    )


# --- GELU, tanh form ---------------------------------------------------------


def _inner(x: Array) -> Array:
    return TANH_K * (x + TANH_C * x**3)


def _inner_slope(x: Array) -> Array:
    return TANH_K * (1 + 3 * TANH_C * x * x)


def _gelu_tanh_terms(x: Array) -> tuple[Array, Array]:
    """``sigmoid(2u)`` and ``|x| 2 u' sigmoid'(2u)``: the derivative's two terms."""
    two_u = 2 * _inner(x)
    return _sigmoid(two_u), np.abs(x) * 2 * _inner_slope(x) * _sigmoid_slope(two_u)


def _gelu_tanh_derivative64(x: Array) -> Array:
    two_u = 2 * _inner(x)
    return _sigmoid(two_u) + x * 2 * _inner_slope(x) * _sigmoid_slope(two_u)


def _gelu_tanh_backward_torch(x: Array, t: type) -> Array:
    k_beta, k_kappa = t(TANH_K), t(TANH_C)
    x_sq = x * x
    x_cube = x_sq * x
    tanh_inner = np.tanh(k_beta * (x + k_kappa * x_cube))
    left = t(0.5) * x
    left_derivative = t(0.5) * (t(1) + tanh_inner)
    tanh_derivative = t(1) - tanh_inner * tanh_inner
    inner_derivative = k_beta * (t(1) + t(3) * k_kappa * x_sq)
    return left_derivative + left * tanh_derivative * inner_derivative


def _gelu_tanh_torch(x: Array, t: type) -> Array:
    inner = t(TANH_K) * (x + t(TANH_C) * (x * x * x))
    return t(0.5) * x * (t(1) + np.tanh(inner))


def _gelu_tanh_torch_error(h: Array, dtype: np.dtype) -> Array:
    t, ax = np.tanh(_inner(h)), np.abs(h)
    inner_terms = TANH_K * (ax + TANH_C * ax**3)
    terms = 0.5 * ax * (1 + np.abs(t) + (1 - t * t) * inner_terms)
    return 2 * ROUNDINGS * unit_roundoff(dtype) * terms


def _gelu_tanh_forward_error(h: Array, dtype: np.dtype) -> Array:
    z = np.abs(h * _sigmoid(2 * _inner(h)))
    return ROUNDINGS * (unit_roundoff(dtype) * z + U64 * z * (2 + np.abs(2 * _inner(h))))


def _gelu_tanh_derivative_error(h: Array, dtype: np.dtype) -> Array:
    s, cross = _gelu_tanh_terms(h)
    slope = np.abs(_gelu_tanh_derivative64(h))
    amplified = U64 * (s + cross) * (2 + np.abs(2 * _inner(h)))
    return ROUNDINGS * (unit_roundoff(dtype) * slope + amplified)


def _gelu_tanh_conventional_error(h: Array, dtype: np.dtype) -> Array:
    # (1 + t)/2 errs by about u even where it cancels; t errs by (1 - t^2) times the
    # error of the inner value, which is about u (|x| + c |x|^3) k
    t = np.tanh(_inner(h))
    slope_u, ax = _inner_slope(h), np.abs(h)
    inner_terms = TANH_K * (ax + TANH_C * ax**3)
    terms = (
        0.5 * (1 + np.abs(t))
        + 0.5 * ax * (1 + t * t) * slope_u
        + (1 - t * t) * inner_terms * (0.5 + ax * np.abs(t) * slope_u)
    )
    return 2 * ROUNDINGS * unit_roundoff(dtype) * terms


def _mp_inner(ctx: MPContext, x: MPF) -> MPF:
    return ctx.sqrt(2 / ctx.pi) * (x + ctx.mpf("0.044715") * x**3)


def _mp_gelu_tanh_derivative(ctx: MPContext, x: MPF) -> MPF:
    two_u = 2 * _mp_inner(ctx, x)
    e = ctx.exp(-abs(two_u))
    slope_u = ctx.sqrt(2 / ctx.pi) * (1 + 3 * ctx.mpf("0.044715") * x * x)
    return mp_sigmoid(ctx, two_u) + 2 * x * slope_u * e / (1 + e) ** 2


def gelu_tanh() -> Activation:
    """The tanh approximation, torch's ``nn.GELU(approximate="tanh")``."""
    return Activation(
        name="gelu_tanh",
        forward=_in_float64(lambda x: x * _sigmoid(2 * _inner(x))),
        derivative=_in_float64(_gelu_tanh_derivative64),
        mp_forward=lambda ctx, x: x * mp_sigmoid(ctx, 2 * _mp_inner(ctx, x)),
        mp_derivative=_mp_gelu_tanh_derivative,
        conventional_from_input=in_opmath(_gelu_tanh_backward_torch),
        forward_error=_gelu_tanh_forward_error,
        derivative_error=_gelu_tanh_derivative_error,
        conventional_error=_gelu_tanh_conventional_error,
        conventional_forward=in_opmath(_gelu_tanh_torch),
        conventional_forward_error=_gelu_tanh_torch_error,
    )


# --- SiLU --------------------------------------------------------------------


def _silu_derivative64(x: Array) -> Array:
    return _sigmoid(x) + x * _sigmoid_slope(x)


def _silu_backward_torch(x: Array, t: type) -> Array:
    s = t(1) / (t(1) + np.exp(-x))
    return s * (t(1) + x * (t(1) - s))


def _silu_torch(x: Array, t: type) -> Array:
    return x / (t(1) + np.exp(-x))


def _silu_torch_error(h: Array, dtype: np.dtype) -> Array:
    # x / (1 + exp(-x)) is accurate, but 0 once exp(-x) overflows in the compute type
    z = np.abs(h * _sigmoid(h))
    overflow = -h > np.log(float(np.finfo(opmath(np.dtype(dtype))).max))
    return ROUNDINGS * unit_roundoff(dtype) * z + np.where(overflow, z, 0.0)


def _silu_forward_error(h: Array, dtype: np.dtype) -> Array:
    z = np.abs(h * _sigmoid(h))
    return ROUNDINGS * (unit_roundoff(dtype) * z + U64 * z * (2 + np.abs(h)))


def _silu_derivative_error(h: Array, dtype: np.dtype) -> Array:
    terms = _sigmoid(h) + np.abs(h) * _sigmoid_slope(h)
    slope = np.abs(_silu_derivative64(h))
    return ROUNDINGS * (unit_roundoff(dtype) * slope + U64 * terms * (2 + np.abs(h)))


def _silu_conventional_error(h: Array, dtype: np.dtype) -> Array:
    # s errs by a few u relatively, 1 - s by u absolutely (x (1 - s) by |x| u); once
    # exp(-x) overflows in the compute type, s = 0 and the result is 0
    s = _sigmoid(h)
    slope = np.abs(_silu_derivative64(h))
    terms = s * (3 * np.abs(h) + np.abs(1 + h * _sigmoid(-h))) + slope
    overflow = -h > np.log(float(np.finfo(opmath(np.dtype(dtype))).max))
    return ROUNDINGS * unit_roundoff(dtype) * terms + np.where(overflow, slope, 0.0)


def _mp_silu_derivative(ctx: MPContext, x: MPF) -> MPF:
    e = ctx.exp(-abs(x))
    return mp_sigmoid(ctx, x) + x * e / (1 + e) ** 2


def silu() -> Activation:
    """``x sigmoid(x)``, torch's ``nn.SiLU()``."""
    return Activation(
        name="silu",
        forward=_in_float64(lambda x: x * _sigmoid(x)),
        derivative=_in_float64(_silu_derivative64),
        mp_forward=lambda ctx, x: x * mp_sigmoid(ctx, x),
        mp_derivative=_mp_silu_derivative,
        conventional_from_input=in_opmath(_silu_backward_torch),
        forward_error=_silu_forward_error,
        derivative_error=_silu_derivative_error,
        conventional_error=_silu_conventional_error,
        conventional_forward=in_opmath(_silu_torch),
        conventional_forward_error=_silu_torch_error,
    )


# --- leaky ReLU and ELU (parametrised) ----------------------------------------


def _name(base: str, value: float, default: float) -> str:
    return base if value == default else f"{base}({float(value)!r})"


def leaky_relu(negative_slope: float = 0.01) -> Activation:
    """``x`` for ``x > 0`` else ``negative_slope x``; the derivative at 0 is the slope (torch)."""
    s = float(negative_slope)
    return Activation(
        name=_name("leaky_relu", s, 0.01),
        forward=_in_float64(lambda x: np.where(x > 0, x, s * x)),
        derivative=_in_float64(lambda x: np.where(x > 0, 1.0, s)),
        mp_forward=lambda ctx, x: x if x > 0 else ctx.mpf(s) * x,
        mp_derivative=lambda ctx, x: ctx.one if x > 0 else ctx.mpf(s),
        kinks=(0.0,),
        parameter=s,
    )


def _elu_backward_jax(a: float) -> Callable[[Array], Array]:
    """jax's ELU derivative, ``a (expm1(x) + 1)`` for ``x <= 0`` and 1 above, in the dtype."""

    def backward(h: Array) -> Array:
        h = np.asarray(h)
        t = h.dtype.type
        with np.errstate(all="ignore"):
            negative = t(a) * (np.expm1(np.minimum(h, t(0))) + t(1))
            return np.where(h > 0, t(1), negative).astype(h.dtype)

    return backward


def _elu_backward_jax_error(a: float) -> Callable[[Array, np.dtype], Array]:
    """A bound on the error of :func:`_elu_backward_jax`: expm1 errs by a few ``u |expm1(x)|``,
    adding 1 and multiplying by ``a`` by ``u`` of their results (``e^x`` and ``a e^x``)."""

    def bound(h: Array, dtype: np.dtype) -> Array:
        x = np.minimum(h, 0.0)
        terms = a * (np.abs(np.expm1(x)) + 2 * np.exp(x))
        return np.where(h > 0, 0.0, ROUNDINGS * unit_roundoff(dtype) * terms)

    return bound


def elu(alpha: float = 1.0) -> Activation:
    """``x`` for ``x > 0`` else ``alpha (e^x - 1)``; the derivative at 0 is alpha (torch).

    The conventional derivative is jax's ``alpha (expm1(x) + 1)`` (see the module's notes).
    """
    a = float(alpha)
    return Activation(
        name=_name("elu", a, 1.0),
        forward=_in_float64(lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))),
        derivative=_in_float64(lambda x: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0)))),
        mp_forward=lambda ctx, x: x if x > 0 else ctx.mpf(a) * ctx.expm1(x),
        mp_derivative=lambda ctx, x: ctx.one if x > 0 else ctx.mpf(a) * ctx.exp(x),
        kinks=() if a == 1.0 else (0.0,),
        parameter=a,
        conventional_from_input=_elu_backward_jax(a),
        conventional_error=_elu_backward_jax_error(a),
    )
