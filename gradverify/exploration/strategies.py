"""Hypothesis strategies for gradient problems, for the search and for users' own ``@given`` tests.

Every strategy here shrinks toward the simple end: fewer layers, narrower layers, batch 1,
weights and inputs of 1 (then 0, -1, 1/2, ...), hard labels of 0, and *smaller
saturation*. Each hidden layer (width, activation, parameters) is one block of choices, so
the shrinker removes whole layers. Saturation is drawn on purpose (a plain
N(0, 1) draw almost never reaches it) in two ways, both of which shrink toward none:

* a per-layer scale ``2**s`` on the weights and biases, with ``s`` uniform in
  ``[0, max_log2_scale]`` (log-uniform magnitudes);
* a target band for the output logits: ``|h_L|`` is moved to about ``T`` (log-uniform in
  ``[1, max_saturation]``) by shifting the last bias, which is where a saturated sigmoid and
  BCE break.

Shrinking an instability therefore walks its saturation down toward the threshold where
it starts. Every drawn problem is finite in its dtype: each layer's ``max |h|`` is capped
at ``max_saturation`` (1024 by default, well inside float16's range) before rounding.

A declared architecture (``depth``, ``widths``, ``batch`` in the capabilities, see
:class:`gradverify.engine.implementations.Capabilities`) is respected: only the free parts are
drawn, so every problem, shrunk ones included, has the declared depth, widths and batch.
Arrays of more than 256 entries (a 784-wide input layer) are filled by a numpy generator
seeded from one drawn integer, which keeps large layers within Hypothesis's budget; they
shrink as a whole, toward seed 0.

Example::

    from hypothesis import given
    import gradverify
    from gradverify.exploration.strategies import problems

    @given(problems(losses=["bce"], dtypes=["float32"]))
    def test_my_backprop(problem):
        gradverify.assert_gradients_match(my_backprop, problem)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradverify.engine.implementations import Capabilities
from gradverify.model.dtypes import unit_roundoff, usable_dtypes
from gradverify.model.functions import loss_function
from gradverify.model.names import validate_names
from gradverify.model.network import NetworkSpec, Problem, cap_saturation, forward

__all__ = [
    "DEFAULT_MAX_SATURATION",
    "LABEL_KINDS",
    "batch_sizes",
    "dtypes",
    "inputs",
    "labels",
    "logit_bands",
    "network_specs",
    "parameters",
    "problems",
    "saturation_scales",
]

DEFAULT_MAX_SATURATION = 1024.0
"""Largest max |h| per layer that the strategies produce (the reference is exact far beyond)."""

DEFAULT_MAX_LOG2_SCALE = 6.0
"""Per-layer weight scales are ``2**s`` with ``s`` in ``[0, 6]``, i.e. up to 64."""


def _unit_floats() -> st.SearchStrategy[float]:
    """Floats in [-1, 1] that shrink toward 1.0, then other simple values (0, -1, 0.5, ...).

    Drawn as ``1 - v`` for ``v`` in [0, 2], because Hypothesis shrinks ``v`` toward 0: a
    shrunk counterexample then has weights and inputs of 1 rather than 0, which would
    hide most of its gradient (``dW = delta z^T`` is 0 where ``z`` is).
    """
    return _UNIT_FLOATS


_UNIT_FLOATS = st.floats(
    0.0, 2.0, allow_nan=False, allow_infinity=False, allow_subnormal=False
).map(lambda v: 1.0 - v)
_ELEMENTS = {
    "unit": _UNIT_FLOATS,
    "probability": st.floats(0.0, 1.0, allow_subnormal=False),
    "binary": st.sampled_from([0.0, 1.0]),
}


ELEMENTWISE_LIMIT = 256
"""Arrays up to this many entries are drawn entry by entry; larger ones from a seeded generator."""


def _generated_array(shape: tuple[int, ...], elements: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if elements == "unit":
        return 1.0 - rng.uniform(0.0, 2.0, shape)
    if elements == "probability":
        return rng.uniform(0.0, 1.0, shape)
    return rng.integers(0, 2, shape).astype(np.float64)


@functools.lru_cache(maxsize=512)
def _float_array(shape: tuple[int, ...], elements: str = "unit") -> st.SearchStrategy:
    """float64 arrays of ``shape``; every entry is drawn (and shrunk) on its own.

    ``elements`` is "unit" ([-1, 1], see :func:`_unit_floats`), "probability" ([0, 1]) or
    "binary" ({0, 1}). Strategies are cached: building one per draw costs more than drawing.
    An array of more than :data:`ELEMENTWISE_LIMIT` entries comes from a numpy generator
    seeded by one drawn integer (same ranges), so a 784-wide layer stays cheap to draw.
    """
    if math.prod(shape) > ELEMENTWISE_LIMIT:
        return st.integers(0, 2**32 - 1).map(functools.partial(_generated_array, shape, elements))
    return hnp.arrays(np.float64, shape, elements=_ELEMENTS[elements], fill=st.nothing())


def dtypes(
    capabilities: Capabilities | None = None, names: Sequence[str] | None = None
) -> st.SearchStrategy[str]:
    """Dtype names the implementation supports and this machine provides (e.g. 'float32')."""
    declared = (capabilities or Capabilities()).dtypes
    usable, _ = usable_dtypes(validate_names("dtype", declared if names is None else names))
    return st.sampled_from(usable)


_dtype_strategy = dtypes  # ``problems`` has a parameter named ``dtypes``


def batch_sizes(max_batch: int = 4, min_batch: int = 1) -> st.SearchStrategy[int]:
    """Batch sizes min_batch..max_batch; shrinks toward min_batch."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1; got {max_batch}")
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= max_batch; got {min_batch}, {max_batch}")
    return st.integers(min_batch, max_batch)


