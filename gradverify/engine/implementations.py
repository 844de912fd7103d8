"""The backprop protocol, capability declarations, and the three built-in BCE implementations.

The protocol (samples as columns)::

    def backprop(weights, biases, x, y, *, activations, loss):
        # weights[i]: (n_{i+1}, n_i); biases[i]: (n_{i+1},); x: (n_0, batch)
        # y: (n_L, batch); activations: tuple of names, one per layer; loss: a name
        return dweights, dbiases   # gradients of the mean loss, same shapes

An implementation may declare what it supports with :func:`supports` (defined, with
:class:`Capabilities`, in :mod:`gradverify.engine.capabilities`); the declaration
limits what the search generates and what the scanner varies. ``layout="rows"`` declares
that ``x`` and ``y`` are passed as ``(batch, n_0)`` and ``(batch, n_L)``, as torch users
write them; weights and biases keep their shapes.

The built-ins are the question's three ways of handling a sigmoid output with BCE. All
three share the general recursion ``delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1})`` and
compute in the dtype of their inputs:

1. :func:`naive_bce_backprop`: ``dJ/dyhat = (yhat - y)/(yhat(1 - yhat))`` times ``yhat(1 - yhat)``;
2. :func:`epsilon_bce_backprop`: the same with a small constant added to the denominator;
3. :func:`fused_bce_backprop`: ``delta_L = (z_L - y)/N``, which never divides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from gradverify.engine.capabilities import (
    CAPABILITIES_ATTRIBUTE,
    LABEL_KINDS,
    Capabilities,
    Labels,
    Layout,
    capabilities_of,
    implementation_name,
    supports,
)
from gradverify.model.dtypes import SUPPORTED_DTYPES
from gradverify.model.functions import activation, loss_function

__all__ = [
    "BUILTIN_IMPLEMENTATIONS",
    "CAPABILITIES_ATTRIBUTE",
    "LABEL_KINDS",
    "Backprop",
    "Capabilities",
    "Labels",
    "Layout",
    "capabilities_of",
    "conventional_backprop",
    "epsilon_bce_backprop",
    "fused_bce_backprop",
    "implementation_name",
    "naive_bce_backprop",
    "stable_backprop",
    "supports",
]


class Backprop(Protocol):
    """Anything callable with the protocol's signature."""

    def __call__(
        self,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        x: np.ndarray,
        y: np.ndarray,
        *,
        activations: tuple[str, ...],
        loss: str,
    ) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray]]: ...


# ---------------------------------------------------------------------------
# The shared layer recursion
# ---------------------------------------------------------------------------


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in the operands' dtype (ml_dtypes' bfloat16 ``@`` returns float32)."""
    out = a @ b
    return out if out.dtype == a.dtype else out.astype(a.dtype)


def _backprop(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    x: np.ndarray,
    activations: Sequence[str],
    output_layer: Callable[[np.ndarray], np.ndarray],
    output_delta: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    conventional: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward, then ``delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1})``, in the input dtype.

    ``output_layer(h_L) -> z_L`` and ``output_delta(h_L, z_L) -> dJ/dh_L`` define the last layer.
    ``conventional`` takes ``act'`` from the layer outputs as framework autograd does
    (:meth:`gradverify.model.functions.Activation.conventional_derivative`); otherwise from ``h``
    in the stable form.
    """
    hs, zs = [], [x]
    with np.errstate(all="ignore"):
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            h = _matmul(W, zs[-1]) + b[:, None]
            last = i == len(weights) - 1
            hs.append(h)
            zs.append(output_layer(h) if last else _forward_of(activations[i], conventional)(h))
        delta = output_delta(hs[-1], zs[-1])
        dweights: list[np.ndarray] = [np.empty(0)] * len(weights)
        dbiases: list[np.ndarray] = [np.empty(0)] * len(weights)
        for i in reversed(range(len(weights))):
            dweights[i] = _matmul(delta, zs[i].T)
            dbiases[i] = delta.sum(axis=1)
            if i > 0:
                act = activation(activations[i - 1])
                slope = (
                    act.conventional_derivative(hs[i - 1], zs[i])
                    if conventional
                    else act.derivative(hs[i - 1])
                )
                delta = _matmul(weights[i].T, delta) * slope
    return dweights, dbiases


