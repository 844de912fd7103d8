"""The torch adapter: nn.Module models and functions of tensors, gradients by autograd.

Findings checked here: ``nn.Sigmoid`` followed by ``nn.BCELoss`` returns a gradient of 0 at
saturation, where the exact gradient of every sample's logit is about +-1/N (its backward
pass divides by ``max(s(1 - s), 1e-12)`` and then multiplies by ``s(1 - s) = 0``), so it is
``unstable``; ``nn.BCEWithLogitsLoss`` on the logits passes, also at saturation.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install gradverify[torch])"
)
nn = torch.nn

from gradverify.edges.adapters.torch import from_function, from_module, mlp_factory  # noqa: E402
from gradverify.engine.check import check_problem  # noqa: E402
from gradverify.engine.harness import call_backprop  # noqa: E402
from gradverify.engine.results import Verdict  # noqa: E402
from gradverify.exact.reference import reference_gradients  # noqa: E402
from gradverify.model.network import NetworkSpec, Problem  # noqa: E402
from tests.strategies import called_directly, random_problem  # noqa: E402

NETWORKS = [
    ((3, 4, 1), ("tanh", "sigmoid")),
    ((4, 5, 3, 2), ("sigmoid", "softplus", "sigmoid")),
    ((5, 6, 1), ("relu", "sigmoid")),
]


def saturated_problem(label: float, dtype: str, shift: float = 60.0) -> Problem:
    """[3, 4, 1] tanh/sigmoid, batch 4, every output logit near ``+-shift``, one label."""
    problem = random_problem(
        (3, 4, 1),
        ("tanh", "sigmoid"),
        batch=4,
        seed=1,
        dtype=dtype,
        output_shift=shift if label == 0.0 else -shift,
    )
    return Problem.from_arrays(
        problem.spec,
        problem.weights,
        problem.biases,
        problem.x,
        np.full_like(problem.y, label, dtype=np.float64),
        dtype,
    )


# --- nn.BCELoss after nn.Sigmoid: unstable at saturation --------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_bce_loss_model_is_unstable_at_saturation(dtype, label):
    problem = saturated_problem(label, dtype)
    assert problem.max_abs_logit() > 55
    impl = from_module(nn.BCELoss())
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.UNSTABLE, str(result)
    assert result.interior_verdict is Verdict.PASS

    # The numbers: each sample's dJ/dh_L is sigmoid(h) - y over N = 4, about +1/4 for label 0
    # (s ~ 1) and -1/4 for label 1 (s ~ 0); the bias gradient sums them to about +-1.
    n = problem.y.size
    sign = 1.0 if label == 0.0 else -1.0
    exact = reference_gradients(problem).dbiases[-1][0]
    assert exact == pytest.approx(sign * problem.batch_size / n, rel=1e-20 + 1e-12)
    got = float(call_backprop(impl, problem).dbiases[-1][0])
    if dtype == "float16":
        # the clamp max(s(1 - s), 1e-12) does nothing in float16 (1e-12 rounds to 0): 0/0
        assert np.isnan(got)
        assert sum(t.nonfinite for t in result.tensors) > 0
    else:
        # torch returns 0 where the exact value is about +-1/N per sample
        assert abs(got) < 1e-6 * abs(exact)
        worst = result.worst[0]
        assert abs(worst.value) < 1e-6 * abs(worst.reference)


def test_bce_loss_model_passes_in_the_interior():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=1)
    assert problem.max_abs_logit() < 3
    assert check_problem(from_module(nn.BCELoss()), problem).verdict is Verdict.PASS


# --- nn.BCEWithLogitsLoss on the logits: passes -----------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("widths, activations", NETWORKS)
@pytest.mark.parametrize("seed", [0, 1])
def test_bce_with_logits_model_passes_on_random_networks(widths, activations, dtype, seed):
    problem = random_problem(widths, activations, batch=5, dtype=dtype, seed=seed)
    result = check_problem(from_module(nn.BCEWithLogitsLoss()), problem)
    assert result.verdict is Verdict.PASS, str(result)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_bce_with_logits_model_passes_at_saturation(dtype, label):
    problem = saturated_problem(label, dtype)
    impl = from_module(nn.BCEWithLogitsLoss())
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.PASS, str(result)
    got = call_backprop(impl, problem).dbiases[-1][0]
    assert float(got) == pytest.approx(1.0 if label == 0.0 else -1.0, rel=1e-3)


@pytest.mark.parametrize(
    "loss", [nn.BCELoss(), nn.BCEWithLogitsLoss()], ids=lambda m: type(m).__name__
)
def test_float16_works(loss):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=2, dtype="float16")
    impl = from_module(loss)
    outcome = call_backprop(impl, problem)
    assert outcome.ok, outcome.error
    assert all(d.dtype == np.float16 for d in (*outcome.dweights, *outcome.dbiases))
    assert check_problem(impl, problem).verdict is Verdict.PASS


def test_bfloat16_when_declared():
    pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    interior = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=2, dtype="bfloat16")
    saturated = random_problem(
        (3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=2, dtype="bfloat16", output_shift=60.0
    )
    logits = from_module(nn.BCEWithLogitsLoss(), dtypes=("bfloat16",))
    probabilities = from_module(nn.BCELoss(), dtypes=("bfloat16",))
    assert check_problem(logits, interior).verdict is Verdict.PASS
    assert check_problem(logits, saturated).verdict is Verdict.PASS
    assert check_problem(probabilities, saturated).verdict is Verdict.UNSTABLE


# --- layouts, reductions and other loss modules -----------------------------------------


def test_gradients_equal_autograd_by_hand():
    # Independent of the adapter: the same model written out with row-layout tensors.
    problem = random_problem((4, 5, 3, 2), ("sigmoid", "softplus", "sigmoid"), batch=3, seed=7)
    outcome = call_backprop(from_module(nn.BCEWithLogitsLoss()), problem)
    ws = [torch.tensor(w, requires_grad=True) for w in problem.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in problem.biases]
    z = torch.tensor(problem.x.T)
    z = torch.sigmoid(z @ ws[0].T + bs[0])
    z = nn.functional.softplus(z @ ws[1].T + bs[1])
    h = z @ ws[2].T + bs[2]
    nn.functional.binary_cross_entropy_with_logits(h, torch.tensor(problem.y.T)).backward()
    for i in range(3):  # nn.Linear (addmm) may round differently from z @ W.T + b
        np.testing.assert_allclose(outcome.dweights[i], ws[i].grad.numpy(), rtol=1e-13)
        np.testing.assert_allclose(outcome.dbiases[i], bs[i].grad.numpy(), rtol=1e-13)


def test_sum_reduction_is_converted_to_the_mean():
    problem = random_problem((3, 4, 2), ("tanh", "sigmoid"), batch=4, seed=3)
    assert (
        check_problem(from_module(nn.BCEWithLogitsLoss(reduction="sum")), problem).verdict
        is Verdict.PASS
    )


def test_mse_and_cross_entropy_modules():
    mse = random_problem((3, 4, 2), ("tanh", "tanh"), "mse", batch=4, seed=3)
    assert check_problem(from_module(nn.MSELoss()), mse).verdict is Verdict.PASS
    # CrossEntropyLoss averages over the batch only: the adapter divides by the classes
    ce = random_problem((3, 4, 3), ("tanh", "identity"), "softmax_ce", batch=4, seed=3)
    assert check_problem(from_module(nn.CrossEntropyLoss()), ce).verdict is Verdict.PASS


def test_a_custom_factory_module():
    class Net(nn.Module):
        def __init__(self, widths, activations):
            super().__init__()
            self.hidden = nn.Linear(widths[0], widths[1])
            self.out = nn.Linear(widths[1], widths[2])

        def forward(self, x):
            return self.out(torch.tanh(self.hidden(x)))

    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=4)
    impl = from_module(nn.BCEWithLogitsLoss(), Net, activations=("tanh", "sigmoid"))
    assert check_problem(impl, problem).verdict is Verdict.PASS


def test_a_factory_with_the_wrong_layers_is_an_error():
    def two_layers(widths, activations):
        return nn.Sequential(nn.Linear(widths[0], widths[1]))

    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=2, seed=0)
    result = check_problem(from_module(nn.BCEWithLogitsLoss(), two_layers), problem)
    assert result.verdict is Verdict.ERROR
    assert "1 nn.Linear layers; the network has 2 layers" in result.message


def test_unknown_loss_modules_need_a_declaration():
    with pytest.raises(ValueError, match="pass losses="):
        from_module(nn.SoftMarginLoss())


def test_mlp_factory_leaves_out_the_last_activation_for_logits():
    module = mlp_factory(final_activation=False)((3, 4, 1), ("tanh", "sigmoid"))
    assert [type(m).__name__ for m in module] == ["Linear", "Tanh", "Linear"]


# --- reusing the default factory's modules -----------------------------------------------

REUSE_CASES = [
    ((3, 4, 1), (first, "sigmoid"), dtype, seed)
    for seed, first in enumerate(("tanh", "softplus"))
    for dtype in ("float16", "float32", "float64")
] + [((w, 3, 1), ("relu", "sigmoid"), "float64", w) for w in range(2, 10)]
"""(widths, activations, dtype, seed): 14 different modules, more than the cache keeps."""


def _same_gradients(a, b) -> bool:
    return all(
        np.array_equal(x, y, equal_nan=True) and x.dtype == y.dtype
        for x, y in zip((*a.dweights, *a.dbiases), (*b.dweights, *b.dbiases), strict=True)
    )


@pytest.fixture
def builds(monkeypatch) -> list:
    """The (widths, activations) of every module the adapter's default factory builds."""
    import gradverify.edges.adapters.torch as adapter

    built: list = []
    own_factory = adapter.mlp_factory

    def counting_factory(**options):
        build = own_factory(**options)

        def counted(widths, activations):
            built.append((tuple(widths), tuple(activations)))
            return build(widths, activations)

        return counted

    monkeypatch.setattr(adapter, "mlp_factory", counting_factory)
    return built


