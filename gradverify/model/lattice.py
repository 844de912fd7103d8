"""The float lattice of a dtype: bit patterns as ordered integers.

Every finite float of an IEEE-style binary format is addressed by its *side* (the sign)
and its *lattice index*: the bit pattern with the sign bit cleared. On each side the index
counts outward from 0 in steps of one ULP, so ordering floats by ``(sign, index)`` orders
them by value and "the next float" is ``index + 1``::

    float16:  index 0 -> 0.0, 1 -> 2**-24 (smallest subnormal), 0x3c00 -> 1.0,
              0x7bff -> 65504 (largest finite); 0x7c00 would be inf.

Searches over the lattice (bisection, exhaustive enumeration) work on one side at a time
and move by index. Rounding an exact (mpmath) value to the lattice is
:func:`gradverify.exact.rounding.round_mpf`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from gradverify.model.dtypes import dtype_name, resolve_dtype, significand_bits

__all__ = [
    "FloatFormat",
    "bit_pattern",
    "float_format",
    "index_at_least",
    "lattice_index",
    "lattice_values",
    "round_to_format",
    "shortest_decimal",
    "side_floats",
]


@dataclass(frozen=True)
class FloatFormat:
    """The parameters of one binary floating-point format.

    Attributes:
        name: 'float16', 'bfloat16', 'float32' or 'float64'.
        dtype: the numpy dtype.
        width: storage bits (16, 32, 64).
        precision: significand bits p, including the implicit bit.
        emin, emax: normal numbers have magnitudes in [2**emin, 2**(emax+1)).
        uint: the unsigned integer dtype of the same width (for bit views).
        max_index: lattice index of the largest finite float.
    """

    name: str
    dtype: np.dtype
    width: int
    precision: int
    emin: int
    emax: int
    uint: np.dtype

    @property
    def sign_bit(self) -> int:
        return 1 << (self.width - 1)

    @property
    def max_index(self) -> int:
        exponent_field = self.width - self.precision  # bits of the biased exponent
        return (((1 << exponent_field) - 1) << (self.precision - 1)) - 1  # inf's pattern - 1

    @property
    def min_subnormal(self) -> float:
        """The smallest positive float, 2**(emin - p + 1)."""
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def max_finite(self) -> float:
        """The largest finite float, (2 - 2**(1-p)) * 2**emax."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.precision), self.emax)

    @property
    def hex_digits(self) -> int:
        return self.width // 4


@cache
def _format(name: str) -> FloatFormat:
    dt = resolve_dtype(name)
    width = dt.itemsize * 8
    p = significand_bits(name)
    bias = (1 << (width - p - 1)) - 1
    return FloatFormat(
        name=name,
        dtype=dt,
        width=width,
        precision=p,
        emin=1 - bias,
        emax=bias,
        uint=np.dtype(f"uint{width}"),
    )


def float_format(dtype: str | np.dtype | type) -> FloatFormat:
    """The :class:`FloatFormat` of a supported dtype (name or numpy dtype)."""
    return _format(dtype_name(resolve_dtype(dtype)))


def lattice_values(indices: Any, negative: bool, fmt: FloatFormat) -> np.ndarray:
    """The floats (in ``fmt.dtype``) at lattice ``indices`` on one side.

    Args:
        indices: an int or a sequence of ints in [0, fmt.max_index].
        negative: the side; index 0 on the negative side is -0.0.

    Returns:
        An array of ``fmt.dtype`` with the shape of ``indices``.
    """
    raw = np.asarray(indices, dtype=object)
    flat = [int(i) for i in raw.flat]
    for i in flat:
        if not 0 <= i <= fmt.max_index:
            raise ValueError(f"lattice index {i} outside [0, {fmt.max_index}] for {fmt.name}")
    sign = fmt.sign_bit if negative else 0
    bits = np.array([i | sign for i in flat], dtype=fmt.uint).reshape(raw.shape)
    return bits.view(fmt.dtype)


