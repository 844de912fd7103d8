"""The three private Hypothesis internals the search relies on, in one place.

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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["add_database_digest", "outside_pytest_item", "use_seed"]


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
