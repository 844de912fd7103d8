"""The stability scanner against brute force.

The expected thresholds come from an independent check written here: the implementation
is called directly on every float of a window (or of the whole float16 lattice), the exact
gradient ``sigmoid(h) - y`` is computed in mpmath with a different formula from the
scanner's (``-1/(1 + exp(h))`` for y = 1), and the dtype's correct rounding is found by
comparing neighbouring floats exactly. Nothing expected is produced by gradverify.exploration.scan.
"""

from __future__ import annotations

import json
import math
from functools import cache

import mpmath
import numpy as np
import pytest

from gradverify.engine.compare import elementwise_errors
from gradverify.engine.implementations import (
    epsilon_bce_backprop,
    fused_bce_backprop,
    naive_bce_backprop,
    supports,
)
from gradverify.exact.reference import reference_gradients
from gradverify.exploration.scan import (
    CRITERIA,
    ScanResult,
    exact_hidden_gradient,
    exact_output_gradient,
    format_scan_table,
    scan,
    scan_document,
    scan_schema,
)
from gradverify.model.network import NetworkSpec, Problem

CTX = mpmath.MPContext()
CTX.prec = 250
LEVELS = {"error_1e-3": 1e-3, "error_1e-1": 0.1, "error_1": 1.0}
OUTPUT_CRITERIA = ("nonfinite", *LEVELS)
SIDES = ("positive", "negative")

try:
    import ml_dtypes  # noqa: F401

    HAVE_BFLOAT16 = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_BFLOAT16 = False


# ---------------------------------------------------------------------------
# The independent brute-force check
# ---------------------------------------------------------------------------


def brute_exact(h: float, y: float):
    """sigmoid(h) - y at 250 bits, written differently from the scanner's form."""
    hv = CTX.mpf(h)
    if y == 1.0:
        return -1 / (1 + CTX.exp(hv))  # sigmoid(h) - 1 = -sigmoid(-h)
    if y == 0.0:
        return 1 / (1 + CTX.exp(-hv))
    with CTX.workprec(250 + int(abs(h) * 1.5)):
        return 1 / (1 + CTX.exp(-hv)) - CTX.mpf(y)


def nearest_float(g, dtype: np.dtype) -> float:
    """The float of ``dtype`` nearest to mpf ``g`` (ties to the even bit pattern)."""
    with np.errstate(over="ignore"):
        c = np.array(float(g)).astype(dtype)[()]
    candidates = {c, np.nextafter(c, dtype.type(np.inf)), np.nextafter(c, dtype.type(-np.inf))}
    best = None
    uint = np.dtype(f"uint{dtype.itemsize * 8}")
    for v in candidates:
        if not np.isfinite(v):
            continue
        key = (abs(CTX.mpf(float(v)) - g), int(np.array(v).view(uint)) & 1)
        if best is None or key < best[0]:
            best = (key, float(v))
    return best[1]


def brute_bad(impl, h, y: float, dtype: np.dtype) -> set[str]:
    """The criteria that ``impl`` fails at logit ``h`` (a float of ``dtype``)."""
    W = [np.zeros((1, 1), dtype)]
    b = [np.array([h], dtype)]
    dW, db = impl(
        W,
        b,
        np.ones((1, 1), dtype),
        np.full((1, 1), y, dtype),
        activations=("sigmoid",),
        loss="bce",
    )
    g = brute_exact(float(h), y)
    correct = nearest_float(g, dtype)
    bad = set()
    for a in {float(dW[0][0, 0]), float(db[0][0])}:
        if not math.isfinite(a):
            bad |= {"nonfinite", *LEVELS}
        elif a != correct:
            rel = abs(CTX.mpf(a) - g) / abs(g) if g != 0 else CTX.inf
            bad |= {k for k, t in LEVELS.items() if rel >= t}
    return bad