def side_floats(negative: bool, fmt: FloatFormat) -> np.ndarray:
    """Every finite float of one side in lattice order (index 0 first), in ``fmt.dtype``.

    ``side_floats(False, fmt)[i]`` is the float at lattice index ``i``; the negative side
    starts at -0.0. There are ``fmt.max_index + 1`` of them.
    """
    sign = fmt.sign_bit if negative else 0
    return (np.arange(fmt.max_index + 1, dtype=np.uint64) | sign).astype(fmt.uint).view(fmt.dtype)


def round_to_format(values: Any, fmt: FloatFormat) -> np.ndarray:
    """float64 ``values`` rounded to the nearest float of ``fmt`` (ties to even), as float64.

    One rounding, straight from float64 (not through float32, as a cast to bfloat16 may
    go): subnormals round to the fixed spacing ``fmt.min_subnormal``, magnitudes from
    ``max_finite + ulp/2`` on give +-inf, the sign of a zero is kept and NaN stays NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    with np.errstate(all="ignore"):
        _, e = np.frexp(a)  # a = m * 2**e, m in [0.5, 1)
        exponent = np.maximum(e - 1, fmt.emin) - (fmt.precision - 1)  # log2 of the spacing
        finite = np.isfinite(a) & (a <= fmt.max_finite * 2.0)
        scaled = np.ldexp(np.where(finite, a, 0.0), -exponent)  # exact: a power of 2
        rounded = np.ldexp(np.rint(scaled), exponent)  # rint: ties to even
        rounded = np.where(finite, rounded, a)
        rounded = np.where(rounded > fmt.max_finite, np.inf, rounded)
    return np.copysign(rounded, v)


def lattice_index(value: Any, fmt: FloatFormat) -> tuple[int, bool]:
    """``(index, negative)`` of a float of the dtype (given in the dtype or exactly as float64).

    Raises:
        ValueError: if ``value`` is not finite or not exactly a float of ``fmt``.
    """
    as64 = float(np.asarray(value).astype(np.float64))
    if not math.isfinite(as64):
        raise ValueError(f"{as64!r} is not a finite {fmt.name}")
    v = np.asarray(as64).astype(fmt.dtype)
    if float(v.astype(np.float64)) != as64:
        raise ValueError(f"{as64!r} is not exactly representable in {fmt.name}")
    bits = int(v.reshape(1).view(fmt.uint)[0])
    return bits & (fmt.sign_bit - 1), bool(bits & fmt.sign_bit)


def index_at_least(magnitude: float, fmt: FloatFormat) -> int:
    """The lattice index of the smallest float whose magnitude is >= ``magnitude`` (clipped)."""
    m = abs(float(magnitude))
    if m >= fmt.max_finite:
        return fmt.max_index
    with np.errstate(over="ignore"):
        v = np.asarray(m).astype(fmt.dtype)
    index, _ = lattice_index(np.abs(v), fmt)
    if float(np.asarray(v).astype(np.float64)) < m:
        index += 1
    return min(index, fmt.max_index)


def bit_pattern(value: Any, fmt: FloatFormat) -> str:
    """The bit pattern of a float of the dtype in hex, e.g. ``0x47a0`` for float16 7.625."""
    v = np.asarray(float(np.asarray(value).astype(np.float64))).astype(fmt.dtype)
    bits = int(v.reshape(1).view(fmt.uint)[0])
    return f"0x{bits:0{fmt.hex_digits}x}"


def shortest_decimal(value: Any, fmt: FloatFormat) -> str:
    """The shortest decimal string that reads back (via float64) as exactly this float."""
    as64 = float(np.asarray(value).astype(np.float64))
    if not math.isfinite(as64):
        return repr(as64)
    for digits in range(1, 18):
        text = f"{as64:.{digits}g}"
        with np.errstate(over="ignore"):
            back = np.asarray(float(text)).astype(fmt.dtype).astype(np.float64)
        if float(back) == as64:
            return text
    return repr(as64)
