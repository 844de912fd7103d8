"""Problem builders used only by the tests (users get gradverify.exploration.strategies)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradverify.model.names import base_name
from gradverify.model.network import NetworkSpec, Problem


def random_problem(
    widths: Sequence[int],
    activations: Sequence[str],
    loss: str = "bce",
    *,
    batch: int = 4,
    dtype: str = "float64",
    seed: int = 0,
    scale: float = 1.0,
    output_shift: float = 0.0,
    soft_labels: bool = False,
) -> Problem:
    """A random problem: N(0, scale^2/fan_in) weights, small biases, N(0,1) inputs.

    ``output_shift`` is added to the last bias, pushing the output logits toward saturation.
    """
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(tuple(widths), tuple(activations), loss)
    depth = spec.depth
    weights = [
        rng.standard_normal((widths[i + 1], widths[i])) * scale / np.sqrt(widths[i])
        for i in range(depth)
    ]
    biases = [rng.standard_normal(widths[i + 1]) * 0.1 for i in range(depth)]
    biases[-1] = biases[-1] + output_shift
    x = rng.standard_normal((widths[0], batch))
    if base_name(loss) == "softmax_ce":  # any label smoothing
        y = rng.random((widths[-1], batch))
        y = y / y.sum(axis=0, keepdims=True)
    elif soft_labels:
        y = rng.random((widths[-1], batch))
    else:
        y = rng.integers(0, 2, (widths[-1], batch)).astype(float)
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


def called_directly(impl, problem: Problem):
    """The implementation's own answer ``(dweights, dbiases)``, called on copies of the
    problem's arrays without the harness."""
    return impl(
        [w.copy() for w in problem.weights],
        [b.copy() for b in problem.biases],
        problem.x.copy(),
        problem.y.copy(),
        activations=problem.spec.activations,
        loss=problem.spec.loss,
    )


MARK = 3.0
"""The first bias of the one problem of :func:`marked_problems` that is marked."""


def marked_problems(count: int, marked: int | None = None, dtype: str = "float64") -> list[Problem]:
    """``count`` small [2, 1] problems, first biases 0, 1/4, 1/2, ...; ``marked`` gets MARK
    (for implementations that misbehave on one problem of many)."""
    spec = NetworkSpec((2, 1), ("sigmoid",), "bce")
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    y = np.array([[1.0, 0.0, 1.0]])
    return [
        Problem.from_arrays(
            spec,
            [np.array([[0.5, -0.25]])],
            [np.array([MARK if k == marked else k / 4])],
            x,
            y,
            dtype,
        )
        for k in range(count)
    ]
