"""PyTorch adapter: gradients of an ``nn.Module`` (or a function of tensors) by autograd.

Two forms, both returning a protocol backprop (see :mod:`gradverify.engine.implementations`):

* :func:`from_module`: a loss module such as ``nn.BCELoss()`` or ``nn.BCEWithLogitsLoss()``
  and a factory ``factory(widths, activations) -> nn.Module`` whose ``nn.Linear`` layers
  (in ``module.modules()`` order) are the network's layers. The adapter builds the module in
  the dtype under test, sets each layer's ``weight`` to ``W_i`` and ``bias`` to ``b_i``,
  evaluates ``loss(module(x.T), y.T)`` (``nn.Linear`` takes samples as rows) and reads
  ``weight.grad`` and ``bias.grad``. Without a factory it builds ``Linear`` + activation
  layers with :func:`mlp_factory`, leaving out the last activation when the loss takes
  logits (``BCEWithLogitsLoss``, ``CrossEntropyLoss``). Names and modules correspond as
  :mod:`gradverify.edges.adapters.torch_names` lists (``leaky_relu(0.2)`` is
  ``nn.LeakyReLU(0.2)``, ``nn.HuberLoss(delta=2.0)`` is ``huber(2.0)``).
  ``CrossEntropyLoss`` gets ``y.T`` as probabilities (soft labels), or, with
  ``targets="indices"``, the class index of every one-hot column (declared
  ``labels="hard"``, so only hard labels are generated).
* :func:`from_function`: ``loss_fn(weights, biases, x, y) -> scalar tensor`` with the
  protocol's shapes (or rows, ``layout="rows"``); gradients by ``torch.autograd.grad``.

gradverify's loss is the mean over all elements of ``y``. Elementwise losses with
``reduction="mean"`` are exactly that and are passed through unscaled; ``reduction="sum"``
(and ``"none"``, summed) is divided by ``y.size``, and ``CrossEntropyLoss`` (a mean over the
batch of a sum over classes) by the number of classes. That one scaling rounds once per
entry (at most half an ulp).

Dtypes: float16, float32 and float64 (bfloat16 too when declared and ml_dtypes is
installed: values move through float32, which is exact). torch is imported only inside
these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from gradverify.edges.adapters._common import check_declared, dtype_names, takes_spec_keywords
from gradverify.edges.adapters.torch_names import (
    TARGETS,
    activation_module,
    activation_name,
    check_targets,
    describe_loss,
    loss_name,
)
from gradverify.engine.implementations import supports
from gradverify.model.dtypes import dtype_name

__all__ = [
    "DEFAULT_DTYPES",
    "TARGETS",
    "activation_module",
    "activation_name",
    "from_function",
    "from_module",
    "loss_name",
    "mlp_factory",
]

DEFAULT_DTYPES: tuple[str, ...] = ("float16", "float32", "float64")

# ---------------------------------------------------------------------------
# numpy <-> torch, exactly
# ---------------------------------------------------------------------------


def _torch_dtype(name: str) -> Any:
    import torch

    return {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float32": torch.float32,
        "float64": torch.float64,
    }[name]


def _to_tensor(a: np.ndarray, *, requires_grad: bool = False) -> Any:
    """A new tensor with exactly the values and dtype of ``a`` (bfloat16 via float32)."""
    import torch

    name = dtype_name(a.dtype)
    if name == "bfloat16":
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16)
    else:
        t = torch.from_numpy(np.array(a, copy=True, order="C"))
    return t.requires_grad_(requires_grad)


def _to_numpy(t: Any, like: np.ndarray) -> np.ndarray:
    """A tensor as a numpy array of ``like``'s dtype and shape (zeros if ``t`` is None)."""
    import torch

    if t is None:
        return np.zeros(like.shape, dtype=like.dtype)
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.to(torch.float32).numpy().astype(like.dtype)
    return t.numpy().copy()


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


def mlp_factory(
    *, final_activation: bool = True, device: str | None = None
) -> Callable[[Sequence[int], Sequence[str]], Any]:
    """A factory of ``nn.Sequential(Linear, act, Linear, act, ...)`` for any widths.

    Args:
        final_activation: apply the last layer's activation. Use False when the loss
            module takes logits (``BCEWithLogitsLoss``: the sigmoid is inside the loss).
        device: the ``nn.Linear`` layers' device (None: torch's default). The adapter's
            own default factory uses ``"meta"``: it replaces every weight and bias before
            the forward pass, so initialising them on the CPU would be wasted work per call.
    """

    def build(widths: Sequence[int], activations: Sequence[str]) -> Any:
        from torch import nn

        layers: list[Any] = []
        for i, name in enumerate(activations):
            layers.append(nn.Linear(widths[i], widths[i + 1], device=device))
            if i < len(activations) - 1 or final_activation:
                layers.append(activation_module(name))
        return nn.Sequential(*layers)

    build.__qualname__ = f"mlp_factory(final_activation={final_activation})"
    return build