@dataclass(frozen=True)
class _Architecture:
    """What may be drawn: depth and batch ranges, and the widths fixed in advance."""

    min_depth: int
    max_depth: int
    widths: tuple[int | None, ...]  # max_depth + 1 entries; None: drawn in 1..max_width
    max_width: int
    min_batch: int
    max_batch: int

    def width(self, draw: st.DrawFn, k: int, minimum: int = 1) -> int:
        fixed = self.widths[k] if k < len(self.widths) else None
        if fixed is not None:
            return fixed
        return draw(st.integers(minimum, max(minimum, self.max_width)))


def _architecture(
    caps: Capabilities, loss_names: Sequence[str], max_depth: int, max_width: int, max_batch: int
) -> _Architecture:
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
    return _Architecture(lo, hi, widths, max_width, min_batch, top_batch)


def _loss_output_activations(loss: str, allowed: Sequence[str]) -> tuple[str, ...]:
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
    arch = _architecture(caps, loss_names, max_depth, max_width, 1)
    if caps.depth_range is None:
        arch = dataclasses.replace(arch, min_depth=min_depth)
    return _network_specs(acts, loss_names, arch)


@st.composite
def _network_specs(
    draw: st.DrawFn, acts: tuple[str, ...], loss_names: tuple[str, ...], arch: _Architecture
) -> NetworkSpec:
    loss = draw(st.sampled_from(loss_names))
    depth = draw(st.integers(arch.min_depth, arch.max_depth))
    widths = [arch.width(draw, k) for k in range(depth)]
    min_out = loss_function(loss).min_outputs
    widths.append(arch.width(draw, depth, min_out))
    hidden = [draw(st.sampled_from(acts)) for _ in range(depth - 1)]
    output = draw(st.sampled_from(_loss_output_activations(loss, acts)))
    return NetworkSpec(tuple(widths), (*hidden, output), loss)


def inputs(n_inputs: int, batch: int) -> st.SearchStrategy[np.ndarray]:
    """Inputs ``x`` of shape ``(n_inputs, batch)`` with entries in [-1, 1] (float64).

    Shrinks toward 1.0 entries (see :func:`_unit_floats`)."""
    return _float_array((n_inputs, batch))


