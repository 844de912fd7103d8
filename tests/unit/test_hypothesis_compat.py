"""The Hypothesis internals the search uses still do what it relies on.

A Hypothesis release that renames or changes one of them fails here, by name, rather than
as a search that quietly stops being reproducible or mixes databases.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from gradverify.exploration.hypothesis_compat import (
    add_database_digest,
    outside_pytest_item,
    use_seed,
    without_local_constants,
)


def _drawn(seed: int | None, database=None, examples: int = 20) -> list[int]:
    seen: list[int] = []

    @settings(max_examples=examples, database=database, derandomize=False)
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


def _load_local_module(path, name: str, values: range) -> None:
    """Import a new local module whose source holds the integer literals ``values``."""
    path.write_text(f"VALUES = {tuple(values)!r}\n")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def test_without_local_constants_makes_the_draws_independent_of_loaded_modules(tmp_path):
    def runs() -> tuple[list[int], list[int]]:
        with without_local_constants():
            inside = _drawn(7, examples=300)
        return inside, _drawn(7, examples=300)

    inside_before, outside_before = runs()
    # 200 new integer constants in range: Hypothesis draws about 1 value in 40 from the local
    # pool, so 300 draws pick from it all but surely, and a larger pool picks other values
    name = "gradverify_test_local_constants"
    try:
        _load_local_module(tmp_path / f"{name}.py", name, range(500_000, 500_200))
        inside_after, outside_after = runs()
    finally:
        sys.modules.pop(name, None)
    assert inside_after == inside_before
    assert outside_after != outside_before  # the pool does change draws outside the context
    assert not set(inside_after) & set(range(500_000, 500_200))