def lattice_float(index: int, negative: bool, dtype: np.dtype):
    """The float with bit pattern ``index`` (and the sign bit if ``negative``)."""
    width = dtype.itemsize * 8
    uint = np.dtype(f"uint{width}")
    bits = index | ((1 << (width - 1)) if negative else 0)
    return np.array([bits], dtype=uint).view(dtype)[0]


@cache
def brute_bad_at(impl, dtype: np.dtype, y: float, negative: bool, index: int) -> frozenset:
    """brute_bad at lattice ``index`` (cached: windows of several criteria overlap)."""
    return frozenset(brute_bad(impl, lattice_float(index, negative, dtype), y, dtype))


def brute_first_bad(impl, dtype, y, negative, criterion, lo, hi):
    """The first index in [lo, hi] failing ``criterion``, or None."""
    for i in range(lo, hi + 1):
        if criterion in brute_bad_at(impl, dtype, y, negative, i):
            return i
    return None


# ---------------------------------------------------------------------------
# Scans shared by several tests (each scan is deterministic)
# ---------------------------------------------------------------------------


@cache
def output_scan(impl_name: str, dtype: str) -> ScanResult:
    impl = {
        "naive": naive_bce_backprop,
        "epsilon": epsilon_bce_backprop,
        "fused": fused_bce_backprop,
    }[impl_name]
    return scan(impl, dtypes=[dtype], hidden_activations=(), sweep_points=0)


def found_thresholds(result: ScanResult):
    for row in result.rows:
        for side in row.sides:
            for criterion in OUTPUT_CRITERIA:
                t = side.thresholds[criterion]
                if t.found:
                    yield row.label, side.side, criterion, t


# ---------------------------------------------------------------------------
# Accuracy of the thresholds
# ---------------------------------------------------------------------------


def test_float16_thresholds_are_the_first_bad_floats_in_a_window_of_512():
    # fast companion of the exhaustive test below: the scanner's answer is confirmed by
    # brute force over the 512 floats below it (and the threshold itself)
    result = output_scan("naive", "float16")
    dtype = np.dtype(np.float16)
    checked = 0
    for y, side, criterion, t in found_thresholds(result):
        lo = max(0, t.index - 512)
        first = brute_first_bad(
            naive_bce_backprop, dtype, y, side == "negative", criterion, lo, t.index
        )
        assert first == t.index, (y, side, criterion, t.value, first)
        assert t.bits == f"0x{t.index | (0x8000 if side == 'negative' else 0):04x}"
        assert float(lattice_float(t.index, side == "negative", dtype)) == t.value
        checked += 1
    assert checked == 16  # naive goes bad on every side, for every label and criterion


@pytest.mark.slow
def test_float16_all_65536_values_match_the_exhaustive_scan():
    dtype = np.dtype(np.float16)
    everything = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    assert np.count_nonzero(np.isfinite(everything)) == 63488  # 2048 inf/NaN patterns
    result = scan(
        naive_bce_backprop,
        dtypes=["float16"],
        hidden_activations=(),
        sweep_points=0,
        exhaustive=True,
    )
    for row in result.rows:
        for side in row.sides:
            negative = side.side == "negative"
            states = [
                brute_bad(naive_bce_backprop, lattice_float(i, negative, dtype), row.label, dtype)
                for i in range(0x7C00)
            ]
            assert side.verification == "exhaustive"
            assert side.checked_points == 0x7C00
            for criterion in OUTPUT_CRITERIA:
                bad = [criterion in s for s in states]
                first = bad.index(True) if any(bad) else None
                t = side.thresholds[criterion]
                assert t.index == first, (row.label, side.side, criterion, t.index, first)
                if first is None:
                    continue
                # regions after the first bad float where it is good again
                runs, k = [], first
                while k < len(bad):
                    if not bad[k]:
                        start = k
                        while k < len(bad) and not bad[k]:
                            k += 1
                        runs.append((start, k - 1))
                    k += 1
                assert t.recovery_count == len(runs)
                assert t.monotone == (not runs)
                assert t.checked_below == first
                for (start, end, refined), (b_start, b_end) in zip(
                    t.recoveries, runs, strict=False
                ):
                    if refined:
                        assert start == float(lattice_float(b_start, negative, dtype))
                        assert end == float(lattice_float(b_end, negative, dtype))


