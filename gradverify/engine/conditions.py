"""Which features of a failing problem are necessary for its failure: hints from variants.

Each variant (:mod:`gradverify.model.rewrites`) changes one feature of a failing problem and
keeps the rest. When the implementation passes on every variant that removes a feature, that
feature is necessary for the failure, and the hint says so. The verdicts come from running
the checks: the caller (the search) passes ``verdict_of(problem) -> str``.

The hints of one failing check's numbers (a factor, a transpose, a layer, a precision) are
in :mod:`gradverify.engine.diagnose`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gradverify.model.functions import loss_function
from gradverify.model.network import Problem
from gradverify.model.rewrites import (
    activation_variant,
    hard_label_variant,
    hidden_identity_variant,
    loss_variant,
    shallower_variant,
    single_sample_variants,
    square_backward_layers,
    symmetric_variant,
    widened_variant,
)

__all__ = ["condition_hints"]

_VERDICTS = ("pass", "incorrect", "unstable", "error")


def condition_hints(
    problem: Problem,
    verdict_of: Callable[[Problem], str],
    kind: str,
    activations: Sequence[str] = (),
    losses: Sequence[str] = (),
    admits: Callable[[Problem], bool] | None = None,
) -> list[str]:
    """Which features of the failing ``problem`` are necessary for its failure of ``kind``.

    Args:
        problem: a (small, shrunk) problem on which the implementation fails with ``kind``.
        verdict_of: runs the implementation's check on a variant and returns its verdict
            ("pass", "incorrect", "unstable" or "error").
        kind: the verdict of ``problem`` ("incorrect", "error", ...).
        activations: the activations the implementation supports (alternatives to try).
        losses: the losses the implementation supports (alternatives to try).
        admits: whether a variant is inside the implementation's declared architecture
            (depth, widths, batch); a variant outside it is skipped, never run.

    A feature is reported as necessary when no variant that removes it fails with
    ``kind``: only at batch size > 1, only at depth >= k, only where a width is 1, only
    with a given activation, only with a given loss, only with non-identity hidden
    activations, only with non-symmetric square weight matrices (``W_i`` used where
    ``W_i^T`` belongs), and only with soft labels (some label strictly between 0 and 1).
    The hint says what the variants gave instead. When some other losses fail too and some
    do not, the hint names both. No hints when ``problem`` itself does not fail with
    ``kind``.
    """
    kind = str(kind)
    if verdict_of(problem) != kind:
        return []
    trial = _Trial(problem, verdict_of, kind, admits or (lambda variant: True))
    return [
        *_batch_hints(trial),
        *_depth_hints(trial),
        *_width_hints(trial),
        *_activation_hints(trial, activations),
        *_loss_hints(trial, losses),
        *_identity_hints(trial, activations),
        *_symmetric_hints(trial),
        *_label_hints(trial),
    ]


@dataclass(frozen=True)
class _Trial:
    """A failing problem, how to judge a variant of it, and which variants may be run."""

    problem: Problem
    verdict_of: Callable[[Problem], str]
    kind: str
    inside: Callable[[Problem], bool]

    def allowed(self, variants: Sequence[Problem | None]) -> list[Problem]:
        return [v for v in variants if v is not None and self.inside(v)]

    def gone(self, variants: Sequence[Problem]) -> tuple[bool, list[str]]:
        """Whether the failure is gone on every variant (none left: no), and their verdicts."""
        verdicts = [self.verdict_of(p) for p in variants]
        known = all(v in _VERDICTS for v in verdicts)  # e.g. not "not checked"
        return bool(verdicts) and known and self.kind not in verdicts, verdicts


def _outcome(verdicts: Sequence[str]) -> str:
    """'passes' when every variant passed, else the verdicts the variants got."""
    distinct = list(dict.fromkeys(verdicts))
    if distinct == ["pass"]:
        return "passes"
    return "gives " + " / ".join(distinct)


def _where(k: int, depth: int) -> str:
    return "the input" if k == 0 else ("the output layer" if k == depth else f"layer {k}")


def _output_is_free(loss: str) -> bool:
    return loss_function(loss).output_activation is None


def _batch_hints(trial: _Trial) -> list[str]:
    singles = trial.allowed(single_sample_variants(trial.problem))
    holds, verdicts = trial.gone(singles)
    if not holds:
        return []
    return [
        f"{trial.kind} only at batch size > 1: each of the {len(singles)} samples alone "
        f"(batch size 1) {_outcome(verdicts)}"
    ]


def _depth_hints(trial: _Trial) -> list[str]:
    depth = trial.problem.spec.depth
    if depth <= 1:
        return []
    by_depth = {}
    for drop in range(1, depth):
        variant = shallower_variant(trial.problem, drop)
        if variant is not None and trial.inside(variant):
            by_depth[depth - drop] = trial.verdict_of(variant)
    failing = [d for d, v in by_depth.items() if v == trial.kind] + [depth]
    k = min(failing)
    shallower = {d: v for d, v in by_depth.items() if d < k}
    if not (k > 1 and shallower and all(v in _VERDICTS for v in shallower.values())):
        return []
    depths = ", ".join(str(d) for d in sorted(shallower))
    return [
        f"{trial.kind} only at depth >= {k}: the same network without its first layers "
        f"(depth {depths}, fed with their activations) {_outcome(list(shallower.values()))}"
    ]


def _width_hints(trial: _Trial) -> list[str]:
    spec = trial.problem.spec
    ones = [k for k, n in enumerate(spec.widths) if n == 1]
    holds, verdicts = trial.gone(trial.allowed([widened_variant(trial.problem)]))
    if not (ones and holds):
        return []
    necessary = ones
    if len(ones) > 1:
        alone = {
            k: trial.verdict_of(v)
            for k in ones
            for v in trial.allowed([widened_variant(trial.problem, [k])])
        }
        necessary = [k for k, v in alone.items() if v in _VERDICTS and v != trial.kind]
    where = ", ".join(_where(k, spec.depth) for k in (necessary or ones))
    return [
        f"{trial.kind} only where a width is 1 ({where}): the same network with "
        f"{'that layer' if len(necessary or ones) == 1 else 'those layers'} widened to 2 "
        f"(the unit duplicated, the same function) {_outcome(verdicts)}"
    ]


def _activation_hints(trial: _Trial, activations: Sequence[str]) -> list[str]:
    spec = trial.problem.spec
    used = sorted(
        set(spec.activations[:-1])
        | ({spec.activations[-1]} if _output_is_free(spec.loss) else set())
    )
    hints = []
    for old in used:
        alternatives = {}
        for new in activations:
            if new != old:
                variant = activation_variant(trial.problem, old, new)
                if variant is not None and trial.inside(variant):
                    alternatives[new] = variant
        holds, verdicts = trial.gone(list(alternatives.values()))
        if holds:
            hints.append(
                f"{trial.kind} only with {old} layers: the same problem with {old} replaced by "
                f"{', '.join(alternatives)} {_outcome(verdicts)}"
            )
    return hints


def _loss_hints(trial: _Trial, losses: Sequence[str]) -> list[str]:
    """The loss a failure needs, from the same network with each other loss.

    Said only when some other loss passes: a failure of another kind there (an error, say)
    would not show that the loss matters.
    """
    variants = {new: loss_variant(trial.problem, new) for new in losses}
    verdicts = {
        loss: trial.verdict_of(v)
        for loss, v in variants.items()
        if v is not None and trial.inside(v)
    }
    if not verdicts or not all(v in _VERDICTS for v in verdicts.values()):
        return []
    failing = [loss for loss, v in verdicts.items() if v == trial.kind]
    others: dict[str, list[str]] = {}
    for loss, v in verdicts.items():
        if v != trial.kind:
            others.setdefault(v, []).append(loss)
    if "pass" not in others:
        return []
    instead = ", with ".join(
        f"{' and '.join(names)} {'passes' if v == 'pass' else f'gives {v}'}"
        for v, names in others.items()
    )
    own = trial.problem.spec.loss
    if not failing:
        return [f"{trial.kind} only with loss {own}: the same network with loss {instead}"]
    return [
        f"{trial.kind} with loss {own} and with {' and '.join(failing)}, but the same network "
        f"with loss {instead}"
    ]


def _identity_hints(trial: _Trial, activations: Sequence[str]) -> list[str]:
    if "identity" not in activations:
        return []
    holds, verdicts = trial.gone(trial.allowed([hidden_identity_variant(trial.problem)]))
    if not holds:
        return []
    return [
        f"{trial.kind} only with non-identity hidden activations: with every hidden "
        f"activation replaced by identity (derivative 1) it {_outcome(verdicts)}; "
        "suspect an activation derivative in the backward pass (missing or wrong)"
    ]


def _symmetric_hints(trial: _Trial) -> list[str]:
    holds, verdicts = trial.gone(trial.allowed([symmetric_variant(trial.problem)]))
    if not holds:
        return []
    layers = ", ".join(f"W_{i}" for i in square_backward_layers(trial.problem))
    return [
        f"{trial.kind} only with non-symmetric square weights: with {layers} made symmetric it "
        f"{_outcome(verdicts)}; the backward pass probably uses W_i where W_i^T belongs"
    ]


def _label_hints(trial: _Trial) -> list[str]:
    holds, verdicts = trial.gone(trial.allowed([hard_label_variant(trial.problem)]))
    if not holds:
        return []
    one_hot = loss_function(trial.problem.spec.loss).labels == "distribution"
    made = "one-hot" if one_hot else "0 or 1"
    return [
        f"{trial.kind} only with soft labels: with every label made hard ({made}) it "
        f"{_outcome(verdicts)}; an implementation written for hard labels only can say so "
        'with @gradverify.supports(labels="hard") (or --labels hard, or labels = "hard" in '
        "[[tool.gradverify.implementations]]), and the search then generates only those"
    ]
