"""Registering your own loss: :func:`register_loss` (activations: :mod:`.registration`).

A registered loss is elementwise over the outputs, like ``bce`` and ``mse``, and the network
loss is its mean. Its forms:

* ``value(h, z, y)``: the float per-element loss on numpy arrays (``h`` the output logits,
  ``z = act_L(h)`` the outputs, ``y`` the labels), elementwise and dtype-preserving;
* ``mp_value(ctx, h, z, y)``: the same on one mpf of each (a private mpmath context).

With an ``output_activation`` (``"sigmoid"``, ``"identity"``, a registered one) the loss is
*fused* with it, like ``bce``: its derivative is ``d loss / d h`` (``output_delta``,
``mp_output_delta``: ``(h, z, y)``), derived from ``mp_value(ctx, h, act(h), y)`` when not
given. Without one the loss works on any output layer, like ``mse``: its derivative is
``d loss / d z`` (``output_gradient``, ``mp_output_gradient``: ``(z, y)``), derived from
``mp_value`` in ``z`` when not given, and ``h`` is not meaningful in its forms (it is given
the value of ``z`` where gradverify has no logits).

Derivations and checks are those of :mod:`gradverify.exact.registration` (verified
precision, the same tolerances, one-line ValueErrors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

from gradverify.exact.registration import (
    CHECK_POINTS,
    CHECK_PRECISION,
    EXACT_TOLERANCE,
    FLOAT_TOLERANCE,
    derived_derivative,
    float_from_exact,
)
from gradverify.model import registry
from gradverify.model.functions import Loss, activation, loss_function
from gradverify.model.names import check_name

__all__ = ["CHECK_LABELS", "register_loss"]

CHECK_LABELS: tuple[float, ...] = (0.0, 1.0, 0.25)
"""Labels at which a loss's forms are compared (with every point of CHECK_POINTS)."""


# ---------------------------------------------------------------------------
# ADAPTER: the fields of gradverify.model.functions.Loss
# ---------------------------------------------------------------------------

_EXACT_DZ_FIELDS = ("mp_output_gradient", "mp_naive_output_gradient")
"""Names under which ``Loss`` may carry the exact ``d loss / d z`` of an unfused loss; the
exact reference must use it in place of mse's ``2 (z - y)`` for such a loss to work."""


def _loss_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Loss)}


def _exact_dz_field() -> str | None:
    fields = _loss_fields()
    return next((f for f in _EXACT_DZ_FIELDS if f in fields), None)


def _gradient_error(gradient: Callable) -> Callable:
    """``(z, y, e_z, u) -> bound`` on the error of a float ``d loss / d z`` computed in a
    dtype of unit roundoff ``u`` at a ``z`` that errs by ``e_z``: how far ``gradient`` moves
    within ``z +- e_z`` (a jump at a kink included), plus 4 roundings of its value."""

    def bound(z: np.ndarray, y: np.ndarray, e_z: np.ndarray, u: float) -> np.ndarray:
        z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
        step = np.maximum(e_z, 4 * np.spacing(np.abs(z)))
        with np.errstate(all="ignore"):
            centre = gradient(z, y)
            moved = np.maximum(
                np.abs(gradient(z + step, y) - centre), np.abs(gradient(z - step, y) - centre)
            )
            total = np.where(np.isfinite(moved), moved, 0.0) + 4 * u * np.abs(centre)
        return np.where(np.isfinite(total), total, np.inf)

    return bound


def _optional_fields(forms: dict[str, Any]) -> dict[str, Any]:
    """``kink_sides`` and ``labels`` where given (only when ``Loss`` has them)."""
    extra: dict[str, Any] = {}
    if not forms["fused"] and "output_gradient_error" in _loss_fields():
        extra["output_gradient_error"] = _gradient_error(forms["output_gradient"])
    if forms["kinks"]:
        kinks = forms["kinks"]
        extra["kink_sides"] = lambda h, z, y: [z - y - k for k in kinks]
    if forms["labels"] != "any":
        extra["labels"] = forms["labels"]
    return extra