class _ModuleCache:
    """Modules of the adapter's own factory, one per (widths, activations, dtype), to reuse.

    Building an ``nn.Sequential`` (even on the meta device) and moving it to the dtype
    cost about as much as the forward and backward passes of a small network. A module of
    the default factory holds no state of its own besides the weights and biases, which
    every call replaces, so a call can take one built for an earlier call. :meth:`take`
    removes it from the cache and :meth:`give_back` returns it after a call that
    completed, so two calls never share a module (a call that raised or still runs, e.g.
    one abandoned by a time limit, keeps its own). Not pickled: a worker starts empty.
    """

    LIMIT = 8
    """The most modules kept (the oldest is dropped first)."""

    def __init__(self) -> None:
        self._modules: dict[tuple[Any, ...], Any] = {}

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (_ModuleCache, ())

    def take(self, key: tuple[Any, ...]) -> Any | None:
        return self._modules.pop(key, None)

    def give_back(self, key: tuple[Any, ...], module: Any) -> None:
        modules = self._modules
        if len(modules) >= self.LIMIT:
            try:
                del modules[next(iter(modules))]
            except (RuntimeError, StopIteration, KeyError):  # another thread changed it
                modules.clear()
        modules[key] = module


def _class_indices(y: np.ndarray) -> Any:
    """The class index of every one-hot column of ``y`` as a torch ``int64`` vector."""
    import torch

    if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=0) == 1)):
        raise ValueError(
            "class-index targets need one-hot label columns (labels='hard'); got soft labels"
        )
    return torch.from_numpy(np.argmax(y, axis=0).astype(np.int64))


def _loss_scale(loss_module: Any, y_shape: tuple[int, int], batch_mean: bool) -> float | None:
    """The factor taking the module's loss to the mean over all elements (None: exactly 1)."""
    reduction = getattr(loss_module, "reduction", "mean")
    n_out, batch = y_shape
    if reduction == "mean":
        return 1.0 / n_out if batch_mean and n_out != 1 else None
    if reduction in ("sum", "none"):
        return 1.0 / (n_out * batch)
    raise ValueError(f"unknown reduction {reduction!r} on {type(loss_module).__name__}")


def _linear_layers(module: Any, depth: int, widths: Sequence[int]) -> list[Any]:
    from torch import nn

    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if len(linears) != depth:
        raise ValueError(
            f"the module from the factory has {len(linears)} nn.Linear layers; "
            f"the network has {depth} layers (widths {tuple(widths)})"
        )
    for i, lin in enumerate(linears):
        expected = (widths[i + 1], widths[i])
        if tuple(lin.weight.shape) != expected:
            raise ValueError(
                f"nn.Linear layer {i + 1} has weight shape "
                f"{tuple(lin.weight.shape)}; expected {expected}"
            )
        if lin.bias is None:
            raise ValueError(f"nn.Linear layer {i + 1} has no bias (build it with bias=True)")
    return linears


def _scaled_loss(loss_module: Any, out: Any, target: Any, y: np.ndarray, batch_mean: bool) -> Any:
    """The module's loss of ``out`` against ``target``, as the mean over all elements of ``y``."""
    value = loss_module(out, target)
    if getattr(loss_module, "reduction", "mean") == "none":
        value = value.sum()
    scale = _loss_scale(loss_module, y.shape, batch_mean)
    return value if scale is None else value * scale


