"""The network model in the question's notation, and one concrete gradient problem.

    h_i = W_i z_{i-1} + b_i,   z_i = act_i(h_i),   i = 1..L,   z_0 = x
    J   = mean over all elements of y of loss(h_L, z_L, y)

Samples are columns: ``x`` has shape ``(n_0, batch)``, ``y`` has shape ``(n_L, batch)``,
``W_i`` has shape ``(n_i, n_{i-1})`` and ``b_i`` has shape ``(n_i,)``. Layers are numbered
1..L as in the question; Python tuples hold them at index ``i - 1``.

Problems made from another problem (the interior companion, smaller or wider variants, other
activations or losses) are built in :mod:`gradverify.model.rewrites`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradverify.model.dtypes import dtype_name, resolve_dtype
from gradverify.model.functions import activation, has_fused_delta, loss_function

__all__ = ["ForwardPass", "NetworkSpec", "Problem", "cap_saturation", "forward"]


@dataclass(frozen=True)
class NetworkSpec:
    """The architecture: layer widths ``(n_0, ..., n_L)``, one activation per layer, a loss.

    Names may be given in any spelling (``"leaky_relu(0.2)"``, ``"huber(2)"``); the spec
    keeps the canonical one (:func:`gradverify.model.names.canonical_name`).
    """

    widths: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "activations", tuple(self.activations))
        if len(self.widths) < 2:
            raise ValueError(f"a network needs at least 2 widths (n_0, n_1); got {self.widths}")
        if any(w < 1 for w in self.widths):
            raise ValueError(f"every width must be at least 1; got {self.widths}")
        if len(self.activations) != self.depth:
            raise ValueError(
                f"expected {self.depth} activations (one per layer) for widths {self.widths}; "
                f"got {len(self.activations)}: {self.activations}"
            )
        # every name in its canonical spelling: "elu(1)" is "elu", "huber(2)" is "huber(2.0)"
        object.__setattr__(self, "activations", tuple(activation(a).name for a in self.activations))
        loss = loss_function(self.loss)
        object.__setattr__(self, "loss", loss.name)
        required = loss.output_activation
        if required is not None and self.activations[-1] != required:
            raise ValueError(
                f"loss {self.loss!r} needs a {required!r} output layer; "
                f"the last activation is {self.activations[-1]!r}"
            )

    @property
    def depth(self) -> int:
        """The number of layers L (weight matrices)."""
        return len(self.widths) - 1

    @property
    def parameter_count(self) -> int:
        return sum(self.widths[i + 1] * (self.widths[i] + 1) for i in range(self.depth))

    def describe(self) -> str:
        layers = " -> ".join(
            f"{w}({a})" for w, a in zip(self.widths[1:], self.activations, strict=True)
        )
        return f"{self.widths[0]} -> {layers}, loss {self.loss}"

    def to_dict(self) -> dict:
        return {
            "widths": list(self.widths),
            "activations": list(self.activations),
            "loss": self.loss,
        }


@dataclass(frozen=True)
class ForwardPass:
    """Float forward pass: ``h[i]`` and ``z[i]`` for layers 1..L at index i-1, plus ``z0 = x``."""

    x: np.ndarray
    h: tuple[np.ndarray, ...]
    z: tuple[np.ndarray, ...]

    def layer_input(self, layer_index: int) -> np.ndarray:
        """z_{i-1} for the layer at 0-based ``layer_index``."""
        return self.x if layer_index == 0 else self.z[layer_index - 1]


@dataclass(frozen=True)
class Problem:
    """One gradient problem: a spec, its parameters and one batch, all in one dtype.

    Attributes:
        spec: the architecture.
        weights: ``W_i`` of shape ``(n_i, n_{i-1})``, at index i-1.
        biases: ``b_i`` of shape ``(n_i,)``, at index i-1.
        x: inputs, shape ``(n_0, batch)``.
        y: labels, shape ``(n_L, batch)``.
    """

    spec: NetworkSpec
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        dtype = np.asarray(self.x).dtype
        conv = [np.array(a, dtype=dtype, copy=True) for a in (*self.weights, *self.biases)]
        depth = self.spec.depth
        object.__setattr__(self, "weights", tuple(conv[:depth]))
        object.__setattr__(self, "biases", tuple(conv[depth:]))
        object.__setattr__(self, "x", np.array(self.x, dtype=dtype, copy=True))
        object.__setattr__(self, "y", np.array(self.y, dtype=dtype, copy=True))
        self._validate()
        for a in (*self.weights, *self.biases, self.x, self.y):
            a.setflags(write=False)

    def _validate(self) -> None:
        w = self.spec.widths
        if len(self.weights) != self.spec.depth or len(self.biases) != self.spec.depth:
            raise ValueError(
                f"expected {self.spec.depth} weight matrices and bias vectors; "
                f"got {len(self.weights)} and {len(self.biases)}"
            )
        for i in range(self.spec.depth):
            if self.weights[i].shape != (w[i + 1], w[i]):
                raise ValueError(
                    f"W_{i + 1} should have shape {(w[i + 1], w[i])}; got {self.weights[i].shape}"
                )
            if self.biases[i].shape != (w[i + 1],):
                raise ValueError(
                    f"b_{i + 1} should have shape {(w[i + 1],)}; got {self.biases[i].shape}"
                )
        if self.x.ndim != 2 or self.x.shape[0] != w[0]:
            raise ValueError(f"x should have shape ({w[0]}, batch); got {self.x.shape}")
        if self.y.shape != (w[-1], self.x.shape[1]):
            raise ValueError(f"y should have shape {(w[-1], self.x.shape[1])}; got {self.y.shape}")
        if self.x.dtype.kind != "f" and dtype_name(self.x.dtype) != "bfloat16":
            raise ValueError(f"arrays must be floating point; got {self.x.dtype}")
        for a in (*self.weights, *self.biases, self.x, self.y):
            if not np.all(np.isfinite(a.astype(np.float64))):
                raise ValueError("parameters, inputs and labels must be finite")

    # -- construction ------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        spec: NetworkSpec,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        x: np.ndarray,
        y: np.ndarray,
        dtype: str | np.dtype = "float64",
    ) -> Problem:
        """Build a problem, rounding every array to ``dtype`` (round to nearest)."""
        dt = resolve_dtype(dtype)
        # every numpy error ignored, whatever the caller set: overflow to inf is rejected by
        # the validation below, and underflow to 0 or a subnormal is rounding, not an error
        with np.errstate(all="ignore"):
            cast = [np.asarray(a, dtype=np.float64).astype(dt) for a in (*weights, *biases, x, y)]
        depth = spec.depth
        return cls(spec, tuple(cast[:depth]), tuple(cast[depth : 2 * depth]), cast[-2], cast[-1])

    def astype(self, dtype: str | np.dtype) -> Problem:
        """The same problem rounded to another dtype (the reference then uses those values)."""
        return Problem.from_arrays(self.spec, self.weights, self.biases, self.x, self.y, dtype)

    def with_parameters(
        self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]
    ) -> Problem:
        return Problem.from_arrays(self.spec, weights, biases, self.x, self.y, self.dtype)

    # -- properties ----------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[1])

    # -- float64 evaluation (used by finite differences and scaling) ----------

    def float64_arrays(
        self,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """Writable float64 copies of ``(weights, biases, x, y)``, for evaluation and rewrites.

        The conversion is exact for every supported dtype, so values a rewrite only moves,
        copies or halves round back to themselves in ``self.dtype``.
        """
        return (
            [w.astype(np.float64) for w in self.weights],
            [b.astype(np.float64) for b in self.biases],
            self.x.astype(np.float64),
            self.y.astype(np.float64),
        )

    def forward64(self) -> ForwardPass:
        """The forward pass in float64 on this problem's (exactly converted) values.

        Computed once per problem (its arrays are read-only, so the pass cannot go stale) and
        read-only itself: the saturation, the rounding floors, the exact reference's
        cancellation estimate and the finite differences all share it.
        """
        cached = self.__dict__.get("_forward64")
        if cached is None:
            weights, biases, x, _ = self.float64_arrays()
            cached = forward(self.spec, weights, biases, x)
            for a in (cached.x, *cached.h, *cached.z):
                a.setflags(write=False)
            object.__setattr__(self, "_forward64", cached)
        return cached

    def __getstate__(self) -> dict:
        """The fields only: a cached forward pass is not sent to worker processes."""
        state = dict(self.__dict__)
        state.pop("_forward64", None)
        return state

    def loss64(self) -> float:
        """J in float64, with the stable loss form."""
        return float(loss_value(self.spec, self.forward64(), self.y.astype(np.float64)))

    def max_abs_logit(self) -> float:
        """The largest |h| over every layer: how far into saturation the problem reaches."""
        with np.errstate(all="ignore"):
            return float(max(np.max(np.abs(h)) for h in self.forward64().h))

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable data; floats are exact (repr round-trips)."""
        return {
            "spec": self.spec.to_dict(),
            "dtype": self.dtype_name,
            "weights": [w.astype(np.float64).tolist() for w in self.weights],
            "biases": [b.astype(np.float64).tolist() for b in self.biases],
            "x": self.x.astype(np.float64).tolist(),
            "y": self.y.astype(np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Problem:
        spec = NetworkSpec(
            tuple(data["spec"]["widths"]), tuple(data["spec"]["activations"]), data["spec"]["loss"]
        )
        return cls.from_arrays(
            spec,
            [np.array(w) for w in data["weights"]],
            [np.array(b) for b in data["biases"]],
            np.array(data["x"]),
            np.array(data["y"]),
            data["dtype"],
        )


def cap_saturation(
    spec: NetworkSpec,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    limit: float,
) -> None:
    """Scale each layer's float64 ``W_i`` and ``b_i`` in place so that its max |h_i| <= limit."""
    z = x
    with np.errstate(all="ignore"):
        for i, name in enumerate(spec.activations):
            h = weights[i] @ z + biases[i][:, None]
            peak = float(np.max(np.abs(h)))
            if peak > limit:
                weights[i] *= limit / peak
                biases[i] *= limit / peak
                h = weights[i] @ z + biases[i][:, None]
            z = activation(name).forward(h)


def forward(
    spec: NetworkSpec, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray
) -> ForwardPass:
    """The float forward pass in the arrays' own dtype."""
    hs, zs = [], []
    z = x
    with np.errstate(all="ignore"):
        for W, b, name in zip(weights, biases, spec.activations, strict=True):
            h = W @ z + b[:, None]
            z = activation(name).forward(h)
            hs.append(h)
            zs.append(z)
    return ForwardPass(x=x, h=tuple(hs), z=tuple(zs))


def loss_value(spec: NetworkSpec, fp: ForwardPass, y: np.ndarray) -> np.floating:
    """J = mean over all elements of the stable per-element loss."""
    with np.errstate(all="ignore"):
        return np.sum(loss_function(spec.loss).value(fp.h[-1], fp.z[-1], y)) / y.size


def output_delta(
    spec: NetworkSpec, fp: ForwardPass, y: np.ndarray, *, conventional: bool = False
) -> np.ndarray:
    """dJ/dh_L: the fused form where the loss has one, else dJ/dz_L (.) act_L'.

    ``act_L'`` is the stable form of ``h_L``, or with ``conventional`` the autograd form
    from ``z_L`` (:meth:`gradverify.model.functions.Activation.conventional_derivative`).
    """
    loss = loss_function(spec.loss)
    h, z = fp.h[-1], fp.z[-1]
    n = y.dtype.type(y.size)
    with np.errstate(all="ignore"):
        if has_fused_delta(loss):
            return loss.output_delta(h, z, y) / n
        act = activation(spec.activations[-1])
        slope = act.conventional_derivative(h, z) if conventional else act.derivative(h)
        return loss.naive_output_gradient(z, y) * slope / n