LABEL_KINDS: tuple[str, ...] = ("any", "hard")
"""What :func:`labels` may draw: hard or soft labels, or only hard ones (class indices)."""


@st.composite
def labels(draw: st.DrawFn, loss: str, n_outputs: int, batch: int, kind: str = "any") -> np.ndarray:
    """Labels ``y`` of shape ``(n_outputs, batch)`` for ``loss`` (float64).

    Hard labels ({0, 1}; one-hot columns for ``softmax_ce``) or soft labels ([0, 1];
    columns summing to 1 for ``softmax_ce``). Shrinks toward hard labels of 0 (class 0).
    ``kind="hard"`` (the capability ``labels="hard"``) draws only hard labels: class
    indices, as one-hot columns, for ``softmax_ce``.
    """
    if kind not in LABEL_KINDS:
        raise ValueError(f"labels kind must be 'any' or 'hard'; got {kind!r}")
    soft = False if kind == "hard" else draw(st.booleans())
    shape = (n_outputs, batch)
    if loss_function(loss).labels == "distribution":
        if not soft:
            classes = draw(
                hnp.arrays(
                    np.int64, (batch,), elements=st.integers(0, n_outputs - 1), fill=st.nothing()
                )
            )
            y = np.zeros(shape)
            y[classes, np.arange(batch)] = 1.0
            return y
        weights = draw(_float_array(shape, "probability"))
        totals = weights.sum(axis=0, keepdims=True)
        return np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / n_outputs)
    if not soft:
        return draw(_float_array(shape, "binary"))
    return draw(_float_array(shape, "probability"))


@functools.lru_cache(maxsize=64)
def saturation_scales(max_log2_scale: float = DEFAULT_MAX_LOG2_SCALE) -> st.SearchStrategy[float]:
    """Log-uniform scale factors ``2**s``, ``s`` in ``[0, max_log2_scale]``; shrinks toward 1."""
    if not max_log2_scale >= 0:
        raise ValueError(f"max_log2_scale must be >= 0; got {max_log2_scale}")
    return st.floats(0.0, float(max_log2_scale)).map(lambda s: float(2.0**s))


@functools.lru_cache(maxsize=64)
def logit_bands(max_saturation: float = DEFAULT_MAX_SATURATION) -> st.SearchStrategy[float | None]:
    """A target ``|h_L|`` for the output logits, log-uniform in ``[1, max_saturation]``, or None.

    Shrinks toward None (no band), then toward smaller targets.
    """
    if not max_saturation >= 1:
        raise ValueError(f"max_saturation must be >= 1; got {max_saturation}")
    top = math.log2(max_saturation)
    return st.none() | st.floats(0.0, top).map(lambda t: float(2.0**t))