def test_reused_modules_give_the_gradients_of_new_ones(builds):
    from gradverify.edges.adapters.torch import _ModuleCache

    reused = from_module(nn.BCEWithLogitsLoss())
    # every key twice in a row, then all again, last first, after more keys than it keeps
    order = [case for case in REUSE_CASES for _ in range(2)] + REUSE_CASES[::-1]
    for widths, activations, dtype, seed in order:
        problem = random_problem(widths, activations, batch=3, seed=seed, dtype=dtype)
        new = call_backprop(from_module(nn.BCEWithLogitsLoss()), problem)
        again = call_backprop(reused, problem)
        assert again.ok and _same_gradients(again, new), (widths, dtype, seed)
    # each fresh adapter built one module per call; the reused one built one per key, the
    # second call of each reusing it, and again in the last round for every key but the
    # LIMIT latest ones, which the cache still keeps
    keys = len({(w, a, d) for w, a, d, _ in REUSE_CASES})
    assert keys == len(REUSE_CASES) > _ModuleCache.LIMIT
    assert len(builds) - len(order) == keys + (keys - _ModuleCache.LIMIT)


def test_a_module_is_not_reused_after_a_call_that_failed(builds):
    class FailsOnce(nn.BCEWithLogitsLoss):
        failed = False

        def forward(self, input, target):
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise RuntimeError("the first call fails")
            return super().forward(input, target)

    impl = from_module(FailsOnce(), losses=("bce",))
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=0)
    failed = call_backprop(impl, problem)
    assert not failed.ok and "the first call fails" in failed.error
    outcomes = [call_backprop(impl, problem) for _ in range(3)]
    assert len(builds) == 2  # the failed call's module was not given back
    expected = call_backprop(from_module(FailsOnce(), losses=("bce",)), problem)
    assert all(o.ok and _same_gradients(o, expected) for o in outcomes)


