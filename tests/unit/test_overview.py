"""The paragraph a report opens with, built from results whose verdicts and thresholds the
tests choose: it follows them, and never calls a failing implementation safe."""

from __future__ import annotations

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from gradverify.exploration.scan.records import ScanRow, SideScan, Threshold
from gradverify.report import build_document, load_schema
from gradverify.report.html import render_html
from gradverify.report.markdown import render_markdown

CRITERIA = ("nonfinite", "error_1e-3", "error_1e-1", "error_1", "raises")
NAIVE_FLOAT16 = {"value": 7.625, "bits": "0x47a0", "status": "nonfinite", "exact": 0.99951}
NAIVE_FLOAT32 = {
    "value": 16.63553237915039,
    "bits": "0x41851592",
    "status": "nonfinite",
    "exact": 0.99999994,
}


def threshold(criterion, dtype, side, found=None):
    """A scan Threshold; ``found``: value, bits, status, returned gradient, exact, settled."""
    if found is None:
        return Threshold(criterion, dtype, side)
    status = found.get("status", "ok")
    return Threshold(
        criterion,
        dtype,
        side,
        index=1,
        value=found["value"],
        decimal=repr(found["value"]),
        bits=found["bits"],
        status=status,
        gradient=found.get("gradient", float("nan") if status == "nonfinite" else 0.0),
        exact=found.get("exact", 1.0),
        message=found.get("message"),
        settled=found.get("settled", True),
    )


def side(dtype, name, **found):
    """One side of a scan row: ``found`` maps a criterion to its first failing float; a
    nonfinite threshold also counts for every error level, as in the scan."""
    if "nonfinite" in found:
        for c in ("error_1e-3", "error_1e-1", "error_1"):
            found.setdefault(c, found["nonfinite"])
    thresholds = {c: threshold(c, dtype, name, found.get(c)) for c in CRITERIA}
    return SideScan(name, thresholds, 100, "exhaustive", 0.0, 0.0, "raises" in found)


def scan(name, rows):
    """A scan dict of ``rows``: ``(dtype, label, {criterion: found} for h > 0, ... h < 0)``."""
    return {
        "schema": "gradverify.scan/1",
        "implementation": name,
        "rows": [
            ScanRow(
                name, dtype, label, side(dtype, "positive", **pos), side(dtype, "negative", **neg)
            ).to_dict()
            for dtype, label, pos, neg in rows
        ],
        "sweeps": [],
        "hidden": [],
    }


def search(name, verdict, per_dtype, *, message="", diagnosis=(), hints=()):
    """A search dict: ``per_dtype`` maps a dtype to its verdict (or (verdict, saturation))."""
    entries = {}
    for dtype, v in per_dtype.items():
        v, saturation = v if isinstance(v, tuple) else (v, None)
        entries[dtype] = {
            "verdict": v,
            "examples": 10,
            "worst_bits": 0.0,
            "threshold_saturation": saturation,
        }
    failing = next((d for d, e in entries.items() if e["verdict"] != "pass"), None)
    counterexample = (
        {
            "implementation": name,
            "dtype": failing,
            "verdict": entries[failing]["verdict"],
            "message": message,
            "saturation": 8.0,
            "diagnosis": list(hints),
            "spec": None,
        }
        if failing
        else None
    )
    return {
        "schema": "gradverify.search/2",
        "implementation": name,
        "verdict": verdict,
        "samples": [],
        "examples": 10 * len(entries),
        "per_dtype": entries,
        "diagnosis": list(diagnosis),
        "counterexample": counterexample,
    }


def naive_and_fused(
    naive_f16=("float16", 0.0, {"nonfinite": NAIVE_FLOAT16}, {}), fused_verdict="pass"
):
    searches = [
        search(
            "naive",
            "unstable",
            {"float16": ("unstable", 7.625), "float32": ("unstable", 16.6)},
            message="2 inf/NaN entries at saturation",
            diagnosis=["wrong only at saturation"],
        ),
        search("fused", fused_verdict, {"float16": fused_verdict, "float32": "pass"}),
    ]
    small_side = {"value": 7.625, "bits": "0x47a0", "exact": -0.00049}
    scans = [
        scan(
            "naive",
            [
                naive_f16,
                ("float32", 0.0, {"nonfinite": NAIVE_FLOAT32}, {}),
            ],
        ),
        # fused: 100% error only where the exact gradient is about e^-|h| (y = 1, h > 0)
        scan("fused", [("float16", 1.0, {"error_1": small_side}, {}), ("float32", 0.0, {}, {})]),
    ]
    return build_document(title="t", searches=searches, scans=scans)


