"""JAX adapter: gradients of a loss function of parameters by ``jax.grad``.

:func:`from_function` takes ``loss_fn(params, x, y) -> scalar`` where ``params`` is a list
of ``(W_i, b_i)`` pairs (``W_i`` of shape ``(n_{i+1}, n_i)``, ``b_i`` of shape
``(n_{i+1},)``, the layout of the JAX documentation's MLP examples) and ``x``, ``y`` are
``(n_0, batch)`` and ``(n_L, batch)`` (or transposed with ``layout="rows"``). The result
is a protocol backprop whose gradients are ``jax.grad(loss_fn)(params, x, y)``.

float64. JAX computes in float32 unless ``jax_enable_x64`` is set, and then silently
turns float64 inputs into float32. So the first time the adapter is handed float64 arrays
it calls ``jax.config.update("jax_enable_x64", True)``; this is process-wide and stays on.
A gradient that still comes back in another dtype than it was given is reported by the
harness as an error, never cast silently.

Activations. ``loss_fn`` computes the network itself; when it takes the ``activations``
keyword it gets gradverify's names, and :func:`activation_function` turns one into the
``jax.nn`` function computing it:

================================================  =========================
gradverify name                                   jax function
================================================  =========================
sigmoid, tanh, relu, softplus, identity           ``jax.nn.sigmoid``, ``jnp.tanh``,
                                                  ``jax.nn.relu``, ``jax.nn.softplus``, ``h``
gelu (the erf form)                               ``jax.nn.gelu(h, approximate=False)``
gelu_tanh                                         ``jax.nn.gelu(h, approximate=True)``
                                                  (jax's default is the tanh form)
silu                                              ``jax.nn.silu`` (= ``jax.nn.swish``)
leaky_relu(a) (bare: 0.01)                        ``jax.nn.leaky_relu(h, negative_slope=a)``
elu(a) (bare: 1.0)                                ``jax.nn.elu(h, alpha=a)``
================================================  =========================

Losses are written by the user in ``loss_fn`` and named in ``losses=`` (``l1``,
``huber(2.0)``, ``softmax_ce(0.1)``, ...), spelled as gradverify spells them.

jax is imported only inside these functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from gradverify.edges.adapters._common import (
    check_declared,
    dtype_names,
    split_name,
    takes_spec_keywords,
)
from gradverify.engine.implementations import supports
from gradverify.model.dtypes import dtype_name

__all__ = ["DEFAULT_DTYPES", "activation_function", "enable_float64", "from_function"]

DEFAULT_DTYPES: tuple[str, ...] = ("float16", "float32", "float64")


def enable_float64() -> None:
    """Turn on ``jax_enable_x64`` (process-wide), so float64 arrays stay float64."""
    import jax

    if not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)


def _identity(h: Any) -> Any:
    return h


def _jax_activations() -> dict[str, Callable[[float | None], Callable[[Any], Any]]]:
    """gradverify activation -> (its parameter -> the jax function)."""
    import jax
    import jax.numpy as jnp

    return {
        "sigmoid": lambda _: jax.nn.sigmoid,
        "tanh": lambda _: jnp.tanh,
        "relu": lambda _: jax.nn.relu,
        "softplus": lambda _: jax.nn.softplus,
        "identity": lambda _: _identity,
        "gelu": lambda _: functools.partial(jax.nn.gelu, approximate=False),
        "gelu_tanh": lambda _: functools.partial(jax.nn.gelu, approximate=True),
        "silu": lambda _: jax.nn.silu,
        "leaky_relu": lambda a: functools.partial(jax.nn.leaky_relu, negative_slope=a),
        "elu": lambda a: functools.partial(jax.nn.elu, alpha=a),
    }


def activation_function(name: str) -> Callable[[Any], Any]:
    """The ``jax.nn`` function computing the gradverify activation ``name``, elementwise.

    ``"gelu"`` is ``jax.nn.gelu`` with ``approximate=False`` (jax's default is the tanh
    form, ``"gelu_tanh"``); ``"leaky_relu(0.2)"`` is ``jax.nn.leaky_relu`` with
    ``negative_slope=0.2``; ``"elu(0.5)"`` is ``jax.nn.elu`` with ``alpha=0.5``.

    Raises:
        ValueError: one line, when gradverify has no jax function for ``name``.
    """
    base, value = split_name("activation", name)
    table = _jax_activations()
    if base not in table:
        raise ValueError(f"no jax function for activation {name!r}; known: {', '.join(table)}")
    return table[base](value)


def _to_jax(a: np.ndarray) -> Any:
    import jax.numpy as jnp

    out = jnp.asarray(a)
    if out.dtype != a.dtype:
        raise ValueError(f"jax turned a {dtype_name(a.dtype)} array into {out.dtype}")
    return out


def _gradient_functions(
    loss_fn: Callable[..., Any], jit: bool
) -> Callable[[tuple[str, ...], str], Callable]:
    """``(activations, loss) -> jax.grad`` of ``loss_fn`` for that network, made once each."""
    pass_spec = takes_spec_keywords(loss_fn)
    gradients: dict[tuple, Callable] = {}

    def gradient_function(activations: tuple[str, ...], loss: str) -> Callable:
        key = (activations, loss)
        if key not in gradients:
            import jax

            extra = {"activations": activations, "loss": loss} if pass_spec else {}

            def objective(params: Any, x: Any, y: Any) -> Any:
                return loss_fn(params, x, y, **extra)

            grad = jax.grad(objective)
            gradients[key] = jax.jit(grad) if jit else grad
        return gradients[key]

    return gradient_function


def from_function(
    loss_fn: Callable[..., Any],
    *,
    losses: Iterable[str],
    activations: Iterable[str] | None = None,
    dtypes: Iterable[str] = DEFAULT_DTYPES,
    layout: str = "columns",
    reduction: str = "mean",
    jit: bool = True,
    name: str | None = None,
) -> Callable:
    """A protocol backprop for ``loss_fn(params, x, y)`` with gradients from ``jax.grad``.

    Args:
        loss_fn: ``params`` is ``[(W_1, b_1), ..., (W_L, b_L)]``; returns the scalar loss. If
            it accepts keywords ``activations`` and ``loss`` (or ``**kwargs``) it is given
            the network's names.
        losses: the gradverify loss names it computes (required).
        activations: the activations it handles (default: an undeclared
            implementation's; gelu, silu, leaky_relu(a), ... when named).
        dtypes: dtype names to be checked in (default float16, float32, float64).
        layout: "columns" (samples as columns, as the protocol) or "rows".
        reduction: "mean" if it returns the mean over all elements of y, "sum" for their sum.
        jit: compile the gradient with ``jax.jit`` (default). A new shape or dtype then
            costs one compilation (about 0.4 s here) instead of eager jax compiling every
            primitive for it (about 1.2 s); repeated shapes cost well under a millisecond.
        name: the name shown in results.
    """
    if layout not in ("columns", "rows"):
        raise ValueError(f"layout must be 'columns' or 'rows'; got {layout!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
    loss_names = tuple(losses)
    label = name or f"jax:{getattr(loss_fn, '__qualname__', type(loss_fn).__name__)}"
    gradient_function = _gradient_functions(loss_fn, jit)

    @supports(activations=activations, losses=loss_names, dtypes=dtype_names(dtypes), name=label)
    def jax_backprop(weights, biases, x, y, *, activations, loss):
        check_declared(label, loss, loss_names)
        if x.dtype == np.float64:
            enable_float64()
        params = [(_to_jax(W), _to_jax(b)) for W, b in zip(weights, biases, strict=True)]
        xj = _to_jax(x if layout == "columns" else np.ascontiguousarray(x.T))
        yj = _to_jax(y if layout == "columns" else np.ascontiguousarray(y.T))
        grads = gradient_function(tuple(activations), loss)(params, xj, yj)
        if len(grads) != len(weights):
            raise ValueError(f"jax.grad returned {len(grads)} layers; expected {len(weights)}")
        dweights = [np.array(g[0]) for g in grads]
        dbiases = [np.array(g[1]) for g in grads]
        if reduction == "sum":
            n = x.dtype.type(y.size)
            dweights = [d / n for d in dweights]
            dbiases = [d / n for d in dbiases]
        return dweights, dbiases

    return jax_backprop