def _forward_of(name: str, conventional: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The stable forward of ``name``, or with ``conventional`` the one torch computes."""
    act = activation(name)
    if conventional and act.conventional_forward is not None:
        return act.conventional_forward
    return act.forward


def _textbook_sigmoid(h: np.ndarray) -> np.ndarray:
    """``1/(1 + exp(-h))`` exactly as textbooks write it (exp overflows for very negative h)."""
    one = np.ones_like(h)
    return one / (one + np.exp(-h))


def _require_bce(activations: Sequence[str], loss: str) -> None:
    if loss != "bce" or activations[-1] != "sigmoid":
        raise ValueError(
            f"this implementation handles a sigmoid output with loss 'bce'; got output "
            f"{activations[-1]!r} with loss {loss!r}"
        )


@supports(losses=("bce",), dtypes=SUPPORTED_DTYPES, name="naive")
def naive_bce_backprop(weights, biases, x, y, *, activations, loss):
    """The question's chain: ``(yhat - y)/(yhat (1 - yhat))`` times ``yhat (1 - yhat)``.

    Divides by zero once ``yhat`` rounds to 0 or 1, giving inf/NaN.
    """
    _require_bce(activations, loss)
    n = y.dtype.type(y.size)

    def delta(h: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        dJ_dyhat = loss_function("bce").naive_output_gradient(yhat, y)
        return dJ_dyhat * (yhat * (1 - yhat)) / n

    return _backprop(weights, biases, x, activations, _textbook_sigmoid, delta)


@supports(losses=("bce",), dtypes=SUPPORTED_DTYPES, name="epsilon")
def epsilon_bce_backprop(weights, biases, x, y, *, activations, loss, epsilon: float = 1e-7):
    """The mentor's fix: ``(yhat - y)/(yhat (1 - yhat) + epsilon)`` times ``yhat (1 - yhat)``.

    Stays finite, but is biased wherever ``yhat (1 - yhat)`` is comparable to ``epsilon``
    and returns about 0 instead of about +-1/N once ``yhat`` rounds to 0 or 1.
    """
    _require_bce(activations, loss)
    n = y.dtype.type(y.size)
    eps = y.dtype.type(epsilon)

    def delta(h: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        slope = yhat * (1 - yhat)
        return (yhat - y) / (slope + eps) * slope / n

    return _backprop(weights, biases, x, activations, _textbook_sigmoid, delta)


@supports(losses=("bce",), dtypes=SUPPORTED_DTYPES, name="fused")
def fused_bce_backprop(weights, biases, x, y, *, activations, loss):
    """Sigmoid and BCE fused: ``delta_L = (z_L - y)/N``. No division, no constant."""
    _require_bce(activations, loss)
    n = y.dtype.type(y.size)
    sigmoid = activation("sigmoid").forward
    return _backprop(weights, biases, x, activations, sigmoid, lambda h, z: (z - y) / n)


@supports(dtypes=SUPPORTED_DTYPES, name="stable")
def stable_backprop(weights, biases, x, y, *, activations, loss):
    """A numerically stable implementation for every supported network.

    It uses the stable float forms of :mod:`gradverify.model.functions` and the fused output delta
    where the loss has one. The engine runs it as the baseline that sets tolerances.
    """
    from gradverify.model.network import ForwardPass, NetworkSpec, output_delta

    widths = (x.shape[0], *(w.shape[0] for w in weights))
    spec = NetworkSpec(widths, tuple(activations), loss)
    out_act = activation(activations[-1]).forward

    def delta(h: np.ndarray, z: np.ndarray) -> np.ndarray:
        return output_delta(spec, ForwardPass(x=x, h=(h,), z=(z,)), y)

    return _backprop(weights, biases, x, activations, out_act, delta)


@supports(dtypes=SUPPORTED_DTYPES, name="conventional")
def conventional_backprop(weights, biases, x, y, *, activations, loss):
    """What torch and jax autograd compute for every supported network.

    Hidden ``sigma'`` and ``tanh'`` come from the layer outputs (``z (1 - z)``, ``1 - z**2``),
    ``relu'`` and ``softplus'`` from ``h``; GELU (both forms) and SiLU use torch's forward and
    backward formulas (:attr:`~gradverify.model.functions.Activation.conventional_forward`,
    ``conventional_from_input``); the output delta is fused where the loss has a
    fused form (BCE-with-logits, softmax - y) and otherwise chained as
    ``dJ/dz_L (.) act_L'`` with ``act_L'`` from the outputs. The engine runs it as the
    second baseline: the accuracy that framework autograd has.
    """
    from gradverify.model.network import ForwardPass, NetworkSpec, output_delta

    widths = (x.shape[0], *(w.shape[0] for w in weights))
    spec = NetworkSpec(widths, tuple(activations), loss)
    out_act = _forward_of(activations[-1], conventional=True)

    def delta(h: np.ndarray, z: np.ndarray) -> np.ndarray:
        return output_delta(spec, ForwardPass(x=x, h=(h,), z=(z,)), y, conventional=True)

    return _backprop(weights, biases, x, activations, out_act, delta, conventional=True)


BUILTIN_IMPLEMENTATIONS: dict[str, Backprop] = {
    "naive": naive_bce_backprop,
    "epsilon": epsilon_bce_backprop,
    "fused": fused_bce_backprop,
}
"""The question's three ways of handling the BCE output layer, by short name."""
