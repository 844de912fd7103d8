"""The scanner for any activation or loss, against brute force and the exact reference.

The example is a hand-written backprop with a naive softplus: forward ``log(1 + exp(h))``
and derivative ``exp(h) / (1 + exp(h))``, both inf/NaN once ``exp(h)`` overflows. The
expected thresholds come from calling it directly at every float16 and from an exact value
written here with other formulas than the scanner's (``log1p(exp(h))``, ``-1/(1 + e^s)``).
"""

from __future__ import annotations

import json
import math
from functools import cache

import mpmath
import numpy as np
import pytest

from gradverify.edges.cli import main
from gradverify.engine.implementations import supports
from gradverify.exact.reference import reference_gradients
from gradverify.exploration.scan import (
    exact_design_gradient,
    format_scan_table,
    scan,
    scan_document,
    scan_schema,
)
from gradverify.exploration.scan.designs import activation_design, loss_design
from gradverify.model.network import NetworkSpec, Problem

CTX = mpmath.MPContext()
CTX.prec = 250
LEVELS = {"error_1e-3": 1e-3, "error_1e-1": 0.1, "error_1": 1.0}
CRITERIA = ("nonfinite", *LEVELS)


def _forward(act, h):
    return np.log(1 + np.exp(h)) if act == "softplus" else 1 / (1 + np.exp(-h))


def _slope(act, h, z):
    return np.exp(h) / (1 + np.exp(h)) if act == "softplus" else z * (1 - z)


@supports(
    activations=("softplus", "sigmoid"),
    losses=("bce",),
    dtypes=("float16", "float32", "float64"),
    name="naive-softplus",
)
def naive_softplus(weights, biases, x, y, *, activations, loss):
    hs, zs = [], [x]
    for W, b, act in zip(weights, biases, activations, strict=True):
        h = W @ zs[-1] + b[:, None]
        hs.append(h)
        zs.append(_forward(act, h))
    delta = (zs[-1] - y) / y.size  # sigmoid + bce together
    dW, db = [], []
    for i in reversed(range(len(weights))):
        dW.insert(0, delta @ zs[i].T)
        db.insert(0, delta.sum(axis=1))
        if i > 0:
            delta = (weights[i].T @ delta) * _slope(activations[i - 1], hs[i - 1], zs[i])
    return dW, db


@cache
def softplus_scan(dtype: str, exhaustive: bool = False):
    return scan(
        naive_softplus,
        dtypes=[dtype],
        activations=("softplus",),
        losses=(),
        hidden_activations=(),
        sweep_points=0,
        exhaustive=exhaustive,
    )


# ---------------------------------------------------------------------------
# The independent brute force
# ---------------------------------------------------------------------------


def brute_exact(h: float, y: float):
    """dJ/dW1 = (sigmoid(softplus(h)) - y) sigmoid(h) of the probe, at 250 bits."""
    hv = CTX.mpf(h)
    s = CTX.log1p(CTX.exp(hv))
    factor = 1 / (1 + CTX.exp(-s)) if y == 0.0 else -1 / (1 + CTX.exp(s))
    return factor / (1 + CTX.exp(-hv))


def nearest(g, dtype) -> float:
    """The float of ``dtype`` nearest to ``g`` (ties to even), found among neighbours."""
    with np.errstate(over="ignore"):
        c = np.array(float(g)).astype(dtype)[()]
    best = None
    for v in {c, np.nextafter(c, dtype.type(np.inf)), np.nextafter(c, dtype.type(-np.inf))}:
        if np.isfinite(v):
            key = (abs(CTX.mpf(float(v)) - g), int(np.array(v).view(np.uint16)) & 1)
            best = (key, float(v)) if best is None or key < best[0] else best
    return best[1]


def brute_bad(h, y: float, dtype) -> frozenset:
    """The criteria naive_softplus fails at hidden pre-activation ``h`` (float16)."""
    one = np.ones((1, 1), dtype)
    with np.errstate(all="ignore"):
        dW, db = naive_softplus(
            [np.zeros((1, 1), dtype), one],
            [np.array([h], dtype), np.zeros(1, dtype)],
            one,
            np.full((1, 1), y, dtype),
            activations=("softplus", "sigmoid"),
            loss="bce",
        )
    g = brute_exact(float(h), y)
    correct = nearest(g, dtype)
    bad = set()
    for a in {float(dW[0][0, 0]), float(db[0][0])}:
        if not math.isfinite(a):
            bad |= {"nonfinite", *LEVELS}
        elif a != correct:
            rel = abs(CTX.mpf(a) - g) / abs(g)
            bad |= {k for k, t in LEVELS.items() if rel >= t}
    return frozenset(bad)


def float16_at(index: int, negative: bool):
    return np.array([index | (0x8000 if negative else 0)], np.uint16).view(np.float16)[0]