@pytest.mark.parametrize("impl_name", ["naive", "epsilon"])
def test_float32_thresholds_against_every_float_within_1000_ulps(impl_name):
    result = output_scan(impl_name, "float32")
    impl = {"naive": naive_bce_backprop, "epsilon": epsilon_bce_backprop}[impl_name]
    dtype = np.dtype(np.float32)
    seen = set()
    fully_checked = 0
    for y, side, criterion, t in found_thresholds(result):
        key = (y, side, criterion)
        assert key not in seen
        seen.add(key)
        negative = side == "negative"
        window = range(max(0, t.index - 1000), t.index + 1001)
        states = {i: criterion in brute_bad_at(impl, dtype, y, negative, i) for i in window}
        assert states[t.index], (y, side, criterion, t.value)
        assert not states.get(t.index - 1, False)
        below = [i for i in window if i < t.index and states[i]]
        if t.settled:
            # the first bad float of the whole window
            assert below == [], (y, side, criterion, t.value, below[:5])
            fully_checked += 1
        else:
            # a noisy criterion whose search below stopped at its limit: the scanner
            # claims only the floats it checked, and says so ("<=" in the table)
            assert t.checked_below >= 32
            assert all(i < t.index - t.checked_below for i in below)
            assert f"<={t.value:.6g} {t.bits}" in format_scan_table([result])
        after = [states[i] for i in window if i > t.index]
        # "monotone" is a claim about the floats after the threshold too
        if t.monotone:
            assert all(after), (y, side, criterion, t.value)
    assert len(seen) >= 8 and fully_checked >= len(seen) - 1


def test_thresholds_differ_by_dtype_as_the_arithmetic_says():
    # naive's 1 - s underflows where exp(-h) falls below half an ulp of 1, near
    # (p + 1) ln 2 for p significand bits; exp(-h) overflows near ln(max float).
    nonfinite = {}
    for dtype in ("float16", "float32", "float64"):
        row = output_scan("naive", dtype).rows[0]
        pos = row.threshold("positive", "nonfinite").value
        neg = row.threshold("negative", "nonfinite").value
        nonfinite[dtype] = (pos, neg)
        info = np.finfo(np.dtype(dtype))
        p = info.nmant + 1
        assert abs(pos - (p + 1) * math.log(2)) < 1.0, (dtype, pos)
        assert abs(-neg - math.log(float(info.max))) < 1e-2, (dtype, neg)
    assert len({v for v, _ in nonfinite.values()}) == 3
    assert len({v for _, v in nonfinite.values()}) == 3


@pytest.mark.skipif(not HAVE_BFLOAT16, reason="bfloat16 needs ml_dtypes")
def test_bfloat16_scan_works_and_differs_from_float16():
    import ml_dtypes

    dtype = np.dtype(ml_dtypes.bfloat16)
    result = scan(naive_bce_backprop, dtypes=["bfloat16"], hidden_activations=(), sweep_points=0)
    assert result.dtypes == ("bfloat16",)
    row = result.row("bfloat16", 0.0)
    t = row.threshold("positive", "nonfinite")
    assert t.found and len(t.bits) == 6
    assert float(lattice_float(t.index, False, dtype)) == t.value
    first = brute_first_bad(
        naive_bce_backprop, dtype, 0.0, False, "nonfinite", max(0, t.index - 300), t.index
    )
    assert first == t.index
    # bfloat16 has float32's exponent range: exp(-h) overflows where float32's does
    neg = row.threshold("negative", "nonfinite").value
    assert abs(-neg - math.log(float(ml_dtypes.finfo(dtype).max))) < 0.5
    f16 = output_scan("naive", "float16").rows[0]
    assert t.value != f16.threshold("positive", "nonfinite").value


