"""Textbook network objects: ``weights``, ``biases`` and ``backprop(x, y) -> (nabla_b, nabla_w)``.

This is the layout of the ``Network`` class in chapter 2 of Nielsen's *Neural Networks and
Deep Learning*: ``weights[i]`` has shape ``(n_{i+1}, n_i)``, ``biases[i]`` is a column
``(n_{i+1}, 1)``, ``x`` and ``y`` are columns, and ``backprop(x, y)`` handles ONE sample and
returns ``(nabla_b, nabla_w)`` (biases first), the gradient of that sample's cost, which is
summed over the output units. gradverify's J is the mean over all elements of ``y``
(outputs x batch), so the adapter

* sets the object's ``weights`` and ``biases`` (and ``sizes`` / ``num_layers`` when it has
  them) from the protocol's arrays, biases as columns;
* calls ``backprop`` once per sample (or once on the whole batch with ``batched=True``);
* adds the returned gradients up and divides by ``N = y.size`` (``reduction="sum"``: the
  object returns the gradient of a sum of per-element costs) or by the number of calls
  (``reduction="mean"``: it returns the gradient of the mean over the elements it was given);
* divides by ``cost_factor`` when the object's per-element cost is a multiple of
  gradverify's (Nielsen's quadratic cost ``||a - y||^2 / 2`` is ``mse`` with factor 0.5);
* returns biases as vectors ``(n,)``, in the dtype it was given (textbook code often
  accumulates in float64 whatever its inputs: ``np.zeros(b.shape)``; the sums are rounded
  once to the dtype under test at the end).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from gradverify.edges.adapters._common import check_declared, dtype_names
from gradverify.engine.implementations import supports

__all__ = ["from_network"]


def _instance(network: Any, widths: tuple[int, ...]) -> Any:
    """The object to use: ``network`` itself, or ``network(list(widths))`` for a class."""
    if isinstance(network, type) or not hasattr(network, "backprop"):
        if not callable(network):
            raise TypeError(
                f"expected an object with backprop(x, y), or a class/factory taking "
                f"layer sizes; got {type(network).__name__}"
            )
        return network(list(widths))
    return network


def _set_parameters(obj: Any, weights: list, biases: list, widths: tuple[int, ...]) -> None:
    obj.weights = [np.array(W, copy=True) for W in weights]
    obj.biases = [np.array(b, copy=True).reshape(-1, 1) for b in biases]
    if hasattr(obj, "sizes"):
        obj.sizes = list(widths)
    if hasattr(obj, "num_layers"):
        obj.num_layers = len(widths)


def _gradients(result: Any, weights: list, biases: list) -> tuple[list, list]:
    """Check the shapes of ``(nabla_b, nabla_w)`` and return them as float64 arrays."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ValueError(
            f"backprop(x, y) must return (nabla_b, nabla_w); got {type(result).__name__}"
        )
    nabla_b, nabla_w = result
    out_b, out_w = [], []
    for kind, arrays, params, column in (
        ("nabla_b", nabla_b, biases, True),
        ("nabla_w", nabla_w, weights, False),
    ):
        if len(arrays) != len(params):
            raise ValueError(
                f"backprop returned {len(arrays)} arrays in {kind}; expected "
                f"{len(params)} (one per layer)"
            )
        for i, (a, p) in enumerate(zip(arrays, params, strict=True)):
            a = np.asarray(a)
            expected = (p.shape[0], 1) if column else p.shape
            if a.shape != expected:
                raise ValueError(
                    f"backprop returned {kind}[{i}] of shape {a.shape}; expected {expected}"
                )
            (out_b if column else out_w).append(a.astype(np.float64).reshape(p.shape))
    return out_w, out_b


def from_network(
    network: Any,
    *,
    reduction: str = "sum",
    batched: bool = False,
    cost_factor: float = 1.0,
    activations: Iterable[str] = ("sigmoid",),
    losses: Iterable[str] = ("bce",),
    dtypes: Iterable[str] = ("float32", "float64"),
    name: str | None = None,
) -> Callable:
    """A protocol backprop for a textbook network object (or its class).

    Args:
        network: an object with ``weights``, ``biases`` and ``backprop(x, y)``, or a class
            (factory) taking the list of layer sizes, e.g. Nielsen's ``Network``.
        reduction: what ``backprop`` returns: "sum" (gradient of the sum of the per-element
            costs of what it was given, as Nielsen's code does) or "mean".
        batched: pass the whole batch (columns) in one call instead of one sample per call.
        cost_factor: the object's per-element cost divided by gradverify's (0.5 for
            ``||a - y||^2 / 2`` against ``mse``).
        activations: the activations the object computes (default: sigmoid, as in the book).
        losses: the gradverify loss names it computes (default: bce, the cross-entropy cost).
        dtypes: dtype names to be checked in.
        name: the name shown in results.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean'; got {reduction!r}")
    if not cost_factor or not np.isfinite(cost_factor):
        raise ValueError(f"cost_factor must be finite and non-zero; got {cost_factor!r}")
    loss_names = tuple(losses)
    kind = network.__name__ if isinstance(network, type) else type(network).__name__
    label = name or f"textbook:{kind}"

    @supports(activations=activations, losses=loss_names, dtypes=dtype_names(dtypes), name=label)
    def textbook_backprop(weights, biases, x, y, *, activations, loss):
        check_declared(label, loss, loss_names)
        widths = (x.shape[0], *(w.shape[0] for w in weights))
        obj = _instance(network, widths)
        _set_parameters(obj, weights, biases, widths)
        batches = (
            [(x, y)]
            if batched
            else [(x[:, j : j + 1].copy(), y[:, j : j + 1].copy()) for j in range(x.shape[1])]
        )
        total_w = [np.zeros(W.shape) for W in weights]
        total_b = [np.zeros(b.shape) for b in biases]
        for xs, ys in batches:
            gw, gb = _gradients(obj.backprop(xs, ys), weights, biases)
            for acc, g in zip((*total_w, *total_b), (*gw, *gb), strict=True):
                acc += g
        divisor = (y.size if reduction == "sum" else len(batches)) * cost_factor
        return (
            [(t / divisor).astype(x.dtype) for t in total_w],
            [(t / divisor).astype(x.dtype) for t in total_b],
        )

    return textbook_backprop
