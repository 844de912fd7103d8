"""The planted-bug zoo: the textbook backprop with exactly one mistake planted in each.

Every planted implementation is the textbook recursion for a sigmoid output with BCE,

    delta_L = (z_L - y) / N,   delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1}),
    dW_i = delta_i z_{i-1}^T,  db_i = delta_i summed over the batch,

with one mistake planted in it. ``PLANTED`` maps each kind of bug to its implementation and
a phrase the search's diagnosis must contain; ``textbook_backprop`` is the correct control.
Used by ``test_planted_bugs.py`` and by ``benchmarks/bench_quality.py``.
"""

from __future__ import annotations

import numpy as np

from gradverify.engine.implementations import supports
from gradverify.model.functions import activation

__all__ = ["DECLARED", "PLANTED", "textbook_backprop"]

DECLARED = {"losses": ("bce",), "dtypes": ("float64",)}


def _derivative(name, h):
    return activation(name).derivative(h)


def _textbook(
    weights,
    biases,
    x,
    y,
    activations,
    *,
    output_delta=None,
    back=None,
    derivative=_derivative,
    weight_grad=None,
    bias_grad=None,
    hidden_delta=None,
):
    """The correct recursion; each keyword replaces one step (that is where a bug goes)."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    depth = len(weights)
    delta = (zs[-1] - y) / y.size if output_delta is None else output_delta(zs[-1], y)
    pre = delta
    dweights, dbiases = [None] * depth, [None] * depth
    for i in reversed(range(depth)):
        dweights[i] = delta @ zs[i].T if weight_grad is None else weight_grad(delta, zs[i])
        dbiases[i] = delta.sum(axis=1) if bias_grad is None else bias_grad(delta, pre)
        if i > 0:
            pre = weights[i].T @ delta if back is None else back(weights[i], delta)
            if hidden_delta is not None:
                delta = hidden_delta(i, depth, pre, hs, zs, activations)
            else:
                delta = pre * derivative(activations[i - 1], hs[i - 1])
    return dweights, dbiases


@supports(**DECLARED, name="textbook")
def textbook_backprop(weights, biases, x, y, *, activations, loss):
    """No bug: the control."""
    return _textbook(weights, biases, x, y, activations)


@supports(**DECLARED, name="sign")
def sign_flip_backprop(weights, biases, x, y, *, activations, loss):
    """Output delta written as (y - z)/N: every gradient has the wrong sign."""
    return _textbook(weights, biases, x, y, activations, output_delta=lambda z, y: (y - z) / y.size)


@supports(**DECLARED, name="scale")
def sum_not_mean_backprop(weights, biases, x, y, *, activations, loss):
    """Forgets the 1/N of the mean: the gradient of the summed loss."""
    return _textbook(weights, biases, x, y, activations, output_delta=lambda z, y: z - y)


@supports(**DECLARED, name="transpose")
def square_transpose_backprop(weights, biases, x, y, *, activations, loss):
    """Back-propagates through W_i instead of W_i^T; only square layers get past the shapes."""

    def back(W, delta):
        return (W if W.shape[0] == W.shape[1] else W.T) @ delta

    return _textbook(weights, biases, x, y, activations, back=back)


@supports(**DECLARED, name="no-derivative")
def missing_derivative_backprop(weights, biases, x, y, *, activations, loss):
    """Forgets the act'(h_{i-1}) factor of the hidden deltas."""
    return _textbook(weights, biases, x, y, activations, derivative=lambda name, h: np.ones_like(h))


@supports(**DECLARED, name="deep")
def deep_layers_backprop(weights, biases, x, y, *, activations, loss):
    """Below the last hidden layer, evaluates act' at z_{i-1} instead of h_{i-1}."""

    def hidden_delta(i, depth, pre, hs, zs, acts):
        at = hs[i - 1] if i == depth - 1 else zs[i]
        return pre * _derivative(acts[i - 1], at)

    return _textbook(weights, biases, x, y, activations, hidden_delta=hidden_delta)


@supports(**DECLARED, name="width-1")
def single_unit_backprop(weights, biases, x, y, *, activations, loss):
    """A 'scalar' fast path for one-unit hidden layers that skips act'(h)."""

    def hidden_delta(i, depth, pre, hs, zs, acts):
        if pre.shape[0] == 1:
            return pre
        return pre * _derivative(acts[i - 1], hs[i - 1])

    return _textbook(weights, biases, x, y, activations, hidden_delta=hidden_delta)


@supports(**DECLARED, name="batch")
def batch_sum_first_backprop(weights, biases, x, y, *, activations, loss):
    """Sums over the batch before the outer product: (sum delta)(sum z)^T, not delta z^T."""
    return _textbook(
        weights,
        biases,
        x,
        y,
        activations,
        weight_grad=lambda delta, z: np.outer(delta.sum(axis=1), z.sum(axis=1)),
    )


@supports(**DECLARED, name="tanh")
def tanh_typo_backprop(weights, biases, x, y, *, activations, loss):
    """tanh'(h) written as 1 - tanh(h) (the square is missing); other activations are right."""

    def derivative(name, h):
        return 1 - np.tanh(h) if name == "tanh" else _derivative(name, h)

    return _textbook(weights, biases, x, y, activations, derivative=derivative)


@supports(**DECLARED, name="bias")
def bias_before_derivative_backprop(weights, biases, x, y, *, activations, loss):
    """Hidden bias gradients summed from W^T delta before the act' factor is applied."""
    return _textbook(weights, biases, x, y, activations, bias_grad=lambda delta, pre: pre.sum(1))


@supports(**DECLARED, name="half-precision")
def float16_inside_backprop(weights, biases, x, y, *, activations, loss):
    """Computes everything in float16 and returns float64 (a silent precision loss)."""
    half = np.float16
    dw, db = _textbook(
        [w.astype(half) for w in weights],
        [b.astype(half) for b in biases],
        x.astype(half),
        y.astype(half),
        activations,
    )
    return [g.astype(x.dtype) for g in dw], [g.astype(x.dtype) for g in db]


# kind -> (implementation, a phrase the diagnosis must contain)
PLANTED = {
    "sign": (sign_flip_backprop, "the sign is flipped"),
    "scale factor": (sum_not_mean_backprop, "off by a constant factor"),
    "W instead of W^T": (square_transpose_backprop, "uses W_i where W_i^T belongs"),
    "missing derivative": (missing_derivative_backprop, "suspect an activation derivative"),
    "depth >= 3 only": (deep_layers_backprop, "only at depth >= 3"),
    "width-1 only": (single_unit_backprop, "only where a width is 1 (layer"),
    "batch > 1 only": (batch_sum_first_backprop, "only at batch size > 1"),
    "tanh only": (tanh_typo_backprop, "only with tanh layers"),
    "bias only": (bias_before_derivative_backprop, "only bias gradients are wrong"),
    "reduced precision": (float16_inside_backprop, "look like float16 precision"),
}
