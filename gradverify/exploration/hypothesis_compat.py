"""The four private Hypothesis internals the search relies on, in one place.

Hypothesis has no public API for these, so they are wrapped here and checked by
``tests/unit/test_hypothesis_compat.py``, which fails loudly on a Hypothesis release that
changes them:

* :func:`use_seed` — what ``hypothesis.seed(n)`` does, without also switching the example
  database off (the search resolves the database itself: off when the caller gave the seed,
  on when it was picked at random, or as passed).
* :func:`add_database_digest` — one database key per implementation, dtype, options and
  round, as Hypothesis does for ``pytest.mark.parametrize`` cases.
* :func:`outside_pytest_item` — keeps Hypothesis from attaching the search's failures to a
  pytest test that happens to be running (the fixture runs searches inside tests).
* :func:`without_local_constants` — keeps a seeded search's examples independent of which
  other modules the program has loaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["add_database_digest", "outside_pytest_item", "use_seed", "without_local_constants"]


def use_seed(test: Callable[..., Any], seed: int) -> None:
    """Make the ``@given`` test ``test`` draw its examples from ``seed``."""
    test._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]


def add_database_digest(test: Any, key: bytes) -> None:
    """Mix ``key`` into the example-database key of the ``@given`` test ``test``."""
    test.hypothesis.inner_test._hypothesis_internal_add_digest = key


@contextlib.contextmanager
def outside_pytest_item() -> Iterator[None]:
    """Run the body as if no pytest test item were running (no-op where unsupported)."""
    try:
        from hypothesis.internal.escalation import current_pytest_item
    except ImportError:  # pragma: no cover - depends on the Hypothesis version
        yield
        return
    with current_pytest_item.with_value(None):
        yield


@contextlib.contextmanager
def without_local_constants() -> Iterator[None]:
    """Run the body with Hypothesis's pool of local constants empty (no-op where unsupported).

    Hypothesis draws about one value in 20 (integers, floats, strings, bytes) from a pool of
    constants: its own, fixed by its version, and the literals of every *local* module loaded
    so far (neither the standard library nor an installed package). A seeded run would then
    draw other examples in a program, or a pytest session, that has imported other local
    modules. Inside this context the local part of the pool is empty; Hypothesis's own
    constants stay. The pool is a module global of Hypothesis, so a Hypothesis test running
    at the same time in another thread also sees it empty. Its cache of permitted constants
    is cleared on entry and exit, so nothing drawn outside depends on this context.
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # pragma: no cover - depends on the Hypothesis version
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if original is None or cache is None:  # pragma: no cover - depends on the version
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()