def _unfused() -> Any:
    """The marker of a loss without a fused delta (``has_fused_delta`` compares with it)."""
    return loss_function("mse").output_delta


def _objects(fn: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """A per-mpf form as the object-array form ``Loss`` holds: ``(ctx, *arrays)``."""

    def on_arrays(ctx: Any, *arrays: np.ndarray) -> np.ndarray:
        return np.frompyfunc(lambda *v: fn(ctx, *v), len(arrays), 1)(*arrays)

    return on_arrays


# ---------------------------------------------------------------------------
# Derivatives and checks
# ---------------------------------------------------------------------------


def _fused_delta(mp_value: Callable, output: str, what: str) -> Callable:
    """``(ctx, h, z, y) -> d/dh mp_value(ctx, h, act(h), y)`` at verified precision."""
    act = activation(output)

    def delta(ctx: Any, h: Any, z: Any, y: Any) -> Any:
        def along(c: Any, t: Any) -> Any:
            return mp_value(c, t, act.mp_forward(c, t), y)

        return derived_derivative(along, act.kinks, what=what)(ctx, h)

    return delta


def _gradient(mp_value: Callable, kinks: tuple[float, ...], what: str) -> Callable:
    """``(ctx, z, y) -> d/dz mp_value(ctx, z, z, y)`` at verified precision (one-sided next
    to a kink ``z - y = k``)."""

    def gradient(ctx: Any, z: Any, y: Any) -> Any:
        at = tuple(y + k for k in kinks)
        return derived_derivative(lambda c, t: mp_value(c, t, t, y), at, what=what)(ctx, z)

    return gradient


def _exact(ctx: Any, fn: Callable, args: tuple, what: str) -> Any:
    try:
        return fn(ctx, *(ctx.mpf(a) for a in args))
    except Exception as exc:  # noqa: BLE001 - the user's form may raise anything
        text = " ".join(str(exc).split())
        shown = ", ".join(f"{a:g}" for a in args)
        raise ValueError(
            f"{what} raised {type(exc).__name__}{': ' + text if text else ''} at ({shown})"
        ) from None


def _compare(what: str, got: float, exact: Any, at: tuple, tolerance: float) -> None:
    finite = np.isfinite(got)
    if not finite or abs(mpmath.mpf(got) - exact) > tolerance * abs(exact):
        shown = ", ".join(f"{a:g}" for a in at)
        raise ValueError(
            f"{what} disagree at ({shown}): {got!r} vs {mpmath.nstr(exact, 17)} (mpmath); "
            "they must define the same function"
        )


def _check_forms(name: str, forms: dict[str, Any], output: str | None) -> None:
    """The float forms against the mpmath ones at ordinary (h, y); a given exact derivative
    against the derived one."""
    ctx = mpmath.MPContext()
    ctx.prec = CHECK_PRECISION
    act = activation(output) if output is not None else None
    for h in CHECK_POINTS:
        z = float(act.forward(np.array([h]))[0]) if act is not None else h
        mz = _exact(ctx, act.mp_forward, (h,), f"activation {output!r}") if act else ctx.mpf(h)
        for y in CHECK_LABELS:
            _check_at(ctx, name, forms, (h, z, y), mz)


def _check_at(ctx: Any, name: str, forms: dict[str, Any], at: tuple, mz: Any) -> None:
    h, z, y = at
    arrays = tuple(np.array([[v]]) for v in at)
    exact = _exact(ctx, lambda c, a, b, d: forms["mp_value"](c, a, mz, d), (h, z, y), "mp_value")
    got = float(forms["value"](*arrays)[0, 0])
    _compare(f"loss {name!r}: value and mp_value", got, exact, at, FLOAT_TOLERANCE)
    fused = forms["fused"]
    if not fused and z - y in forms["kinks"]:
        return  # the derivative at a kink is a convention
    key, args = ("mp_output_delta", (h, z, y)) if fused else ("mp_output_gradient", (z, y))
    slope = _exact(ctx, forms[key], args, key)
    derived = forms["derived"]
    if derived is not forms[key]:
        _compare(
            f"loss {name!r}: {key} and the derivative of mp_value",
            float(slope),
            _exact(ctx, derived, args, key),
            at,
            EXACT_TOLERANCE,
        )
    float_form = forms["output_delta" if fused else "output_gradient"]
    got = float(float_form(*(arrays if fused else arrays[1:]))[0, 0])
    _compare(f"loss {name!r}: {key[3:]} and {key}", got, slope, at, FLOAT_TOLERANCE)


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------


def _check_output(name: str, output: Any) -> str | None:
    if output is None:
        return None
    try:
        return check_name("activation", output)
    except ValueError as exc:
        raise ValueError(f"loss {name!r}: output_activation: {exc}") from None


def _derivatives(name: str, given: dict[str, Any], output: str | None) -> dict[str, Any]:
    """The four derivative forms (given or derived) and the derived exact one."""
    what = f"loss {name!r}"
    if output is not None:
        derived = _fused_delta(given["mp_value"], output, what)
        exact = given["mp_output_delta"] or derived
        floats = given["output_delta"] or _delta_from_exact(exact, output)
        return {"derived": derived, "mp_output_delta": exact, "output_delta": floats}
    derived = _gradient(given["mp_value"], given["kinks"], what)
    exact = given["mp_output_gradient"] or derived
    floats = given["output_gradient"] or float_from_exact(exact)
    return {"derived": derived, "mp_output_gradient": exact, "output_gradient": floats}


def _delta_from_exact(exact: Callable, output: str) -> Callable:
    """The float ``d loss / d h`` from the exact one (``z`` taken exactly from ``h``)."""
    act = activation(output)
    on_h_y = float_from_exact(lambda c, h, y: exact(c, h, act.mp_forward(c, h), y))

    def output_delta(h: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return on_h_y(h, y)

    return output_delta


def _definition(name: str, given: dict[str, Any], forms: dict[str, Any]) -> Loss:
    if forms["fused"]:
        return Loss(
            name=name,
            output_activation=forms["output_activation"],
            value=given["value"],
            output_delta=forms["output_delta"],
            mp_value=_objects(given["mp_value"]),
            mp_output_delta=_objects(forms["mp_output_delta"]),
            naive_output_gradient=_no_naive_gradient,
            **_optional_fields(forms),
        )
    field = _exact_dz_field()
    if field is None:
        raise ValueError(
            f"loss {name!r}: a loss for any output layer (output_activation=None) needs an "
            "exact reference that takes the loss's own d loss/d z, which this gradverify "
            "lacks; give output_activation (e.g. 'identity') to register it fused"
        )
    return Loss(
        name=name,
        output_activation=None,
        value=given["value"],
        output_delta=_unfused(),
        mp_value=_objects(given["mp_value"]),
        mp_output_delta=_unfused(),
        naive_output_gradient=forms["output_gradient"],
        **{field: _objects(forms["mp_output_gradient"])},
        **_optional_fields(forms),
    )


def _no_naive_gradient(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    raise NotImplementedError("a fused registered loss has no d loss/d z form; use output_delta")


def register_loss(
    name: str,
    value: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    mp_value: Callable[[Any, Any, Any, Any], Any],
    *,
    output_activation: str | None = None,
    output_delta: Callable[..., np.ndarray] | None = None,
    mp_output_delta: Callable[..., Any] | None = None,
    output_gradient: Callable[..., np.ndarray] | None = None,
    mp_output_gradient: Callable[..., Any] | None = None,
    kinks: Sequence[float] = (),
    labels: str = "any",
    replace: bool = False,
) -> Loss:
    """Register a loss under ``name`` and return its :class:`Loss` (see the module's text).

    Args:
        name: an identifier that is not a built-in loss (``"log_cosh"``).
        value: ``(h, z, y) -> loss`` per element on numpy arrays, in their dtype.
        mp_value: ``(ctx, h, z, y) -> loss`` on one mpf each.
        output_activation: the output activation the loss is fused with, or None for any.
        output_delta, mp_output_delta: ``d loss / d h`` as ``(h, z, y)`` (fused losses only).
            Default: derived from ``mp_value`` at verified precision; the float form is the
            exact one rounded (a reference-quality stable form).
        output_gradient, mp_output_gradient: ``d loss / d z`` as ``(z, y)`` (losses without
            an output activation only); defaults as above.
        kinks: for a loss without an output activation, the values of ``z - y`` where it is
            not differentiable (``(0.0,)`` for an absolute error); the derived derivative is
            one-sided next to them and the finite differences step around them.
        labels: the labels the search draws: ``"any"`` (default), ``"probability"`` (each
            in [0, 1], as a cross-entropy needs) or ``"distribution"`` (columns summing
            to 1).
        replace: replace a registration of ``name`` with other functions (else an error).

    Raises:
        ValueError: one line naming the problem.
    """
    registry.check_new_name("loss", name)
    output = _check_output(name, output_activation)
    kinks = registry.check_kinks(f"loss {name!r}", kinks)
    _check_options(name, output, kinks, labels)
    given = {
        "value": value,
        "mp_value": mp_value,
        "output_activation": output,
        "output_delta": output_delta,
        "mp_output_delta": mp_output_delta,
        "output_gradient": output_gradient,
        "mp_output_gradient": mp_output_gradient,
        "kinks": kinks,
        "labels": labels,
    }
    same = registry.existing("loss", name, given.items(), replace=replace)
    if same is not None:
        return same
    _check_given(name, given, output)
    forms = {**given, **_derivatives(name, given, output), "fused": output is not None}
    definition = _definition(name, given, forms)
    _check_forms(name, forms, output)
    registration = registry.Registration("loss", name, definition, tuple(given.items()))
    return registry.add(registration, replace=replace)


def _check_given(name: str, given: dict[str, Any], output: str | None) -> None:
    for key, fn in given.items():
        if key in _FORMS and fn is not None and not callable(fn):
            raise ValueError(f"loss {name!r}: {key} must be callable; got {type(fn).__name__}")
    wrong = ("output_gradient", "mp_output_gradient") if output else ("output_delta",)
    wrong += () if output else ("mp_output_delta",)
    for key in wrong:
        if given[key] is not None:
            kind = "with" if output else "without"
            raise ValueError(
                f"loss {name!r}: {key} does not apply to a loss {kind} an output_activation"
            )
    registry.check_float_form(f"loss {name!r}: value", given["value"], 3)
    if output is not None and given["output_delta"] is not None:
        registry.check_float_form(f"loss {name!r}: output_delta", given["output_delta"], 3)
    if output is None and given["output_gradient"] is not None:
        _check_two(name, given["output_gradient"])


_FORMS = (
    "value",
    "mp_value",
    "output_delta",
    "mp_output_delta",
    "output_gradient",
    "mp_output_gradient",
)

LABELS = ("any", "probability", "distribution")
"""The label sets a registered loss may ask for (``Loss.labels``)."""


def _check_options(name: str, output: str | None, kinks: tuple, labels: object) -> None:
    if labels not in LABELS:
        raise ValueError(
            f"loss {name!r}: labels must be one of {', '.join(LABELS)}; got {labels!r}"
        )
    if kinks and output is not None:
        raise ValueError(
            f"loss {name!r}: kinks (values of z - y) apply to a loss without an "
            "output_activation only"
        )
    missing = [f for f, on in (("kink_sides", kinks), ("labels", labels != "any")) if on]
    missing = [f for f in missing if f not in _loss_fields()]
    if missing:
        raise ValueError(f"loss {name!r}: this gradverify's Loss has no {missing[0]!r}")


def _check_two(name: str, fn: Callable) -> None:
    """``output_gradient(z, y)`` checked as a three-argument form that ignores ``h``."""
    registry.check_float_form(f"loss {name!r}: output_gradient", lambda h, z, y: fn(z, y), 3)
