"""What a call was given and what it gave back, checked strictly.

The implementation gets fresh copies of the problem's arrays (in the layout it declares);
afterwards :func:`modified_input` says whether it wrote into them or into the input lists,
:func:`validated` whether it returned two sequences of arrays of the right count, shapes and
dtype, and :func:`nondeterminism` whether two answers to the same input differ. Each
problem is one message naming what was expected and what came back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradverify.engine.call_outcome import CallOutcome
from gradverify.model.dtypes import dtype_name
from gradverify.model.network import Problem

__all__ = ["Given", "describe", "given_inputs", "modified_input", "nondeterminism", "validated"]

_SMALL_BYTES = 1 << 16
"""Arrays up to this size are compared as bytes (copied), larger ones in place."""


@dataclass(frozen=True)
class Given:
    """What the implementation was given: the lists, the arrays in them, and their values."""

    weights: list
    biases: list
    x: np.ndarray
    y: np.ndarray
    arrays: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (name, array passed, its value)
    weight_ids: tuple[int, ...]
    bias_ids: tuple[int, ...]

    def again(self) -> Given:
        """The same arrays in new lists, for another call on the same input.

        Only after :func:`modified_input` found the previous call left them unchanged.
        """
        weights, biases = list(self.weights), list(self.biases)
        return replace(
            self,
            weights=weights,
            biases=biases,
            weight_ids=tuple(map(id, weights)),
            bias_ids=tuple(map(id, biases)),
        )


def given_inputs(problem: Problem, layout: str) -> Given:
    """Fresh copies of ``problem``'s arrays, ``x`` and ``y`` transposed for ``layout="rows"``.

    The problem's own arrays are read-only, so they serve as the values to compare the
    copies with after the call.
    """
    weights = [w.copy() for w in problem.weights]
    biases = [b.copy() for b in problem.biases]
    x, y = (problem.x.T, problem.y.T) if layout == "rows" else (problem.x, problem.y)
    passed_x, passed_y = np.array(x, order="C"), np.array(y, order="C")  # C-ordered copies
    named = [
        *((f"weights[{i}]", w, problem.weights[i]) for i, w in enumerate(weights)),
        *((f"biases[{i}]", b, problem.biases[i]) for i, b in enumerate(biases)),
        ("x", passed_x, x),
        ("y", passed_y, y),
    ]
    return Given(
        weights,
        biases,
        passed_x,
        passed_y,
        tuple(named),
        tuple(map(id, weights)),
        tuple(map(id, biases)),
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` have the same shape, dtype and bits (in any memory layout)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.nbytes <= _SMALL_BYTES and not a.dtype.hasobject:
        return a.tobytes() == b.tobytes()  # a copy of each is quicker than a comparison
    if a.dtype.itemsize in (1, 2, 4, 8) and not a.dtype.hasobject:
        bits = np.dtype(f"u{a.dtype.itemsize}")
        return bool(np.array_equal(a.view(bits), b.view(bits)))
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def describe(a: Any) -> str:
    """``a float32 array of shape (2, 3)``, ``a masked array ...``, ``a list``."""
    if isinstance(a, np.ma.MaskedArray):
        return f"a masked array of shape {a.shape}"
    if isinstance(a, np.ndarray):
        return f"a {dtype_name(a.dtype)} array of shape {a.shape}"
    shape = getattr(a, "shape", None)
    try:
        shape = tuple(shape) if shape is not None else None
    except TypeError:
        shape = None
    return f"a {type(a).__name__}" + (f" of shape {shape}" if shape is not None else "")


def _modified_list(kind: str, now: list, ids: tuple[int, ...]) -> str | None:
    if len(now) != len(ids):
        change = (
            "emptied"
            if not now
            else ("appended to" if len(now) > len(ids) else "removed entries from")
        )
        return (
            f"modified its input list {kind} in place: {change} it "
            f"({len(ids)} arrays before the call, {len(now)} after)"
        )
    for i, (a, original) in enumerate(zip(now, ids, strict=True)):
        if id(a) != original:
            return f"modified its input list {kind} in place: replaced {kind}[{i}]"
    return None


def modified_input(given: Given) -> str | None:
    """What the implementation changed in its inputs (lists first), or None."""
    for kind, now, ids in (
        ("weights", given.weights, given.weight_ids),
        ("biases", given.biases, given.bias_ids),
    ):
        message = _modified_list(kind, now, ids)
        if message is not None:
            return message
    for name, passed, value in given.arrays:
        if not same_bits(passed, value):
            return f"modified its input {name} in place"
    return None


def _array(a: Any, name: str, param: np.ndarray, problem: Problem, copy: bool) -> np.ndarray | str:
    """One returned gradient as a plain array (a copy if ``copy``), or a message saying what
    is wrong with it."""
    if isinstance(a, np.ma.MaskedArray):
        return (
            f"expected {name} to be a plain numpy array; got a masked array "
            f"(its masked entries have no value to check; return np.asarray "
            f"of the filled values)"
        )
    if not isinstance(a, np.ndarray):
        return f"expected {name} to be a numpy array of shape {param.shape}; got {describe(a)}"
    plain = np.array(a, copy=True, subok=False) if copy else a
    if plain.shape != param.shape:
        return f"expected {name} to have shape {param.shape}; got shape {plain.shape}"
    if plain.dtype != problem.dtype:
        return (
            f"expected {name} in {problem.dtype_name} (the dtype it was given); "
            f"got {dtype_name(plain.dtype)}"
        )
    return plain


def _arrays(kind: str, arrays: Any, params: Sequence, problem: Problem, copy: bool) -> tuple | str:
    """``dweights`` or ``dbiases`` as a tuple of plain arrays, or a message."""
    depth = problem.spec.depth
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
        return f"expected {kind} to be a sequence of {depth} arrays; got {describe(arrays)}"
    if len(arrays) != depth:
        return f"expected {depth} arrays in {kind} (one per layer); got {len(arrays)}"
    converted = []
    for i in range(depth):
        plain = _array(arrays[i], f"{kind}[{i}]", params[i], problem, copy)
        if isinstance(plain, str):
            return plain
        converted.append(plain)
    return tuple(converted)


def validated(result: Any, problem: Problem, *, copy: bool = True) -> tuple[tuple, tuple] | str:
    """The gradients as tuples of plain arrays, or a message saying what is wrong.

    With ``copy=False`` the arrays returned are the implementation's own (fit only to be
    compared at once, as the repeated calls of the nondeterminism check are).
    """
    depth = problem.spec.depth
    expected = f"(dweights, dbiases): two sequences of {depth} arrays each, in {problem.dtype_name}"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"a {type(result).__name__}" + (
            f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        )
        return f"expected {expected}; got {got}"
    dweights = _arrays("dweights", result[0], problem.weights, problem, copy)
    if isinstance(dweights, str):
        return dweights
    dbiases = _arrays("dbiases", result[1], problem.biases, problem, copy)
    if isinstance(dbiases, str):
        return dbiases
    return dweights, dbiases


def nondeterminism(first: CallOutcome, again: CallOutcome) -> str | None:
    """The message for two successful calls on the same input that differ, or None."""
    for kind, a_list, b_list in (
        ("dweights", first.dweights, again.dweights),
        ("dbiases", first.dbiases, again.dbiases),
    ):
        for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
            if not same_bits(a, b):
                return (
                    f"is nondeterministic: two calls on the same input returned "
                    f"different {kind}[{i}]"
                )
    return None
