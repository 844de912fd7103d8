"""One batch: inputs ``x`` and labels ``y``, each of shape ``(units, batch)``.

Each sample (a column) of ``x`` is one choice, and so is each sample of ``y``.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from gradverify.exploration.strategies.arrays import draw_classes, draw_matrix
from gradverify.model.functions import loss_function

__all__ = ["LABEL_KINDS", "draw_inputs", "draw_labels", "inputs", "labels"]

LABEL_KINDS: tuple[str, ...] = ("any", "hard")
"""What :func:`labels` may draw: hard or soft labels, or only hard ones (class indices)."""

_SOFT = st.booleans()


def inputs(n_inputs: int, batch: int) -> st.SearchStrategy[np.ndarray]:
    """Inputs ``x`` of shape ``(n_inputs, batch)`` with entries in [-1, 1] (float64).

    Shrinks toward 1.0 entries (then 0.5, 0, -0.5, ...): a shrunk counterexample has inputs
    of 1 rather than 0, which would hide most of its gradient (``dW = delta z^T`` is 0 where
    ``z`` is).
    """
    return _inputs(n_inputs, batch)


@functools.lru_cache(maxsize=256)
def _inputs(n_inputs: int, batch: int) -> st.SearchStrategy[np.ndarray]:
    return st.composite(lambda draw: draw_inputs(draw, n_inputs, batch))()


def draw_inputs(draw: st.DrawFn, n_inputs: int, batch: int) -> np.ndarray:
    """What :func:`inputs` draws, drawn with ``draw`` (no span of its own)."""
    return draw_matrix(draw, batch, n_inputs).T


def draw_labels(
    draw: st.DrawFn, loss: str, n_outputs: int, batch: int, kind: str = "any"
) -> np.ndarray:
    """What :func:`labels` draws, drawn with ``draw`` (no span of its own)."""
    if kind not in LABEL_KINDS:
        raise ValueError(f"labels kind must be 'any' or 'hard'; got {kind!r}")
    soft = False if kind == "hard" else draw(_SOFT)
    shape = (n_outputs, batch)
    if loss_function(loss).labels == "distribution":
        if not soft:
            y = np.zeros(shape)
            y[draw_classes(draw, n_outputs, batch), np.arange(batch)] = 1.0
            return y
        weights = draw_matrix(draw, batch, n_outputs, "probability").T
        totals = weights.sum(axis=0, keepdims=True)
        return np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / n_outputs)
    return draw_matrix(draw, batch, n_outputs, "probability" if soft else "binary").T


@st.composite
def labels(draw: st.DrawFn, loss: str, n_outputs: int, batch: int, kind: str = "any") -> np.ndarray:
    """Labels ``y`` of shape ``(n_outputs, batch)`` for ``loss`` (float64).

    Hard labels ({0, 1}; one-hot columns for ``softmax_ce``) or soft labels ([0, 1];
    columns summing to 1 for ``softmax_ce``). Shrinks toward hard labels of 0 (class 0).
    ``kind="hard"`` (the capability ``labels="hard"``) draws only hard labels: class
    indices, as one-hot columns, for ``softmax_ce``.
    """
    return draw_labels(draw, loss, n_outputs, batch, kind)
