"""``check`` and ``assert_gradients_match``: one problem, or a whole search.

They sit above both :mod:`gradverify.engine.check` (one problem) and
:mod:`gradverify.exploration.search` (a Hypothesis search), so neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# the package, not the function: ``search`` is looked up at call time, so that patching
# ``gradverify.exploration.search.search`` (as tests do to cut a run short) reaches ``check``
import gradverify.exploration.search as search_package
from gradverify.engine.check import check_problem
from gradverify.engine.results import Verdict
from gradverify.model.network import Problem

__all__ = ["assert_gradients_match", "check"]


def check(impl: Callable, problem: Problem | None = None, **options: Any) -> Any:
    """Check ``impl``: on ``problem`` if given (a CheckResult), else by a Hypothesis search.

    Without a problem this runs :func:`gradverify.search` with ``options`` and returns
    its SearchResult. Both results have ``.verdict`` and a readable ``str()``.
    """
    if problem is not None:
        return check_problem(impl, problem, **options)
    return search_package.search(impl, **options)


def assert_gradients_match(impl: Callable, problem: Problem | None = None, **options: Any) -> Any:
    """Like :func:`check`, but raise ``AssertionError`` with the readable report unless it passes.

    The message names the worst elements (index, value, exact value, FD), not whole arrays.
    """
    result = check(impl, problem, **options)
    if result.verdict is not Verdict.PASS:
        raise AssertionError(str(result))
    return result