def from_module(
    loss: Any,
    factory: Callable[[Sequence[int], Sequence[str]], Any] | None = None,
    *,
    activations: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    dtypes: Iterable[str] = DEFAULT_DTYPES,
    targets: str = "probabilities",
    name: str | None = None,
) -> Callable:
    """A protocol backprop for ``loss(factory(widths, activations)(x.T), y.T)`` by autograd.

    Args:
        loss: a torch loss module instance, e.g. ``nn.BCELoss()`` or ``nn.BCEWithLogitsLoss()``.
        factory: ``(widths, activations) -> nn.Module``; its ``nn.Linear`` layers, in
            ``modules()`` order, get the weights and biases. It is called for every call, as
            its modules may keep state. Default: :func:`mlp_factory`, without the last
            activation when ``loss`` takes logits; its stateless modules are reused, one per
            network and dtype (each call replaces every weight and bias).
        activations: the activations the module handles (default: an undeclared
            implementation's, sigmoid, tanh, relu, softplus, identity; the others,
            e.g. ``("gelu", "leaky_relu(0.2)", "sigmoid")``, are checked when named).
        losses: the gradverify loss names it computes (default: from the loss module, see
            :func:`loss_name`: BCELoss/BCEWithLogitsLoss -> bce, MSELoss -> mse, L1Loss ->
            l1, HuberLoss(delta=d) -> huber(d), CrossEntropyLoss(label_smoothing=e) ->
            softmax_ce(e)).
        dtypes: dtype names to be checked in (default float16, float32, float64).
        targets: ``"probabilities"`` (default): ``y.T`` goes to the loss as it is (soft
            labels for ``CrossEntropyLoss``); ``"indices"``: ``CrossEntropyLoss`` gets the
            class index of each one-hot column, and the adapter declares ``labels="hard"``.
        name: the name shown in results (default ``torch:<LossClass>``).

    Raises:
        ValueError: the loss class is unknown and ``losses`` is not given, or ``targets``
            is not one of :data:`TARGETS` (``"indices"`` only with softmax_ce).
    """
    loss_names, takes_logits, batch_mean = describe_loss(loss, losses)
    indices = check_targets(targets, loss_names)
    loss_module = loss  # the protocol's keyword ``loss`` (a name) shadows it below
    build = factory or mlp_factory(final_activation=not takes_logits, device="meta")
    reusable = _ModuleCache() if factory is None else None
    label = name or f"torch:{type(loss_module).__name__}"
    declared = {"labels": "hard"} if indices else {}

    @supports(
        activations=activations,
        losses=loss_names,
        dtypes=dtype_names(dtypes),
        name=label,
        **declared,
    )
    def torch_module_backprop(weights, biases, x, y, *, activations, loss):
        import torch

        check_declared(label, loss, loss_names)
        widths = (x.shape[0], *(w.shape[0] for w in weights))
        key = (widths, tuple(activations), dtype_name(x.dtype))
        module = reusable.take(key) if reusable is not None else None
        if module is None:
            module = build(widths, key[1]).to(_torch_dtype(key[2]))
        linears = _linear_layers(module, len(weights), widths)
        for lin, W, b in zip(linears, weights, biases, strict=True):
            lin.weight = torch.nn.Parameter(_to_tensor(W))
            lin.bias = torch.nn.Parameter(_to_tensor(b))
        out = module(_to_tensor(x.T))
        if tuple(out.shape) != y.T.shape:
            raise ValueError(
                f"the module returned shape {tuple(out.shape)} for a batch of "
                f"{x.shape[1]}; expected {y.T.shape} (samples as rows)"
            )
        target = _class_indices(y) if indices else _to_tensor(y.T)
        _scaled_loss(loss_module, out, target, y, batch_mean).backward()
        dweights = [_to_numpy(lin.weight.grad, W) for lin, W in zip(linears, weights, strict=True)]
        dbiases = [_to_numpy(lin.bias.grad, b) for lin, b in zip(linears, biases, strict=True)]
        if reusable is not None:
            reusable.give_back(key, module)
        return dweights, dbiases

    return torch_module_backprop


def from_function(
    loss_fn: Callable[..., Any],
    *,
    losses: Iterable[str],
    activations: Iterable[str] | None = None,
    dtypes: Iterable[str] = DEFAULT_DTYPES,
    layout: str = "columns",
    reduction: str = "mean",
    name: str | None = None,
) -> Callable:
    """A protocol backprop for ``loss_fn(weights, biases, x, y) -> scalar`` by autograd.

    Args:
        loss_fn: takes lists of tensors ``weights[i]`` ``(n_{i+1}, n_i)`` and ``biases[i]``
            ``(n_{i+1},)`` and tensors ``x``, ``y`` (``(n_0, batch)``, ``(n_L, batch)``, or
            transposed with ``layout="rows"``); returns the loss. If it accepts keywords
            ``activations`` and ``loss`` (or ``**kwargs``) it is given the network's names.
        losses: the gradverify loss names it computes (required: a function cannot be asked).
        activations: the activations it handles (default: an undeclared
            implementation's; gelu, silu, leaky_relu(a), ... when named).
        dtypes: dtype names to be checked in.
        layout: "columns" (samples as columns, as the protocol) or "rows".
        reduction: "mean" if it returns the mean over all elements of y (gradverify's J),
            "sum" if it returns their sum.
        name: the name shown in results.
    """
    if layout not in ("columns", "rows"):
        raise ValueError(f"layout must be 'columns' or 'rows'; got {layout!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
    loss_names = tuple(losses)
    label = name or f"torch:{getattr(loss_fn, '__qualname__', type(loss_fn).__name__)}"
    pass_spec = takes_spec_keywords(loss_fn)

    @supports(activations=activations, losses=loss_names, dtypes=dtype_names(dtypes), name=label)
    def torch_function_backprop(weights, biases, x, y, *, activations, loss):
        import torch

        check_declared(label, loss, loss_names)
        ws = [_to_tensor(W, requires_grad=True) for W in weights]
        bs = [_to_tensor(b, requires_grad=True) for b in biases]
        xt = _to_tensor(x if layout == "columns" else x.T)
        yt = _to_tensor(y if layout == "columns" else y.T)
        extra = {"activations": tuple(activations), "loss": loss} if pass_spec else {}
        value = loss_fn(ws, bs, xt, yt, **extra)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(
                f"loss_fn must return a scalar tensor; got {type(value).__name__}"
                + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
            )
        if reduction == "sum":
            value = value / y.size
        grads = torch.autograd.grad(value.reshape(()), [*ws, *bs], allow_unused=True)
        depth = len(weights)
        dweights = [_to_numpy(g, W) for g, W in zip(grads[:depth], weights, strict=True)]
        dbiases = [_to_numpy(g, b) for g, b in zip(grads[depth:], biases, strict=True)]
        return dweights, dbiases

    return torch_function_backprop