def sentence(doc, name):
    (form,) = [f for f in doc["overview"]["forms"] if f["implementation"] == name]
    return form["sentence"]


def test_the_paragraph_says_which_form_is_safe_and_where_the_other_breaks():
    doc = naive_and_fused()
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    overview = doc["overview"]
    assert overview["opening"] == "Safe: fused. Not safe: naive (unstable)."
    assert overview["safe"] == ["fused"]
    naive = sentence(doc, "naive")
    assert naive.startswith("naive is not safe: unstable")
    assert (
        "first lost at h = 7.625 (0x47a0) in float16 and h = 16.6355 (0x41851592) in float32"
        in (naive)
    )
    assert "with y = 0 and h > 0 (a confident wrong prediction), it returns NaN" in naive
    assert "the exact gradient is about 1" in naive
    assert sentence(doc, "fused").startswith("fused is safe: it passed all 20 search examples")
    breaks = overview["forms"][0]["breaks"]
    assert [(b["dtype"], b["value"], b["bits"]) for b in breaks] == [
        ("float16", 7.625, "0x47a0"),
        ("float32", 16.63553237915039, "0x41851592"),
    ]


def test_the_paragraph_opens_the_page_and_the_summary():
    doc = naive_and_fused()
    html = render_html(doc, {})
    assert html.index('id="answer"') < html.index('id="verdicts"')
    assert "<p><b>Safe: fused. Not safe: naive (unstable).</b></p>" in html
    markdown = render_markdown(doc)
    assert markdown.index("**Safe: fused. Not safe: naive (unstable).**") < markdown.index(
        "| implementation | verdict"
    )
    assert "- **naive** is not safe: unstable" in markdown


def test_the_paragraph_follows_the_thresholds_and_verdicts():
    moved = {"value": -11.09375, "bits": "0xc98c", "status": "ok", "gradient": 0.0, "exact": -1.0}
    doc = naive_and_fused(naive_f16=("float16", 1.0, {}, {"error_1": moved}))
    naive = sentence(doc, "naive")
    assert "h = -11.0938 (0xc98c; y = 1, h < 0) in float16" in naive
    assert "h = 16.6355 (0x41851592; y = 0, h > 0) in float32" in naive
    assert "returns 0 in float16 and returns NaN in float32" in naive
    assert "7.625" not in naive
    assert "exact gradient is -1 in float16 and 1 in float32" in naive

    doc = naive_and_fused(fused_verdict="incorrect")
    assert doc["overview"]["opening"] == "No form is safe: naive (unstable) and fused (incorrect)."
    assert doc["overview"]["safe"] == []
    assert "fused is safe" not in doc["overview"]["text"]
    assert sentence(doc, "fused").startswith("fused is not safe: incorrect at float16 and pass")


def test_an_upper_bound_is_marked_and_a_failed_call_is_quoted():
    bound = {"value": 9.21077, "bits": "0x41135f51", "settled": False, "exact": 1.0}
    raising = {"value": 3.0, "bits": "0x4200", "status": "error", "message": "boom"}
    doc = build_document(
        title="t",
        searches=[search("e", "error", {"float32": "unstable", "float16": "error"})],
        scans=[
            scan(
                "e",
                [
                    ("float32", 0.0, {"error_1": bound}, {}),
                    ("float16", 0.0, {"raises": raising}, {}),
                ],
            )
        ],
    )
    text = sentence(doc, "e")
    assert (
        "h = 3 (0x4200) in float16 and h ≤ 9.21077 (0x41135f51; an upper bound) in float32" in text
    )
    assert "fails (boom) in float16 and returns 0 in float32" in text


def test_the_why_is_the_searchs_own_words_and_nothing_else():
    with_words = build_document(
        title="t",
        searches=[
            search(
                "n",
                "unstable",
                {"float16": "unstable"},
                message="it went wrong like this",
                diagnosis=["hint one"],
                hints=["hint two"],
            )
        ],
    )
    text = sentence(with_words, "n")
    assert "The search's shrunk counterexample (float16): it went wrong like this." in text
    assert "Hints: hint one; hint two." in text
    without = build_document(title="t", searches=[search("n", "unstable", {"float16": "unstable"})])
    text = sentence(without, "n")
    assert "counterexample" not in text and "Hint" not in text
    assert text == (
        "n is not safe: unstable (right in the interior, wrong or inf/NaN only at saturation). "
        "It was not scanned float by float. The search fails it in float16 (unstable)."
    )


