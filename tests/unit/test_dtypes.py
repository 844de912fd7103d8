"""Dtype availability: bfloat16 is always there, and a dtype that is not is named, never dropped.

ml_dtypes is a core dependency, so bfloat16 is available wherever gradverify is installed.
Should it still be missing or broken, every output that leaves bfloat16 out says so and why:
``str()`` and JSON of search and scan results, the CLI's check output and its JSON, the
pytest summary, and the report (``report.json`` notes, ``summary.md``, ``index.html``). A
missing package is simulated the standard way, with ``sys.modules["ml_dtypes"] = None``.
"""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest

from gradverify.edges.cli import main
from gradverify.engine.implementations import fused_bce_backprop, supports
from gradverify.exploration.scan import scan, scan_document, scan_schema
from gradverify.exploration.search import search
from gradverify.model.dtypes import (
    SUPPORTED_DTYPES,
    DtypeUnavailableError,
    available_dtypes,
    resolve_dtype,
    unavailable_dtypes,
)
from gradverify.report import load_schema, write_report

pytest_plugins = ["pytester"]

SKIPPED = "skipped bfloat16: ml_dtypes is not installed"
QUICK_SCAN = {
    "sweep_points": 0,
    "check_points": 8,
    "neighbourhood": 2,
    "hidden_activations": (),
    "labels": (0.0,),
}


@pytest.fixture
def without_ml_dtypes(monkeypatch):
    """ml_dtypes as if it were not installed (any later ``import ml_dtypes`` fails)."""
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)


def quick_report(out):
    return write_report(
        out,
        implementations={"fused": fused_bce_backprop},
        max_examples=2,
        seed=0,
        progress=False,
        scan_options=QUICK_SCAN,
    )


def test_bfloat16_is_available_with_the_core_dependencies():
    import ml_dtypes

    assert available_dtypes() == SUPPORTED_DTYPES and unavailable_dtypes() == {}
    assert resolve_dtype("bfloat16") == ml_dtypes.bfloat16


def test_the_default_report_covers_bfloat16(tmp_path):
    doc = json.loads((quick_report(tmp_path / "r") / "report.json").read_text("utf-8"))
    assert [d["dtype"] for d in doc["implementations"][0]["dtypes"]] == list(SUPPORTED_DTYPES)
    assert doc["results"]["scans"][0]["dtypes"] == list(SUPPORTED_DTYPES)
    assert "bfloat16" in [p["dtype"] for p in doc["layers"]["panels"]]
    assert not any("skipped" in n for n in doc["notes"])


def test_an_unavailable_dtype_says_why(without_ml_dtypes):
    assert "bfloat16" not in available_dtypes()
    assert unavailable_dtypes()["bfloat16"].startswith("ml_dtypes is not installed")
    with pytest.raises(DtypeUnavailableError, match="ml_dtypes is not installed"):
        resolve_dtype("bfloat16")


def test_search_names_the_skipped_dtype(without_ml_dtypes):
    result = search(fused_bce_backprop, dtypes=("bfloat16", "float32"), max_examples=2, seed=0)
    assert result.dtypes == ("float32",)
    assert any(line.startswith(f"  {SKIPPED} (") for line in str(result).splitlines())
    assert result.to_dict()["skipped_dtypes"]["bfloat16"].startswith("ml_dtypes is not installed")
    with pytest.raises(ValueError, match=f"no usable dtype among bfloat16 .{SKIPPED}"):
        search(fused_bce_backprop, dtypes=("bfloat16",), max_examples=2, seed=0)


def test_scan_names_the_skipped_dtype(without_ml_dtypes):
    impl = supports(losses=("bce",), dtypes=("float16", "bfloat16"), name="f16-bf16")(
        lambda *args, **kwargs: fused_bce_backprop(*args, **kwargs)
    )
    result = scan(impl, **QUICK_SCAN)
    assert result.dtypes == ("float16",)
    assert f"{SKIPPED} (it provides" in str(result)
    document = scan_document([result])
    jsonschema.validate(document, scan_schema(), cls=jsonschema.Draft202012Validator)
    assert "bfloat16" in document["scans"][0]["skipped_dtypes"]


def test_cli_check_names_the_skipped_dtype(without_ml_dtypes, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["check", "fused", "--max-examples", "2", "--seed", "0", "--json", "out.json"])
    assert code == 0
    assert SKIPPED in capsys.readouterr().out
    (result,) = json.loads((tmp_path / "out.json").read_text("utf-8"))["results"]
    assert result["dtypes"] == ["float16", "float32", "float64"]
    assert result["skipped_dtypes"]["bfloat16"].startswith("ml_dtypes is not installed")


def test_the_pytest_summary_names_the_skipped_dtype(without_ml_dtypes, pytester):
    pytester.makepyfile(
        test_sample="""
        from gradverify.engine.implementations import fused_bce_backprop

        def test_fused(gradverify):
            gradverify.check(fused_bce_backprop, dtypes=("bfloat16", "float32"))
    """
    )
    result = pytester.runpytest(
        "--gradverify-max-examples=2", "--gradverify-seed=0", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"PASS*float32 pass*{SKIPPED}*"])


def test_the_report_names_the_skipped_dtype(without_ml_dtypes, tmp_path):
    out = quick_report(tmp_path / "r")
    doc = json.loads((out / "report.json").read_text("utf-8"))
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    assert [d["dtype"] for d in doc["implementations"][0]["dtypes"]] == [
        "float16",
        "float32",
        "float64",
    ]
    assert any(n.startswith(SKIPPED) for n in doc["notes"])
    markdown = SKIPPED.replace("_", "\\_")  # escaped for Markdown
    assert f"- {markdown}" in (out / "summary.md").read_text("utf-8")
    assert SKIPPED in (out / "index.html").read_text("utf-8")


def test_dtype_names_are_numpys_names_every_time():
    import ml_dtypes
    import numpy as np

    from gradverify.model.dtypes import dtype_name

    spellings = [
        "float16", "float32", "float64", "bfloat16", "f2", "f4", "f8", "d", "<f8", ">f8",
        np.float16, np.float32, np.float64, np.double, ml_dtypes.bfloat16,
        np.dtype("float32"), np.dtype(">f4"), np.dtype(ml_dtypes.bfloat16),
        np.dtype("int64"), "int8", np.complex128,
    ]  # fmt: skip
    for _ in range(2):  # the second time from what the first one kept
        for spelling in spellings:
            assert dtype_name(spelling) == np.dtype(spelling).name, spelling
    with pytest.raises(TypeError):
        dtype_name("no such dtype")
    assert dtype_name(np.zeros(2, dtype=">f8").dtype) == "float64"
