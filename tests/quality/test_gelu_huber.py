"""A plain-numpy backprop with GELU layers and a Huber loss, right and with a planted bug.

The right one computes GELU's derivative as torch does (``cdf + x pdf``, with ``1 + erf``
cancelling for negative x) and must pass the default search; the planted one forgets the
``x pdf`` term in the hidden layers only, and must be found ``incorrect`` with a diagnosis
that names the first layer (from the output) whose gradient disagrees.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradverify.engine.implementations import supports
from gradverify.engine.results import Verdict
from gradverify.exploration.search import search

SEED = 20240607
DECLARED = {"activations": ("gelu",), "losses": ("huber",), "dtypes": ("float32", "float64")}
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _cdf(h):
    return (0.5 * (1 + _erf(h.astype(np.float64) / math.sqrt(2)))).astype(h.dtype)


def _gelu_prime(h):
    pdf = np.exp(-0.5 * h * h) / h.dtype.type(math.sqrt(2 * math.pi))
    return _cdf(h) + h * pdf


def _cdf_only(h):  # the planted bug: d/dx [x Phi(x)] taken as Phi(x)
    return _cdf(h)


def _backprop(weights, biases, x, y, hidden_prime):
    hs, zs = [], [x]
    for W, b in zip(weights, biases, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(hs[-1] * _cdf(hs[-1]))
    d = zs[-1] - y
    delta = np.clip(d, -1, 1) * _gelu_prime(hs[-1]) / y.dtype.type(y.size)  # huber, delta = 1
    dweights, dbiases = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        dweights[i] = delta @ zs[i].T
        dbiases[i] = delta.sum(axis=1)
        if i > 0:
            delta = (weights[i].T @ delta) * hidden_prime(hs[i - 1])
    return dweights, dbiases


@supports(**DECLARED, name="gelu_huber")
def gelu_huber_backprop(weights, biases, x, y, *, activations, loss):
    assert set(activations) == {"gelu"} and loss == "huber", (activations, loss)
    return _backprop(weights, biases, x, y, _gelu_prime)


@supports(**DECLARED, name="gelu_cdf_only")
def gelu_cdf_only_backprop(weights, biases, x, y, *, activations, loss):
    return _backprop(weights, biases, x, y, _cdf_only)


def test_numpy_gelu_with_huber_passes_a_short_search():
    # 50 examples per dtype; the full default search (about 40 s: mpmath's erfc dominates
    # the exact reference) runs under -m slow for three seeds
    result = search(gelu_huber_backprop, seed=SEED, database=None, max_examples=50)
    assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [SEED, 0, 1])
def test_numpy_gelu_with_huber_passes_the_default_search(seed):
    result = search(gelu_huber_backprop, seed=seed, database=None)
    assert result.verdict is Verdict.PASS, str(result)


def test_a_wrong_gelu_derivative_is_incorrect_and_its_layer_is_named():
    result = search(gelu_cdf_only_backprop, seed=SEED, database=None)
    assert result.verdict is Verdict.INCORRECT, str(result)
    ce = result.counterexample
    assert ce is not None and ce.spec.depth >= 2
    first = ce.spec.depth - 1  # the output layer's delta is right; the one below is not
    phrase = f"layer {first} is the first whose gradient"
    assert any(phrase in hint for hint in result.diagnosis), "\n".join(result.diagnosis)
