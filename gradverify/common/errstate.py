"""numpy's error state: gradverify's own, whatever its caller set, and the caller's.

numpy's error state (``np.seterr``) belongs to whoever set it. A user's
``np.seterr(all="raise")`` (in a conftest, or left behind by an implementation) must not turn
gradverify's own arithmetic, which handles inf/NaN and underflow on purpose, into
``FloatingPointError``. So every public entry point runs under :func:`own_errstate` (numpy
errors ignored), and the harness restores :func:`caller_errstate` around each call of the
user's implementation, so that their code sees their settings and nothing more.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

__all__ = ["caller_errstate", "own_errstate", "with_own_errstate"]

_CALLER: ContextVar[dict[str, str] | None] = ContextVar("gradverify_caller_errstate", default=None)

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def own_errstate() -> Iterator[None]:
    """gradverify's arithmetic: numpy floating-point errors ignored (re-entrant).

    The outermost entry remembers the caller's error state for :func:`caller_errstate`.
    """
    token = _CALLER.set(np.geterr()) if _CALLER.get() is None else None
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        if token is not None:
            _CALLER.reset(token)


def with_own_errstate(fn: F) -> F:
    """Decorator: run ``fn`` under :func:`own_errstate`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with own_errstate():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def caller_errstate() -> dict[str, str]:
    """The error state of whoever called gradverify (for ``np.errstate(**...)``)."""
    return dict(_CALLER.get() or np.geterr())