@functools.lru_cache(maxsize=1024)
@st.composite
def _layer_parameters(
    draw: st.DrawFn, n_out: int, n_in: int, max_log2_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with entries in [-1, 1] times one drawn scale ``2**s``."""
    scale = draw(saturation_scales(max_log2_scale))
    weights = draw(_float_array((n_out, n_in))) * scale
    biases = draw(_float_array((n_out,))) * scale
    return weights, biases


@st.composite
def _band_andcap_saturation(
    draw: st.DrawFn,
    spec: NetworkSpec,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    max_saturation: float,
) -> None:
    """Maybe move the output logits to a drawn band ``+-T``; then cap every layer (in place)."""
    x = np.asarray(x, dtype=np.float64)
    band = draw(logit_bands(max_saturation))
    if band is not None:
        signs = np.array([-1.0 if draw(st.booleans()) else 1.0 for _ in range(spec.widths[-1])])
        h_last = forward(spec, weights, biases, x).h[-1]
        with np.errstate(all="ignore"):
            shift = signs * band - h_last.mean(axis=1)
        if np.all(np.isfinite(shift)):
            biases[-1] = biases[-1] + shift
    cap_saturation(spec, weights, biases, x, max_saturation)


@st.composite
def parameters(
    draw: st.DrawFn,
    spec: NetworkSpec,
    x: np.ndarray,
    *,
    max_log2_scale: float = DEFAULT_MAX_LOG2_SCALE,
    max_saturation: float = DEFAULT_MAX_SATURATION,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases for ``spec`` on inputs ``x``, reaching saturation on purpose (float64).

    Entries are drawn in [-1, 1] and scaled per layer by :func:`saturation_scales`; then the
    last bias may be shifted so that each output unit's logits sit around ``+-T`` for a
    :func:`logit_bands` target ``T``. Finally every layer is capped at
    ``max |h| <= max_saturation``. Returns ``(weights, biases)``; ``W_i`` has shape
    ``(n_i, n_{i-1})``.
    """
    w = spec.widths
    weights, biases = [], []
    for i in range(spec.depth):
        W, b = draw(_layer_parameters(w[i + 1], w[i], max_log2_scale))
        weights.append(W)
        biases.append(b)
    draw(_band_andcap_saturation(spec, weights, biases, x, max_saturation))
    return weights, biases


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
    caps = capabilities or Capabilities()
    if depth is not None or widths is not None or batch is not None:
        caps = caps.restricted(depth=depth, widths=widths, batch=batch)
    acts = validate_names("activation", caps.activations if activations is None else activations)
    loss_names = validate_names("loss", caps.losses if losses is None else losses)
    arch = _architecture(caps, loss_names, max_depth, max_width, max_batch)
    return _problems(
        _dtype_strategy(caps, dtypes),
        acts,
        loss_names,
        arch,
        max_log2_scale,
        max_saturation,
        caps.labels,
    )


def _more_layers() -> st.SearchStrategy[bool]:
    """Another hidden layer? True 3 times in 4; shrinks toward False."""
    return _MORE_LAYERS


_MORE_LAYERS = st.integers(0, 3).map(bool)


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
    if optional and not draw(_more_layers()):
        return None
    if width is None:
        width = draw(st.integers(1, max_width))
    act = draw(st.sampled_from(acts))
    weights, biases = draw(_layer_parameters(width, n_in, max_log2_scale))
    return width, act, weights, biases


@st.composite
def _problems(
    draw: st.DrawFn,
    dtype_strategy: st.SearchStrategy[str],
    acts: tuple[str, ...],
    loss_names: tuple[str, ...],
    arch: _Architecture,
    max_log2_scale: float,
    max_saturation: float,
    label_kind: str = "any",
) -> Problem:
    dtype = draw(dtype_strategy)
    loss = draw(st.sampled_from(loss_names))
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
            draw(_more_layers())
    min_out = loss_function(loss).min_outputs
    widths.append(arch.width(draw, len(widths), min_out))
    layer_acts.append(draw(st.sampled_from(_loss_output_activations(loss, acts))))
    W, b = draw(_layer_parameters(widths[-1], widths[-2], max_log2_scale))
    weights.append(W)
    biases.append(b)
    spec = NetworkSpec(tuple(widths), tuple(layer_acts), loss)
    batch = draw(batch_sizes(arch.max_batch, arch.min_batch))
    x = draw(inputs(spec.widths[0], batch))
    y = draw(labels(loss, spec.widths[-1], batch, label_kind))
    cap = max_saturation * _rounding_margin(spec, dtype)
    draw(_band_andcap_saturation(spec, weights, biases, x, cap))
    return Problem.from_arrays(spec, weights, biases, x, y, dtype)


def _rounding_margin(spec: NetworkSpec, dtype: str) -> float:
    """How far below ``max_saturation`` to cap in float64 so the dtype's own forward stays under.

    Rounding the parameters and inputs to a 16-bit dtype and computing there moves each
    ``h`` by up to about ``(n + 1) u`` relatively per layer; float32 and float64 keep the cap.
    """
    if dtype not in ("float16", "bfloat16"):
        return 1.0
    u = unit_roundoff(dtype)
    return 1.0 / (1.0 + 2.0 * u * sum(n + 2 for n in spec.widths[:-1]))
