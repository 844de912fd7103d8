"""Arrays drawn a row per Hypothesis choice, yet shrunk entry by entry.

A matrix of ``rows x cols`` entries is drawn as one string choice per row, over a 64-letter
alphabet, ``'0'`` to ``'o'`` (6 bits a letter; ``'0'`` comes first in Hypothesis's shrink
order, so it is the digit 0), one letter per entry:

* real entries ("unit", in (-1, 1], and "probability", in [0, 1)) take one more choice, a
  24-bit seed of 4 letters. Entry ``(i, j)`` is ``1 - (d + f) / 32`` ("unit") or
  ``(d + f) / 64`` ("probability"), with ``d`` its letter's digit (0..63) and ``f`` in
  [0, 1) the matching number of a numpy generator seeded by the seed, or 0 when the seed is
  0. Entries are uniform, with float64's full precision.
* 0/1 entries ("binary") are the top bit of their letter; a class index takes two letters.

The callers choose rows that are units of the network: a row is one unit's weights and bias,
or one sample's inputs or labels. Compared with one float choice per entry this costs a
fraction to draw (a few choices and spans per array, one letter per entry), and keeps what
the search relies on:

* shrinking works entry by entry: Hypothesis first tries the all-``'0'`` strings (every entry
  1.0, probabilities and labels 0), then lowers each letter toward ``'0'``: the seed first
  (the fine parts vanish), then each entry, so a shrunk entry is 1.0 or a short binary
  fraction (1 - d/32: 0.5, 0, -0.5, ...);
* the number of choices still grows with the network and the batch, so the target phase's
  sideways moves (to an example with the same score) still lead to smaller problems, never to
  larger ones (Hypothesis accepts a sideways move only if it has no more choices);
* the target phase leaves the entries alone: Hypothesis hill-climbs only numeric choices
  (adding ``k`` to an integer, float, bytes or boolean). Numeric entries would be climbed
  in bits that rounding to float32 drops (the same problem checked over and over), or where
  no target depends on them (the labels, for the saturation); the climb spends its examples
  on the scale, band and architecture choices instead.

Matrices of more than :data:`ELEMENTWISE_LIMIT` entries come from a numpy generator seeded by
one drawn integer, which keeps a 784-wide layer within Hypothesis's budget of choices; they
shrink as a whole, toward seed 0.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "ELEMENTWISE_LIMIT",
    "ELEMENT_KINDS",
    "draw_classes",
    "draw_matrix",
    "draw_signs",
]

ELEMENTWISE_LIMIT = 256
"""Arrays up to this many entries shrink entry by entry; larger ones come from a seed."""

ELEMENT_KINDS = ("unit", "probability", "binary")
"""Entries in (-1, 1] shrinking toward 1.0; in [0, 1) toward 0; 0 or 1 toward 0."""

_ALPHABET = "".join(chr(c) for c in range(ord("0"), ord("0") + 64))
_SEED_LETTERS = 4  # a 24-bit seed for the fine parts of real entries; '0000': none
_SEED_PLACES = 64 ** np.arange(_SEED_LETTERS - 1, -1, -1)


@functools.lru_cache(maxsize=256)
def _letters(count: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_ALPHABET, min_size=count, max_size=count)


_SEEDS = st.integers(0, 2**32 - 1)


def _digits(letters: str) -> np.ndarray:
    """The base-64 digits (0..63) of ``letters``, as int64."""
    return np.frombuffer(letters.encode("ascii"), dtype=np.uint8).astype(np.int64) - ord("0")


def _generated(shape: tuple[int, ...], elements: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if elements == "unit":
        return 1.0 - rng.uniform(0.0, 2.0, shape)
    if elements == "probability":
        return rng.uniform(0.0, 1.0, shape)
    return rng.integers(0, 2, shape).astype(np.float64)


def _check_kind(elements: str) -> None:
    if elements not in ELEMENT_KINDS:
        raise ValueError(f"elements must be one of {ELEMENT_KINDS}; got {elements!r}")


def draw_matrix(draw: st.DrawFn, rows: int, cols: int, elements: str = "unit") -> np.ndarray:
    """A float64 array of shape ``(rows, cols)``: one choice per row, and one seed choice for
    the fine parts of real entries (see the module's docstring)."""
    _check_kind(elements)
    if rows * cols > ELEMENTWISE_LIMIT:
        return _generated((rows, cols), elements, draw(_SEEDS))
    if elements == "binary":
        letters = "".join(draw(_letters(cols)) for _ in range(rows))
        return (_digits(letters) >> 5).astype(np.float64).reshape(rows, cols)
    seed = int(_digits(draw(_letters(_SEED_LETTERS))) @ _SEED_PLACES)
    coarse = _digits("".join(draw(_letters(cols)) for _ in range(rows))).reshape(rows, cols)
    fine = np.random.default_rng(seed).random((rows, cols)) if seed else 0.0
    if elements == "unit":
        return 1.0 - (coarse + fine) / 32.0
    return (coarse + fine) / 64.0


def draw_classes(draw: st.DrawFn, n_classes: int, count: int) -> np.ndarray:
    """``count`` class indices in ``0..n_classes-1``, one choice each (shrinks toward class 0)."""
    if count > ELEMENTWISE_LIMIT:
        return np.random.default_rng(draw(_SEEDS)).integers(0, n_classes, count)
    digits = _digits("".join(draw(_letters(2)) for _ in range(count))).reshape(count, 2)
    u = digits[:, 0] * 64 + digits[:, 1]  # in [0, 4096)
    return (u * n_classes) >> 12


def draw_signs(draw: st.DrawFn, count: int) -> np.ndarray:
    """``count`` signs, +1.0 or -1.0 (one choice; shrinks toward +1)."""
    return 1.0 - 2.0 * draw_matrix(draw, 1, count, "binary")[0]
