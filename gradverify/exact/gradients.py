"""What every exact reference backend returns, and the working bits a problem asks of them.

:class:`ReferenceGradients` is the one result of :func:`gradverify.exact.reference.
reference_gradients`, whichever backend computed it (mpmath, or Arb through python-flint):
the gradients as correctly rounded float64 values with their float64 residuals (a
double-double), and the exact values behind them, converted to mpmath numbers only when
first asked for. :func:`cancellation_bits` is the extra working precision a problem's output
delta needs, which both backends start from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from gradverify.exact.precision import MAX_PRECISION
from gradverify.model.functions import has_fused_delta, loss_function
from gradverify.model.network import Problem

__all__ = ["RESIDUAL_BITS", "ExactValues", "ReferenceGradients", "cancellation_bits"]

RESIDUAL_BITS = 53
"""Bits beyond ``bits`` that a pass must get right for the residual ``lo``: a residual of
``2**-bits |hi|`` (the smallest one kept, see :func:`gradverify.exact.rounding.double_double`)
is rounded to 53 bits."""

ExactValues = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], Any]
"""(dJ/dW_i, dJ/db_i, J): object arrays of mpf of the parameters' shapes, and one mpf."""


@dataclass(frozen=True)
class ReferenceGradients:
    """Verified exact gradients of J (the mean loss).

    Attributes:
        dweights, dbiases: float64, correctly rounded; same shapes as the parameters.
        dweights_low, dbiases_low: float64 residuals ``exact - rounded``, themselves correctly
            rounded (the double-double tail): the same bits from every backend.
        loss: J rounded to float64.
        precision: the working precision (bits) of the accepted pass.
        agreed_bits: the significant bits every entry is known to (at least).
        backend: what computed it: ``"flint"`` (Arb ball arithmetic, python-flint),
            ``"mpmath-gmpy"`` or ``"mpmath-python"`` (mpmath on gmpy2 or on Python integers).
        exact_values: makes :attr:`exact_dweights`, :attr:`exact_dbiases` and
            :attr:`exact_loss` when first asked for.
    """

    dweights: tuple[np.ndarray, ...]
    dbiases: tuple[np.ndarray, ...]
    dweights_low: tuple[np.ndarray, ...]
    dbiases_low: tuple[np.ndarray, ...]
    loss: float
    precision: int
    agreed_bits: int
    backend: str
    exact_values: Callable[[], ExactValues] = field(repr=False, compare=False)

    @cached_property
    def _exact(self) -> ExactValues:
        return self.exact_values()

    @property
    def exact_dweights(self) -> tuple[np.ndarray, ...]:
        """dJ/dW_i as object arrays of mpf, known to :attr:`agreed_bits` bits at least."""
        return self._exact[0]

    @property
    def exact_dbiases(self) -> tuple[np.ndarray, ...]:
        """dJ/db_i as object arrays of mpf, known to :attr:`agreed_bits` bits at least."""
        return self._exact[1]

    @property
    def exact_loss(self) -> Any:
        """J as an mpf, known to :attr:`agreed_bits` bits at least."""
        return self._exact[2]

    def tensors(self) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """(name, rounded, residual, exact) for dW_1, db_1, ..., dW_L, db_L."""
        out = []
        exact_w, exact_b = self.exact_dweights, self.exact_dbiases
        for i in range(len(self.dweights)):
            out.append((f"dW{i + 1}", self.dweights[i], self.dweights_low[i], exact_w[i]))
            out.append((f"db{i + 1}", self.dbiases[i], self.dbiases_low[i], exact_b[i]))
        return out


def cancellation_bits(problem: Problem) -> int:
    """Extra working bits for losses without a cancellation-free delta (mse, l1, huber).

    ``z - y`` at a saturated output (sigmoid(h) - 1, tanh(h) - 1) loses about 2|h|/ln 2 bits;
    the fused bce and softmax_ce deltas are written without that subtraction.
    """
    if has_fused_delta(loss_function(problem.spec.loss)):
        return 0
    with np.errstate(all="ignore"):
        peak = float(np.max(np.abs(problem.forward64().h[-1]), initial=0.0))
    if not np.isfinite(peak):
        return MAX_PRECISION
    return int(np.ceil(2 * peak / np.log(2))) + 16
