"""A small multilayer perceptron with hand-written backpropagation (numpy only).

Samples are columns: ``x`` is ``(n_0, batch)`` and ``y`` is ``(n_L, batch)``. Hidden layers use
sigmoid or tanh; the output layer is a sigmoid trained with binary cross-entropy, averaged
over every element of ``y``.

The output layer uses the fused derivative ``dJ/dh_L = (sigmoid(h_L) - y) / N``: the
``sigmoid'`` factor cancels against the ``1/(s (1 - s))`` of the BCE derivative, so nothing
is divided by a number that can round to zero.
"""

from __future__ import annotations

import numpy as np


def sigmoid(h: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-h))`` without overflow: exp is only taken of ``-|h|``."""
    e = np.exp(-np.abs(h))
    one = np.ones_like(h)
    return np.where(h >= 0, one / (one + e), e / (one + e))


def dsigmoid(h: np.ndarray) -> np.ndarray:
    """``sigmoid'(h) = e / (1 + e)**2`` with ``e = exp(-|h|)``.

    ``s * (1 - s)`` would lose every digit once ``s`` rounds to 1 (|h| > 17 in float64).
    """
    e = np.exp(-np.abs(h))
    one = np.ones_like(h)
    return e / ((one + e) * (one + e))


def dtanh(h: np.ndarray) -> np.ndarray:
    """``tanh'(h) = 1 / cosh(h)**2``; ``1 - tanh(h)**2`` cancels to 0 for large |h|."""
    with np.errstate(over="ignore"):  # cosh overflows to inf, and 1/inf**2 is the right 0
        c = np.cosh(h)
        return np.ones_like(h) / (c * c)


HIDDEN = {"sigmoid": (sigmoid, dsigmoid), "tanh": (np.tanh, dtanh)}
"""Hidden activations: name -> (function, derivative as a function of h)."""


def backprop(weights, biases, x, y, *, activations, loss):
    """Gradients of the mean BCE loss with respect to every weight matrix and bias vector.

    Args:
        weights: ``weights[i]`` has shape ``(n_{i+1}, n_i)``.
        biases: ``biases[i]`` has shape ``(n_{i+1},)``.
        x: inputs, ``(n_0, batch)``.
        y: labels in [0, 1], ``(n_L, batch)``.
        activations: one name per layer; the last must be "sigmoid".
        loss: must be "bce".

    Returns:
        ``(dweights, dbiases)`` with the shapes and dtype of ``weights`` and ``biases``.
    """
    if loss != "bce" or activations[-1] != "sigmoid":
        raise ValueError("this network has a sigmoid output trained with BCE")
    unsupported = set(activations[:-1]) - set(HIDDEN)
    if unsupported:
        raise ValueError(f"unsupported hidden activations: {sorted(unsupported)}")
    hs, zs = [], [x]
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = W @ zs[-1] + b[:, None]
        hs.append(h)
        act = sigmoid if i == len(weights) - 1 else HIDDEN[activations[i]][0]
        zs.append(act(h))

    delta = (zs[-1] - y) / y.dtype.type(y.size)  # dJ/dh_L, fused sigmoid + BCE
    dweights = [np.empty(0)] * len(weights)
    dbiases = [np.empty(0)] * len(weights)
    for i in reversed(range(len(weights))):
        dweights[i] = delta @ zs[i].T
        dbiases[i] = delta.sum(axis=1)
        if i > 0:
            derivative = HIDDEN[activations[i - 1]][1]
            delta = (weights[i].T @ delta) * derivative(hs[i - 1])
    return dweights, dbiases