@cache
def brute_states(negative: bool) -> tuple[frozenset, ...]:
    """brute_bad at every finite float16 of one side (y = 0 for h > 0, 1 for h < 0)."""
    y = 1.0 if negative else 0.0
    dtype = np.dtype(np.float16)
    return tuple(brute_bad(float16_at(i, negative), y, dtype) for i in range(0x7C00))


# ---------------------------------------------------------------------------
# The naive softplus
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_naive_softplus_turns_nonfinite_where_exp_overflows(dtype):
    f = softplus_scan(dtype).function(dtype, "activation", "softplus")
    assert f.probe_loss == "bce" and f.labels == {"positive": 0.0, "negative": 1.0}
    t = f.threshold("positive", "nonfinite")
    assert t.found and t.status == "nonfinite"
    dt = np.dtype(dtype)
    with np.errstate(over="ignore"):  # the first float h where exp(h) overflows, and not before
        assert np.isinf(np.exp(dt.type(t.value)))
        assert np.isfinite(np.exp(dt.type(t.previous_value)))
    assert abs(t.value - math.log(float(np.finfo(dt).max))) < 0.01
    assert f.negative.finite_throughout  # exp(h) only underflows there


def test_float16_thresholds_are_the_first_bad_floats_in_a_window_of_512():
    # fast companion of the exhaustive test: each monotone threshold (and inf/NaN) of the
    # default, sampled scan is the first bad float of the 512 below it
    f = softplus_scan("float16").function("float16", "activation", "softplus")
    checked = 0
    for side in f.sides:
        states = brute_states(side.side == "negative")
        for criterion in CRITERIA:
            t = side.thresholds[criterion]
            if not t.found or not (t.monotone or criterion == "nonfinite"):
                continue
            window = [criterion in states[i] for i in range(max(0, t.index - 512), t.index + 1)]
            assert window.index(True) == len(window) - 1, (side.side, criterion, t.value)
            checked += 1
    assert checked >= 3


@pytest.mark.slow
def test_float16_exhaustive_scan_matches_brute_force_over_every_float16():
    f = softplus_scan("float16", exhaustive=True).function("float16", "activation", "softplus")
    for side in f.sides:
        states = brute_states(side.side == "negative")
        assert side.verification == "exhaustive" and side.checked_points == 0x7C00
        for criterion in CRITERIA:
            bad = [criterion in s for s in states]
            first = bad.index(True) if any(bad) else None
            t = side.thresholds[criterion]
            assert t.index == first, (side.side, criterion, t.index, first)
            if first is not None:
                recovers = any(not b for b in bad[first:])
                assert t.monotone == (not recovers)
    positive = f.threshold("positive", "nonfinite")
    assert positive.value == 11.09375 and positive.bits == "0x498c"


# ---------------------------------------------------------------------------
# Exact forms against the exact reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["softplus", "tanh", "relu", "sigmoid", "identity"])
@pytest.mark.parametrize("h", [-700.5, -20.0, -0.75, 0.0, 1.5, 36.75, 745.0])
def test_activation_probe_gradient_equals_reference_gradients(act, h):
    design = activation_design(act, "bce")
    y = design.label(h < 0)
    spec = NetworkSpec((1, 1, 1), (act, "sigmoid"), "bce")
    problem = Problem.from_arrays(
        spec,
        [np.zeros((1, 1)), np.ones((1, 1))],
        [np.array([h]), np.zeros(1)],
        np.ones((1, 1)),
        np.array([[y]]),
        "float64",
    )
    ref = reference_gradients(problem)
    g = exact_design_gradient(design, h, y)
    for exact in (ref.exact_dweights[0][0, 0], ref.exact_dbiases[0][0]):
        assert abs(g - exact) <= abs(exact) * CTX.mpf(2) ** -78
    if act == "relu" and h <= 0:
        assert g == 0  # an exact zero, not a tiny number


@pytest.mark.parametrize("loss", ["mse", "softmax_ce"])
@pytest.mark.parametrize("h", [-300.0, -2.5, 0.125, 40.0])
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_loss_probe_gradient_equals_reference_gradients(loss, h, y):
    design = loss_design(loss, y)
    n = design.outputs
    labels = np.array([design.label_column(y)]).T
    spec = NetworkSpec((1, n), (design.output,), loss)
    bias = np.zeros(n)
    bias[0] = h
    problem = Problem.from_arrays(
        spec, [np.zeros((n, 1))], [bias], np.ones((1, 1)), labels, "float64"
    )
    ref = reference_gradients(problem)
    g = exact_design_gradient(design, h, y)
    assert abs(g - ref.exact_dbiases[0][0]) <= abs(g) * CTX.mpf(2) ** -78


# ---------------------------------------------------------------------------
# Exact zeros and kinks
# ---------------------------------------------------------------------------


