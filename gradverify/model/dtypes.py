"""The floating-point formats under test: names, lookup, unit roundoff and ULP spacing.

float16, float32 and float64 come from numpy; bfloat16 comes from ``ml_dtypes``, a core
dependency. Should it still be missing or broken, bfloat16 is unavailable, and whatever
skips it says so and why (:func:`unavailable_dtypes`, :func:`skipped_dtype_notes`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gradverify.model.names import DTYPE_NAMES, unsupported_dtype, validate_names

__all__ = [
    "SUPPORTED_DTYPES",
    "DtypeUnavailableError",
    "available_dtypes",
    "dtype_name",
    "resolve_dtype",
    "significand_bits",
    "skipped_dtype_notes",
    "smallest_normal",
    "unavailable_dtypes",
    "ulp",
    "unit_roundoff",
    "usable_dtypes",
]

SUPPORTED_DTYPES: tuple[str, ...] = DTYPE_NAMES
"""float16, bfloat16, float32, float64 (listed in :mod:`gradverify.model.names`)."""


class DtypeUnavailableError(ValueError):
    """A supported dtype that this environment cannot provide; the message says why."""


def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ModuleNotFoundError:
        raise DtypeUnavailableError(
            "ml_dtypes is not installed (it provides bfloat16; pip install ml_dtypes)"
        ) from None
    except ImportError as exc:  # installed but broken, e.g. built for another numpy
        text = " ".join(str(exc).split())
        raise DtypeUnavailableError(f"ml_dtypes could not be imported ({text})") from None
    return np.dtype(ml_dtypes.bfloat16)


def resolve_dtype(dtype: str | np.dtype | type) -> np.dtype:
    """Turn a name ('float32', 'bfloat16', ...) or a numpy dtype into a numpy dtype.

    Raises:
        ValueError: not one of the four formats (:func:`gradverify.model.names.unsupported_dtype`).
        DtypeUnavailableError: bfloat16, when ml_dtypes cannot provide it.
    """
    if isinstance(dtype, str):
        if dtype == "bfloat16":
            return _bfloat16()
        if dtype not in SUPPORTED_DTYPES:
            raise unsupported_dtype(dtype)
        return np.dtype(dtype)
    dt = np.dtype(dtype)
    if dtype_name(dt) not in SUPPORTED_DTYPES:
        raise unsupported_dtype(dt)
    return dt


_NAMES: dict[np.dtype | type | str, str] = {}
"""Names already looked up: numpy's ``dtype.name`` is built anew each time (about 6 us), and
the checks ask for it tens of thousands of times per search."""


def dtype_name(dtype: np.dtype | type | str) -> str:
    """The canonical name of a dtype ('float16', 'bfloat16', 'float32', 'float64')."""
    try:
        return _NAMES[dtype]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    name = np.dtype(dtype).name
    if isinstance(dtype, np.dtype | type | str) and len(_NAMES) < 256:
        _NAMES[dtype] = name
    return name


def unavailable_dtypes() -> dict[str, str]:
    """``{name: why}`` for the supported dtypes that cannot be used here (normally empty)."""
    missing = {}
    for name in SUPPORTED_DTYPES:
        try:
            resolve_dtype(name)
        except DtypeUnavailableError as exc:
            missing[name] = str(exc)
    return missing


def available_dtypes() -> tuple[str, ...]:
    """The supported dtypes that can be used here (all four unless ml_dtypes is missing)."""
    missing = unavailable_dtypes()
    return tuple(name for name in SUPPORTED_DTYPES if name not in missing)


def skipped_dtype_notes(skipped: dict[str, str]) -> list[str]:
    """One line per skipped dtype: ``"skipped bfloat16: ml_dtypes is not installed ..."``."""
    return [f"skipped {name}: {why}" for name, why in skipped.items()]


def usable_dtypes(wanted: Iterable[str] | str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The dtypes among ``wanted`` usable here, and ``{dtype: why}`` for those that are not.

    Raises:
        ValueError: an unknown dtype name (:func:`gradverify.model.names.validate_names`), or
            no usable dtype at all (``no usable dtype among bfloat16 (skipped bfloat16: ...);
            available here: ...``).
    """
    names = validate_names("dtype", (wanted,) if isinstance(wanted, str) else wanted, empty_ok=True)
    missing = unavailable_dtypes()
    skipped = {d: missing[d] for d in names if d in missing}
    usable = tuple(d for d in names if d not in missing)
    if not usable:
        why = "; ".join(skipped_dtype_notes(skipped))
        raise ValueError(
            f"no usable dtype among {', '.join(names) or '(none)'}"
            f"{f' ({why})' if why else ''}; available here: "
            f"{', '.join(available_dtypes())}"
        )
    return usable, skipped


def significand_bits(dtype: str | np.dtype) -> int:
    """Precision p including the implicit bit: 11, 8, 24, 53."""
    return {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}[
        dtype_name(resolve_dtype(dtype))
    ]


def unit_roundoff(dtype: str | np.dtype) -> float:
    """u = 2**-p: the largest relative error of one correctly rounded operation."""
    return 2.0 ** -significand_bits(dtype)


def _min_exponent(dtype: str | np.dtype) -> int:
    """Exponent e_min such that the smallest normal number is 2**e_min."""
    return {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}[
        dtype_name(resolve_dtype(dtype))
    ]


def smallest_normal(dtype: str | np.dtype) -> float:
    """The smallest positive normal number of ``dtype`` (2**e_min)."""
    return 2.0 ** _min_exponent(dtype)


def ulp(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """The spacing of ``dtype`` at each of ``values`` (float64 in, float64 out).

    It is 2**(e - p + 1) for |v| in [2**e, 2**(e+1)), floored at the subnormal spacing.
    The ulp of 0 is the smallest subnormal.
    """
    v = np.abs(np.asarray(values, dtype=np.float64))
    p = significand_bits(dtype)
    emin = _min_exponent(dtype)
    with np.errstate(all="ignore"):
        _, e = np.frexp(v)  # v = m * 2**e, m in [0.5, 1)
        exponent = np.where(v == 0, emin, np.maximum(e - 1, emin))
        return np.ldexp(1.0, exponent - p + 1)
