"""Numbers as gradverify writes them: one function per kind of number, with its unit.

Every text gradverify produces (a result's ``str()``, the ``gradverify scan`` table, the
pytest summary, CI outputs, the report's HTML and Markdown) formats its numbers here, so
that a bit count, a relative error or a threshold reads the same wherever it appears.

Conventions shared by every ``format_*`` function:

* the value may be a float, an int, a numeric string as stored in JSON (``"inf"``,
  ``"-inf"``, ``"nan"``) or ``None``;
* ``None`` (nothing measured) is :data:`MISSING`, ``"-"``;
* NaN is ``"NaN"`` (``"-"`` for bits, where NaN means nothing was measured); infinities
  are ``"inf"`` and ``"-inf"``;
* a value that is not a number at all is returned as its ``str()`` (the caller escapes it).

Only the standard library is imported: every layer may use this module.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MISSING",
    "as_float",
    "format_bits",
    "format_duration",
    "format_fd_error",
    "format_gradient",
    "format_label",
    "format_logit",
    "format_number",
    "format_relative_error",
    "format_side",
    "format_threshold",
    "format_time_limit",
    "format_ulps",
    "json_number",
    "shorten",
    "threshold_cell",
]

MISSING = "-"
"""The text of a number that was not measured (``None``)."""


# ---------------------------------------------------------------------------
# Reading and storing numbers
# ---------------------------------------------------------------------------


def as_float(value: Any, default: float | None = None) -> float | None:
    """``value`` as a float, or ``default`` when it is ``None`` or not a number.

    Numbers read back from JSON come as floats, ints or the strings ``"inf"``, ``"-inf"``
    and ``"nan"`` (see :func:`json_number`); all of them parse.
    """
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def json_number(x: float | None) -> float | None | str:
    """A float for JSON, which has no inf/NaN: those become the strings "inf", "-inf", "nan".

    ``None`` stays ``None`` (JSON ``null``). Any unit: the value is stored, not rounded.
    """
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# ---------------------------------------------------------------------------
# Numbers as text
# ---------------------------------------------------------------------------


def format_number(value: Any, spec: str = ".4g", *, nan: str = "NaN") -> str:
    """Any number as text: ``format(x, spec)``, with the conventions of this module.

    ``spec`` may carry a width and alignment (``"<12.3g"``); infinities are padded like
    any number, while ``nan`` and :data:`MISSING` are returned as given.
    """
    if value is None:
        return MISSING
    x = as_float(value)
    if x is None:
        return str(value)
    if math.isnan(x):
        return nan
    return format(x, spec)


def format_bits(bits: Any) -> str:
    """Bits of error, ``log2(1 + ulps)`` (0 = exact, the dtype's width = nothing right):
    one decimal, ``"12.3"``; ``"-"`` for None or NaN (no bits measured)."""
    return format_number(bits, ".1f", nan=MISSING)


def format_relative_error(error: Any) -> str:
    """A relative error, dimensionless (``|a - r| / |r|``, normwise ``||a - r|| / ||r||``,
    a tolerance on one, an agreement of finite differences): 3 significant digits,
    ``"0.0123"``, ``"1.91e-06"``, ``"inf"`` where the exact value is 0."""
    return format_number(error, ".3g")


def format_ulps(ulps: Any) -> str:
    """An error in units in the last place of the dtype under test: 3 significant digits,
    ``"8.39e+06"``."""
    return format_number(ulps, ".3g")


def format_fd_error(error: Any) -> str:
    """The estimated absolute error of a finite difference (in the gradient's units):
    1 significant digit, ``"7e-10"``; it only says how far the estimate can be trusted."""
    return format_number(error, ".1g")


def format_gradient(value: Any) -> str:
    """A gradient entry (returned, exact or by finite differences), in the gradient's
    units: 9 significant digits, enough to tell two float32 values apart."""
    return format_number(value, ".9g")


def format_logit(h: Any) -> str:
    """A pre-activation h, or a saturation max |h| (dimensionless, as the network sees
    it): 4 significant digits, ``"16.64"``. See :func:`format_threshold` for an exact float."""
    return format_number(h, ".4g")


def format_threshold(h: Any) -> str:
    """A threshold: the exact float logit h where a failure starts, 6 significant digits,
    ``"16.6355"`` (its bit pattern, printed beside it, says which float it is)."""
    return format_number(h, ".6g")


def format_label(y: Any) -> str:
    """A label y of a BCE example (0 to 1): the shortest form, ``"0"``, ``"1"``, ``"0.5"``."""
    return format_number(y, "g")


def format_time_limit(seconds: Any) -> str:
    """A time limit in seconds, as given: ``"10 s"``, ``"0.2 s"``."""
    return f"{format_number(seconds, 'g')} s"


def format_duration(seconds: Any) -> str:
    """A measured wall time in seconds, to a tenth: ``"12.3 s"`` (``"- s"`` if not known)."""
    return f"{format_number(seconds, '.1f')} s"


def format_side(side: str, *, compact: bool = False) -> str:
    """The side of 0 a threshold is on: ``"h > 0"`` for ``"positive"``, else ``"h < 0"``
    (``compact``: ``"h>0"``, ``"h<0"``, for fixed-width tables)."""
    text = "h > 0" if side == "positive" else "h < 0"
    return text.replace(" ", "") if compact else text


def shorten(text: Any, limit: int = 40) -> str:
    """``str(text)`` cut to at most ``limit`` characters, a cut marked by a final ``~``."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "~"


# ---------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------


def threshold_cell(
    value: Any,
    bits: str | None = None,
    *,
    criterion: str = "",
    settled: bool = True,
    monotone: bool = True,
    raises_anywhere: bool = False,
    where: str | None = None,
) -> str:
    """The table cell of one scan threshold, in the words of every scan table.

    Args:
        value: the first float h (moving out from 0) that meets the criterion; ``None``
            when no checked float does.
        bits: the float's bit pattern in the dtype, e.g. ``"0x47a0"``.
        criterion: the scan's criterion name; ``"nonfinite"`` words a threshold that is
            never reached as finite rather than "never".
        settled: False when the search below the threshold stopped at its limit, so the
            first bad float is at or below it: marked ``<=``.
        monotone: False when the criterion stops holding somewhere past the threshold:
            marked ``*``.
        raises_anywhere: whether a call failed on this side (a never-reached ``nonfinite``
            then says "finite where returned").
        where: where the threshold was found (e.g. ``"y=0, h > 0"``), added in brackets.

    Returns:
        ``"7.625 0x47a0"``, ``"<=9.21077 0x41135f51*"``, ``"20 0x41a00000 (y=0, h > 0)"``,
        ``"finite throughout"``, ``"finite where returned"`` or ``"never"``.
    """
    if value is None:
        if criterion != "nonfinite":
            return "never"
        return "finite where returned" if raises_anywhere else "finite throughout"
    text = format_threshold(value) + (f" {bits}" if bits else "")
    text = ("" if settled else "<=") + text + ("" if monotone else "*")
    return text + (f" ({where})" if where else "")
