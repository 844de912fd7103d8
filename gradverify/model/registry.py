"""User-defined activations and losses: where registrations are kept, and the checks on them
that need no exact arithmetic.

The public API is :func:`gradverify.register_activation` and :func:`gradverify.register_loss`
(:mod:`gradverify.exact.registration`, which also checks the mpmath forms and derives missing
derivatives at verified precision). What they build ends here:

* :func:`add` keeps a :class:`Registration` (the definition, and what the caller passed, so
  that registering the same functions again is a no-op and different ones an error) and
  publishes the definition through the one hook of :mod:`gradverify.model.names`
  (``EXTRA_NAMES``), after which every surface that checks names accepts it and
  :func:`gradverify.model.functions.activation` / ``loss_function`` return it;
* :func:`registrations` and :func:`restore` carry the registry into a worker process
  (:mod:`gradverify.engine.isolation`), whose lookups then find the same names;
* :func:`check_new_name`, :func:`check_kinks` and :func:`check_float_form` are the checks
  every registration runs first, each failing with a one-line ValueError naming the problem.

A registered name takes no parameter, cannot be a built-in one, and matches
``[A-Za-z_][A-Za-z0-9_]*`` (so that it survives comma-separated lists and ``MODULE:ATTR``).
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradverify.model import names

__all__ = [
    "FUNCTION_KINDS",
    "NAME_PATTERN",
    "Registration",
    "add",
    "check_float_form",
    "check_kinks",
    "check_new_name",
    "existing",
    "find",
    "registered_names",
    "registrations",
    "restore",
    "same_inputs",
    "unregister",
]

FUNCTION_KINDS: tuple[str, ...] = ("activation", "loss")
"""The kinds of name a user can register."""

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A registered name: an identifier (no parentheses, commas, spaces or colons)."""


@dataclass(frozen=True)
class Registration:
    """One registered function.

    Attributes:
        kind: "activation" or "loss".
        name: its name.
        definition: the :class:`~gradverify.model.functions.Activation` or ``Loss`` that the
            lookups return.
        given: what the caller passed, by keyword, to compare a later registration with.
    """

    kind: str
    name: str
    definition: Any
    given: tuple[tuple[str, Any], ...]


_REGISTRATIONS: dict[str, dict[str, Registration]] = {kind: {} for kind in FUNCTION_KINDS}


# ---------------------------------------------------------------------------
# ADAPTER: the hook of gradverify.model.names (EXTRA_NAMES), in one place
# ---------------------------------------------------------------------------


def _publish(kind: str, name: str, definition: Any) -> None:
    """Make ``name`` known to every surface: ``names.EXTRA_NAMES[kind][name] = definition``."""
    names.EXTRA_NAMES.setdefault(kind, {})[name] = definition


def _withdraw(kind: str, name: str) -> None:
    names.EXTRA_NAMES.get(kind, {}).pop(name, None)


def _built_in(kind: str) -> tuple[str, ...]:
    """The built-in names of ``kind`` (``names.KINDS`` holds only those)."""
    return names.KINDS[kind][1]


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in FUNCTION_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FUNCTION_KINDS)}; got {kind!r}")


def check_new_name(kind: str, name: object) -> str:
    """``name`` if it can be registered as a ``kind``; else a one-line ValueError.

    Refused: a non-string, a name that is not an identifier (``"my act"``, ``"f(2)"``,
    ``"a:b"``) and a built-in name (``"tanh"``, ``"leaky_relu"``).
    """
    _check_kind(kind)
    if not isinstance(name, str):
        raise ValueError(f"a {kind} name must be a string; got {type(name).__name__} {name!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"malformed {kind} name {name!r}: use letters, digits and underscores, not "
            "starting with a digit (e.g. square_plus)"
        )
    if name in _built_in(kind):
        raise ValueError(
            f"{kind} name {name!r} is a built-in {kind}; register yours under another name"
        )
    return name


