"""What an implementation declares it supports: :class:`Capabilities` and :func:`supports`.

Names (activations, losses, dtypes), the layout of ``x`` and ``y``, the kind of labels it
takes, and optionally the architecture it serves. The declaration limits what the search
generates and what the scanner varies. :mod:`gradverify.engine.implementations` re-exports
every name here.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gradverify.model.functions import loss_function
from gradverify.model.names import (
    DEFAULT_ACTIVATION_NAMES,
    DEFAULT_LOSS_NAMES,
    validate_names,
)

__all__ = [
    "CAPABILITIES_ATTRIBUTE",
    "LABEL_KINDS",
    "Capabilities",
    "Labels",
    "Layout",
    "capabilities_of",
    "implementation_name",
    "supports",
]

Layout = Literal["columns", "rows"]
Labels = Literal["any", "hard"]
LABEL_KINDS: tuple[str, ...] = ("any", "hard")
CAPABILITIES_ATTRIBUTE = "__gradverify_capabilities__"


def _positive(what: str, value: Any, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{what} must be a positive integer or a (min, max) pair of them, "
            f"e.g. {example}; got {value!r}"
        )
    return int(value)


def _count_range(what: str, value: Any, example: str) -> tuple[int, int] | None:
    """None, ``n`` or ``(min, max)`` as ``(min, max)``; ValueError naming ``what`` otherwise."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{what} must be a positive integer or a (min, max) pair of them, "
                f"e.g. {example}; got {value!r}"
            )
        lo, hi = (_positive(what, v, example) for v in value)
        if lo > hi:
            raise ValueError(f"{what} range ({lo}, {hi}) is empty: its min exceeds its max")
        return lo, hi
    n = _positive(what, value, example)
    return n, n


def _width_list(value: Any) -> tuple[int | None, ...] | None:
    """None, or every width (input first) as a positive int or None (free)."""
    if value is None:
        return None
    usage = (
        "widths lists the input width and the width of every layer, input first, each a "
        "positive integer or None for a free one, e.g. widths=(784, 30, 10) or "
        "widths=(None, 30, None)"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{usage}; got {value!r}")
    entries = tuple(value)
    if len(entries) < 2:
        raise ValueError(f"{usage}: at least 2 entries (the input and one layer); got {value!r}")
    for i, n in enumerate(entries):
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"{usage}; entry {i} is {n!r}")
    return tuple(None if n is None else int(n) for n in entries)


def _span(bounds: tuple[int, int]) -> str:
    lo, hi = bounds
    return str(lo) if lo == hi else f"{lo} to {hi}"