def _relu_backprop(slope_at_zero: float, leak: float):
    @supports(activations=("relu", "sigmoid"), losses=("bce",), dtypes=("float32",))
    def backprop(weights, biases, x, y, *, activations, loss):
        (W1, W2), (b1, b2) = weights, biases
        h1 = W1 @ x + b1[:, None]
        z1 = np.maximum(h1, 0)
        z2 = 1 / (1 + np.exp(-(W2 @ z1 + b2[:, None])))
        d2 = (z2 - y) / y.size
        slope = np.where(h1 > 0, 1.0, np.where(h1 == 0, slope_at_zero, leak)).astype(h1.dtype)
        d1 = (W2.T @ d2) * slope
        return [d1 @ x.T, d2 @ z1.T], [d1.sum(axis=1), d2.sum(axis=1)]

    return backprop


def test_relu_exact_zero_side_and_kink_make_no_false_thresholds():
    # relu'(0) = 1 is a convention at the kink, not an error; 0 for h < 0 is exact
    result = scan(_relu_backprop(1.0, 0.0), activations=("relu",), losses=(), sweep_points=0)
    f = result.function("float32", "activation", "relu")
    for side in f.sides:
        assert not any(t.found for t in side.thresholds.values()), side.side


def test_a_nonzero_gradient_where_the_exact_one_is_zero_fails_every_level():
    result = scan(_relu_backprop(0.0, 1e-3), activations=("relu",), losses=(), sweep_points=0)
    f = result.function("float32", "activation", "relu")
    for criterion in LEVELS:
        t = f.threshold("negative", criterion)
        assert t.index == 1 and t.exact == 0.0 and t.relative_error == math.inf
    assert not f.threshold("positive", "error_1e-3").found


# ---------------------------------------------------------------------------
# JSON, table, defaults and the command line
# ---------------------------------------------------------------------------


def test_function_scans_are_in_the_json_and_the_table_and_validate():
    result = scan(
        naive_softplus,
        dtypes=["float16"],
        activations=("softplus",),
        losses=("bce", "mse"),
        hidden_activations=(),
        sweep_points=10,
    )
    assert [r.label for r in result.rows] == [0.0, 1.0]  # bce: the classic output scan
    kinds = [(f.kind, f.function) for f in result.functions]
    assert kinds == [("activation", "softplus"), ("loss", "mse")]
    assert result.function("float16", "loss", "mse").labels == {"positive": 0.0, "negative": 0.0}
    back = json.loads(json.dumps(scan_document([result]), allow_nan=False))
    functions = back["scans"][0]["functions"]
    assert functions[0]["probe"]["loss"] == "bce" and functions[0]["sweeps"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(back, scan_schema(), cls=jsonschema.Draft202012Validator)
    table = format_scan_table([result])
    assert "Hidden-layer derivative" in table and "Output delta" in table
    assert "11.0938 0x498c" in table


def test_the_default_scan_has_no_function_scans_in_its_json():
    result = scan(naive_softplus, dtypes=["float16"], hidden_activations=(), sweep_points=0)
    assert result.functions == [] and "functions" not in result.to_dict()
    assert "Hidden-layer derivative" not in format_scan_table([result])


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        scan(naive_softplus, activations=("swish",))
    with pytest.raises(ValueError, match="unknown loss"):
        scan(naive_softplus, losses=("hinge",))


def test_cli_scans_the_named_activations(tmp_path, monkeypatch, capsys):
    (tmp_path / "softplus_impl.py").write_text(
        "from tests.unit.test_scan_functions import naive_softplus\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        [
            "scan",
            "softplus_impl:naive_softplus",
            "--no-isolate",
            "--dtypes",
            "float16",
            "--activations",
            "softplus,sigmoid",
            "--losses",
            "bce",
            "--json",
            "scan.json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Hidden-layer derivative" in out and "softplus" in out
    doc = json.loads((tmp_path / "scan.json").read_text())
    scanned = [f["function"] for f in doc["scans"][0]["functions"]]
    assert scanned == ["softplus", "sigmoid"]
    assert [r["label"] for r in doc["scans"][0]["rows"]] == [0.0, 1.0]


def test_the_report_draws_the_function_scans_in_the_saturation_figure_style(tmp_path):
    from gradverify.report.writer import render_report

    result = scan(
        naive_softplus,
        dtypes=["float16"],
        activations=("softplus",),
        losses=("bce", "mse"),
        hidden_activations=(),
        sweep_points=10,
    )
    out = render_report(tmp_path / "report", scan_results=[result])
    doc = json.loads((out / "report.json").read_text())
    ids = [f["id"] for f in doc["figures"]]
    assert ids[:3] == ["error_vs_saturation", "hidden_derivative_error", "loss_delta_error"]
    for name in ("hidden_derivative_error.png", "loss_delta_error.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    default = scan(naive_softplus, dtypes=["float16"], hidden_activations=(), sweep_points=10)
    plain = render_report(tmp_path / "plain", scan_results=[default])
    ids = [f["id"] for f in json.loads((plain / "report.json").read_text())["figures"]]
    assert ids == ["error_vs_saturation"]