# ---------------------------------------------------------------------------
# The exact reference stays exact across the sweep
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("h", [-1e4, -745.5, -700.25, -50.0, -1.5, 0.0, 0.75, 36.75, 709.5, 1e4])
@pytest.mark.parametrize("y", [0.0, 1.0, 0.25])
def test_exact_output_gradient_agrees_with_reference_gradients(h, y):
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    problem = Problem.from_arrays(
        spec, [np.zeros((1, 1))], [np.array([h])], np.ones((1, 1)), np.array([[y]]), "float64"
    )
    ref = reference_gradients(problem)  # verified to 80 bits at two precisions
    g = exact_output_gradient(h, y)
    assert g != 0
    for exact in (ref.exact_dbiases[0][0], ref.exact_dweights[0][0, 0]):
        assert abs(g - exact) <= abs(g) * CTX.mpf(2) ** -78


@pytest.mark.parametrize("h", [40.0, 745.0, 1e4, 65504.0, 3.0e38])
def test_exact_output_gradient_matches_exp_asymptotics_far_into_saturation(h):
    # y = 1, h > 0: sigmoid(h) - 1 = -e^-h / (1 + e^-h), so  g e^h = -1 + e^-h - ...
    g = exact_output_gradient(h, 1.0)
    e = CTX.exp(-CTX.mpf(h))
    assert g < 0
    assert abs(g / -e - 1) <= 2 * e + CTX.mpf(2) ** -80
    # y = 0, h < 0: sigmoid(h) = e^h / (1 + e^h)
    g0 = exact_output_gradient(-h, 0.0)
    assert abs(g0 / e - 1) <= 2 * e + CTX.mpf(2) ** -80
    # no cancellation to 0 however far out: the value is representable in mpmath
    assert g != 0 and g0 != 0


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
@pytest.mark.parametrize("h", [-300.0, -20.0, 0.5, 17.25, 104.0, 745.0])
def test_exact_hidden_gradient_agrees_with_reference_gradients(act, h):
    spec = NetworkSpec((1, 1, 1), (act, "sigmoid"), "bce")
    problem = Problem.from_arrays(
        spec,
        [np.zeros((1, 1)), np.ones((1, 1))],
        [np.array([h]), np.zeros(1)],
        np.ones((1, 1)),
        np.zeros((1, 1)),
        "float64",
    )
    ref = reference_gradients(problem)
    g = exact_hidden_gradient(act, h)
    assert g != 0
    assert abs(g - ref.exact_dweights[0][0, 0]) <= abs(g) * CTX.mpf(2) ** -78


# ---------------------------------------------------------------------------
# What the scanner reports
# ---------------------------------------------------------------------------


def test_fused_is_finite_throughout_with_its_error_growth():
    result = output_scan("fused", "float32")
    for row in result.rows:
        for side in row.sides:
            assert side.finite_throughout
            assert not side.thresholds["nonfinite"].found
            assert not side.raises_anywhere
    # z - 1 cancels for y = 1: the error grows until the gradient is returned as 0
    t = result.row("float32", 1.0).threshold("positive", "error_1")
    assert t.found and t.gradient == 0.0 and t.exact < 0
    assert 15 < t.value < 18
    table = format_scan_table([result])
    assert "finite throughout" in table
    assert "3.40282e+38" not in table  # never a threshold at the end of the range


def test_epsilon_stays_finite_but_goes_wrong_and_its_points_do_not_coincide():
    result = output_scan("epsilon", "float32")
    for label in (0.0, 1.0):
        row = result.row("float32", label)
        assert row.positive.finite_throughout and row.negative.finite_throughout
    t = result.row("float32", 1.0).threshold("positive", "error_1")
    assert t.found and not result.row("float32", 1.0).threshold("positive", "nonfinite").found
    # relative error reaches 1e-3 much earlier: where s (1 - s) is comparable to epsilon
    early = result.row("float32", 1.0).threshold("positive", "error_1e-3")
    assert early.value < 10 < t.value
    assert abs(early.value - math.log(1e-3 / 1e-7)) < 0.5  # s(1-s) ~ e^-h ~ 1e-3 * eps