@dataclass(frozen=True)
class Capabilities:
    """What an implementation supports: names, layout, and optionally its architecture.

    Besides activation, loss and dtype names and the layout, an implementation that serves
    one architecture declares it; the search then generates and shrinks only inside it:

    * ``depth``: the number of layers (weight matrices), an int or a ``(min, max)`` pair;
    * ``widths``: every width, input first (``depth + 1`` entries), None for a free one,
      e.g. ``(784, 30, 10)`` or ``(None, 30, None)``; it fixes the depth;
    * ``batch``: the batch size, an int or a ``(min, max)`` pair.

    Ranges are stored as ``(min, max)``. With an output width of 1 the default losses leave
    out ``softmax_ce`` (a softmax over one unit has no gradient); naming it is an error.

    Names are kept in their canonical spelling (``"huber(2)"`` becomes ``"huber(2.0)"``, see
    :func:`gradverify.model.names.canonical_name`). Undeclared, the activations and losses
    are the original ones (:data:`~gradverify.model.names.DEFAULT_ACTIVATION_NAMES`,
    :data:`~gradverify.model.names.DEFAULT_LOSS_NAMES`): gelu, silu, leaky_relu, elu, l1 and
    huber are checked only when declared.

    ``labels`` is ``"any"`` (hard or soft labels) or ``"hard"``: only labels in {0, 1}, and
    one-hot columns for ``softmax_ce``, i.e. class indices (torch's ``CrossEntropyLoss`` with
    index targets).
    """

    activations: tuple[str, ...] = DEFAULT_ACTIVATION_NAMES
    losses: tuple[str, ...] = DEFAULT_LOSS_NAMES
    dtypes: tuple[str, ...] = ("float32", "float64")
    layout: Layout = "columns"
    name: str | None = field(default=None, compare=False)
    depth: int | tuple[int, int] | None = None
    widths: tuple[int | None, ...] | None = None
    batch: int | tuple[int, int] | None = None
    labels: Labels = "any"

    def __post_init__(self) -> None:
        object.__setattr__(self, "activations", validate_names("activation", self.activations))
        object.__setattr__(self, "losses", validate_names("loss", self.losses))
        object.__setattr__(self, "dtypes", validate_names("dtype", self.dtypes))
        if self.layout not in ("columns", "rows"):
            raise ValueError(f"layout must be 'columns' or 'rows'; got {self.layout!r}")
        if self.labels not in LABEL_KINDS:
            raise ValueError(f"labels must be 'any' or 'hard'; got {self.labels!r}")
        depth = _count_range("depth", self.depth, "depth=2 or depth=(2, 3)")
        widths = _width_list(self.widths)
        batch = _count_range("batch", self.batch, "batch=1 or batch=(1, 8)")
        if widths is not None and depth is not None and depth != (len(widths) - 1,) * 2:
            raise ValueError(
                f"widths={widths!r} has {len(widths)} entries, which is a network of depth "
                f"{len(widths) - 1} (the input and {len(widths) - 1} layers), but depth "
                f"{_span(depth)} is declared"
            )
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "batch", batch)
        if widths is not None and widths[-1] == 1:
            self._drop_multi_output_losses(widths)

    def _drop_multi_output_losses(self, widths: tuple[int | None, ...]) -> None:
        """With one declared output, leave out the default softmax_ce; refuse a declared one."""
        needing = [n for n in self.losses if loss_function(n).min_outputs > 1]
        if not needing:
            return
        if self.losses != DEFAULT_LOSS_NAMES:
            raise ValueError(
                f"loss {needing[0]!r} needs at least 2 outputs, but widths declares an output "
                f"width of 1 ({widths!r}); leave {needing[0]} out of the losses"
            )
        object.__setattr__(self, "losses", tuple(n for n in self.losses if n not in needing))

    @property
    def depth_range(self) -> tuple[int, int] | None:
        """``(min, max)`` depth declared by ``depth`` or ``widths``; None when free."""
        if self.widths is not None:
            return len(self.widths) - 1, len(self.widths) - 1
        return self.depth  # normalised to (min, max) in __post_init__

    @property
    def fixes_architecture(self) -> bool:
        """Whether depth, widths or batch are declared."""
        return self.depth is not None or self.widths is not None or self.batch is not None

    def outside(self, widths: Sequence[int], batch: int | None = None) -> str | None:
        """Why a network of ``widths`` (input first) and ``batch`` is outside, or None."""
        depth = len(widths) - 1
        bounds = self.depth_range
        if bounds is not None and not bounds[0] <= depth <= bounds[1]:
            return f"depth {depth} is outside the declared depth {_span(bounds)}"
        if self.widths is not None:
            for k, (n, want) in enumerate(zip(widths, self.widths, strict=True)):
                if want is not None and n != want:
                    return (
                        f"width {n} at position {k} differs from the declared widths "
                        f"{self.describe_widths()}"
                    )
        if batch is not None and self.batch is not None:
            lo, hi = self.batch
            if not lo <= batch <= hi:
                return f"batch {batch} is outside the declared batch {_span((lo, hi))}"
        return None

    def admits(self, widths: Sequence[int], batch: int | None = None) -> bool:
        """Whether a network of ``widths`` and ``batch`` is inside the declared architecture."""
        return self.outside(widths, batch) is None

    def describe_widths(self) -> str:
        if self.widths is None:
            return "(free)"
        return "(" + ", ".join("None" if n is None else str(n) for n in self.widths) + ")"

    def restricted(
        self,
        activations: Iterable[str] | None = None,
        losses: Iterable[str] | None = None,
        dtypes: Iterable[str] | None = None,
        *,
        depth: int | tuple[int, int] | None = None,
        widths: Sequence[int | None] | None = None,
        batch: int | tuple[int, int] | None = None,
        labels: Labels | None = None,
    ) -> Capabilities:
        """These capabilities with any given field replaced (e.g. from the command line).

        New ``widths`` without a new ``depth`` replace the declared depth too.
        """
        return Capabilities(
            activations=tuple(activations) if activations else self.activations,
            losses=tuple(losses) if losses else self.losses,
            dtypes=tuple(dtypes) if dtypes else self.dtypes,
            layout=self.layout,
            name=self.name,
            depth=depth if depth is not None else (None if widths is not None else self.depth),
            widths=widths if widths is not None else self.widths,
            batch=batch if batch is not None else self.batch,
            labels=labels if labels is not None else self.labels,
        )

    def to_dict(self) -> dict:
        out = {
            "activations": list(self.activations),
            "losses": list(self.losses),
            "dtypes": list(self.dtypes),
            "layout": self.layout,
        }
        if self.labels != "any":
            out["labels"] = self.labels
        for key in ("depth", "widths", "batch"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        return out


def supports(
    *,
    activations: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    layout: Layout = "columns",
    name: str | None = None,
    depth: int | tuple[int, int] | None = None,
    widths: Sequence[int | None] | None = None,
    batch: int | tuple[int, int] | None = None,
    labels: Labels = "any",
) -> Callable[[Callable], Callable]:
    """Decorator declaring what a backprop implementation supports.

    ``depth`` (layers: an int or a ``(min, max)`` pair), ``widths`` (input first, None for
    a free one) and ``batch`` declare an implementation that serves one architecture; the
    search then stays inside it. ``labels="hard"`` declares that it takes only hard labels
    (class indices for ``softmax_ce``). Parametrised names are spelled ``name(value)``:
    ``activations=("leaky_relu(0.2)",)``, ``losses=("huber(2.0)", "softmax_ce(0.1)")``.
    See :class:`Capabilities`.

    Example::

        @gradverify.supports(activations=("sigmoid",), losses=("bce",), dtypes=("float32",))
        def my_backprop(weights, biases, x, y, *, activations, loss): ...

        @gradverify.supports(depth=2)           # W1, W2 = weights
        def two_layers(weights, biases, x, y, *, activations, loss): ...

    Raises:
        ValueError: an unknown name, or an architecture that contradicts itself.
    """
    default = Capabilities()
    caps = Capabilities(
        activations=tuple(activations) if activations else default.activations,
        losses=tuple(losses) if losses else default.losses,
        dtypes=tuple(dtypes) if dtypes else default.dtypes,
        layout=layout,
        name=name,
        depth=depth,
        widths=widths,
        batch=batch,
        labels=labels,
    )

    def decorate(fn: Callable) -> Callable:
        setattr(fn, CAPABILITIES_ATTRIBUTE, caps)
        return fn

    return decorate


def capabilities_of(impl: Callable) -> Capabilities:
    """The declared capabilities of ``impl``, or the defaults (everything, float32/64)."""
    caps = getattr(impl, CAPABILITIES_ATTRIBUTE, None)
    return caps if isinstance(caps, Capabilities) else Capabilities()


def implementation_name(impl: Callable) -> str:
    """A readable name: the declared name, else ``module:qualname``."""
    caps = getattr(impl, CAPABILITIES_ATTRIBUTE, None)
    if isinstance(caps, Capabilities) and caps.name:
        return caps.name
    qualname = getattr(impl, "__qualname__", None) or type(impl).__qualname__
    module = getattr(impl, "__module__", None)
    return f"{module}:{qualname}" if module else qualname
