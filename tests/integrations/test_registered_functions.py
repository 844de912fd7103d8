"""A registered activation or loss works on every surface a built-in one does.

One test per surface: the checks (``check_problem``), the references (exact and finite
differences), the search (``activations=`` and ``@supports``), the scan, the report, the
command line (``MODULE:ATTR`` in ``--activations`` and in ``[tool.gradverify]``), and an
implementation run in a worker process, which must find the name too. The pytest fixture's
test is in ``test_pytest_plugin.py``.
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap

import mpmath
import numpy as np
import pytest

import gradverify
from gradverify.model import registry
from gradverify.model.functions import activation, has_fused_delta, loss_function
from tests.cli_helpers import run

NAME = "sq_plus"


def generic_backprop(weights, biases, x, y, *, activations, loss):
    """Textbook backprop through gradverify's own lookups: right for any registered name."""
    acts, fn = [activation(a) for a in activations], loss_function(loss)
    hs, zs = [], [x]
    for W, b, act in zip(weights, biases, acts, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(act.forward(hs[-1]))
    n = y.dtype.type(y.size)
    if has_fused_delta(fn):
        delta = fn.output_delta(hs[-1], zs[-1], y) / n
    else:
        delta = fn.naive_output_gradient(zs[-1], y) * acts[-1].derivative(hs[-1]) / n
    dW, db = [], []
    for i in reversed(range(len(weights))):
        dW.insert(0, delta @ zs[i].T)
        db.insert(0, delta.sum(axis=1))
        if i > 0:
            delta = (weights[i].T @ delta) * acts[i - 1].derivative(hs[i - 1])
    return dW, db


def wrong_slope_backprop(weights, biases, x, y, *, activations, loss):
    """The same, with square_plus' taken as 1 + h/sqrt(h^2 + 4) (the factor 1/2 lost)."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    delta = loss_function(loss).output_delta(hs[-1], zs[-1], y) / y.dtype.type(y.size)
    dW, db = [], []
    for i in reversed(range(len(weights))):
        dW.insert(0, delta @ zs[i].T)
        db.insert(0, delta.sum(axis=1))
        if i > 0:
            h = hs[i - 1]
            delta = (weights[i].T @ delta) * (1 + h / np.sqrt(h * h + 4))
    return dW, db


def declared_backprop(weights, biases, x, y, *, activations, loss):
    """generic_backprop, declared (by the fixture ``declared``) to support square_plus."""
    return generic_backprop(weights, biases, x, y, activations=activations, loss=loss)


@pytest.fixture
def square_plus():
    """square_plus registered for one test (its lambdas live nowhere a worker can import)."""
    act = gradverify.register_activation(
        NAME,
        forward=lambda h: (h + np.sqrt(h * h + 4)) / 2,
        mp_forward=lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2,
    )
    yield act
    registry.unregister("activation", NAME)


@pytest.fixture
def declared(square_plus):
    """declared_backprop declaring the registered activation (a declaration checks names)."""
    return gradverify.supports(
        activations=(NAME, "tanh"), losses=("bce",), dtypes=("float32", "float64")
    )(declared_backprop)


def _problem(dtype: str = "float64") -> gradverify.Problem:
    rng = np.random.default_rng(3)
    spec = gradverify.NetworkSpec(widths=(3, 4, 1), activations=(NAME, "sigmoid"), loss="bce")
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(1, 4))]
    biases = [rng.normal(size=4), rng.normal(size=1)]
    x, y = rng.normal(size=(3, 5)), rng.integers(0, 2, size=(1, 5))
    return gradverify.Problem.from_arrays(spec, weights, biases, x, y, dtype=dtype)


def test_check_problem_passes_the_right_backprop_and_catches_a_wrong_slope(square_plus):
    problem = _problem()
    assert gradverify.check_problem(generic_backprop, problem).verdict == "pass"
    assert gradverify.check_problem(wrong_slope_backprop, problem).verdict == "incorrect"


def test_exact_reference_and_finite_differences_use_the_registered_forms(square_plus):
    problem = _problem()
    ref = gradverify.reference_gradients(problem)
    fd = gradverify.finite_difference_gradients(problem)
    # oracle: the same network by hand in mpmath, square_plus' in closed form
    ctx = mpmath.MPContext()
    ctx.prec = 200
    W1, W2 = ([[ctx.mpf(float(v)) for v in row] for row in w] for w in problem.weights)
    b1, b2 = ([ctx.mpf(float(v)) for v in b] for b in problem.biases)
    x, y = problem.x.astype(np.float64), problem.y.astype(np.float64)
    dW1 = np.zeros((4, 3))
    for j in range(x.shape[1]):
        h1 = [ctx.fsum(W1[k][i] * x[i, j] for i in range(3)) + b1[k] for k in range(4)]
        z1 = [(h + ctx.sqrt(h * h + 4)) / 2 for h in h1]
        h2 = ctx.fsum(W2[0][k] * z1[k] for k in range(4)) + b2[0]
        d2 = (1 / (1 + ctx.exp(-h2)) - y[0, j]) / y.size
        for k in range(4):
            d1 = W2[0][k] * d2 * (1 + h1[k] / ctx.sqrt(h1[k] ** 2 + 4)) / 2
            for i in range(3):
                dW1[k, i] += float(d1 * x[i, j])
    np.testing.assert_allclose(ref.dweights[0], dW1, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(fd.dweights[0], dW1, rtol=1e-6, atol=1e-9)


def test_search_draws_the_registered_activation_when_asked(square_plus):
    result = gradverify.search(
        generic_backprop, activations=(NAME,), losses=("bce",), dtypes=("float64",),
        max_examples=8, seed=1, depth=2,
    )  # fmt: skip
    assert result.verdict == "pass"
    wrong = gradverify.search(
        wrong_slope_backprop, activations=(NAME,), losses=("bce",), dtypes=("float64",),
        max_examples=30, seed=1, depth=2,
    )  # fmt: skip
    assert wrong.verdict == "incorrect"
    assert NAME in json.dumps(wrong.to_dict())


def test_search_of_a_declaration_naming_it(declared):
    result = gradverify.search(declared, dtypes=("float32",), max_examples=8, seed=2)
    assert result.verdict == "pass"


def test_an_implementation_in_a_worker_process_finds_the_name(square_plus):
    # generic_backprop looks the name up inside the worker, where only the registry sent
    # with its start-up can have registered it (the lambdas cannot be imported there)
    result = gradverify.search(
        generic_backprop, activations=(NAME,), losses=("bce",), dtypes=("float64",),
        max_examples=5, seed=3, isolate=True, depth=2,
    )  # fmt: skip
    assert result.verdict == "pass", str(result)


def _found(scan: gradverify.ScanResult, criterion: str) -> list[bool]:
    rows = [f for f in scan.to_dict()["functions"] if f["function"] == NAME]
    assert rows and all(f["kind"] == "activation" for f in rows)
    return [s["thresholds"][criterion]["found"] for f in rows for s in f["sides"].values()]


def test_scan_of_the_registered_activation(declared):
    options = {
        "dtypes": ("float32",), "activations": (NAME,), "sweep_points": 0,
        "check_points": 8, "neighbourhood": 2, "hidden_activations": (),
    }  # fmt: skip
    right = gradverify.scan(declared, **options)
    assert not any(_found(right, "error_1e-1"))
    wrong = gradverify.supports(activations=(NAME,), losses=("bce",))(wrong_slope_backprop)
    assert all(_found(gradverify.scan(wrong, **options), "error_1e-1"))


def test_report_on_an_implementation_declaring_it(declared, tmp_path):
    out = gradverify.write_report(
        tmp_path / "report", {"sq": declared}, dtypes=("float64",), max_examples=4, seed=1,
        progress=False, measure=False, search_options={"activations": (NAME,), "depth": 2},
        scan_options={"activations": (NAME,), "sweep_points": 0, "check_points": 8},
    )  # fmt: skip
    results = json.loads((out / "report.json").read_text())["results"]
    assert [s["verdict"] for s in results["searches"]] == ["pass"]
    (scan,) = results["scans"]
    assert [f["function"] for f in scan["functions"]] == [NAME]
    assert (out / "index.html").is_file()


def _log_cosh(h, z, y):
    return np.logaddexp(z - y, y - z) - np.log(np.asarray(2, dtype=z.dtype))


def residual_backprop(weights, biases, x, y, *, activations, loss):
    """generic_backprop with d loss/dz taken as z - y (right for mse/2, not for log cosh)."""
    hs, zs = [], [x]
    for W, b, name in zip(weights, biases, activations, strict=True):
        hs.append(W @ zs[-1] + b[:, None])
        zs.append(activation(name).forward(hs[-1]))
    delta = (zs[-1] - y) * activation(activations[-1]).derivative(hs[-1]) / y.dtype.type(y.size)
    dW, db = [], []
    for i in reversed(range(len(weights))):
        dW.insert(0, delta @ zs[i].T)
        db.insert(0, delta.sum(axis=1))
        if i > 0:
            delta = (weights[i].T @ delta) * activation(activations[i - 1]).derivative(hs[i - 1])
    return dW, db


def test_a_registered_loss_for_any_output_layer_is_checked_end_to_end():
    gradverify.register_loss("t_log_cosh", _log_cosh, lambda ctx, h, z, y: ctx.log(ctx.cosh(z - y)))
    try:
        options = {
            "activations": ("tanh", "identity"), "losses": ("t_log_cosh",),
            "dtypes": ("float64",), "max_examples": 10, "seed": 4,
        }  # fmt: skip
        assert gradverify.search(generic_backprop, isolate=True, **options).verdict == "pass"
        assert gradverify.search(residual_backprop, **options).verdict == "incorrect"
    finally:
        registry.unregister("loss", "t_log_cosh")


ACTS_MODULE = """
import numpy as np
import gradverify

square_plus = gradverify.register_activation(
    "{name}", forward=lambda h: (h + np.sqrt(h * h + 4)) / 2,
    mp_forward=lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2)
"""


NN_MODULE = "from gradverify.model.functions import activation, has_fused_delta, loss_function\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory with a module registering ``cli_sq`` and the generic backprop."""
    package = f"acts_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{package}.py").write_text(textwrap.dedent(ACTS_MODULE.format(name="cli_sq")))
    nn = tmp_path / "nn_generic.py"
    nn.write_text(NN_MODULE + inspect.getsource(generic_backprop))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    registry.unregister("activation", "cli_sq")
    for name in (package, "nn_generic"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("isolate", ["--isolate", "--no-isolate"])
def test_cli_takes_module_attr_and_uses_the_registered_name(project, capsys, isolate):
    code, out, err = run(
        capsys, "check", "nn_generic:generic_backprop", "--activations",
        f"{project}:square_plus,tanh", "--losses", "bce", "--dtypes", "float64",
        "--max-examples", "5", "--seed", "1", isolate,
    )  # fmt: skip
    assert code == 0, out + err
    assert "PASS" in out


def test_cli_scan_of_a_module_attr_activation(project, capsys):
    code, out, err = run(
        capsys, "scan", "nn_generic:generic_backprop", "--activations", f"{project}:square_plus",
        "--losses", "bce", "--dtypes", "float32", "--no-isolate",
    )  # fmt: skip
    assert code == 0, out + err
    assert "cli_sq" in out


def test_cli_refuses_an_attribute_that_is_no_registered_function(project, capsys):
    code, _, err = run(
        capsys, "check", "nn_generic:generic_backprop", "--activations", f"{project}:np",
        "--losses", "bce", "--max-examples", "2", "--no-isolate",
    )  # fmt: skip
    assert code == 2
    assert "is a module, not a registered activation" in err


def test_config_names_a_module_attr_activation(project, capsys, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [tool.gradverify]
        activations = ["{project}:square_plus"]
        losses = ["bce"]
        dtypes = ["float64"]
        max-examples = 5
        seed = 1

        [[tool.gradverify.implementations]]
        target = "nn_generic:generic_backprop"
        """)
    )
    code, out, err = run(capsys, "check")
    assert code == 0, out + err
    assert "PASS" in out


def test_the_torch_function_adapter_takes_a_registered_activation(square_plus):
    torch = pytest.importorskip("torch")

    def network_loss(square_plus_form):
        def loss_fn(weights, biases, x, y, *, activations, loss):
            z = x
            for i, (W, b, act) in enumerate(zip(weights, biases, activations, strict=True)):
                h = W @ z + b[:, None]
                if i == len(weights) - 1:  # sigmoid output: the loss takes the logits
                    z = h
                else:
                    z = square_plus_form(h) if act == NAME else torch.sigmoid(h)
            return torch.nn.functional.binary_cross_entropy_with_logits(z, y)

        return gradverify.torch_function(loss_fn, losses=("bce",), activations=(NAME, "sigmoid"))

    right = network_loss(lambda h: (h + torch.sqrt(h * h + 4)) / 2)
    result = gradverify.search(right, dtypes=("float64",), max_examples=10, seed=4, depth=2)
    assert result.verdict == "pass", str(result)
    wrong = network_loss(lambda h: (h + torch.sqrt(h * h + 1)) / 2)  # another function
    result = gradverify.search(wrong, dtypes=("float64",), max_examples=10, seed=4, depth=2)
    assert result.verdict == "incorrect", str(result)


def test_the_arb_reference_refuses_a_registered_function_in_one_line(square_plus):
    flint_reference = pytest.importorskip("gradverify.exact.reference_flint")
    if not flint_reference.flint_available():
        pytest.skip("python-flint is not installed")
    from gradverify.exact.precision import ExactReferenceError

    with pytest.raises(ExactReferenceError, match=f"only the built-in functions, not {NAME}"):
        flint_reference.flint_reference_gradients(_problem())
