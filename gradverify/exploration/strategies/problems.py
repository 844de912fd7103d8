"""Complete gradient problems: a network, its parameters and one batch, in one dtype.

Each hidden layer (its width, activation, scale and ``[W | b]``) is one block of choices, so
the shrinker removes whole layers. Every other part is drawn directly in the problem's
block, each array a choice per row (:mod:`.arrays`); a list of names with one entry (a
single dtype or loss) is no choice at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from gradverify.engine.implementations import Capabilities
from gradverify.exploration.strategies.architecture import (
    Architecture,
    architecture,
    batch_sizes,
    draw_one,
    dtype_names,
    integers,
    output_activations,
)
from gradverify.exploration.strategies.samples import draw_inputs, draw_labels
from gradverify.exploration.strategies.saturation import (
    DEFAULT_MAX_LOG2_SCALE,
    DEFAULT_MAX_SATURATION,
    band_and_cap,
    draw_layer_parameters,
)
from gradverify.model.dtypes import unit_roundoff
from gradverify.model.functions import loss_function
from gradverify.model.names import validate_names
from gradverify.model.network import NetworkSpec, Problem, cap_saturation, forward

__all__ = ["problems"]

_MAX_RECAPS = 12
"""Lower caps tried (each half the previous) when a problem rounded to its dtype exceeds
``max_saturation``; past them the example is rejected (``assume``)."""


def problems(
    capabilities: Capabilities | None = None,
    *,
    dtypes: Sequence[str] | None = None,
    activations: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
    depth: int | tuple[int, int] | None = None,
    widths: Sequence[int | None] | None = None,
    batch: int | tuple[int, int] | None = None,
    max_depth: int = 3,
    max_width: int = 4,
    max_batch: int = 4,
    max_log2_scale: float = DEFAULT_MAX_LOG2_SCALE,
    max_saturation: float = DEFAULT_MAX_SATURATION,
) -> st.SearchStrategy[Problem]:
    """Complete gradient problems (:class:`gradverify.model.network.Problem`) in a supported dtype.

    Args:
        capabilities: limits activations, losses, dtypes, labels and the architecture
            (default: the original activations and losses, float32 and float64, any depth,
            widths and batch, hard and soft labels). Declared ``labels="hard"`` draws only
            hard labels (class indices for ``softmax_ce``).
        activations, losses: names in any spelling, parametrised ones as ``name(value)``
            (``"leaky_relu(0.2)"``, ``"huber(2.0)"``).
        dtypes, activations, losses: explicit lists that replace the declared ones.
        depth, widths, batch: an architecture that replaces the declared one (see
            :class:`gradverify.engine.implementations.Capabilities`); only its free parts are drawn.
        max_depth, max_width, max_batch: size limits of what is not declared.
        max_log2_scale: per-layer weight scales go up to ``2**max_log2_scale``.
        max_saturation: the largest ``max |h|`` of any layer (and the top of the logit band).

    Each hidden layer (its width, activation and parameters) is drawn as one block, so
    the shrinker removes whole layers. The arrays are drawn in float64 and rounded to the
    dtype (round to nearest); every value is finite there.
    """
    if not 1.0 <= max_saturation <= 6e4:
        raise ValueError(
            "max_saturation must be in [1, 6e4] (larger values are not "
            f"representable in float16); got {max_saturation}"
        )
    if not max_log2_scale >= 0:
        raise ValueError(f"max_log2_scale must be >= 0; got {max_log2_scale}")
    caps = capabilities or Capabilities()
    if depth is not None or widths is not None or batch is not None:
        caps = caps.restricted(depth=depth, widths=widths, batch=batch)
    acts = validate_names("activation", caps.activations if activations is None else activations)
    loss_names = validate_names("loss", caps.losses if losses is None else losses)
    arch = architecture(caps, loss_names, max_depth, max_width, max_batch)
    return _problems(
        dtype_names(caps, dtypes),
        acts,
        loss_names,
        arch,
        float(max_log2_scale),
        float(max_saturation),
        caps.labels,
    )


_MORE_LAYERS = integers(0, 3)
"""Another hidden layer? Yes (1 to 3) 3 times in 4; shrinks toward 0, no."""


@functools.lru_cache(maxsize=1024)
@st.composite
def _hidden_layer(
    draw: st.DrawFn,
    n_in: int,
    acts: tuple[str, ...],
    max_width: int,
    max_log2_scale: float,
    width: int | None = None,
    optional: bool = True,
) -> tuple[int, str, np.ndarray, np.ndarray] | None:
    """One more hidden layer ``(width, activation, W, b)``, or None to stop (shrinks to None).

    ``width``: fixed in advance, else drawn; ``optional``: False for a layer the declared
    minimum depth requires (then no "another layer?" choice is drawn).
    """
    if optional and not draw(_MORE_LAYERS):
        return None
    if width is None:
        width = draw(integers(1, max_width))
    act = draw_one(draw, acts)
    weights, biases = draw_layer_parameters(draw, width, n_in, max_log2_scale)
    return width, act, weights, biases


def _draw_layers(
    draw: st.DrawFn,
    arch: Architecture,
    acts: tuple[str, ...],
    loss: str,
    max_log2_scale: float,
) -> tuple[NetworkSpec, list[np.ndarray], list[np.ndarray]]:
    """The network: hidden layers one block each, then the output layer."""
    widths = [arch.width(draw, 0)]
    layer_acts: list[str] = []
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for i in range(arch.max_depth - 1):
        layer = draw(
            _hidden_layer(
                widths[-1],
                acts,
                arch.max_width,
                max_log2_scale,
                arch.widths[i + 1],
                i >= arch.min_depth - 1,
            )
        )
        if layer is None:
            break
        widths.append(layer[0])
        layer_acts.append(layer[1])
        weights.append(layer[2])
        biases.append(layer[3])
    else:
        # At the maximum depth, draw (and ignore) one more "another layer?" choice, as a list
        # does: deleting an earlier layer then leaves the choices after it aligned.
        if arch.max_depth > arch.min_depth:
            draw(_MORE_LAYERS)
    widths.append(arch.width(draw, len(widths), loss_function(loss).min_outputs))
    layer_acts.append(draw_one(draw, output_activations(loss, acts)))
    W, b = draw_layer_parameters(draw, widths[-1], widths[-2], max_log2_scale)
    weights.append(W)
    biases.append(b)
    return NetworkSpec(tuple(widths), tuple(layer_acts), loss), weights, biases


@st.composite
def _problems(
    draw: st.DrawFn,
    dtype_names: tuple[str, ...],
    acts: tuple[str, ...],
    loss_names: tuple[str, ...],
    arch: Architecture,
    max_log2_scale: float,
    max_saturation: float,
    label_kind: str = "any",
) -> Problem:
    dtype = draw_one(draw, dtype_names)
    loss = draw_one(draw, loss_names)
    spec, weights, biases = _draw_layers(draw, arch, acts, loss, max_log2_scale)
    batch = draw(batch_sizes(arch.max_batch, arch.min_batch))
    x = draw_inputs(draw, spec.widths[0], batch)
    y = draw_labels(draw, loss, spec.widths[-1], batch, label_kind)
    cap = max_saturation * _rounding_margin(spec, dtype)
    unshifted = ([W.copy() for W in weights], [b.copy() for b in biases])
    band_and_cap(draw, spec, weights, biases, x, cap)
    problem = _in_dtype(spec, weights, biases, x, y, dtype, max_saturation)
    weights, biases = unshifted
    for _ in range(_MAX_RECAPS):
        if problem is not None:
            return problem
        # Rounding to the dtype left max |h| over the cap or a value outside its range: the
        # band's bias shift (or weights of both signs) cancelled terms far larger than h,
        # whose rounding errors the margin does not cover. Keep the logits as drawn, capped
        # lower each time, until the dtype's own forward pass is inside the cap.
        cap_saturation(spec, weights, biases, x, cap)
        problem = _in_dtype(spec, weights, biases, x, y, dtype, max_saturation)
        cap /= 2
    assume(problem is not None)
    return problem


def _in_dtype(
    spec: NetworkSpec,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    dtype: str,
    max_saturation: float,
) -> Problem | None:
    """The problem in ``dtype``, or None when it is not finite there or exceeds the cap."""
    try:
        problem = Problem.from_arrays(spec, weights, biases, x, y, dtype)
    except ValueError:  # a parameter outside the dtype's range
        return None
    in_dtype = forward(spec, problem.weights, problem.biases, problem.x)
    finite = all(np.all(np.isfinite(np.asarray(h, dtype=np.float64))) for h in in_dtype.h)
    return problem if finite and problem.max_abs_logit() <= max_saturation else None


def _rounding_margin(spec: NetworkSpec, dtype: str) -> float:
    """How far below ``max_saturation`` to cap in float64 so the dtype's own forward stays under.

    Rounding the parameters and inputs to a 16-bit dtype and computing there moves each
    ``h`` by up to about ``(n + 1) u`` relatively per layer; float32 and float64 keep the cap.
    """
    if dtype not in ("float16", "bfloat16"):
        return 1.0
    u = unit_roundoff(dtype)
    return 1.0 / (1.0 + 2.0 * u * sum(n + 2 for n in spec.widths[:-1]))