def test_calls_from_several_threads_never_share_a_module():
    from concurrent.futures import ThreadPoolExecutor

    impl = from_module(nn.BCEWithLogitsLoss())
    problems = [  # one network shape: the same cache key, different values
        random_problem((6, 32, 32, 1), ("tanh", "tanh", "sigmoid"), batch=8, seed=s)
        for s in range(2)
    ]
    expected = [call_backprop(from_module(nn.BCEWithLogitsLoss()), p) for p in problems]

    def one_call(i: int) -> bool:
        dw, db = called_directly(impl, problems[i % 2])
        want = expected[i % 2]
        return all(
            np.array_equal(a, b)
            for a, b in zip((*dw, *db), (*want.dweights, *want.dbiases), strict=True)
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(one_call, range(400)))


def test_an_adapter_is_pickled_without_the_modules_it_keeps():
    cloudpickle = pytest.importorskip("cloudpickle")  # how impls are sent to workers

    impl = from_module(nn.BCEWithLogitsLoss())
    before = cloudpickle.dumps(impl)
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=3, seed=2)
    here = call_backprop(impl, problem)
    after = cloudpickle.dumps(impl)
    assert len(after) == len(before)
    there = call_backprop(cloudpickle.loads(after), problem)
    assert there.ok and _same_gradients(here, there)


