"""Small pieces shared by the adapters: capability defaults and argument inspection."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

from gradverify.model.dtypes import resolve_dtype


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
    """Raise a one-line ValueError when the protocol asks for a loss the adapter does not do."""
    if loss not in losses:
        raise ValueError(
            f"{name} computes loss {', '.join(map(repr, losses))}; it was asked for {loss!r}"
        )


def dtype_names(dtypes: Iterable[str]) -> tuple[str, ...]:
    """Validate dtype names early (a clear message at adapter creation, not at call time)."""
    names = tuple(dtypes)
    for d in names:
        resolve_dtype(d)
    return names
