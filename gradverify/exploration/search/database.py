"""Which examples a search draws: its seed, derandomization and Hypothesis example database.

A seed given by the caller switches Hypothesis's default example database off (saved
failures would otherwise replay first and change the examples from one run to the next); a
database passed explicitly is still used. In CI (the ``CI`` environment variable set) the
search is derandomized and the default database is off. Otherwise a seed is picked at random
and reported, and the default database is on.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

__all__ = ["DEFAULT_DATABASE", "Draws", "database_name", "resolve_draws"]

DEFAULT_DATABASE: Any = object()
"""Sentinel: Hypothesis's default example database, except in CI, when derandomized or when
a seed is given."""


@dataclass(frozen=True)
class Draws:
    """How a search draws its examples, resolved from the caller's arguments."""

    seed: int | None  # None: derandomized
    derandomize: bool
    database: ExampleDatabase | None


def resolve_draws(seed: int | None, derandomize: bool | None, database: Any) -> Draws:
    """The seed (random when not given, unless derandomized), derandomization and database.

    Raises:
        TypeError: ``database`` is not None, a path or an ``ExampleDatabase``.
    """
    ci = bool(os.environ.get("CI"))
    derandomize = ci if derandomize is None else bool(derandomize)
    db = _resolve_database(database, ci=ci, derandomize=derandomize, seeded=seed is not None)
    if seed is None and not derandomize:
        seed = secrets.randbits(32)
    return Draws(seed, derandomize, db)


def _resolve_database(
    database: Any, *, ci: bool, derandomize: bool, seeded: bool
) -> ExampleDatabase | None:
    if database is DEFAULT_DATABASE:
        # A given seed means "the same examples as last time": replayed failures would differ.
        return None if (ci or derandomize or seeded) else settings.default.database
    if database is None or isinstance(database, ExampleDatabase):
        return database
    if isinstance(database, (str, os.PathLike)):
        return DirectoryBasedExampleDatabase(str(database))
    raise TypeError(
        f"database must be None, a path or a hypothesis ExampleDatabase; "
        f"got {type(database).__name__}"
    )


def database_name(db: ExampleDatabase | None) -> str | None:
    """What the result records of the database: its path, its type, or None (off)."""
    if db is None:
        return None
    path = getattr(db, "path", None)
    return str(path) if path is not None else type(db).__name__
