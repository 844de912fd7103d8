"""The Hypothesis internals the search uses still do what it relies on.

A Hypothesis release that renames or changes one of them fails here, by name, rather than
as a search that quietly stops being reproducible or mixes databases.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from gradverify.exploration.hypothesis_compat import (
    add_database_digest,
    outside_pytest_item,
    use_seed,
)


def _drawn(seed: int | None, database=None) -> list[int]:
    seen: list[int] = []

    @settings(max_examples=20, database=database, derandomize=False)
    @given(st.integers(0, 10**9))
    def test(n):
        seen.append(n)

    if seed is not None:
        use_seed(test, seed)
    test()
    return seen


def test_use_seed_makes_the_examples_reproducible():
    assert _drawn(1) == _drawn(1)
    assert _drawn(1) != _drawn(2)


def test_use_seed_keeps_the_database():
    # hypothesis.seed() would switch the database off; the search needs it kept
    db = InMemoryExampleDatabase()

    @settings(max_examples=20, database=db)
    @given(st.integers(0, 10))
    def failing(n):
        assert n < 5

    use_seed(failing, 3)
    with pytest.raises(AssertionError):
        failing()
    assert db.data, "a seeded run saved nothing to the database"


def test_the_database_digest_separates_the_keys():
    db = InMemoryExampleDatabase()

    def make(digest: bytes):
        @settings(max_examples=20, database=db)
        @given(st.integers(0, 10))
        def failing(n):
            assert n < 5

        add_database_digest(failing, digest)
        return failing

    for digest in (b"float32", b"float64", b"float32"):
        with pytest.raises(AssertionError):
            make(digest)()
    top_level_keys = {key for key in db.data if not key.endswith((b".secondary", b".pareto"))}
    assert len(top_level_keys) == 2, sorted(db.data)


def test_outside_pytest_item_exists_and_works():
    from hypothesis.internal.escalation import current_pytest_item

    with outside_pytest_item():
        assert current_pytest_item.value is None