def test_an_implementation_that_raises_is_reported_as_error_not_nonfinite():
    @supports(losses=("bce",), dtypes=("float16", "float32"), name="raises-above-5")
    def raises_above_5(weights, biases, x, y, *, activations, loss):
        if np.any(biases[-1].astype(np.float64) > 5):
            raise RuntimeError("logit too large")
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    result = scan(raises_above_5, dtypes=["float32"], hidden_activations=(), sweep_points=20)
    for row in result.rows:
        pos = row.positive
        t = pos.thresholds["raises"]
        assert t.found and t.value == float(np.nextafter(np.float32(5), np.float32(np.inf)))
        assert t.status == "error" and "RuntimeError: logit too large" in t.message
        assert pos.raises_anywhere and not pos.thresholds["nonfinite"].found
        assert not row.negative.raises_anywhere
        assert not row.negative.thresholds["raises"].found
    sweep = [s for s in result.sweeps if s.side == "positive"][0]
    assert any(sweep.error) and not any(sweep.nonfinite)
    assert all(e == (h > 5) for h, e in zip(sweep.h, sweep.error, strict=True))
    table = format_scan_table([result])
    assert "raises" in table and "finite where returned" in table


def test_non_monotone_regions_are_reported_not_assumed_away():
    @supports(losses=("bce",), dtypes=("float32",), name="nan-in-[3,4]-and-above-10")
    def patchy(weights, biases, x, y, *, activations, loss):
        dW, db = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
        h = float(biases[-1][0])
        if 3 <= h <= 4 or h > 10:
            return [np.full_like(w, np.nan) for w in dW], [np.full_like(b, np.nan) for b in db]
        return dW, db

    result = scan(patchy, dtypes=["float32"], labels=(0.0,), hidden_activations=(), sweep_points=0)
    t = result.row("float32", 0.0).threshold("positive", "nonfinite")
    assert t.value == 3.0 and t.previous_value == float(np.nextafter(np.float32(3), 0))
    assert not t.monotone and t.recovery_count == 1
    start, end, refined = t.recoveries[0]
    assert refined
    assert start == float(np.nextafter(np.float32(4), np.float32(np.inf)))
    assert end == 10.0
    assert "*" in format_scan_table([result])
    assert result.row("float32", 0.0).negative.finite_throughout


def test_hidden_underflow_thresholds_against_brute_force():
    result = scan(naive_bce_backprop, dtypes=["float16"], labels=(0.0,), sweep_points=0)
    dtype = np.dtype(np.float16)
    rows = {(h.activation, h.side): h for h in result.hidden}
    assert set(rows) == {(a, s) for a in ("sigmoid", "tanh") for s in SIDES}
    for (act, side), row in rows.items():
        t = row.first_zero
        assert t.found
        negative = side == "negative"

        def returns_zero(i, act=act, negative=negative):
            h = lattice_float(i, negative, dtype)
            dW, _ = naive_bce_backprop(
                [np.zeros((1, 1), dtype), np.ones((1, 1), dtype)],
                [np.array([h], dtype), np.zeros(1, dtype)],
                np.ones((1, 1), dtype),
                np.zeros((1, 1), dtype),
                activations=(act, "sigmoid"),
                loss="bce",
            )
            return float(dW[0][0, 0]) == 0.0

        zeros = [i for i in range(max(0, t.index - 256), t.index + 1) if returns_zero(i)]
        assert zeros == [t.index], (act, side)
        # the dtype's own limit: the first float where the exact gradient rounds to 0
        limit = row.representable_limit
        for i, expect_zero in ((limit.index - 1, False), (limit.index, True)):
            hv = float(lattice_float(i, negative, dtype))
            exact = CTX.mpf(1) / (1 + CTX.exp(-_mp_act(act, hv))) * _mp_act_derivative(act, hv)
            assert (nearest_float(exact, dtype) == 0.0) == expect_zero, (act, side, i)
    # sech(h)**2 as 4e/(1 + e)**2, e = exp(-2|h|): only e rounding to 0 before 4e would comes
    # early, by less than 1 in h (1/cosh(h)**2 lost more than 2: cosh(h)**2 overflowed first)
    tanh = rows[("tanh", "positive")]
    limit = abs(tanh.representable_limit.value)
    assert limit - 1 < abs(tanh.first_zero.value) < limit
    assert "early" in format_scan_table([result])


