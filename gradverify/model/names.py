"""The names gradverify knows, and the one way a name it does not know is refused.

Activations, losses and dtypes are named by strings everywhere: in declarations
(``@supports``), on the command line, in ``[tool.gradverify]``, in the pytest plugin's options
and in the Hypothesis strategies. Every one of those surfaces checks its names here, so that
a wrong name gets the same one-line message wherever it is given::

    unknown activation 'swish'; known activations: sigmoid, tanh, relu, softplus, identity, ...

Two messages, each worded only here:

* :func:`unknown_name`: a *name* that is not among the known ones (an activation, loss or
  dtype name, and, through the same function, the names of other closed sets such as the
  accuracy policies): ``unknown {kind} {name!r}; known {plural}: ...``;
* :func:`unsupported_dtype`: a dtype *value* given to
  :func:`gradverify.model.dtypes.resolve_dtype` (a name, a numpy dtype or a type, e.g.
  ``int32``) that is not one of the four formats: ``unsupported dtype ...; supported: ...``.

The known names are listed here, in the order messages show them, so that checking a name
costs no import of numpy (the pytest plugin checks its options at start-up).
:mod:`gradverify.model.functions` checks at import that its tables hold exactly these
names (:func:`check_table`); :data:`gradverify.model.dtypes.SUPPORTED_DTYPES` is
:data:`DTYPE_NAMES`.

Parametrised names
------------------
A few functions take exactly one float parameter, written in parentheses after the name,
the same way everywhere (network specs, ``@supports``, command-line flags, the config, the
adapters)::

    leaky_relu(0.2)   elu(0.5)   huber(2.0)   softmax_ce(0.1)

========================  ==================  =========  ==========================
name                      parameter           default    allowed
========================  ==================  =========  ==========================
``leaky_relu``            negative_slope      0.01       any finite number
``elu``                   alpha               1.0        > 0
``huber``                 delta               1.0        > 0
``softmax_ce``            epsilon (label      0.0        0 <= epsilon <= 1
                          smoothing)
========================  ==================  =========  ==========================

The bare name means the default (``leaky_relu`` is ``leaky_relu(0.01)``). The *canonical*
spelling (:func:`canonical_name`) is the bare name when the parameter equals the default,
else ``name(repr(float(value)))``: ``huber(2)`` is ``huber(2.0)``, ``elu(1)`` is ``elu``.
:func:`validate_names` returns canonical spellings, so a spec, a declaration and a
network built from them all carry the same string. :func:`parse_name` splits a name into
its base name and parameter; a malformed one is refused with a one-line message
(``leaky_relu(abc)``, ``elu(-1)``, ``huber(0)``, ``sigmoid(2.0)``).

Registered names
----------------
:data:`EXTRA_NAMES` maps each of ``"activation"`` and ``"loss"`` to a mutable dict of
extra (user-registered) names, each to the object that defines it (an
:class:`~gradverify.model.functions.Activation` or :class:`~gradverify.model.functions.Loss`
whose ``name`` is the key). A registration API (``gradverify.model.registry``) fills it;
every surface that checks names here then accepts the registered ones, lists them after the
built-in ones in messages, and :func:`gradverify.model.functions.activation` /
``loss_function`` return the registered object. Registered names take no parameter; a
registered name cannot shadow a built-in one (the built-in wins, :func:`parse_name` never
consults EXTRA_NAMES for a built-in base name).

Who uses what: ``Capabilities`` (so ``@supports`` and the adapters), the strategies, the
options and ``[tool.gradverify]`` call :func:`validate_names`; the lookups
:func:`gradverify.model.functions.activation` and ``loss_function`` and the policy and
formulation checks raise :func:`unknown_name`; :func:`gradverify.model.dtypes.usable_dtypes`
validates dtype names before it sets the unavailable ones aside; everything that turns a
dtype into a numpy dtype (:func:`gradverify.model.dtypes.resolve_dtype`: the scanner, the
adapters' dtype lists) raises :func:`unsupported_dtype`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ACTIVATION_NAMES",
    "DEFAULT_ACTIVATION_NAMES",
    "DEFAULT_LOSS_NAMES",
    "DTYPE_NAMES",
    "EXTRA_NAMES",
    "KINDS",
    "LOSS_NAMES",
    "PARAMETERS",
    "Parameter",
    "base_name",
    "canonical_name",
    "check_name",
    "check_table",
    "known_names",
    "parse_name",
    "unknown_name",
    "unsupported_dtype",
    "validate_names",
]

ACTIVATION_NAMES: tuple[str, ...] = (
    "sigmoid",
    "tanh",
    "relu",
    "softplus",
    "identity",
    "gelu",
    "gelu_tanh",
    "silu",
    "leaky_relu",
    "elu",
)
"""The built-in activations of :data:`gradverify.model.functions.ACTIVATIONS`, in its order."""

LOSS_NAMES: tuple[str, ...] = ("bce", "mse", "softmax_ce", "l1", "huber")
"""The built-in losses of :data:`gradverify.model.functions.LOSSES`, in its order."""

DEFAULT_ACTIVATION_NAMES: tuple[str, ...] = ACTIVATION_NAMES[:5]
"""What an implementation supports when it declares nothing, and what the search draws then:
the original five. The others are drawn only when declared or asked for."""

DEFAULT_LOSS_NAMES: tuple[str, ...] = LOSS_NAMES[:3]
"""The losses an undeclared implementation is checked with: bce, mse, softmax_ce."""

DTYPE_NAMES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
"""The floating-point formats under test (:data:`gradverify.model.dtypes.SUPPORTED_DTYPES`)."""

KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "activation": ("activations", ACTIVATION_NAMES),
    "loss": ("losses", LOSS_NAMES),
    "dtype": ("dtypes", DTYPE_NAMES),
}
"""kind -> (its plural, its built-in names)."""

EXTRA_NAMES: dict[str, dict[str, object]] = {"activation": {}, "loss": {}}
"""Registered (user-defined) names per kind, each to the object that defines it; see above."""


@dataclass(frozen=True)
class Parameter:
    """The one float parameter of a parametrised function, and the values it may take."""

    name: str
    default: float
    minimum: float | None = None
    maximum: float | None = None
    minimum_allowed: bool = True  # False: the minimum itself is excluded (> instead of >=)

    def problem(self, value: float) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if not math.isfinite(value):
            return f"{self.name} must be finite"
        low = self.minimum
        if low is not None and (value < low or (value == low and not self.minimum_allowed)):
            return f"{self.name} must be {'>=' if self.minimum_allowed else '>'} {low:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{self.name} must be <= {self.maximum:g}"
        return None


PARAMETERS: dict[str, dict[str, Parameter]] = {
    "activation": {
        "leaky_relu": Parameter("negative_slope", 0.01),
        "elu": Parameter("alpha", 1.0, minimum=0.0, minimum_allowed=False),
    },
    "loss": {
        "huber": Parameter("delta", 1.0, minimum=0.0, minimum_allowed=False),
        "softmax_ce": Parameter("epsilon", 0.0, minimum=0.0, maximum=1.0),
    },
    "dtype": {},
}
"""kind -> base name -> its :class:`Parameter`, for the parametrised built-in functions."""

_PARAMETRISED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)", re.DOTALL)


def known_names(kind: str) -> tuple[str, ...]:
    """The known names of ``kind`` ("activation", "loss" or "dtype"): built-in, then registered."""
    try:
        built_in = KINDS[kind][1]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}") from None
    extra = tuple(n for n in EXTRA_NAMES.get(kind, {}) if n not in built_in)
    return built_in + extra


def _plural(kind: str) -> str:
    if kind in KINDS:
        return KINDS[kind][0]
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


def unknown_name(kind: str, name: object, known: Iterable[str] | None = None) -> ValueError:
    """The error for ``name`` not among ``known`` (default: the known names of ``kind``).

    ``unknown loss 'hinge'; known losses: bce, mse, softmax_ce, l1, huber``. Other closed sets
    use it with their own ``known``: ``unknown_name("policy", "lenient", POLICIES)`` is
    ``unknown policy 'lenient'; known policies: autograd, strict``.
    """
    listed = known_names(kind) if known is None else tuple(known)
    return ValueError(f"unknown {kind} {name!r}; known {_plural(kind)}: {', '.join(listed)}")


def _parameter_value(kind: str, name: str, base: str, raw: str) -> float:
    parameter = PARAMETERS.get(kind, {}).get(base)
    if parameter is None:
        raise ValueError(f"{kind} {base!r} takes no parameter; got {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{kind} {name!r}: {parameter.name} must be a number, as in "
            f"{base}({parameter.default!r}); got {raw.strip()!r}"
        ) from None
    problem = parameter.problem(value)
    if problem is not None:
        raise ValueError(f"{kind} {name!r}: {problem}; got {value!r}")
    return value + 0.0  # -0.0 becomes 0.0


def parse_name(kind: str, name: object) -> tuple[str, float | None]:
    """``(base name, parameter)`` of an activation, loss or dtype name in any spelling.

    The parameter is the default for a bare parametrised name (``("elu", 1.0)`` for ``"elu"``)
    and None for a function without one (``("tanh", None)``, registered names, dtypes).

    Raises:
        ValueError: an unknown base name (:func:`unknown_name`), a parameter given to a
            function that takes none, or a parameter that is not an allowed number.
    """
    known = known_names(kind)
    if not isinstance(name, str):
        raise unknown_name(kind, name, known)
    match = _PARAMETRISED.fullmatch(name)
    base = match.group(1) if match else name
    if base not in known:
        raise unknown_name(kind, name, known)
    if match is not None:
        return base, _parameter_value(kind, name, base, match.group(2))
    parameter = PARAMETERS.get(kind, {}).get(base)
    return base, None if parameter is None else parameter.default


def base_name(name: str, kind: str | None = None) -> str:
    """The name without its parameter: ``"huber"`` for ``"huber(2.0)"`` (not validated
    unless ``kind`` is given)."""
    if kind is not None:
        return parse_name(kind, name)[0]
    match = _PARAMETRISED.fullmatch(name) if isinstance(name, str) else None
    return match.group(1) if match else name


def canonical_name(kind: str, name: object) -> str:
    """The one spelling of ``name``: bare at the default parameter, else ``base(repr(value))``.

    ``canonical_name("activation", "leaky_relu(0.01)") == "leaky_relu"``,
    ``canonical_name("loss", "huber(2)") == "huber(2.0)"``.
    """
    base, value = parse_name(kind, name)
    parameter = PARAMETERS.get(kind, {}).get(base)
    if parameter is None or value is None or value == parameter.default:
        return base
    return f"{base}({float(value)!r})"


def check_name(kind: str, name: str, known: Iterable[str] | None = None) -> str:
    """``name`` if it is among ``known``, else the ValueError of :func:`unknown_name`.

    Without ``known``, ``name`` is a name of ``kind`` in any spelling and its canonical
    spelling is returned (see :func:`canonical_name`).
    """
    if known is None:
        return canonical_name(kind, name)
    listed = tuple(known)
    if name not in listed:
        raise unknown_name(kind, name, listed)
    return name


def validate_names(kind: str, names: Iterable[str], *, empty_ok: bool = False) -> tuple[str, ...]:
    """``names`` as a tuple of canonical spellings, every one a known name of ``kind``.

    ``kind`` is "activation", "loss" or "dtype". Parametrised spellings are accepted
    (``"leaky_relu(0.2)"``) and returned canonical (``"huber(1)"`` becomes ``"huber"``).

    Raises:
        ValueError: naming the first unknown or malformed name (see :func:`parse_name`), or,
            unless ``empty_ok``, ``at least one {kind} is needed`` when there is none.
    """
    known_names(kind)  # an unknown kind fails first
    given = tuple(names)
    canonical = tuple(canonical_name(kind, name) for name in given)
    if not given and not empty_ok:
        raise ValueError(f"at least one {kind} is needed")
    return canonical


def unsupported_dtype(dtype: object) -> ValueError:
    """The error for a dtype value that is not one of the four formats.

    A name is shown quoted (``unsupported dtype 'float8'``), a numpy dtype as numpy writes
    it (``unsupported dtype int32``).
    """
    shown = repr(dtype) if isinstance(dtype, str) else str(dtype)
    return ValueError(f"unsupported dtype {shown}; supported: {', '.join(DTYPE_NAMES)}")


def check_table(kind: str, table: Iterable[str]) -> None:
    """Raise RuntimeError unless ``table`` holds exactly the built-in names of ``kind``, in order.

    Run at import by the modules that define the activations, losses and dtypes, so that a
    name added there but not here (or the reverse) fails at once, naming both lists.
    """
    defined, known = tuple(table), KINDS[kind][1] if kind in KINDS else known_names(kind)
    if defined != known:
        raise RuntimeError(
            f"the {_plural(kind)} defined ({', '.join(defined)}) differ from those "
            f"gradverify.model.names lists ({', '.join(known)}); add or remove the name "
            "in both places"
        )
