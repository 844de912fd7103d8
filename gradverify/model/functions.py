"""Activations and losses, each defined once: float form, mpmath form and kinks side by side.

Float forms take and return numpy arrays and compute in the dtype they are given
(so a float16 array is evaluated in float16 arithmetic as far as numpy allows; the forms that
need ``erf`` are evaluated in float64 and rounded once). They are the numerically *stable*
forms; the deliberately naive forms used by the built-in implementations live next to them,
named as such, and the *conventional* forms (what torch and jax autograd compute) are
:meth:`Activation.conventional_derivative`.

mpmath forms take a private ``mpmath`` context and one ``mpf``; they never touch
the global ``mpmath.mp``. They are written so that no step cancels: for example
``sigmoid'(h)`` is ``e/(1+e)**2`` with ``e = exp(-|h|)``, never ``s*(1-s)``.

The functions
-------------
Activations (:mod:`gradverify.model.activations`, :mod:`gradverify.model.extra_activations`):

* ``sigmoid``, ``tanh``, ``relu`` (``relu'(0) = 0``, kink 0), ``softplus``, ``identity``;
* ``gelu`` (erf form), ``gelu_tanh`` (tanh approximation, torch's constants), ``silu``;
* ``leaky_relu(negative_slope)``, default 0.01, kink 0, derivative at 0 the slope (torch);
* ``elu(alpha)``, default 1.0, alpha > 0, kink 0 unless alpha = 1, derivative at 0 alpha.

Losses (:mod:`gradverify.model.losses`), elementwise over ``y`` (shape ``(n_L, batch)``),
the network loss being the **mean over all elements** of ``y``: ``J = sum(loss) / y.size``:

* ``bce`` (sigmoid output; hard or soft labels in [0, 1]), ``mse``;
* ``softmax_ce(epsilon)``: softmax over the output units of each sample (each column), so an
  identity output layer, with label smoothing epsilon (default 0.0) as torch's
  ``CrossEntropyLoss(label_smoothing=epsilon)``;
* ``l1`` (``sign(z - y)``, 0 at 0, kink at ``z = y``), ``huber(delta)`` (default 1.0, torch's
  ``HuberLoss``).

Names
-----
A parametrised function is named ``name(value)`` (``leaky_relu(0.2)``, ``elu(0.5)``,
``huber(2.0)``, ``softmax_ce(0.1)``); the bare name is the default parameter. The canonical
spelling and the parsing are in :mod:`gradverify.model.names`. :func:`activation` and
:func:`loss_function` accept any spelling and build (and cache) the parametrised object,
whose ``name`` is canonical. :data:`ACTIVATIONS` and :data:`LOSSES` hold the built-in
functions at their default parameters; registered names
(:data:`gradverify.model.names.EXTRA_NAMES`) are looked up there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from gradverify.model import extra_activations, losses
from gradverify.model.activations import ORIGINAL_ACTIVATIONS, Activation
from gradverify.model.losses import Loss, unfused
from gradverify.model.names import EXTRA_NAMES, check_table, parse_name

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Activation",
    "Loss",
    "activation",
    "has_fused_delta",
    "loss_function",
]

_ACTIVATION_FACTORIES: dict[str, Callable[..., Activation]] = {
    "gelu": extra_activations.gelu,
    "gelu_tanh": extra_activations.gelu_tanh,
    "silu": extra_activations.silu,
    "leaky_relu": extra_activations.leaky_relu,
    "elu": extra_activations.elu,
}

_LOSS_FACTORIES: dict[str, Callable[..., Loss]] = {
    "bce": losses.bce,
    "mse": losses.mse,
    "softmax_ce": losses.softmax_ce,
    "l1": losses.l1,
    "huber": losses.huber,
}

ACTIVATIONS: dict[str, Activation] = {
    a.name: a for a in (*ORIGINAL_ACTIVATIONS, *(make() for make in _ACTIVATION_FACTORIES.values()))
}
"""The built-in activations by bare name (parametrised ones at their default)."""

LOSSES: dict[str, Loss] = {name: make() for name, make in _LOSS_FACTORIES.items()}
"""The built-in losses by bare name (parametrised ones at their default)."""

check_table("activation", ACTIVATIONS)
check_table("loss", LOSSES)


@functools.lru_cache(maxsize=256)
def _parametrised(kind: str, base: str, value: float) -> Activation | Loss:
    factories: dict = _ACTIVATION_FACTORIES if kind == "activation" else _LOSS_FACTORIES
    return factories[base](value)


def _lookup(kind: str, table: dict, name: str) -> object:
    if isinstance(name, str) and name in table:  # the common case: a built-in bare name
        return table[name]
    base, value = parse_name(kind, name)
    if base in table:
        default = table[base]
        if value is None or value == default.parameter:
            return default
        return _parametrised(kind, base, value)
    return EXTRA_NAMES[kind][base]


def activation(name: str) -> Activation:
    """The activation of ``name`` in any spelling (``"elu"``, ``"elu(0.5)"``, a registered one).

    Raises:
        ValueError: an unknown or malformed name, with the message of
            :func:`gradverify.model.names.parse_name`.
    """
    found = _lookup("activation", ACTIVATIONS, name)
    assert isinstance(found, Activation), f"registered activation {name!r} is not an Activation"
    return found


def loss_function(name: str) -> Loss:
    """The loss of ``name`` in any spelling (``"huber"``, ``"huber(2.0)"``, ``"softmax_ce(0.1)"``).

    Raises:
        ValueError: an unknown or malformed name (see :func:`activation`).
    """
    found = _lookup("loss", LOSSES, name)
    assert isinstance(found, Loss), f"registered loss {name!r} is not a Loss"
    return found


def has_fused_delta(loss: Loss) -> bool:
    """Whether ``loss.output_delta`` gives ``d loss / d h`` directly (bce, softmax_ce)."""
    return loss.output_delta is not unfused
