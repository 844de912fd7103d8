"""torch modules and gradverify's names: which module computes which activation or loss.

=======================================  =========================
torch module                             gradverify name
=======================================  =========================
``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``  sigmoid, tanh, relu
``nn.Softplus()`` (beta 1)               softplus
``nn.Identity``                          identity
``nn.GELU()``                            gelu (the erf form)
``nn.GELU(approximate="tanh")``          gelu_tanh
``nn.SiLU``                              silu
``nn.LeakyReLU(negative_slope=a)``       leaky_relu(a) (bare: 0.01)
``nn.ELU(alpha=a)``                      elu(a) (bare: 1.0)
``nn.BCELoss``, ``nn.BCEWithLogitsLoss``  bce
``nn.MSELoss``                           mse
``nn.L1Loss``                            l1
``nn.HuberLoss(delta=d)``                huber(d) (bare: 1.0)
``nn.CrossEntropyLoss(label_smoothing=e)``  softmax_ce(e) (bare: 0.0)
=======================================  =========================

A parameter is spelled as gradverify spells it: the bare name at the default, else
``name(repr(float(value)))`` (``nn.LeakyReLU(0.2)`` is ``leaky_relu(0.2)``). torch is
imported only inside the functions that build modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradverify.edges.adapters._common import spelled, split_name

__all__ = [
    "TARGETS",
    "activation_module",
    "activation_name",
    "check_targets",
    "describe_loss",
    "loss_name",
]

TARGETS: tuple[str, ...] = ("probabilities", "indices")
"""How ``y`` is handed to the loss module: as it is, or (``CrossEntropyLoss``) as class indices."""

# gradverify activation -> (torch module class, its fixed keywords, or the keyword that
# carries the name's parameter: leaky_relu(0.2) is nn.LeakyReLU(negative_slope=0.2))
_TORCH_ACTIVATIONS: dict[str, tuple[str, dict[str, Any] | str]] = {
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("ReLU", {}),
    "softplus": ("Softplus", {"beta": 1.0}),
    "identity": ("Identity", {}),
    "gelu": ("GELU", {"approximate": "none"}),
    "gelu_tanh": ("GELU", {"approximate": "tanh"}),
    "silu": ("SiLU", {}),
    "leaky_relu": ("LeakyReLU", "negative_slope"),
    "elu": ("ELU", "alpha"),
}

# torch loss class -> (gradverify loss, or the attribute carrying its parameter; takes
# logits; a mean over the batch only): HuberLoss(delta=2.0) is huber(2.0)
_KNOWN_LOSSES: dict[str, tuple[str, str | None, bool, bool]] = {
    "BCELoss": ("bce", None, False, False),
    "BCEWithLogitsLoss": ("bce", None, True, False),
    "MSELoss": ("mse", None, False, False),
    "L1Loss": ("l1", None, False, False),
    "HuberLoss": ("huber", "delta", False, False),
    "CrossEntropyLoss": ("softmax_ce", "label_smoothing", True, True),
}


def activation_module(name: str) -> Any:
    """A new torch module computing the gradverify activation ``name``.

    ``"gelu"`` is ``nn.GELU()``, ``"gelu_tanh"`` ``nn.GELU(approximate="tanh")``,
    ``"leaky_relu(0.2)"`` ``nn.LeakyReLU(negative_slope=0.2)``, ``"elu(0.5)"``
    ``nn.ELU(alpha=0.5)``; see :func:`activation_name` for the reverse.

    Raises:
        ValueError: one line, when gradverify has no torch module for ``name``.
    """
    from torch import nn

    base, value = split_name("activation", name)
    if base not in _TORCH_ACTIVATIONS:
        raise ValueError(
            f"no torch module for activation {name!r}; known: {', '.join(_TORCH_ACTIVATIONS)}"
        )
    cls, keywords = _TORCH_ACTIVATIONS[base]
    if isinstance(keywords, str):
        keywords = {keywords: value}
    return getattr(nn, cls)(**keywords)


def activation_name(module: Any) -> str:
    """The gradverify name of a torch activation module, e.g. ``nn.ELU(alpha=0.5)`` -> ``elu(0.5)``.

    Raises:
        ValueError: one line, naming the module, when it computes no gradverify activation.
    """
    kind = type(module).__name__
    for base, (cls, keywords) in _TORCH_ACTIVATIONS.items():
        if cls != kind:
            continue
        if isinstance(keywords, str):
            return spelled("activation", base, getattr(module, keywords))
        if all(getattr(module, k, None) == v for k, v in keywords.items()):
            return base
    raise ValueError(
        f"gradverify has no activation for the torch module {module!r}; it knows "
        + ", ".join(dict.fromkeys(cls for cls, _ in _TORCH_ACTIVATIONS.values()))
    )


def loss_name(loss_module: Any) -> str:
    """The gradverify loss a torch loss module computes: ``nn.HuberLoss(delta=2.0)`` ->
    ``huber(2.0)``, ``nn.CrossEntropyLoss(label_smoothing=0.1)`` -> ``softmax_ce(0.1)``.

    Raises:
        ValueError: one line, when the class is unknown or it weights its terms
            (``weight=``, ``pos_weight=``), which no gradverify loss does.
    """
    kind = type(loss_module).__name__
    if kind not in _KNOWN_LOSSES:
        raise ValueError(
            f"gradverify does not know which loss {kind} computes; pass losses=('bce',) (or "
            f"another gradverify loss name) and a factory"
        )
    for weighting in ("weight", "pos_weight"):
        if getattr(loss_module, weighting, None) is not None:
            raise ValueError(
                f"{kind} has {weighting}=...; gradverify's losses weight every term alike"
            )
    base, parameter = _KNOWN_LOSSES[kind][:2]
    return base if parameter is None else spelled("loss", base, getattr(loss_module, parameter))


def describe_loss(
    loss_module: Any, losses: Iterable[str] | None
) -> tuple[tuple[str, ...], bool, bool]:
    """(gradverify losses, takes logits, mean over batch only) for a torch loss module."""
    known = _KNOWN_LOSSES.get(type(loss_module).__name__)
    names = tuple(losses) if losses else (loss_name(loss_module),)
    logits, batch_mean = known[2:] if known else (False, False)
    return names, logits, batch_mean


def check_targets(targets: str, loss_names: tuple[str, ...]) -> bool:
    """Whether ``y`` goes to the loss as class indices (validating ``targets``)."""
    if targets not in TARGETS:
        raise ValueError(f"targets must be 'probabilities' or 'indices'; got {targets!r}")
    if targets == "indices" and any(split_name("loss", n)[0] != "softmax_ce" for n in loss_names):
        raise ValueError(
            "targets='indices' (class indices) is for softmax_ce (nn.CrossEntropyLoss); "
            f"the losses are {', '.join(map(repr, loss_names))}"
        )
    return targets == "indices"
