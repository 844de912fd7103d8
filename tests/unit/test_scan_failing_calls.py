"""An implementation that fails on most floats: the 16-bit scan stops judging every float."""

from __future__ import annotations

import numpy as np

from gradverify.engine.implementations import fused_bce_backprop, supports
from gradverify.exploration.scan import scan


def test_an_implementation_that_always_raises_is_not_called_once_per_float():
    calls = []

    @supports(losses=("bce",), activations=("sigmoid", "tanh"))
    def raises(weights, biases, x, y, *, activations, loss):
        calls.append(1)
        raise RuntimeError("not implemented yet")

    result = scan(raises, dtypes=("float16",))
    # bisection instead of 2 x 31,744 finite floats per label and side
    assert len(calls) < 5_000
    for row in result.rows:
        for side in row.sides:
            assert side.raises_anywhere
            assert side.thresholds["raises"].index == 0  # the first float already fails


def test_an_implementation_that_raises_past_saturation_keeps_exact_thresholds():
    # fails alone on fewer floats than MAX_FAILING_ALONE (the two largest): every float judged
    @supports(losses=("bce",), activations=("sigmoid", "tanh"))
    def raises_far_out(weights, biases, x, y, *, activations, loss):
        if np.max(np.abs(np.asarray(biases[-1], dtype=np.float64))) > 65000:
            raise OverflowError("too far out")
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    result = scan(raises_far_out, dtypes=("float16",))
    sides = [side for row in result.rows for side in row.sides]
    assert all(side.verification == "exhaustive" for side in sides)
