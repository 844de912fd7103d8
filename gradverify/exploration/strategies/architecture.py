"""What a network may look like: dtype, depth, widths, activations, loss and batch.

A declared architecture (``depth``, ``widths``, ``batch`` in the capabilities, see
:class:`gradverify.engine.implementations.Capabilities`) is respected: only its free parts
are drawn, so every problem, shrunk ones included, has the declared depth, widths and batch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from gradverify.engine.implementations import Capabilities
from gradverify.model.dtypes import usable_dtypes
from gradverify.model.functions import loss_function
from gradverify.model.names import validate_names
from gradverify.model.network import NetworkSpec

__all__ = [
    "Architecture",
    "architecture",
    "batch_sizes",
    "draw_one",
    "dtype_names",
    "dtypes",
    "integers",
    "network_specs",
    "output_activations",
]


@functools.lru_cache(maxsize=256)
def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """``st.integers(lo, hi)``, built once (building a strategy costs more than drawing it)."""
    return st.integers(lo, hi)


@functools.lru_cache(maxsize=256)
def _sampled(options: tuple) -> st.SearchStrategy:
    return st.sampled_from(options)


def draw_one(draw: st.DrawFn, options: Sequence):
    """One of ``options`` (shrinks toward the first); no choice at all when there is one."""
    return options[0] if len(options) == 1 else draw(_sampled(tuple(options)))


def dtype_names(
    capabilities: Capabilities | None = None, names: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The dtypes of ``names`` (default: the declared ones) that this machine provides."""
    declared = (capabilities or Capabilities()).dtypes
    usable, _ = usable_dtypes(validate_names("dtype", declared if names is None else names))
    return tuple(usable)


def dtypes(
    capabilities: Capabilities | None = None, names: Sequence[str] | None = None
) -> st.SearchStrategy[str]:
    """Dtype names the implementation supports and this machine provides (e.g. 'float32')."""
    return st.sampled_from(dtype_names(capabilities, names))


def batch_sizes(max_batch: int = 4, min_batch: int = 1) -> st.SearchStrategy[int]:
    """Batch sizes min_batch..max_batch; shrinks toward min_batch."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1; got {max_batch}")
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= max_batch; got {min_batch}, {max_batch}")
    return integers(min_batch, max_batch)


@dataclass(frozen=True)
class Architecture:
    """What may be drawn: depth and batch ranges, and the widths fixed in advance."""

    min_depth: int
    max_depth: int
    widths: tuple[int | None, ...]  # max_depth + 1 entries; None: drawn in 1..max_width
    max_width: int
    min_batch: int
    max_batch: int

    def width(self, draw: st.DrawFn, k: int, minimum: int = 1) -> int:
        """The width of layer ``k`` (0: the inputs): fixed, or drawn (shrinks toward minimum)."""
        fixed = self.widths[k] if k < len(self.widths) else None
        if fixed is not None:
            return fixed
        return draw(integers(minimum, max(minimum, self.max_width)))


def architecture(
    caps: Capabilities, loss_names: Sequence[str], max_depth: int, max_width: int, max_batch: int
) -> Architecture:
    """The declared architecture of ``caps``, else the size limits; ValueError if it is empty."""
    if max_depth < 1 or max_width < 1:
        raise ValueError(
            f"max_depth and max_width must be at least 1; got {max_depth}, {max_width}"
        )
    batch_sizes(max_batch)  # validates max_batch
    lo, hi = caps.depth_range or (1, max_depth)
    widths = caps.widths or (None,) * (hi + 1)
    needing = [n for n in loss_names if loss_function(n).min_outputs > 1]
    if caps.widths is not None and caps.widths[-1] == 1 and needing:
        raise ValueError(
            f"loss {needing[0]!r} needs at least 2 outputs, but the declared widths "
            f"{caps.describe_widths()} end in 1; leave {needing[0]} out of the losses"
        )
    min_batch, top_batch = caps.batch or (1, max_batch)
    return Architecture(lo, hi, widths, max_width, min_batch, top_batch)


def output_activations(loss: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """Output activations valid for ``loss``: the one it requires, else the allowed ones."""
    required = loss_function(loss).output_activation
    return (required,) if required is not None else tuple(allowed)


def network_specs(
    capabilities: Capabilities | None = None,
    *,
    activations: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
    min_depth: int = 1,
    max_depth: int = 3,
    max_width: int = 4,
) -> st.SearchStrategy[NetworkSpec]:
    """Network specs limited to what ``capabilities`` (or the explicit lists) allow.

    Hidden layers use the allowed activations. The output layer uses the activation the
    loss requires (sigmoid for ``bce``, identity for ``softmax_ce``) or, for ``mse``, any
    allowed one. Widths are 1..max_width (``softmax_ce`` gets at least 2 outputs, since a
    softmax over one unit has a zero gradient). Shrinks toward depth ``min_depth``,
    width 1 and the first listed activation and loss. A depth or widths declared in
    ``capabilities`` replace ``min_depth``/``max_depth`` and the drawn widths.
    """
    caps = capabilities or Capabilities()
    acts = validate_names("activation", caps.activations if activations is None else activations)
    loss_names = validate_names("loss", caps.losses if losses is None else losses)
    if not 1 <= min_depth <= max_depth:
        raise ValueError(f"need 1 <= min_depth <= max_depth; got {min_depth}, {max_depth}")
    if max_width < 1:
        raise ValueError(f"max_width must be at least 1; got {max_width}")
    arch = architecture(caps, loss_names, max_depth, max_width, 1)
    if caps.depth_range is None:
        arch = dataclasses.replace(arch, min_depth=min_depth)
    return _network_specs(acts, loss_names, arch)


@st.composite
def _network_specs(
    draw: st.DrawFn, acts: tuple[str, ...], loss_names: tuple[str, ...], arch: Architecture
) -> NetworkSpec:
    loss = draw_one(draw, loss_names)
    depth = draw(integers(arch.min_depth, arch.max_depth))
    widths = [arch.width(draw, k) for k in range(depth)]
    min_out = loss_function(loss).min_outputs
    widths.append(arch.width(draw, depth, min_out))
    hidden = [draw_one(draw, acts) for _ in range(depth - 1)]
    output = draw_one(draw, output_activations(loss, acts))
    return NetworkSpec(tuple(widths), (*hidden, output), loss)
