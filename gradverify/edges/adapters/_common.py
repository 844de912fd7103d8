"""Small pieces shared by the adapters: capability defaults and argument inspection."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

from gradverify.model.dtypes import resolve_dtype
from gradverify.model.names import canonical_name, parse_name


def takes_spec_keywords(fn: Callable) -> bool:
    """Whether ``fn`` accepts ``activations=`` and ``loss=`` keywords (or ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    names = {p.name for p in params}
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return has_var_kw or {"activations", "loss"} <= names


def check_declared(name: str, loss: str, losses: Sequence[str]) -> None:
    """Raise a one-line ValueError when the protocol asks for a loss the adapter does not do.

    Names compare in gradverify's spelling: ``huber(2)`` is ``huber(2.0)``.
    """
    declared = {canonical_name("loss", n) for n in losses}
    if canonical_name("loss", loss) not in declared:
        raise ValueError(
            f"{name} computes loss {', '.join(map(repr, losses))}; it was asked for {loss!r}"
        )


def dtype_names(dtypes: Iterable[str]) -> tuple[str, ...]:
    """Validate dtype names early (a clear message at adapter creation, not at call time)."""
    names = tuple(dtypes)
    for d in names:
        resolve_dtype(d)
    return names


# ---------------------------------------------------------------------------
# Parametrised names: ``leaky_relu(0.2)``, ``huber(2.0)``, ``softmax_ce(0.1)``
# ---------------------------------------------------------------------------


def spelled(kind: str, base: str, value: float) -> str:
    """gradverify's spelling of ``base`` at ``value``: bare at the default, else ``base(value)``.

    ``spelled("activation", "leaky_relu", 0.2) == "leaky_relu(0.2)"``,
    ``spelled("loss", "huber", 1) == "huber"`` (see
    :func:`gradverify.model.names.canonical_name`).
    """
    return canonical_name(kind, f"{base}({float(value)!r})")


def split_name(kind: str, name: str) -> tuple[str, float | None]:
    """``("leaky_relu", 0.2)`` for ``"leaky_relu(0.2)"``; a bare name gets its default, a
    function without a parameter None (:func:`gradverify.model.names.parse_name`)."""
    return parse_name(kind, name)