def _mp_act(act: str, h: float):
    hv = CTX.mpf(h)
    return CTX.tanh(hv) if act == "tanh" else 1 / (1 + CTX.exp(-hv))


def _mp_act_derivative(act: str, h: float):
    hv = CTX.mpf(h)
    if act == "tanh":
        return 1 / CTX.cosh(hv) ** 2
    s = 1 / (1 + CTX.exp(-hv))
    return s * (1 / (1 + CTX.exp(hv)))


def test_sweep_covers_the_thresholds_with_exact_errors_in_bits():
    result = scan(
        naive_bce_backprop,
        dtypes=["float32"],
        labels=(1.0,),
        hidden_activations=(),
        sweep_points=40,
    )
    row = result.rows[0]
    assert {(s.label, s.side) for s in result.sweeps} == {(1.0, "positive"), (1.0, "negative")}
    for series in result.sweeps:
        side = row.positive if series.side == "positive" else row.negative
        sat = series.saturation
        assert list(sat) == sorted(sat) and len(sat) >= 20
        assert all((h >= 0) == (series.side == "positive") for h in series.h if h != 0)
        for t in side.thresholds.values():
            if t.found:
                assert max(sat) > abs(t.value)
                assert t.value in series.h  # the threshold float itself is a sweep point
        # bits recomputed here from an independent exact value
        for h, a, bits, nonfinite in zip(
            series.h, series.gradient, series.bits, series.nonfinite, strict=True
        ):
            g = brute_exact(h, 1.0)
            hi = float(g)
            lo = float(g - CTX.mpf(hi))
            expected = elementwise_errors(
                np.array([a]), np.array([hi]), np.array([lo]), "float32"
            ).bits[0]
            assert bits == pytest.approx(expected, abs=1e-9)
            assert nonfinite == (not math.isfinite(a))
        # naive goes NaN on the positive side: the sweep shows it at full width
        if series.side == "positive":
            assert any(series.nonfinite) and max(series.bits) == 32.0


def test_json_document_is_versioned_serialisable_and_valid():
    result = scan(
        naive_bce_backprop, dtypes=["float16"], hidden_activations=("tanh",), sweep_points=10
    )
    doc = scan_document([result])
    text = json.dumps(doc, allow_nan=False)  # inf/NaN are encoded as strings
    back = json.loads(text)
    assert back["schema"] == "gradverify.scan/1"
    assert set(CRITERIA) <= set(back["criteria"])
    one = back["scans"][0]
    assert one == json.loads(json.dumps(result.to_dict(), allow_nan=False))
    threshold = one["rows"][0]["sides"]["positive"]["thresholds"]["nonfinite"]
    assert threshold["found"] and threshold["bits"].startswith("0x")
    assert float(np.float16(threshold["decimal"])) == threshold["value"]
    jsonschema = pytest.importorskip("jsonschema")
    schema = scan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(back, schema, cls=jsonschema.Draft202012Validator)
    broken = json.loads(text)
    broken["scans"][0]["rows"][0]["sides"]["positive"]["thresholds"]["nonfinite"]["bits"] = 7
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_table_has_one_row_per_implementation_dtype_and_label():
    results = [output_scan("naive", "float16"), output_scan("epsilon", "float16")]
    table = format_scan_table(results)
    lines = table.splitlines()
    for impl in ("naive", "epsilon"):
        for y in ("0", "1"):
            assert sum(1 for line in lines if line.split()[:3] == [impl, "float16", y]) == 1
    t = results[0].row("float16", 0.0).threshold("positive", "nonfinite")
    assert t.bits in table
    assert "h<0" in table and "h>0" in table


