"""Weights and biases that reach saturation on purpose, and shrink toward none.

A plain N(0, 1) draw almost never saturates a sigmoid, so saturation is drawn in two ways,
both of which shrink toward none:

* a per-layer scale ``2**s`` on the weights and biases, with ``s`` uniform in
  ``[0, max_log2_scale]`` (log-uniform magnitudes);
* a target band for the output logits: ``|h_L|`` is moved to about ``T`` (log-uniform in
  ``[1, max_saturation]``) by shifting the last bias, which is where a saturated sigmoid and
  BCE break.

Shrinking an instability therefore walks its saturation down toward the threshold where it
starts. Each layer's ``max |h|`` is then capped at ``max_saturation`` (1024 by default, well
inside float16's range), so every drawn problem is finite in its dtype.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

from gradverify.exploration.strategies.arrays import draw_matrix, draw_signs
from gradverify.model.network import NetworkSpec, cap_saturation, forward

__all__ = [
    "DEFAULT_MAX_LOG2_SCALE",
    "DEFAULT_MAX_SATURATION",
    "band_and_cap",
    "draw_layer_parameters",
    "logit_bands",
    "parameters",
    "saturation_scales",
]

DEFAULT_MAX_SATURATION = 1024.0
"""Largest max |h| per layer that the strategies produce (the reference is exact far beyond)."""

DEFAULT_MAX_LOG2_SCALE = 6.0
"""Per-layer weight scales are ``2**s`` with ``s`` in ``[0, 6]``, i.e. up to 64."""


def _power_of_two(exponent: float) -> float:
    return float(2.0**exponent)


@functools.lru_cache(maxsize=64)
def _log2_scales(max_log2_scale: float) -> st.SearchStrategy[float]:
    if not max_log2_scale >= 0:
        raise ValueError(f"max_log2_scale must be >= 0; got {max_log2_scale}")
    return st.floats(0.0, float(max_log2_scale))


@functools.lru_cache(maxsize=64)
def _log2_bands(max_saturation: float) -> st.SearchStrategy[float | None]:
    if not max_saturation >= 1:
        raise ValueError(f"max_saturation must be >= 1; got {max_saturation}")
    return st.none() | st.floats(0.0, math.log2(max_saturation))


@functools.lru_cache(maxsize=64)
def saturation_scales(max_log2_scale: float = DEFAULT_MAX_LOG2_SCALE) -> st.SearchStrategy[float]:
    """Log-uniform scale factors ``2**s``, ``s`` in ``[0, max_log2_scale]``; shrinks toward 1."""
    return _log2_scales(max_log2_scale).map(_power_of_two)


@functools.lru_cache(maxsize=64)
def logit_bands(max_saturation: float = DEFAULT_MAX_SATURATION) -> st.SearchStrategy[float | None]:
    """A target ``|h_L|`` for the output logits, log-uniform in ``[1, max_saturation]``, or None.

    Shrinks toward None (no band), then toward smaller targets.
    """
    return _log2_bands(max_saturation).map(lambda t: None if t is None else _power_of_two(t))


def draw_layer_parameters(
    draw: st.DrawFn, n_out: int, n_in: int, max_log2_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with entries in [-1, 1] times one drawn scale ``2**s``.

    ``W`` (shape ``(n_out, n_in)``) and ``b`` are drawn as one array ``[W | b]``, one choice
    per unit: its weights, then its bias.
    """
    scale = _power_of_two(draw(_log2_scales(max_log2_scale)))
    both = draw_matrix(draw, n_out, n_in + 1) * scale
    return both[:, :n_in], both[:, n_in]


def band_and_cap(
    draw: st.DrawFn,
    spec: NetworkSpec,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    max_saturation: float,
) -> None:
    """Maybe move the output logits to a drawn band ``+-T``; then cap every layer (in place)."""
    x = np.asarray(x, dtype=np.float64)
    log2_band = draw(_log2_bands(max_saturation))
    if log2_band is not None:
        signs = draw_signs(draw, spec.widths[-1])
        h_last = forward(spec, weights, biases, x).h[-1]
        with np.errstate(all="ignore"):
            shift = signs * _power_of_two(log2_band) - h_last.mean(axis=1)
        if np.all(np.isfinite(shift)):
            biases[-1] = biases[-1] + shift
    cap_saturation(spec, weights, biases, x, max_saturation)


@st.composite
def parameters(
    draw: st.DrawFn,
    spec: NetworkSpec,
    x: np.ndarray,
    *,
    max_log2_scale: float = DEFAULT_MAX_LOG2_SCALE,
    max_saturation: float = DEFAULT_MAX_SATURATION,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases for ``spec`` on inputs ``x``, reaching saturation on purpose (float64).

    Entries are drawn in [-1, 1] and scaled per layer by :func:`saturation_scales`; then the
    last bias may be shifted so that each output unit's logits sit around ``+-T`` for a
    :func:`logit_bands` target ``T``. Finally every layer is capped at
    ``max |h| <= max_saturation``. Returns ``(weights, biases)``; ``W_i`` has shape
    ``(n_i, n_{i-1})``.
    """
    w = spec.widths
    weights, biases = [], []
    for i in range(spec.depth):
        W, b = draw_layer_parameters(draw, w[i + 1], w[i], max_log2_scale)
        weights.append(W)
        biases.append(b)
    band_and_cap(draw, spec, weights, biases, x, max_saturation)
    return weights, biases