def check_kinks(name: str, kinks: Iterable[Any]) -> tuple[float, ...]:
    """``kinks`` as a sorted tuple of distinct finite floats; else a one-line ValueError."""
    if isinstance(kinks, str | bytes) or not isinstance(kinks, Iterable):
        raise ValueError(f"{name}: kinks must be a sequence of numbers; got {kinks!r}")
    out = []
    for k in kinks:
        if isinstance(k, bool) or not isinstance(k, int | float | np.integer | np.floating):
            raise ValueError(f"{name}: every kink must be a finite number; got {k!r}")
        if not math.isfinite(float(k)):
            raise ValueError(f"{name}: every kink must be a finite number; got {k!r}")
        out.append(float(k) + 0.0)
    return tuple(sorted(set(out)))


SAMPLE_ARGUMENTS = np.array([[-3.0, -1.0, -0.5, 0.0], [0.25, 1.0, 2.5, 4.0]])
"""The arguments a float form is tried at (exact in every dtype), as one (2, 4) array."""

SAMPLE_LABELS = np.array([[0.0, 1.0, 0.25, 1.0], [1.0, 0.0, 0.5, 0.0]])
"""Labels beside :data:`SAMPLE_ARGUMENTS` for a loss's float forms."""


def _dtypes() -> list[np.dtype]:
    found = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
    try:
        import ml_dtypes

        found.insert(1, np.dtype(ml_dtypes.bfloat16))
    except Exception:  # noqa: BLE001 - bfloat16 unavailable: the search skips it too
        pass
    return found


def _called(what: str, fn: Callable, args: tuple[np.ndarray, ...]) -> np.ndarray:
    """``fn(*args)`` as an array of the arguments' dtype and shape, or a one-line ValueError."""
    dtype, shape = args[0].dtype, args[0].shape
    try:
        with np.errstate(all="ignore"):
            out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - named in the message
        text = " ".join(str(exc).split())
        raise ValueError(
            f"{what} raised {type(exc).__name__}{': ' + text if text else ''} on a "
            f"{dtype.name} array of shape {shape}"
        ) from None
    if not isinstance(out, np.ndarray):
        raise ValueError(
            f"{what} returned a {type(out).__name__}, not a numpy array, for a "
            f"{dtype.name} array; it must be elementwise and dtype-preserving"
        )
    if out.dtype != dtype:
        raise ValueError(
            f"{what} returned {out.dtype.name} for a {dtype.name} array; it must compute in "
            "the dtype it is given (elementwise, dtype-preserving)"
        )
    if out.shape != shape:
        raise ValueError(
            f"{what} returned shape {out.shape} for an array of shape {shape}; it must be "
            "elementwise"
        )
    return out


_EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