def test_only_errors_where_the_gradient_stays_large_break_a_form():
    small = {"value": 7.625, "bits": "0x47a0", "exact": -0.00049}
    searches = [search("f", "pass", {"float16": "pass"})]
    quiet = build_document(
        title="t", searches=searches, scans=[scan("f", [("float16", 1.0, {"error_1": small}, {})])]
    )
    assert quiet["overview"]["safe"] == ["f"]
    loud = build_document(
        title="t",
        searches=searches,
        scans=[scan("f", [("float16", 1.0, {"nonfinite": {**small, "status": "nonfinite"}}, {})])],
    )
    assert loud["overview"]["safe"] == []
    assert sentence(loud, "f").startswith(
        "f passed all 10 search examples at float16, but is not safe. Its gradient is first "
        "lost at h = 7.625 (0x47a0) in float16; there, with y = 1 and h > 0, it returns NaN"
    )


VERDICTS = ("pass", "unstable", "incorrect", "error")


@st.composite
def outcomes(draw):
    """Per implementation: overall verdict, per-dtype verdicts, and which dtypes break."""
    n = draw(st.integers(1, 3))
    out = []
    for k in range(n):
        dtypes = draw(st.lists(st.sampled_from(("float16", "float32")), unique=True, min_size=1))
        out.append(
            (
                f"impl{k}",
                draw(st.sampled_from(VERDICTS)),
                {d: draw(st.sampled_from(VERDICTS)) for d in dtypes},
                draw(st.sets(st.sampled_from(dtypes))),
            )
        )
    return out


@given(outcomes())
def test_a_failing_implementation_is_never_called_safe(cases):
    broken = {"value": 5.0, "bits": "0x4500", "status": "nonfinite"}
    searches, scans = [], []
    for name, verdict, per_dtype, breaking in cases:
        searches.append(search(name, verdict, per_dtype, message="m"))
        rows = [(d, 0.0, {"nonfinite": broken} if d in breaking else {}, {}) for d in per_dtype]
        scans.append(scan(name, rows))
    overview = build_document(title="t", searches=searches, scans=scans)["overview"]
    expected_safe = [
        name
        for name, verdict, per_dtype, breaking in cases
        if verdict == "pass" and set(per_dtype.values()) == {"pass"} and not breaking
    ]
    assert overview["safe"] == expected_safe
    for form, (name, _, _, breaking) in zip(overview["forms"], cases, strict=True):
        assert form["safe"] == (name in expected_safe)
        assert form["sentence"].startswith(f"{name} is safe") == (name in expected_safe)
        assert ("not safe" in form["sentence"]) == (name not in expected_safe)
        assert sorted(b["dtype"] for b in form["breaks"]) == sorted(breaking)
    opening = overview["opening"]
    safe_segment = opening.split("Not safe")[0] if opening.startswith("Safe:") else ""
    for name, *_ in cases:
        assert (name in safe_segment) == (name in expected_safe), opening


def check(name, verdict, dtype="float64", message=""):
    """A single-problem CheckResult dict, as the pytest plugin's report collects them."""
    return {
        "implementation": name,
        "verdict": verdict,
        "dtype": dtype,
        "spec": None,
        "saturation": 1.0,
        "message": message,
        "diagnosis": [],
        "tensors": [],
        "worst": [],
    }


def test_single_checks_are_merged_per_name_and_a_pass_is_not_called_safe():
    doc = build_document(
        title="t",
        checks=[
            check("x", "pass"),
            check("x", "pass", "float32"),
            check("y", "pass"),
            check("y", "incorrect", message="off by a factor"),
        ],
    )
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    overview = doc["overview"]
    assert overview["opening"] == "Passed single checks only: x. Not safe: y (incorrect)."
    assert overview["safe"] == []
    assert [f["implementation"] for f in overview["forms"]] == ["x", "y"]
    assert sentence(doc, "x") == (
        "x passed its 2 checks at float64 and float32: single problems, neither searched nor "
        "scanned, so this says nothing about other inputs."
    )
    assert sentence(doc, "y").startswith("y is not safe: incorrect (wrong at ordinary")
    assert "The failing check (float64): off by a factor." in sentence(doc, "y")
