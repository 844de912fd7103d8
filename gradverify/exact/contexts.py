"""Private mpmath contexts, made once and reused: no ``mpmath.MPContext()`` per computation.

Constructing an ``mpmath.MPContext`` wraps every mpmath function for it (about 0.3-1 ms), which
used to be paid on every pass of every exact computation. Two kinds of context replace it:

* :func:`working_context` lends a context to one computation at one precision: each thread has
  its own pool (a computation nested in another, in the same thread, gets a second context),
  the precision is set for the loan and restored after it, together with the two other
  settings a caller's code could change (``trap_complex``, ``pretty``). Never the global
  ``mpmath.mp``, so a change to ``mpmath.mp.prec`` does not reach it. A forked child keeps the
  forking thread's pool (its contexts are plain objects) and nothing of the other threads'.
* :func:`fixed_context` is this thread's context at one precision, kept at it: for the scan's
  closed forms (a few precisions, thousands of small evaluations), whose values stay bound
  to it, as they were to the contexts an evaluator used to make.
* :func:`result_context` is the context a *returned* value is bound to: one per precision,
  shared, and never used to compute, so its precision never changes. A value returned at
  ``p`` bits keeps rounding its own arithmetic at ``p`` bits, as it did when every
  computation had a fresh context, whatever the working contexts do afterwards.

:func:`fresh_contexts` makes the current thread's loans fresh contexts again, as before; the
results are bit-identical either way (tests/unit/test_reference.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mpmath

__all__ = ["fixed_context", "fresh_contexts", "rebind", "result_context", "working_context"]

RESULT_CONTEXTS = 64
"""The most result contexts, and fixed contexts per thread, kept (about 40 KiB each); a
precision beyond them gets a new context each time."""


class _PerThread(threading.local):
    """One thread's contexts (``__init__`` runs once in each thread that looks)."""

    def __init__(self) -> None:
        self.pool: list[Any] = []  # working contexts not on loan
        self.fixed: dict[int, Any] = {}  # precision -> fixed context
        self.fresh = 0  # depth of fresh_contexts() blocks


_local = _PerThread()
_results: dict[int, Any] = {}


@contextmanager
def working_context(prec: int) -> Iterator[Any]:
    """A private context at ``prec`` bits for the duration of the ``with`` block."""
    fresh, pool = _local.fresh, _local.pool
    ctx = pool.pop() if pool and not fresh else mpmath.MPContext()
    saved = ctx.prec, ctx.trap_complex, ctx.pretty
    ctx.prec = prec
    try:
        yield ctx
    finally:
        ctx.prec, ctx.trap_complex, ctx.pretty = saved
        if not fresh:
            pool.append(ctx)


@contextmanager
def fresh_contexts() -> Iterator[None]:
    """Within the block, this thread's :func:`working_context` and :func:`fixed_context` make
    a new context each time (as every exact computation did before contexts were reused)."""
    _local.fresh += 1
    try:
        yield
    finally:
        _local.fresh -= 1


def fixed_context(prec: int) -> Any:
    """This thread's private context at ``prec`` bits (made once; its precision is not reset)."""
    ctx = _local.fixed.get(prec)
    if ctx is None or _local.fresh:
        ctx = mpmath.MPContext()
        ctx.prec = prec
        if len(_local.fixed) < RESULT_CONTEXTS and not _local.fresh:
            _local.fixed[prec] = ctx
    return ctx


def result_context(prec: int) -> Any:
    """The shared context, at ``prec`` bits, that values returned at ``prec`` are bound to."""
    ctx = _results.get(prec)
    if ctx is None:
        ctx = mpmath.MPContext()
        ctx.prec = prec
        if len(_results) < RESULT_CONTEXTS:
            ctx = _results.setdefault(prec, ctx)  # atomic: two threads agree on one
    return ctx


def rebind(value: Any, ctx: Any) -> Any:
    """The mpf ``value`` (exactly, not rounded) as a value of ``ctx``."""
    return ctx.make_mpf(value._mpf_)