# --- functions of tensors ---------------------------------------------------------------


def stable_bce(weights, biases, x, y, *, activations, loss):
    z = x
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = W @ z + b[:, None]
        z = torch.tanh(h) if i < len(weights) - 1 else h
    return nn.functional.binary_cross_entropy_with_logits(h, y)


def naive_bce(weights, biases, x, y):
    h = weights[1] @ torch.tanh(weights[0] @ x + biases[0][:, None]) + biases[1][:, None]
    p = torch.sigmoid(h)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_function_of_tensors(dtype):
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=5, dtype=dtype)
    stable = from_function(stable_bce, losses=("bce",), activations=("tanh", "sigmoid"))
    naive = from_function(naive_bce, losses=("bce",), activations=("tanh", "sigmoid"))
    assert check_problem(stable, problem).verdict is Verdict.PASS
    assert check_problem(naive, problem).verdict is Verdict.PASS
    saturated = saturated_problem(0.0, dtype)
    assert check_problem(stable, saturated).verdict is Verdict.PASS
    assert check_problem(naive, saturated).verdict is Verdict.UNSTABLE


def test_function_declared_with_the_wrong_reduction_is_incorrect():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=5)
    wrong = from_function(stable_bce, losses=("bce",), reduction="sum")
    result = check_problem(wrong, problem)
    assert result.verdict is Verdict.INCORRECT
    assert result.worst[0].value == pytest.approx(result.worst[0].reference / 4, rel=1e-12)


def test_function_that_returns_a_vector_is_an_error():
    problem = random_problem((3, 4, 1), ("tanh", "sigmoid"), batch=4, seed=5)
    impl = from_function(lambda w, b, x, y: (w[0] @ x).sum(axis=0), losses=("bce",))
    result = check_problem(impl, problem)
    assert result.verdict is Verdict.ERROR
    assert "must return a scalar tensor" in result.message


# --- the search hands the adapter networks, dtypes and inputs ---------------------------


def test_search_drives_the_adapter():
    from gradverify.exploration import search

    seen = []
    inner = from_module(nn.BCEWithLogitsLoss(), dtypes=("float32", "float64"))

    from gradverify.engine.implementations import capabilities_of, supports

    caps = capabilities_of(inner)

    @supports(
        activations=caps.activations,
        losses=caps.losses,
        dtypes=caps.dtypes,
        name="torch:BCEWithLogitsLoss",
    )
    def recording(weights, biases, x, y, *, activations, loss):
        seen.append((x.dtype.name, tuple(w.shape for w in weights), x.shape[1], activations))
        return inner(weights, biases, x, y, activations=activations, loss=loss)

    result = search.search(recording, max_examples=30, seed=0, database=None)
    # Never a logic bug. It may be unstable: torch differentiates tanh and sigmoid from their
    # outputs (1 - z^2, z(1 - z)), which cancels in saturated hidden units.
    assert result.verdict in (Verdict.PASS, Verdict.UNSTABLE), str(result)
    if result.verdict is Verdict.UNSTABLE:
        assert result.counterexample.interior_verdict is Verdict.PASS
    assert {s[0] for s in seen} == {"float32", "float64"}
    assert len({s[1] for s in seen}) > 1  # more than one architecture
    assert len({s[2] for s in seen}) > 1  # more than one batch size
    assert spec_ok(seen)


def spec_ok(seen) -> bool:
    """Every call was a valid network for the adapter (sigmoid output for bce)."""
    return all(NetworkSpec((s[1][0][1], *(w[0] for w in s[1])), s[3], "bce") for s in seen)
