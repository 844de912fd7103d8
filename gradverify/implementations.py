"""The backprop protocol, capability declarations, and the three built-in BCE implementations.

The protocol (samples as columns)::

    def backprop(weights, biases, x, y, *, activations, loss):
        # weights[i]: (n_{i+1}, n_i); biases[i]: (n_{i+1},); x: (n_0, batch)
        # y: (n_L, batch); activations: tuple of names, one per layer; loss: a name
        return dweights, dbiases   # gradients of the mean loss, same shapes

An implementation may declare what it supports with :func:`supports`; the declaration
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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from gradverify.dtypes import SUPPORTED_DTYPES
from gradverify.functions import ACTIVATIONS, LOSSES, activation, loss_function

__all__ = [
    "BUILTIN_IMPLEMENTATIONS",
    "Backprop",
    "Capabilities",
    "capabilities_of",
    "epsilon_bce_backprop",
    "fused_bce_backprop",
    "implementation_name",
    "naive_bce_backprop",
    "stable_backprop",
    "supports",
]

Layout = Literal["columns", "rows"]
CAPABILITIES_ATTRIBUTE = "__gradverify_capabilities__"


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


@dataclass(frozen=True)
class Capabilities:
    """What an implementation supports: activation, loss and dtype names, and its layout."""

    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    losses: tuple[str, ...] = tuple(LOSSES)
    dtypes: tuple[str, ...] = ("float32", "float64")
    layout: Layout = "columns"
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for kind, names, known in (
            ("activation", self.activations, ACTIVATIONS),
            ("loss", self.losses, LOSSES),
            ("dtype", self.dtypes, SUPPORTED_DTYPES),
        ):
            if not names:
                raise ValueError(f"at least one {kind} must be supported")
            for n in names:
                if n not in known:
                    raise ValueError(
                        f"unknown {kind} {n!r} in capabilities; known: {', '.join(known)}"
                    )
        if self.layout not in ("columns", "rows"):
            raise ValueError(f"layout must be 'columns' or 'rows'; got {self.layout!r}")

    def restricted(
        self,
        activations: Iterable[str] | None = None,
        losses: Iterable[str] | None = None,
        dtypes: Iterable[str] | None = None,
    ) -> Capabilities:
        """These capabilities with any given field replaced (e.g. from the command line)."""
        return Capabilities(
            activations=tuple(activations) if activations else self.activations,
            losses=tuple(losses) if losses else self.losses,
            dtypes=tuple(dtypes) if dtypes else self.dtypes,
            layout=self.layout,
            name=self.name,
        )

    def to_dict(self) -> dict:
        return {"activations": list(self.activations), "losses": list(self.losses),
                "dtypes": list(self.dtypes), "layout": self.layout}


def supports(
    *,
    activations: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    layout: Layout = "columns",
    name: str | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator declaring what a backprop implementation supports.

    Example::

        @gradverify.supports(activations=("sigmoid",), losses=("bce",), dtypes=("float32",))
        def my_backprop(weights, biases, x, y, *, activations, loss): ...
    """
    default = Capabilities()
    caps = Capabilities(
        activations=tuple(activations) if activations else default.activations,
        losses=tuple(losses) if losses else default.losses,
        dtypes=tuple(dtypes) if dtypes else default.dtypes,
        layout=layout,
        name=name,
    )

    def decorate(fn: Callable) -> Callable:
        setattr(fn, CAPABILITIES_ATTRIBUTE, caps)
        return fn

    return decorate


def capabilities_of(impl: Callable) -> Capabilities:
    """The declared capabilities of ``impl``, or the defaults (everything, float32/64)."""
    caps = getattr(impl, CAPABILITIES_ATTRIBUTE, None)
    return caps if isinstance(caps, Capabilities) else Capabilities()


def implementation_name(impl: Callable) -> str:
    """A readable name: the declared name, else ``module:qualname``."""
    caps = getattr(impl, CAPABILITIES_ATTRIBUTE, None)
    if isinstance(caps, Capabilities) and caps.name:
        return caps.name
    qualname = getattr(impl, "__qualname__", None) or type(impl).__qualname__
    module = getattr(impl, "__module__", None)
    return f"{module}:{qualname}" if module else qualname


# ---------------------------------------------------------------------------
# The shared layer recursion
# ---------------------------------------------------------------------------

OutputDelta = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(h_L, z_L, y) -> dJ/dh_L`` (already divided by N)."""


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
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward, then ``delta_{i-1} = (W_i^T delta_i) (.) act'(h_{i-1})``, in the input dtype.

    ``output_layer(h_L) -> z_L`` and ``output_delta(h_L, z_L) -> dJ/dh_L`` define the last layer.
    """
    hs, zs = [], [x]
    with np.errstate(all="ignore"):
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            h = _matmul(W, zs[-1]) + b[:, None]
            last = i == len(weights) - 1
            hs.append(h)
            zs.append(output_layer(h) if last else activation(activations[i]).forward(h))
        delta = output_delta(hs[-1], zs[-1])
        dweights: list[np.ndarray] = [np.empty(0)] * len(weights)
        dbiases: list[np.ndarray] = [np.empty(0)] * len(weights)
        for i in reversed(range(len(weights))):
            dweights[i] = _matmul(delta, zs[i].T)
            dbiases[i] = delta.sum(axis=1)
            if i > 0:
                slope = activation(activations[i - 1]).derivative(hs[i - 1])
                delta = _matmul(weights[i].T, delta) * slope
    return dweights, dbiases


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

    It uses the stable float forms of :mod:`gradverify.functions` and the fused output delta
    where the loss has one. The engine runs it as the baseline that sets tolerances.
    """
    from gradverify.network import ForwardPass, NetworkSpec, output_delta

    widths = (x.shape[0], *(w.shape[0] for w in weights))
    spec = NetworkSpec(widths, tuple(activations), loss)
    out_act = activation(activations[-1]).forward

    def delta(h: np.ndarray, z: np.ndarray) -> np.ndarray:
        return output_delta(spec, ForwardPass(x=x, h=(h,), z=(z,)), y)

    return _backprop(weights, biases, x, activations, out_act, delta)


BUILTIN_IMPLEMENTATIONS: dict[str, Backprop] = {
    "naive": naive_bce_backprop,
    "epsilon": epsilon_bce_backprop,
    "fused": fused_bce_backprop,
}
"""The question's three ways of handling the BCE output layer, by short name."""