def _close(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> bool:
    """Equal up to 8 units of ``dtype``'s precision: numpy's vectorised and scalar loops may
    differ by an ulp or two; a function that mixes elements differs by far more."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same = np.isclose(a64, b64, rtol=8 * _EPSILON[dtype.name], atol=0.0, equal_nan=True)
    return bool(np.all(same | (a64 == b64)))


def check_float_form(what: str, fn: Callable, inputs: int = 1) -> None:
    """ValueError unless ``fn`` is elementwise and dtype-preserving in every dtype.

    ``fn`` takes ``inputs`` arrays (an activation's 1, a loss's 3: ``h, z, y``) and is tried
    on :data:`SAMPLE_ARGUMENTS` (and labels) in float16, bfloat16, float32 and float64: it must
    return a numpy array of the same dtype and shape, whose every element depends only on the
    elements at its place (checked against the transposed array and one element at a time).
    """
    if not callable(fn):
        raise ValueError(f"{what} must be callable; got {type(fn).__name__} {fn!r}")
    base = [SAMPLE_ARGUMENTS, SAMPLE_ARGUMENTS, SAMPLE_LABELS][:inputs]
    for dtype in _dtypes():
        args = tuple(a.astype(dtype) for a in base)
        out = _called(what, fn, args)
        moved = _called(what, fn, tuple(np.ascontiguousarray(a.T) for a in args)).T
        single = np.empty_like(out)
        for index in np.ndindex(out.shape):
            one = tuple(a[index][None, None] for a in args)
            single[index] = _called(what, fn, one)[0, 0]
        if not (_close(out, moved, dtype) and _close(out, single, dtype)):
            raise ValueError(
                f"{what} is not elementwise: in {dtype.name} its value at an element changes "
                "with the other elements of the array"
            )


# ---------------------------------------------------------------------------
# Comparing what two registrations were given
# ---------------------------------------------------------------------------


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, types.FunctionType) and isinstance(b, types.FunctionType):
        return _same_function(a, b)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects: not the same
        return False


def _same_function(a: types.FunctionType, b: types.FunctionType) -> bool:
    """The same code, defaults and closure values: the same function defined again (a module
    imported twice, a lambda unpickled in a worker)."""
    cells = [tuple(c.cell_contents for c in (f.__closure__ or ()) if _filled(c)) for f in (a, b)]
    return (
        a.__code__ == b.__code__
        and a.__module__ == b.__module__
        and a.__qualname__ == b.__qualname__
        and _same_value(a.__defaults__, b.__defaults__)
        and _same_value(a.__kwdefaults__, b.__kwdefaults__)
        and _same_value(cells[0], cells[1])
    )


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def same_inputs(a: Iterable[tuple[str, Any]], b: Iterable[tuple[str, Any]]) -> bool:
    """Whether two registrations were given the same functions and options."""
    da, db = dict(a), dict(b)
    return da.keys() == db.keys() and all(_same_value(da[k], db[k]) for k in da)


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


def existing(kind: str, name: str, given: Iterable[tuple[str, Any]], *, replace: bool) -> Any:
    """The definition already registered as ``name`` with the same ``given`` inputs, or None
    when ``name`` is free (or ``replace``); ValueError when it is taken by other functions."""
    _check_kind(kind)
    found = _REGISTRATIONS[kind].get(name)
    if found is None:
        return None
    if same_inputs(found.given, given):
        return found.definition
    if replace:
        return None
    raise ValueError(
        f"{kind} {name!r} is already registered with other functions; pass replace=True "
        "to replace it, or choose another name"
    )


def add(registration: Registration, *, replace: bool = False) -> Any:
    """Register ``registration`` and return its definition.

    The same name with the same inputs again returns the definition registered first; other
    inputs raise ValueError unless ``replace``.
    """
    kind, name = registration.kind, registration.name
    check_new_name(kind, name)
    same = existing(kind, name, registration.given, replace=replace)
    if same is not None:
        return same
    _REGISTRATIONS[kind][name] = registration
    _publish(kind, name, registration.definition)
    return registration.definition


def unregister(kind: str, name: str) -> None:
    """Forget the registered ``name`` of ``kind`` (no-op if there is none)."""
    _check_kind(kind)
    _REGISTRATIONS[kind].pop(name, None)
    _withdraw(kind, name)


def find(kind: str, name: str) -> Registration | None:
    """The registration of ``name``, if ``name`` is a registered ``kind``."""
    _check_kind(kind)
    return _REGISTRATIONS[kind].get(name)


def registered_names(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind``, in the order they were registered."""
    _check_kind(kind)
    return tuple(_REGISTRATIONS[kind])


def registrations() -> tuple[Registration, ...]:
    """Every registration, activations first (what a worker process needs to restore)."""
    return tuple(r for kind in FUNCTION_KINDS for r in _REGISTRATIONS[kind].values())


def restore(entries: Iterable[Registration]) -> None:
    """Install registrations made elsewhere (in the parent of a worker), unchecked: they were
    checked where they were made. An entry replaces one of the same name."""
    for entry in entries:
        _check_kind(entry.kind)
        _REGISTRATIONS[entry.kind][entry.name] = entry
        _publish(entry.kind, entry.name, entry.definition)
