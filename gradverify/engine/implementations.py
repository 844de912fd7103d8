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

import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from gradverify.model.dtypes import SUPPORTED_DTYPES
from gradverify.model.functions import ACTIVATIONS, LOSSES, activation, loss_function
from gradverify.model.names import validate_names

__all__ = [
    "BUILTIN_IMPLEMENTATIONS",
    "Backprop",
    "Capabilities",
    "capabilities_of",
    "conventional_backprop",
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


def _positive(what: str, value: Any, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{what} must be a positive integer or a (min, max) pair of them, "
            f"e.g. {example}; got {value!r}"
        )
    return int(value)


def _count_range(what: str, value: Any, example: str) -> tuple[int, int] | None:
    """None, ``n`` or ``(min, max)`` as ``(min, max)``; ValueError naming ``what`` otherwise."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{what} must be a positive integer or a (min, max) pair of them, "
                f"e.g. {example}; got {value!r}"
            )
        lo, hi = (_positive(what, v, example) for v in value)
        if lo > hi:
            raise ValueError(f"{what} range ({lo}, {hi}) is empty: its min exceeds its max")
        return lo, hi
    n = _positive(what, value, example)
    return n, n


def _width_list(value: Any) -> tuple[int | None, ...] | None:
    """None, or every width (input first) as a positive int or None (free)."""
    if value is None:
        return None
    usage = (
        "widths lists the input width and the width of every layer, input first, each a "
        "positive integer or None for a free one, e.g. widths=(784, 30, 10) or "
        "widths=(None, 30, None)"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{usage}; got {value!r}")
    entries = tuple(value)
    if len(entries) < 2:
        raise ValueError(f"{usage}: at least 2 entries (the input and one layer); got {value!r}")
    for i, n in enumerate(entries):
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"{usage}; entry {i} is {n!r}")
    return tuple(None if n is None else int(n) for n in entries)


def _span(bounds: tuple[int, int]) -> str:
    lo, hi = bounds
    return str(lo) if lo == hi else f"{lo} to {hi}"


@dataclass(frozen=True)
class Capabilities:
    """What an implementation supports: names, layout, and optionally its architecture.

    Besides activation, loss and dtype names and the layout, an implementation that serves
    one architecture declares it; the search then generates and shrinks only inside it:

    * ``depth``: the number of layers (weight matrices), an int or a ``(min, max)`` pair;
    * ``widths``: every width, input first (``depth + 1`` entries), None for a free one,
      e.g. ``(784, 30, 10)`` or ``(None, 30, None)``; it fixes the depth;
    * ``batch``: the batch size, an int or a ``(min, max)`` pair.

    Ranges are stored as ``(min, max)``. With an output width of 1 the default losses leave
    out ``softmax_ce`` (a softmax over one unit has no gradient); naming it is an error.
    """

    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    losses: tuple[str, ...] = tuple(LOSSES)
    dtypes: tuple[str, ...] = ("float32", "float64")
    layout: Layout = "columns"
    name: str | None = field(default=None, compare=False)
    depth: int | tuple[int, int] | None = None
    widths: tuple[int | None, ...] | None = None
    batch: int | tuple[int, int] | None = None

    def __post_init__(self) -> None:
        validate_names("activation", self.activations)
        validate_names("loss", self.losses)
        validate_names("dtype", self.dtypes)
        if self.layout not in ("columns", "rows"):
            raise ValueError(f"layout must be 'columns' or 'rows'; got {self.layout!r}")
        depth = _count_range("depth", self.depth, "depth=2 or depth=(2, 3)")
        widths = _width_list(self.widths)
        batch = _count_range("batch", self.batch, "batch=1 or batch=(1, 8)")
        if widths is not None and depth is not None and depth != (len(widths) - 1,) * 2:
            raise ValueError(
                f"widths={widths!r} has {len(widths)} entries, which is a network of depth "
                f"{len(widths) - 1} (the input and {len(widths) - 1} layers), but depth "
                f"{_span(depth)} is declared"
            )
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "batch", batch)
        if widths is not None and widths[-1] == 1 and "softmax_ce" in self.losses:
            if self.losses != tuple(LOSSES):
                raise ValueError(
                    "loss 'softmax_ce' needs at least 2 outputs, but widths declares an output "
                    f"width of 1 ({widths!r}); leave softmax_ce out of the losses"
                )
            object.__setattr__(self, "losses", tuple(n for n in LOSSES if n != "softmax_ce"))

    @property
    def depth_range(self) -> tuple[int, int] | None:
        """``(min, max)`` depth declared by ``depth`` or ``widths``; None when free."""
        if self.widths is not None:
            return len(self.widths) - 1, len(self.widths) - 1
        return self.depth  # normalised to (min, max) in __post_init__

    @property
    def fixes_architecture(self) -> bool:
        """Whether depth, widths or batch are declared."""
        return self.depth is not None or self.widths is not None or self.batch is not None

    def outside(self, widths: Sequence[int], batch: int | None = None) -> str | None:
        """Why a network of ``widths`` (input first) and ``batch`` is outside, or None."""
        depth = len(widths) - 1
        bounds = self.depth_range
        if bounds is not None and not bounds[0] <= depth <= bounds[1]:
            return f"depth {depth} is outside the declared depth {_span(bounds)}"
        if self.widths is not None:
            for k, (n, want) in enumerate(zip(widths, self.widths, strict=True)):
                if want is not None and n != want:
                    return (
                        f"width {n} at position {k} differs from the declared widths "
                        f"{self.describe_widths()}"
                    )
        if batch is not None and self.batch is not None:
            lo, hi = self.batch
            if not lo <= batch <= hi:
                return f"batch {batch} is outside the declared batch {_span((lo, hi))}"
        return None

    def admits(self, widths: Sequence[int], batch: int | None = None) -> bool:
        """Whether a network of ``widths`` and ``batch`` is inside the declared architecture."""
        return self.outside(widths, batch) is None

    def describe_widths(self) -> str:
        if self.widths is None:
            return "(free)"
        return "(" + ", ".join("None" if n is None else str(n) for n in self.widths) + ")"

    def restricted(
        self,
        activations: Iterable[str] | None = None,
        losses: Iterable[str] | None = None,
        dtypes: Iterable[str] | None = None,
        *,
        depth: int | tuple[int, int] | None = None,
        widths: Sequence[int | None] | None = None,
        batch: int | tuple[int, int] | None = None,
    ) -> Capabilities:
        """These capabilities with any given field replaced (e.g. from the command line).

        New ``widths`` without a new ``depth`` replace the declared depth too.
        """
        return Capabilities(
            activations=tuple(activations) if activations else self.activations,
            losses=tuple(losses) if losses else self.losses,
            dtypes=tuple(dtypes) if dtypes else self.dtypes,
            layout=self.layout,
            name=self.name,
            depth=depth if depth is not None else (None if widths is not None else self.depth),
            widths=widths if widths is not None else self.widths,
            batch=batch if batch is not None else self.batch,
        )

    def to_dict(self) -> dict:
        out = {
            "activations": list(self.activations),
            "losses": list(self.losses),
            "dtypes": list(self.dtypes),
            "layout": self.layout,
        }
        for key in ("depth", "widths", "batch"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        return out


def supports(
    *,
    activations: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    layout: Layout = "columns",
    name: str | None = None,
    depth: int | tuple[int, int] | None = None,
    widths: Sequence[int | None] | None = None,
    batch: int | tuple[int, int] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator declaring what a backprop implementation supports.

    ``depth`` (layers: an int or a ``(min, max)`` pair), ``widths`` (input first, None for
    a free one) and ``batch`` declare an implementation that serves one architecture; the
    search then stays inside it. See :class:`Capabilities`.

    Example::

        @gradverify.supports(activations=("sigmoid",), losses=("bce",), dtypes=("float32",))
        def my_backprop(weights, biases, x, y, *, activations, loss): ...

        @gradverify.supports(depth=2)           # W1, W2 = weights
        def two_layers(weights, biases, x, y, *, activations, loss): ...

    Raises:
        ValueError: an unknown name, or an architecture that contradicts itself.
    """
    default = Capabilities()
    caps = Capabilities(
        activations=tuple(activations) if activations else default.activations,
        losses=tuple(losses) if losses else default.losses,
        dtypes=tuple(dtypes) if dtypes else default.dtypes,
        layout=layout,
        name=name,
        depth=depth,
        widths=widths,
        batch=batch,
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
            zs.append(output_layer(h) if last else activation(activations[i]).forward(h))
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
    ``relu'`` and ``softplus'`` from ``h``; the output delta is fused where the loss has a
    fused form (BCE-with-logits, softmax - y) and otherwise chained as
    ``dJ/dz_L (.) act_L'`` with ``act_L'`` from the outputs. The engine runs it as the
    second baseline: the accuracy that framework autograd has.
    """
    from gradverify.model.network import ForwardPass, NetworkSpec, output_delta

    widths = (x.shape[0], *(w.shape[0] for w in weights))
    spec = NetworkSpec(widths, tuple(activations), loss)
    out_act = activation(activations[-1]).forward

    def delta(h: np.ndarray, z: np.ndarray) -> np.ndarray:
        return output_delta(spec, ForwardPass(x=x, h=(h,), z=(z,)), y, conventional=True)

    return _backprop(weights, biases, x, activations, out_act, delta, conventional=True)


BUILTIN_IMPLEMENTATIONS: dict[str, Backprop] = {
    "naive": naive_bce_backprop,
    "epsilon": epsilon_bce_backprop,
    "fused": fused_bce_backprop,
}
"""The question's three ways of handling the BCE output layer, by short name."""
