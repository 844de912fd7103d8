"""The names gradverify knows, and the one way a name it does not know is refused.

Activations, losses and dtypes are named by strings everywhere: in declarations
(``@supports``), on the command line, in ``[tool.gradverify]``, in the pytest plugin's options
and in the Hypothesis strategies. Every one of those surfaces checks its names here, so that
a wrong name gets the same one-line message wherever it is given::

    unknown activation 'swish'; known activations: sigmoid, tanh, relu, softplus, identity

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

Who uses what: ``Capabilities`` (so ``@supports`` and the adapters), the strategies, the
options and ``[tool.gradverify]`` call :func:`validate_names`; the lookups
:func:`gradverify.model.functions.activation` and ``loss_function`` and the policy and
formulation checks raise :func:`unknown_name`; :func:`gradverify.model.dtypes.usable_dtypes`
validates dtype names before it sets the unavailable ones aside; everything that turns a
dtype into a numpy dtype (:func:`gradverify.model.dtypes.resolve_dtype`: the scanner, the
adapters' dtype lists) raises :func:`unsupported_dtype`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ACTIVATION_NAMES",
    "DTYPE_NAMES",
    "KINDS",
    "LOSS_NAMES",
    "check_name",
    "check_table",
    "known_names",
    "unknown_name",
    "unsupported_dtype",
    "validate_names",
]

ACTIVATION_NAMES: tuple[str, ...] = ("sigmoid", "tanh", "relu", "softplus", "identity")
"""The activations of :data:`gradverify.model.functions.ACTIVATIONS`, in its order."""

LOSS_NAMES: tuple[str, ...] = ("bce", "mse", "softmax_ce")
"""The losses of :data:`gradverify.model.functions.LOSSES`, in its order."""

DTYPE_NAMES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
"""The floating-point formats under test (:data:`gradverify.model.dtypes.SUPPORTED_DTYPES`)."""

KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "activation": ("activations", ACTIVATION_NAMES),
    "loss": ("losses", LOSS_NAMES),
    "dtype": ("dtypes", DTYPE_NAMES),
}
"""kind -> (its plural, its known names)."""


def known_names(kind: str) -> tuple[str, ...]:
    """The known names of ``kind`` ("activation", "loss" or "dtype")."""
    try:
        return KINDS[kind][1]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}") from None


def _plural(kind: str) -> str:
    if kind in KINDS:
        return KINDS[kind][0]
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


def unknown_name(kind: str, name: object, known: Iterable[str] | None = None) -> ValueError:
    """The error for ``name`` not among ``known`` (default: the known names of ``kind``).

    ``unknown loss 'hinge'; known losses: bce, mse, softmax_ce``. Other closed sets use it
    with their own ``known``: ``unknown_name("policy", "lenient", POLICIES)`` is
    ``unknown policy 'lenient'; known policies: autograd, strict``.
    """
    listed = known_names(kind) if known is None else tuple(known)
    return ValueError(f"unknown {kind} {name!r}; known {_plural(kind)}: {', '.join(listed)}")


def check_name(kind: str, name: str, known: Iterable[str] | None = None) -> str:
    """``name`` if it is among ``known`` (default: the known names of ``kind``), else
    the ValueError of :func:`unknown_name`."""
    listed = known_names(kind) if known is None else tuple(known)
    if name not in listed:
        raise unknown_name(kind, name, listed)
    return name


def validate_names(kind: str, names: Iterable[str], *, empty_ok: bool = False) -> tuple[str, ...]:
    """``names`` as a tuple, every one a known name of ``kind`` ("activation", "loss", "dtype").

    Raises:
        ValueError: naming the first unknown name (see :func:`unknown_name`), or, unless
            ``empty_ok``, ``at least one {kind} is needed`` when there is none.
    """
    known = known_names(kind)
    given = tuple(names)
    for name in given:
        check_name(kind, name, known)
    if not given and not empty_ok:
        raise ValueError(f"at least one {kind} is needed")
    return given


def unsupported_dtype(dtype: object) -> ValueError:
    """The error for a dtype value that is not one of the four formats.

    A name is shown quoted (``unsupported dtype 'float8'``), a numpy dtype as numpy writes
    it (``unsupported dtype int32``).
    """
    shown = repr(dtype) if isinstance(dtype, str) else str(dtype)
    return ValueError(f"unsupported dtype {shown}; supported: {', '.join(DTYPE_NAMES)}")


def check_table(kind: str, table: Iterable[str]) -> None:
    """Raise RuntimeError unless ``table`` holds exactly the known names of ``kind``, in order.

    Run at import by the modules that define the activations, losses and dtypes, so that a
    name added there but not here (or the reverse) fails at once, naming both lists.
    """
    defined, known = tuple(table), known_names(kind)
    if defined != known:
        raise RuntimeError(
            f"the {_plural(kind)} defined ({', '.join(defined)}) differ from those "
            f"gradverify.model.names lists ({', '.join(known)}); add or remove the name "
            "in both places"
        )
