"""Registering your own activations and losses: :func:`register_activation`, :func:`register_loss`.

::

    import gradverify, numpy as np
    square_plus = gradverify.register_activation(
        "square_plus", forward=lambda h: (h + np.sqrt(h * h + 4)) / 2,
        mp_forward=lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2)

After that ``"square_plus"`` is a name like ``"tanh"``: in ``@gradverify.supports``, in
network specs, in ``search``/``check``/``scan``, on the command line and in the config, in
the exact reference and the finite differences, and in isolated worker processes.

Each function is given twice, as the built-ins are (:mod:`gradverify.model.functions`):

* a **float form** that takes and returns numpy arrays, elementwise, computing in the dtype
  it is given (float16, bfloat16, float32, float64);
* an **mpmath form** ``(ctx, value) -> value`` on one mpf of a private mpmath context
  (use ``ctx.exp``, ``ctx.sqrt``, ..., never the global ``mpmath.mp``).

A missing exact derivative is derived from the mpmath form with ``ctx.diff`` at verified
precision (:func:`derived_derivative`); a missing float derivative is the exact one rounded
(:func:`float_from_exact`). Registration checks everything it is given and fails with a
one-line ValueError naming the problem: a malformed or built-in name, kinks that are not
finite numbers, a float form that is not elementwise or changes the dtype, an mpmath form
that disagrees with the float form, a derivative that disagrees with the mpmath derivative.

**The agreement tolerance.** The float and mpmath forms are compared at a few ordinary
arguments (:data:`CHECK_POINTS`) with relative tolerance :data:`FLOAT_TOLERANCE` (2**-20, about
1e-6). The check is there to catch two forms of *different functions* (a sign, a factor, a
constant, a typo), which differ by far more than that at one of the points at least; it
does not judge the float form's accuracy (that is what gradverify's checks are for): a
float64 form may lose up to 30 bits to cancellation at these arguments and still pass. Two
mpmath values (a given exact derivative and the derived one) must agree to
:data:`EXACT_TOLERANCE` (2**-50): both are accurate to far more bits than that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

from gradverify.exact.precision import (
    DEFAULT_BITS,
    ExactReferenceError,
    agree_to_bits,
    verified_precision,
)
from gradverify.exact.rounding import round_to_float64
from gradverify.model import registry
from gradverify.model.functions import Activation

__all__ = [
    "CHECK_POINTS",
    "EXACT_TOLERANCE",
    "FLOAT_TOLERANCE",
    "derived_derivative",
    "float_from_exact",
    "register_activation",
]

CHECK_POINTS: tuple[float, ...] = (-2.0, -0.5, 0.25, 1.0, 3.0)
"""The ordinary arguments at which the forms of one function must agree."""

FLOAT_TOLERANCE = 2.0**-20
"""Relative tolerance between a float64 form and the exact value (see the module's text)."""

EXACT_TOLERANCE = 2.0**-50
"""Relative tolerance between a given exact derivative and the derived one."""

CHECK_PRECISION = 113
"""Working precision (bits) of the registration checks."""

MPFunction = Callable[[Any, Any], Any]


# ---------------------------------------------------------------------------
# Derivatives from the mpmath form
# ---------------------------------------------------------------------------


def _direction(ctx: Any, h: Any, kinks: Sequence[float], step: Any) -> int:
    """0 (a central difference) unless a kink lies within two steps of ``h``; then the side
    of ``h`` (+1 right of it, -1 left of it or on it: the left derivative at a kink)."""
    for k in kinks:
        if abs(h - k) <= 2 * step:
            return 1 if h > k else -1
    return 0


def _difference(ctx: Any, mp_forward: MPFunction, h: Any, kinks: Sequence[float], prec: int) -> Any:
    """``mp_forward'(h)`` by one finite difference at working precision ``prec``.

    The step is 2**-(prec + 10) relative to ``max(|h|, 1)``, so ``h`` +- step is exact at the
    working precision mpmath's ``diff`` uses (twice ``prec`` and more) at any magnitude.
    """
    with ctx.workprec(prec):
        scale = max(int(ctx.mag(h)), 0) if h else 0
        step = ctx.ldexp(1, scale - prec - 10)
        direction = _direction(ctx, h, kinks, step)
        return ctx.diff(lambda t: mp_forward(ctx, t), h, h=step, direction=direction)


def derived_derivative(
    mp_forward: MPFunction, kinks: Sequence[float] = (), *, what: str
) -> MPFunction:
    """The exact derivative of ``mp_forward`` as an mpmath form ``(ctx, h) -> act'(h)``.

    Computed with ``ctx.diff`` at working precisions ``p`` and ``2p`` (and so on) until the
    two agree to the bits of ``ctx.prec`` (:func:`gradverify.exact.precision.verified_precision`,
    the loop every exact value runs), and rounded to ``ctx.prec``. Near a kink the difference
    is one-sided, away from it; at a kink it is the left derivative (relu'(0) = 0 by this
    rule, as in PyTorch and JAX).

    Raises:
        ExactReferenceError: the passes never agree (the derivative is an exact zero reached
            by cancellation, or the function is not differentiable there).
    """
    kinks = tuple(kinks)

    def mp_derivative(ctx: Any, h: Any) -> Any:
        bits = ctx.prec
        value, _ = verified_precision(
            lambda prec: _difference(ctx, mp_forward, h, kinks, prec),
            lambda low, high: agree_to_bits(low, high, bits),
            start=bits + 16,
            bits=bits,
            what=f"the derivative of {what} at {mpmath.nstr(h, 17)}",
        )
        return +value  # rounded to ctx.prec

    return mp_derivative


def _exact_float64(ctx: Any, mp_fn: Callable[..., Any], args: tuple[float, ...]) -> float:
    """``mp_fn`` at the floats ``args``, verified to :data:`DEFAULT_BITS` bits and rounded to
    float64 (NaN where it is undefined; an infinite argument is taken at the largest
    float64)."""
    if any(math.isnan(v) for v in args):
        return math.nan
    big = float(np.finfo(np.float64).max)
    args = tuple(math.copysign(big, v) if math.isinf(v) else v for v in args)

    def at(prec: int) -> Any:
        with ctx.workprec(prec):
            return +mp_fn(ctx, *(ctx.mpf(v) for v in args))

    try:
        value, _ = verified_precision(
            at,
            lambda low, high: agree_to_bits(low, high, DEFAULT_BITS),
            start=DEFAULT_BITS + 32,
            bits=DEFAULT_BITS,
            what="a derivative",
        )
    except (ArithmeticError, ValueError):
        return math.nan
    return round_to_float64(value)


def float_from_exact(mp_fn: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """A float form of the mpmath form ``mp_fn`` (``(ctx, a, ...) -> value``): elementwise
    over its array arguments, each value the exact one rounded to float64 and then to the
    dtype of the first argument.

    A *reference-quality* stable form: no float code computes the function more accurately,
    so gradverify's stable baselines (the accuracy an implementation is held to) are at
    least as good as the best float formula. It costs a few mpmath evaluations per new
    value (values are cached), which is fine for the small arrays of the checks.
    """
    cache: dict[tuple[float, ...], float] = {}

    def form(*arrays: np.ndarray) -> np.ndarray:
        dtype = np.asarray(arrays[0]).dtype
        wide = np.broadcast_arrays(*(np.asarray(a).astype(np.float64) for a in arrays))
        ctx = mpmath.MPContext()
        out = np.empty(wide[0].shape, dtype=np.float64)
        for index in np.ndindex(out.shape):
            key = tuple(float(a[index]) for a in wide)
            if key not in cache:
                if len(cache) > 100_000:
                    cache.clear()
                cache[key] = _exact_float64(ctx, mp_fn, key)
            out[index] = cache[key]
        return out.astype(dtype)

    return form


# ---------------------------------------------------------------------------
# Comparing the forms at ordinary arguments
# ---------------------------------------------------------------------------


def _disagrees(got: float, exact: Any, tolerance: float) -> bool:
    """|got - exact| > tolerance |exact| (a NaN or infinite ``got`` always disagrees)."""
    if not math.isfinite(got):
        return True
    return abs(mpmath.mpf(got) - exact) > tolerance * abs(exact)


def _exact_at(ctx: Any, mp_fn: MPFunction, h: float, what: str) -> Any:
    try:
        return mp_fn(ctx, ctx.mpf(h))
    except ExactReferenceError as exc:
        raise ValueError(f"{what}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's form may raise anything
        text = " ".join(str(exc).split())
        raise ValueError(
            f"{what} raised {type(exc).__name__}{': ' + text if text else ''} at {h:g}"
        ) from None


def _float_at(fn: Callable, points: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(fn(points), dtype=np.float64)


def _compare(what: str, got: np.ndarray, exact: list[Any], points: Sequence[float]) -> None:
    for g, e, h in zip(got.tolist(), exact, points, strict=True):
        if _disagrees(g, e, FLOAT_TOLERANCE):
            raise ValueError(
                f"{what} disagree at {h:g}: {g!r} (float64) vs {mpmath.nstr(e, 17)} (mpmath); "
                "they must define the same function"
            )


def _check_activation_forms(name: str, forms: dict[str, Any], kinks: tuple[float, ...]) -> None:
    """The float forms against the mpmath ones, and a given exact derivative against the
    derived one, at :data:`CHECK_POINTS` (derivatives not at a kink)."""
    ctx = mpmath.MPContext()
    ctx.prec = CHECK_PRECISION
    points = CHECK_POINTS
    smooth = [h for h in points if h not in kinks]
    exact = [
        _exact_at(ctx, forms["mp_forward"], h, f"activation {name!r}: mp_forward") for h in points
    ]
    _compare(
        f"activation {name!r}: forward and mp_forward",
        _float_at(forms["forward"], np.array(points)),
        exact,
        points,
    )
    what = f"activation {name!r}: mp_derivative"
    slope = [_exact_at(ctx, forms["mp_derivative"], h, what) for h in smooth]
    if forms["derived"] is not forms["mp_derivative"]:
        derived = [_exact_at(ctx, forms["derived"], h, what) for h in smooth]
        for g, e, h in zip(slope, derived, smooth, strict=True):
            if abs(g - e) > EXACT_TOLERANCE * abs(e):
                raise ValueError(
                    f"activation {name!r}: mp_derivative disagrees with the derivative of "
                    f"mp_forward at {h:g}: {mpmath.nstr(g, 17)} vs {mpmath.nstr(e, 17)}"
                )
    h = np.array(smooth)
    if forms["derivative"] is not None:
        _compare(
            f"activation {name!r}: derivative and the mpmath derivative",
            _float_at(forms["derivative"], h),
            slope,
            smooth,
        )
    if forms["derivative_from_output"] is not None:
        z = _float_at(forms["forward"], h)
        _compare(
            f"activation {name!r}: derivative_from_output and the mpmath derivative",
            _float_at(forms["derivative_from_output"], z),
            slope,
            smooth,
        )


def _callable(name: str, **forms: Any) -> None:
    for key, fn in forms.items():
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: {key} must be callable; got {type(fn).__name__} {fn!r}")


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------


def register_activation(
    name: str,
    forward: Callable[[np.ndarray], np.ndarray],
    mp_forward: MPFunction,
    *,
    derivative: Callable[[np.ndarray], np.ndarray] | None = None,
    mp_derivative: MPFunction | None = None,
    kinks: Sequence[float] = (),
    saturates: bool = False,
    derivative_from_output: Callable[[np.ndarray], np.ndarray] | None = None,
    replace: bool = False,
) -> Activation:
    """Register an activation under ``name`` and return its :class:`Activation`.

    Args:
        name: an identifier that is not a built-in activation (``"square_plus"``).
        forward: ``h -> act(h)`` on numpy arrays, elementwise, in the dtype of ``h``.
        mp_forward: ``(ctx, h) -> act(h)`` on one mpf of the private mpmath context ``ctx``.
        derivative: ``h -> act'(h)``, as ``forward``. Default: the exact derivative rounded
            to float64 and then to the dtype (:func:`float_from_exact`), a reference-quality
            stable form.
        mp_derivative: ``(ctx, h) -> act'(h)``, as ``mp_forward``. Default: derived from
            ``mp_forward`` by ``ctx.diff`` at verified precision (:func:`derived_derivative`).
        kinks: the finite points where ``act`` is not differentiable.
        saturates: whether ``act'(h) -> 0`` as ``|h|`` grows (as for sigmoid and tanh).
        derivative_from_output: ``z -> act'(h)`` from ``z = act(h)``, if autograd computes the
            derivative that way (as ``z (1 - z)`` for sigmoid).
        replace: replace a registration of ``name`` with other functions (else an error).

    Registering the same name with the same functions again returns the first registration.

    Raises:
        ValueError: one line naming the problem (see the module's text).
    """
    registry.check_new_name("activation", name)
    kinks = registry.check_kinks(f"activation {name!r}", kinks)
    given = (
        ("forward", forward),
        ("mp_forward", mp_forward),
        ("derivative", derivative),
        ("mp_derivative", mp_derivative),
        ("kinks", kinks),
        ("saturates", bool(saturates)),
        ("derivative_from_output", derivative_from_output),
    )
    same = registry.existing("activation", name, given, replace=replace)
    if same is not None:
        return same
    _callable(
        f"activation {name!r}",
        forward=forward,
        mp_forward=mp_forward,
        derivative=derivative,
        mp_derivative=mp_derivative,
        derivative_from_output=derivative_from_output,
    )
    for key in ("forward", "derivative", "derivative_from_output"):
        if dict(given)[key] is not None:
            registry.check_float_form(f"activation {name!r}: {key}", dict(given)[key])
    derived = derived_derivative(mp_forward, kinks, what=f"activation {name!r}")
    exact_slope = mp_derivative or derived
    forms = {**dict(given), "derived": derived, "mp_derivative": exact_slope}
    _check_activation_forms(name, forms, kinks)
    definition = Activation(
        name=name,
        forward=forward,
        derivative=derivative or float_from_exact(exact_slope),
        mp_forward=mp_forward,
        mp_derivative=exact_slope,
        kinks=kinks,
        saturates=bool(saturates),
        derivative_from_output=derivative_from_output,
    )
    return registry.add(
        registry.Registration("activation", name, definition, given), replace=replace
    )
