"""The gradients of mlp_backprop, verified against exact (mpmath) gradients by gradverify."""

import pytest
from mlp_backprop import backprop


def test_backprop_matches_exact_gradients(gradverify):
    # A Hypothesis search over networks, weights, batches and dtypes; on failure the test
    # fails with the diagnosis, the worst elements and a reproduction snippet.
    gradverify.check(backprop, activations=("sigmoid", "tanh"), losses=("bce",))


@pytest.mark.gradverify(dtypes=("float64",), max_examples=10)
def test_sigmoid_only_network_in_float64(gradverify):
    result = gradverify.check(backprop, activations=("sigmoid",), losses=("bce",))
    assert result.verdict == "pass"
