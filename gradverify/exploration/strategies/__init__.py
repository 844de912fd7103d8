"""Hypothesis strategies for gradient problems, for the search and for users' own ``@given`` tests.

Every strategy here shrinks toward the simple end: fewer layers, narrower layers, batch 1,
weights and inputs of 1 (then 1/2, 0, -1/2, ...), hard labels of 0, and *smaller
saturation*. Each hidden layer (width, activation, parameters) is one block of choices, so
the shrinker removes whole layers. Saturation is drawn on purpose (a plain N(0, 1) draw
almost never reaches it) with a per-layer log-uniform weight scale and a target band for the
output logits, both of which shrink toward none (:mod:`.saturation`); shrinking an
instability therefore walks its saturation down toward the threshold where it starts. Every
drawn problem is finite in its dtype: each layer's ``max |h|`` is capped at
``max_saturation`` (1024 by default, well inside float16's range) before rounding.

Each row of an array (a unit's weights and bias, a sample's inputs or labels) is one
Hypothesis choice, shrunk entry by entry and left alone by the target phase's hill climbing
(:mod:`.arrays`); arrays of more than 256 entries (a 784-wide input layer) come from a numpy
generator seeded by one drawn integer and shrink as a whole.

A declared architecture (``depth``, ``widths``, ``batch`` in the capabilities, see
:class:`gradverify.engine.implementations.Capabilities`) is respected: only the free parts are
drawn, so every problem, shrunk ones included, has the declared depth, widths and batch.

The parts: :mod:`.arrays` (how an array is drawn), :mod:`.architecture` (dtype, depth,
widths, activations, loss, batch), :mod:`.saturation` (weights and biases), :mod:`.samples`
(inputs and labels), :mod:`.problems` (all of it).

Example::

    from hypothesis import given
    import gradverify
    from gradverify.exploration.strategies import problems

    @given(problems(losses=["bce"], dtypes=["float32"]))
    def test_my_backprop(problem):
        gradverify.assert_gradients_match(my_backprop, problem)
"""

from __future__ import annotations

from gradverify.exploration.strategies.architecture import batch_sizes, dtypes, network_specs
from gradverify.exploration.strategies.problems import problems
from gradverify.exploration.strategies.samples import LABEL_KINDS, inputs, labels
from gradverify.exploration.strategies.saturation import (
    DEFAULT_MAX_SATURATION,
    logit_bands,
    parameters,
    saturation_scales,
)

__all__ = [
    "DEFAULT_MAX_SATURATION",
    "LABEL_KINDS",
    "batch_sizes",
    "dtypes",
    "inputs",
    "labels",
    "logit_bands",
    "network_specs",
    "parameters",
    "problems",
    "saturation_scales",
]
