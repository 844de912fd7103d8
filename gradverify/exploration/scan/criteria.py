"""What the scanner counts as bad, and the names shared by its modules.

Output layer: for each side of 0 and each label, the first float where

* ``nonfinite``: the returned dJ/db or dJ/dW is inf or NaN;
* ``error_1e-3``, ``error_1e-1``, ``error_1``: the relative error of the worse of the two
  reaches 1e-3, 0.1 and 1 (100%). "Reaches" (``>=``) because a gradient returned as
  exactly 0 has a relative error of exactly 1: it has lost all information;
* ``raises``: the call fails (raises, exceeds the time limit, returns something malformed).
  A failed call is counted only here, never as inf/NaN or as an error level.

The error measure: a result equal to the exact gradient **correctly rounded to the dtype**
has error 0, since the dtype cannot do better. This is what happens when the exact value
underflows (a 0 returned where the exact value is below half the smallest subnormal is
correct), in the subnormal range, and in bfloat16, whose unit roundoff 2**-8 exceeds 1e-3.
Any other result has error ``|a - g| / |g|`` (inf if ``g == 0``), compared exactly.

Hidden layer: per dtype, activation and side, the first float where the returned ``dJ/dW1``
is exactly 0 although the exact value is not (``first_zero``), and the first float where the
exact value itself rounds to 0 in the dtype (``representable_limit``): an implementation
whose first zero comes earlier underflows before the dtype forces it to.
"""

from __future__ import annotations

__all__ = [
    "CRITERIA",
    "ERROR_LEVELS",
    "HIDDEN_ACTIVATIONS",
    "HIDDEN_CRITERIA",
    "SCHEMA",
    "SIDES",
]

SCHEMA = "gradverify.scan/1"
"""The ``schema`` of a scan document (JSON Schema: ``gradverify/schemas/scan.schema.json``)."""

CRITERIA: dict[str, str] = {
    "nonfinite": "the returned gradient is inf or NaN",
    "error_1e-3": "relative error >= 1e-3",
    "error_1e-1": "relative error >= 0.1",
    "error_1": "relative error >= 1 (100%: no correct digit, or 0 instead of the gradient)",
    "raises": "the call fails: it raises, exceeds the time limit or returns something malformed",
}
"""The output-layer criteria, in the order of the table."""

HIDDEN_CRITERIA: dict[str, str] = {
    "first_zero": "the returned hidden-layer dJ/dW1 is exactly 0 while the exact value is not",
    "representable_limit": "the exact hidden-layer dJ/dW1 rounds to 0 in the dtype",
}

ERROR_LEVELS: dict[str, float] = {"error_1e-3": 1e-3, "error_1e-1": 0.1, "error_1": 1.0}
HIDDEN_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh")
SIDES: tuple[str, ...] = ("positive", "negative")