def test_progress_callback_and_default_dtypes():
    messages = []

    @supports(losses=("bce",), activations=("sigmoid",), dtypes=("float16",), name="only-f16")
    def only_float16(weights, biases, x, y, *, activations, loss):
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    result = scan(
        only_float16,
        labels=(1.0,),
        sweep_points=0,
        progress=lambda *update: messages.append(update),
    )
    assert result.dtypes == ("float16",)  # the declared dtypes
    assert [h.activation for h in result.hidden] == ["sigmoid", "sigmoid"]  # tanh undeclared
    assert messages and all("only-f16" in m for m, _, _ in messages)
    # one step per label and one per hidden activation, each announced as it starts
    assert [(done, total) for _, done, total in messages] == [(0, 2), (1, 2)]
    assert result.implementation == "only-f16"


def test_progress_true_writes_one_line_per_step_on_stderr(capsys):
    scan(naive_bce_backprop, dtypes="float16", labels=(0.0,), sweep_points=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # y=0 output layer, hidden sigmoid, hidden tanh
    assert all(line.startswith("gradverify scan: ") for line in lines)
    assert "float16 y=0: output layer" in lines[0] and "hidden tanh underflow" in lines[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtypes": ["float8"]}, "unsupported dtype 'float8'"),
        ({"dtypes": []}, "dtypes is empty"),
        ({"labels": (2.0,)}, r"labels must be numbers in \[0, 1\]"),
        ({"labels": ()}, "labels is empty"),
        ({"sweep_points": -1}, "sweep_points must be a non-negative integer"),
        ({"hidden_activations": ("relu",)}, "hidden_activations must be among"),
    ],
)
def test_bad_arguments_get_one_line_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scan(fused_bce_backprop, **kwargs)


def test_a_hanging_implementation_stops_the_scan_with_a_clear_message():
    import time

    from gradverify.exploration.scan import ScanAborted

    calls = []

    @supports(losses=("bce",), dtypes=("float32",), name="hangs")
    def hangs(weights, biases, x, y, *, activations, loss):
        calls.append(1)
        time.sleep(2)

    with pytest.raises(ScanAborted, match=r"hangs did not return within 0.05 s on 3 calls"):
        scan(hangs, timeout=0.05, hidden_activations=(), sweep_points=0)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        scan(hangs, timeout=0)


def test_a_hang_where_the_scan_calls_in_groups_still_stops_it_at_the_third():
    """The float16 hidden-layer scan calls in groups (of 256); after each hang no call of
    the group is made before the scan counts it, so the third hang is the last call."""
    import time

    from gradverify.exploration.scan import ScanAborted

    deep_calls = []

    @supports(losses=("bce",), name="hangs-when-deep")
    def hangs_when_deep(weights, biases, x, y, *, activations, loss):
        if len(weights) > 1:
            deep_calls.append(1)
            time.sleep(2)
        return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

    with pytest.raises(ScanAborted, match=r"did not return within 0.25 s on 3 calls"):
        scan(
            hangs_when_deep,
            dtypes="float16",
            timeout=0.25,
            hidden_activations=("sigmoid",),
            sweep_points=0,
        )
    assert len(deep_calls) == 3


def test_implementations_the_scanner_cannot_drive_are_refused():
    with pytest.raises(ValueError, match="needs a callable"):
        scan("not a function")

    @supports(losses=("mse",), name="mse-only")
    def mse_only(weights, biases, x, y, *, activations, loss):
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="sigmoid output with loss 'bce'"):
        scan(mse_only)
