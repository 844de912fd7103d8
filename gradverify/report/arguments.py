"""What :func:`gradverify.report.write_report` is asked to run: which implementations, at
which dtypes, and whether each runs in its own worker process."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["implementations_to_run", "isolate_each", "measure_dtypes", "run_dtypes"]


def implementations_to_run(implementations: Any) -> dict[str, Callable]:
    """``{name: backprop}`` from a mapping, a list of backprops or one backprop; the three
    built-ins for None.

    Raises:
        ValueError: no implementation; TypeError: one that is not callable.
    """
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS, implementation_name

    if implementations is None:
        return dict(BUILTIN_IMPLEMENTATIONS)
    if isinstance(implementations, Mapping):
        items = list(implementations.items())
    elif callable(implementations):
        items = [(implementation_name(implementations), implementations)]
    else:
        items = [(implementation_name(i), i) for i in implementations]
    if not items:
        raise ValueError("no implementation to report on; pass None for the built-in three")
    for name, impl in items:
        if not callable(impl):
            raise TypeError(f"implementation {name!r} is not callable (got {type(impl).__name__})")
    return {str(name): impl for name, impl in items}


def measure_dtypes(
    dtypes: Sequence[str] | None, searches: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The dtypes of the report's own measurements, narrowest first: those asked for, else
    those the searches ran, else every dtype available here."""
    from gradverify.model.dtypes import SUPPORTED_DTYPES, available_dtypes

    if dtypes:
        wanted = list(dtypes)
    else:
        wanted = [d for s in searches for d in (s.get("per_dtype") or {})]
        wanted = wanted or list(available_dtypes())
    usable = set(available_dtypes())
    return [d for d in SUPPORTED_DTYPES if d in wanted and d in usable]


def run_dtypes(dtypes: Sequence[str] | str | None, max_examples: Any) -> tuple[str, ...] | None:
    """The dtypes asked for (None: the defaults), once ``max_examples`` is known to be valid.

    Raises:
        ValueError: ``max_examples`` is not a positive integer.
    """
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer; got {max_examples!r}")
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    return tuple(dtypes) if dtypes else None


def isolate_each(fn: Callable) -> Callable:
    """Decorator: an ``isolate`` keyword runs every implementation in its own worker process
    for the duration of the call (see :mod:`gradverify.engine.isolation`)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, isolate: bool | None = False, **kwargs: Any) -> Any:
        if not isolate:
            return fn(*args, **kwargs)
        from gradverify.engine.isolation import isolated_if

        bound = signature.bind(*args, **kwargs)
        impls = implementations_to_run(bound.arguments.get("implementations"))
        with contextlib.ExitStack() as workers:
            bound.arguments["implementations"] = {
                name: workers.enter_context(isolated_if(impl, True)) for name, impl in impls.items()
            }
            return fn(*bound.args, **bound.kwargs)

    keyword = inspect.Parameter(
        "isolate", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"
    )
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), keyword]
    )
    return wrapper
