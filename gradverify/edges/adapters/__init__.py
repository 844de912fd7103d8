"""Adapters: turn foreign gradient code into the backprop protocol gradverify checks.

Each adapter returns a callable with the protocol's signature::

    backprop(weights, biases, x, y, *, activations, loss) -> (dweights, dbiases)

(samples as columns, gradients of the mean loss, numpy arrays in the dtype it was given)
carrying a capability declaration (:func:`gradverify.engine.implementations.supports`), so it can be
handed to :func:`gradverify.check_problem`, :func:`gradverify.check` or the search.

=============================  ===============================================================
``torch_module(loss, ...)``    an ``nn.Module`` of ``nn.Linear`` layers and a loss module;
                               gradients by autograd (:mod:`gradverify.edges.adapters.torch`)
``torch_function(fn, ...)``    a function of tensors ``fn(weights, biases, x, y) -> scalar``
``jax_function(fn, ...)``      ``fn(params, x, y) -> scalar``, gradients by ``jax.grad``
                               (:mod:`gradverify.edges.adapters.jax`)
``textbook_network(net, ...)`` an object with ``weights``, ``biases`` and
                               ``backprop(x, y) -> (nabla_b, nabla_w)`` (column vectors,
                               biases ``(n, 1)``) (:mod:`gradverify.edges.adapters.textbook`)
``check_function(f, g, t)``    not a network: ``f(theta) -> float`` and ``g(theta) -> array``,
                               as ``scipy.optimize.check_grad`` takes (:mod:`.plain`)
=============================  ===============================================================

torch and jax are imported only inside the functions that use them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "torch_module": ("gradverify.edges.adapters.torch", "from_module"),
    "torch_function": ("gradverify.edges.adapters.torch", "from_function"),
    "jax_function": ("gradverify.edges.adapters.jax", "from_function"),
    "textbook_network": ("gradverify.edges.adapters.textbook", "from_network"),
    "check_function": ("gradverify.edges.adapters.plain", "check_function"),
    "FunctionCheckResult": ("gradverify.edges.adapters.plain", "FunctionCheckResult"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'gradverify.edges.adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
