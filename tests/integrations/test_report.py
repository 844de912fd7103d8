"""The report: schema-valid JSON, self-contained escaped HTML, real PNGs, atomic replacement."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from gradverify.common.progress import Progress, progress_enabled
from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop, supports
from gradverify.report import OutputDirectoryError, load_schema, render_report, write_report
from gradverify.report.atomic import MANIFEST
from gradverify.report.document import SCHEMA
from gradverify.report.markdown import render_markdown
from tests.png_helpers import assert_nontrivial_png

EVIL = "<script>alert(1)</script>"
NAIVE = 'naive & "quoted" <b>bold</b>'
LIGHT_SCAN = {
    "sweep_points": 40,
    "check_points": 32,
    "neighbourhood": 4,
    "hidden_activations": ("sigmoid",),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real report: the naive and fused built-ins (under hostile names) at float16."""
    out = tmp_path_factory.mktemp("report") / "out"
    path = write_report(
        out,
        implementations={NAIVE: naive_bce_backprop, EVIL: fused_bce_backprop},
        dtypes=("float16",),
        max_examples=8,
        seed=1,
        progress=False,
        title=f"report on {EVIL}",
        search_options={"database": None},
        scan_options=LIGHT_SCAN,
    )
    assert path == out
    return out


def load(report: Path) -> dict:
    return json.loads((report / "report.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------
# report.json
# ---------------------------------------------------------------------------


def test_report_json_validates_against_its_schema(report):
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = load(report)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["schema"] == SCHEMA == "gradverify.report/1"


def test_schema_rejects_a_document_that_breaks_it(report):
    doc = load(report)
    doc["implementations"][0]["verdict"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    doc = load(report)
    del doc["thresholds"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)


def test_report_numbers_agree_with_the_results_they_came_from(report):
    doc = load(report)
    by_name = {i["name"]: i for i in doc["implementations"]}
    assert set(by_name) == {NAIVE, EVIL}
    assert by_name[NAIVE]["verdict"] == "unstable"  # naive BCE at float16 goes to NaN
    assert by_name[EVIL]["verdict"] == "pass"
    search = {s["implementation"]: s for s in doc["results"]["searches"]}
    assert by_name[NAIVE]["examples"] == search[NAIVE]["examples"] == len(search[NAIVE]["samples"])
    # the naive first inf/NaN float on h > 0 at float16: inf/NaN there and finite just inside
    first = next(
        t
        for t in doc["thresholds"]
        if t["implementation"] == NAIVE
        and t["criterion"] == "nonfinite"
        and t["side"] == "positive"
        and t["label"] == 0.0
    )
    h = np.float16(first["value"])
    assert first["bits"] == f"0x{h.view(np.uint16):04x}"
    for value, expect_finite in ((h, False), (np.nextafter(h, np.float16(0)), True)):
        dw, db = naive_bce_backprop(
            [np.zeros((1, 1), np.float16)],
            [np.array([value])],
            np.ones((1, 1), np.float16),
            np.zeros((1, 1), np.float16),
            activations=("sigmoid",),
            loss="bce",
        )
        assert bool(np.isfinite(db[0]).all()) is expect_finite
    fused_nonfinite = [
        t
        for t in doc["thresholds"]
        if t["implementation"] == EVIL and t["criterion"] == "nonfinite"
    ]
    assert fused_nonfinite and not any(t["found"] for t in fused_nonfinite)


def _naive_db(h: np.ndarray, y: float) -> np.ndarray:
    """dJ/db of the naive form on a 1 -> 1 network whose logit is h exactly (W = 0, b = h),
    one call per float16 h."""
    out = np.empty(h.size)
    for k, value in enumerate(h):
        _, db = naive_bce_backprop(
            [np.zeros((1, 1), np.float16)],
            [np.array([value])],
            np.ones((1, 1), np.float16),
            np.full((1, 1), y, np.float16),
            activations=("sigmoid",),
            loss="bce",
        )
        out[k] = float(db[0][0])
    return out


def _float16s_from_zero(last: np.float16) -> np.ndarray:
    """Every float16 from 0 out to ``last`` (inclusive), on ``last``'s side of 0."""
    bits = np.arange(int(abs(last).view(np.uint16)) + 1, dtype=np.uint16).view(np.float16)
    return -bits if last < 0 else bits


def test_the_opening_paragraph_names_the_first_float16_a_brute_force_finds(report):
    """Brute force over float16: the first h (moving out from 0, both labels, both sides)
    where the naive form returns inf/NaN, or is 100% wrong where the exact gradient stays
    about 1, is the float the paragraph names, with what it returns there."""
    doc = load(report)
    first_bad = None
    for y, side in ((0.0, 1), (1.0, 1), (0.0, -1), (1.0, -1)):
        h = _float16s_from_zero(np.float16(side * 12.0))
        got = _naive_db(h, y)
        exact = 1.0 / (1.0 + np.exp(-h.astype(np.float64))) - y  # dJ/db, accurate in float64
        bad = ~np.isfinite(got)
        if (y == 0.0) == (side > 0):  # a confident wrong prediction: |exact| about 1
            bad |= np.abs(got - exact) >= np.abs(exact)
        if bad.any():
            k = int(np.argmax(bad))
            if first_bad is None or abs(h[k]) < abs(first_bad[0]):
                first_bad = (h[k], y, got[k], exact[k])
    assert first_bad is not None
    h, y, got, exact = first_bad
    bits = f"0x{abs(h).view(np.uint16) | (0x8000 if h < 0 else 0):04x}"
    overview = doc["overview"]
    (naive,) = [f for f in overview["forms"] if f["implementation"] == NAIVE]
    assert not naive["safe"] and NAIVE not in overview["safe"]
    sentence = naive["sentence"]
    assert f"first lost at h = {float(h):.6g} ({bits}) in float16" in sentence, sentence
    side = "h > 0" if h > 0 else "h < 0"
    assert f"with y = {y:g} and {side}" in sentence
    returned = "NaN" if np.isnan(got) else f"{got:.4g}"
    assert f"it returns {returned}, where the exact gradient is about {exact:.2g}" in sentence
    assert overview["safe"] == [EVIL]  # fused: passes, and the scan finds no break
    assert overview["text"].startswith(f"Safe: {EVIL}. Not safe: {NAIVE} (unstable).")


# ---------------------------------------------------------------------------
# index.html
# ---------------------------------------------------------------------------


def test_html_escapes_every_hostile_name(report):
    page = (report / "index.html").read_text(encoding="utf-8")
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script" not in page.lower()  # no script at all, hostile or ours


def test_html_is_self_contained(report):
    page = (report / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'\b(?:src|srcset)\s*=\s*"([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link\b|@import|url\(", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page


def test_html_sections_come_in_order(report):
    page = (report / "index.html").read_text(encoding="utf-8")
    ids = ["answer", "verdicts", "thresholds", "figures", "worst", "counterexamples"]
    positions = [page.index(f'id="{i}"') for i in ids]
    assert positions == sorted(positions)
    # the naive counterexample is there, with its reproduction snippet
    section = page[page.index('id="counterexamples"') :]
    assert "Reproduce it:" in section and "gradverify.check_problem" in section


def test_every_image_named_in_the_html_exists_and_is_a_real_png(report):
    page = (report / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', page)
    doc = load(report)
    assert len(images) == len(doc["figures"]) >= 4
    for data, name in images:
        path = report / name
        assert path.is_file(), f"{name} is named in index.html but missing"
        on_disk = path.read_bytes()
        assert base64.b64decode(data) == on_disk  # the inline copy is the file
        assert_nontrivial_png(on_disk)
    assert {f["file"] for f in doc["figures"]} == {name for _, name in images}


def test_markdown_summary_escapes_and_fits_a_ci_job_summary(report):
    text = (report / "summary.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 1024 * 1024
    # code blocks show their text literally (the reproduction snippets); outside them no
    # hostile markup survives
    outside = re.sub(r"^(`{3,})python\n.*?^\1$", "", text, flags=re.DOTALL | re.MULTILINE)
    assert outside.count("```") == 0
    assert EVIL not in outside and "<b>bold</b>" not in outside
    assert "&lt;script&gt;" in outside
    assert "UNSTABLE" in text and "PASS" in text


def test_markdown_summary_is_truncated_with_a_note_when_too_large():
    cx = {
        "dtype": "float32",
        "verdict": "incorrect",
        "message": "x" * 5000,
        "saturation": 1.0,
        "network": "1 -> 1(sigmoid)",
        "batch": 1,
        "diagnosis": ["d"] * 10,
        "worst": [],
        "reproduction": "print('a | b')\n" * 200,
    }
    doc = {
        "title": "big",
        "implementations": [
            {
                "name": f"impl{k}",
                "verdict": "incorrect",
                "examples": 1,
                "worst_bits": 3.0,
                "dtypes": [],
                "counterexamples": [cx],
            }
            for k in range(400)
        ],
    }
    text = render_markdown(doc, max_bytes=200_000)
    assert len(text.encode("utf-8")) <= 200_000
    assert "left out to keep this summary under the CI limit" in text
    assert "impl0" in text and "impl399" in text  # the verdict table is whole
    small = render_markdown(doc, max_bytes=2_000)
    assert len(small.encode("utf-8")) <= 2_000 and "truncated" in small


def test_markdown_table_cells_cannot_break_the_table():
    doc = {
        "title": "t",
        "implementations": [
            {
                "name": "a|b\nc",
                "verdict": "pass",
                "examples": 1,
                "worst_bits": 0.0,
                "dtypes": [{"dtype": "float32", "verdict": "pass", "threshold_saturation": None}],
                "counterexamples": [],
            }
        ],
    }
    rows = [ln for ln in render_markdown(doc).splitlines() if ln.startswith("| a")]
    assert rows == [rows[0]] and r"a\|b c" in rows[0]
    assert rows[0].count(" | ") == 4  # five cells, no extra column from the name


# ---------------------------------------------------------------------------
# Writing: atomic replacement
# ---------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def small_report(out: Path, title: str = "previous") -> Path:
    checks = [
        json.loads(
            json.dumps(
                {
                    "implementation": "x",
                    "verdict": "pass",
                    "dtype": "float64",
                    "spec": None,
                    "saturation": 1.0,
                    "message": "",
                    "diagnosis": [],
                    "tensors": [],
                    "worst": [],
                }
            )
        )
    ]
    return render_report(out, check_results=checks, title=title, progress=False)


def test_a_new_report_replaces_the_previous_one(tmp_path):
    out = tmp_path / "reports"
    small_report(out, "first")
    # a figure the previous report drew (and listed in its manifest) but this one does not
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].append("stale.png")
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "stale.png").write_bytes(b"old")
    small_report(out, "second")
    assert "second" in (out / "index.html").read_text()
    assert not (out / "stale.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]  # no temporary left behind


def test_a_failing_run_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    small_report(out)
    before = snapshot(out)
    from gradverify.report import writer

    def broken(doc, images):
        raise RuntimeError("disk full")

    monkeypatch.setattr("gradverify.report.html.render_html", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        writer.render_report(out, check_results=[], title="new", progress=False)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]


def test_the_two_rename_fallback_also_replaces_and_recovers(tmp_path, monkeypatch):
    from gradverify.report import atomic

    monkeypatch.setattr(atomic, "exchange_directories", lambda a, b: False)
    out = tmp_path / "reports"
    small_report(out, "first")
    small_report(out, "second")
    assert "second" in (out / "index.html").read_text()
    # a run killed between the two renames leaves the old report aside: it is put back
    before = snapshot(out)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    aside = tmp_path / f".reports.old-{dead}-0000"
    out.rename(aside)
    half_built = tmp_path / f".reports.tmp-{dead}-1111"
    half_built.mkdir()
    (half_built / MANIFEST).write_text(
        json.dumps(
            {
                "tool": "gradverify",
                "manifest": "gradverify.manifest/1",
                "complete": False,
                "files": [],
            }
        )
    )
    (half_built / "index.html").write_text("half")
    not_ours = tmp_path / f".reports.tmp-{dead}-2222"  # same pattern, no manifest: kept
    not_ours.mkdir()
    (not_ours / "notes.txt").write_text("mine")
    atomic.check_output_directory(out)
    with atomic.replace_directory(out, schema="gradverify.report/1") as tmp:
        assert snapshot(out) == before  # recovered before anything else happened
        assert not half_built.exists()
        (tmp / "report.json").write_text("{}")
    assert (out / "report.json").read_text() == "{}"
    assert (not_ours / "notes.txt").read_text() == "mine"


def test_appending_is_atomic_and_keeps_what_was_there(tmp_path, monkeypatch):
    """What ``$GITHUB_STEP_SUMMARY`` gets: earlier steps' bytes kept, the new text whole."""
    from gradverify.report import atomic

    summary = tmp_path / "summary.md"
    earlier = b"# earlier step \xff\n"  # not even UTF-8: kept byte for byte
    summary.write_bytes(earlier)
    summary.chmod(0o640)
    atomic.append_file_atomic(summary, "| a | b |\n", what="$GITHUB_STEP_SUMMARY")
    assert summary.read_bytes() == earlier + b"| a | b |\n"
    assert summary.stat().st_mode & 0o777 == 0o640
    fresh = atomic.append_file_atomic(tmp_path / "new.md", "x\n")
    assert fresh.read_text() == "x\n"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(atomic.OutputPathError) as info:
        atomic.append_file_atomic(summary, "lost\n", what="$GITHUB_STEP_SUMMARY")
    assert str(info.value) == (
        f"$GITHUB_STEP_SUMMARY {summary}: cannot append: No space left on device"
    )
    assert summary.read_bytes() == earlier + b"| a | b |\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.md", "summary.md"]


def test_a_directory_that_is_not_a_report_is_never_replaced(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirectoryError, match="refusing to replace"):
        small_report(out)
    with pytest.raises(OutputDirectoryError, match="refusing to replace"):
        write_report(out, implementations={"fused": fused_bce_backprop}, progress=False)
    assert (out / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirectoryError, match="not a directory"):
        small_report(tmp_path / "file")


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from gradverify.report import render_report
    from gradverify.report.measure import layer_errors
    from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS

    layers = layer_errors(BUILTIN_IMPLEMENTATIONS, ["float32"])

    def progress(step, done, total):
        if done >= 1:  # one figure is written into the temporary directory: stop here
            print("HALFWAY", flush=True)
            time.sleep(120)

    hidden = {"network": "n", "saturation": [1.0, 10.0], "widths": [1, 1], "activations": [],
              "loss": "bce", "batch": 1, "seed": 0, "skipped": [],
              "series": [{"dtype": "float32", "implementations": ["a"], "fraction": [0, 1]}]}
    render_report(sys.argv[1], layers=layers, hidden_underflow=hidden, title="new",
                  progress=progress)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killing_a_run_halfway_leaves_the_previous_report_untouched(tmp_path, sig):
    out = tmp_path / "reports"
    small_report(out)
    before = snapshot(out)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "HALFWAY", proc.stderr.read()
        temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".reports.tmp-")]
        assert len(temporaries) == 1 and any(temporaries[0].iterdir())  # half-written
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert snapshot(out) == before  # byte-identical
    if sig == signal.SIGINT:  # interrupted: it cleans up after itself
        assert [p.name for p in tmp_path.iterdir()] == ["reports"]
    else:  # killed: the next run removes the leftover
        small_report(out, "next")
        assert [p.name for p in tmp_path.iterdir()] == ["reports"]


def test_killing_a_slow_run_during_the_search_leaves_the_previous_report(tmp_path):
    out = tmp_path / "reports"
    small_report(out)
    before = snapshot(out)
    script = textwrap.dedent("""
        import sys, time
        from gradverify.engine.implementations import fused_bce_backprop, supports
        from gradverify.report import write_report

        @supports(losses=("bce",), dtypes=("float32",), name="slow")
        def slow(weights, biases, x, y, *, activations, loss):
            print("CALLED", flush=True)
            time.sleep(0.5)
            return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)

        write_report(sys.argv[1], implementations=[slow], max_examples=50, progress=False)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "CALLED", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]


# ---------------------------------------------------------------------------
# Arguments and progress
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"implementations": {"x": 3}}, TypeError, "'x' is not callable"),
        ({"implementations": {}}, ValueError, "no implementation"),
        ({"max_examples": 0}, ValueError, "max_examples must be a positive integer"),
    ],
)
def test_bad_arguments_get_one_line_messages(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        write_report(tmp_path / "r", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


class FakeStream:
    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_progress_shows_only_on_a_terminal_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(None, FakeStream(True))
    assert not progress_enabled(None, FakeStream(False))
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled(None, FakeStream(True))
    assert progress_enabled(True, FakeStream(False)) and not progress_enabled(
        False, FakeStream(True)
    )


def test_progress_line_overwrites_itself_and_is_erased(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    stream = FakeStream(True)
    with Progress(3, title="gradverify report", stream=stream) as progress:
        progress.step("naive: search")
        progress.advance("naive: searched")
    assert "\rgradverify report: [0/3] naive: search" in stream.text
    assert "[1/3] naive: searched" in stream.text
    assert "\n" not in stream.text and stream.text.endswith("\r")
    quiet = FakeStream(False)
    with Progress(3, stream=quiet) as progress:
        progress.advance("x")
    assert quiet.text == ""


def test_write_report_reports_progress_to_a_callback(tmp_path):
    seen: list[tuple[str, int, int]] = []
    write_report(
        tmp_path / "r",
        implementations={"fused": fused_bce_backprop},
        dtypes=("float16",),
        max_examples=3,
        seed=0,
        measure=False,
        progress=lambda step, done, total: seen.append((step, done, total)),
        search_options={"database": None},
        scan_options=LIGHT_SCAN,
    )
    steps = [s for s, _, _ in seen]
    assert any("search" in s for s in steps) and any("scan" in s for s in steps)
    assert any("drawing" in s for s in steps)
    dones = [d for _, d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == seen[-1][2]  # counts up to the total


def test_report_files_are_named_as_documented(report):
    names = {p.name for p in report.iterdir()}
    assert {"index.html", "summary.md", "report.json", MANIFEST} <= names
    documents = {"index.html", "summary.md", "report.json", MANIFEST}
    assert all(n.endswith(".png") for n in names - documents)
    manifest = json.loads((report / MANIFEST).read_text())
    assert manifest["tool"] == "gradverify" and manifest["schema"] == "gradverify.report/1"
    assert manifest["files"] == sorted(names - {MANIFEST})
    assert os.stat(report).st_mode & 0o755 == 0o755 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_elapsed_time_is_recorded(report):
    doc = load(report)
    assert isinstance(doc["elapsed_seconds"], float) and doc["elapsed_seconds"] > 0


# ---------------------------------------------------------------------------
# The report's own measurements, against the exact reference
# ---------------------------------------------------------------------------


def test_saturated_problem_reaches_the_requested_levels():
    from gradverify.report.measure import saturated_problem

    for level in (1.0, 50.0, 1000.0):
        problem = saturated_problem((3, 5, 5, 1), level, 12.0, batch=4, seed=3)
        hs = problem.forward64().h
        for h in hs[:-1]:
            assert float(np.max(np.abs(h))) == pytest.approx(level, rel=1e-12)
        assert 11.9 - 1e-9 <= float(np.min(hs[-1])) and float(np.max(hs[-1])) <= 12.0 + 1e-9


def _normwise_exact(values, exact) -> float:
    """||a - g|| / ||g|| with the exact gradient g, in mpmath (independent of compare.py)."""
    import mpmath

    ctx = mpmath.MPContext()
    ctx.prec = 200
    num = ctx.fsum(
        (ctx.mpf(float(a)) - g) ** 2 for a, g in zip(np.ravel(values), exact.flat, strict=True)
    )
    den = ctx.fsum(g**2 for g in exact.flat)
    return float(ctx.sqrt(num / den))


def test_layer_errors_agree_with_the_exact_reference_and_the_epsilon_bias():
    import mpmath

    from gradverify.engine.harness import call_backprop
    from gradverify.engine.implementations import epsilon_bce_backprop
    from gradverify.exact.reference import reference_gradients
    from gradverify.report.measure import layer_errors, layer_problem

    impls = {"epsilon": epsilon_bce_backprop, "fused": fused_bce_backprop}
    data = layer_errors(impls, ["float32"])
    lines = {ln["implementation"]: ln for ln in data["panels"][0]["lines"]}
    problem = layer_problem().astype("float32")
    reference = reference_gradients(problem)
    for name, impl in impls.items():
        outcome = call_backprop(impl, problem)
        expected = [
            _normwise_exact(outcome.dweights[i], reference.exact_dweights[i])
            for i in reversed(range(problem.spec.depth))
        ]  # layer L first
        assert lines[name]["errors"] == pytest.approx(expected, rel=1e-6)
    # epsilon: delta_L is scaled by r = s(1-s) / (s(1-s) + eps), a relative bias of
    # eps / (s(1-s) + eps) that every layer inherits through the recursion
    h = float(np.mean(problem.forward64().h[-1]))
    slope = float(mpmath.exp(-h) / (1 + mpmath.exp(-h)) ** 2)
    bias = 1e-7 / (slope + 1e-7)
    assert lines["epsilon"]["errors"] == pytest.approx([bias] * 4, rel=0.02)
    assert max(lines["fused"]["errors"]) < 1e-5


ALL = ("float16", "float32", "float64")


@supports(dtypes=ALL)
def _zeroing(weights, biases, x, y, *, activations, loss):
    dw, db = fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)
    return [np.zeros_like(w) for w in dw[:-1]] + [dw[-1]], [np.zeros_like(b) for b in db[:-1]] + [
        db[-1]
    ]


@supports(dtypes=ALL)
def _raising(weights, biases, x, y, *, activations, loss):
    raise RuntimeError("nope")


def test_hidden_underflow_fractions_match_a_count_over_the_exact_gradient():
    from gradverify.engine.harness import call_backprop
    from gradverify.exact.reference import reference_gradients
    from gradverify.report.measure import hidden_underflow, saturated_problem

    levels = (1.0, 30.0, 300.0, 3000.0)
    dtypes = ["float16", "float32", "float64"]
    data = hidden_underflow(
        {
            "fused": fused_bce_backprop,
            "naive": naive_bce_backprop,
            "zeroing": _zeroing,
            "raising": _raising,
        },
        dtypes,
        levels=levels,
        widths=(3, 4, 4, 1),
        batch=3,
    )
    series = {(s["dtype"], tuple(s["implementations"])): s["fraction"] for s in data["series"]}
    # the built-ins share the hidden-layer recursion: one curve per dtype
    fractions = {d: series[(d, ("fused", "naive"))] for d in dtypes}
    for d in dtypes:
        assert series[(d, ("zeroing",))] == [1.0] * 4
        assert series[(d, ("raising",))] == [None] * 4
    # brute force at one point: count entry by entry against the mpf values
    problem = saturated_problem((3, 4, 4, 1), 30.0, 1.0, batch=3).astype("float16")
    reference = reference_gradients(problem)
    outcome = call_backprop(fused_bce_backprop, problem)
    zero = nonzero = 0
    for got, exact in (
        (outcome.dweights[:2], reference.exact_dweights[:2]),
        (outcome.dbiases[:2], reference.exact_dbiases[:2]),
    ):
        for g, e in zip(got, exact, strict=True):
            for value, truth in zip(np.ravel(g), e.flat, strict=True):
                if truth != 0:
                    nonzero += 1
                    zero += float(value) == 0.0
    assert fractions["float16"][1] == zero / nonzero
    # physics: nothing underflows at |h| = 1; a narrower exponent range underflows sooner
    assert all(fractions[d][0] == 0.0 for d in dtypes)
    for k in range(len(levels)):
        assert fractions["float16"][k] >= fractions["float32"][k] >= fractions["float64"][k]
    assert fractions["float16"][-1] > 0.9 and fractions["float64"][1] == 0.0


def test_a_report_from_results_collected_elsewhere(tmp_path):
    """What the pytest plugin does: Search and Check results, as objects or plain dicts."""
    from gradverify.engine.check import check_problem
    from gradverify.exploration.search import search
    from gradverify.model.network import NetworkSpec, Problem
    from gradverify.report import write_report_from_results

    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    problem = Problem.from_arrays(
        spec, [np.zeros((1, 1))], [np.array([40.0])], np.ones((1, 1)), np.zeros((1, 1)), "float64"
    )
    failing = check_problem(naive_bce_backprop, problem, name=EVIL)
    assert failing.verdict.value == "unstable"
    searched = search(
        fused_bce_backprop, dtypes=("float32",), max_examples=3, seed=0, database=None, name="fused"
    )
    out = write_report_from_results(tmp_path / "r", [searched, failing.to_dict()])
    doc = load(out)
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    assert [(i["name"], i["source"], i["verdict"]) for i in doc["implementations"]] == [
        ("fused", "search", "pass"),
        (EVIL, "check", "unstable"),
    ]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert EVIL not in page and "&lt;script&gt;" in page
    assert "NaN" in page  # the worst element of the naive check: NaN instead of about 1


def test_an_implementation_without_bce_is_searched_but_not_scanned(tmp_path):
    from gradverify.engine.implementations import stable_backprop

    mse_only = supports(
        activations=("tanh", "identity"), losses=("mse",), dtypes=("float32",), name="mse-only"
    )(
        lambda weights, biases, x, y, *, activations, loss: stable_backprop(
            weights, biases, x, y, activations=activations, loss=loss
        )
    )
    out = write_report(
        tmp_path / "r",
        implementations=[mse_only],
        max_examples=3,
        seed=0,
        progress=False,
        search_options={"database": None},
    )
    doc = load(out)
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    assert [i["verdict"] for i in doc["implementations"]] == ["pass"]
    assert doc["results"]["scans"] == [] and doc["thresholds"] == []
    assert any("mse-only: not scanned" in n for n in doc["notes"])
    assert doc["layers"]["panels"] == []  # the per-layer network is sigmoid + bce
    assert "not scanned" in (out / "index.html").read_text(encoding="utf-8")


def test_a_hanging_implementation_still_gets_a_report_quickly(tmp_path):
    calls = []

    @supports(losses=("bce",), dtypes=("float32",), name="hangs")
    def hangs(weights, biases, x, y, *, activations, loss):
        calls.append(1)
        import time

        time.sleep(30)

    out = write_report(
        tmp_path / "r",
        implementations=[hangs],
        max_examples=5,
        seed=0,
        progress=False,
        timeout=0.2,
        search_options={"database": None},
    )
    doc = load(out)
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    assert doc["implementations"][0]["verdict"] == "error"
    assert any(n.startswith("hangs: scan stopped") for n in doc["notes"])
    assert any("hung before" in n or "exceeded" in n for n in doc["notes"])
    assert len(calls) <= 8  # each measurement gives up after its first time-out


def test_threshold_summary_counts_errors_only_where_the_gradient_stays_large():
    from gradverify.report.scan_data import threshold_summary

    def row(label, side, criterion, value):
        return {
            "implementation": "f",
            "dtype": "float32",
            "label": label,
            "side": side,
            "criterion": criterion,
            "found": value is not None,
            "value": value,
            "bits": "0x1" if value is not None else None,
            "monotone": True,
            "settled": True,
            "raises_anywhere": False,
        }

    # sigmoid(h) - y -> -e^-h for y = 1, h -> +inf: a relative error there is not held
    # against the summary; y = 0, h > 0 (gradient about 1) and inf/NaN anywhere are
    tiny_side = [
        row(1.0, "positive", "error_1", 16.6),
        row(1.0, "positive", "nonfinite", None),
        row(1.0, "positive", "error_1e-3", 10.0),
    ]
    assert threshold_summary(tiny_side)["rows"] == [
        ["f", "float32", "finite throughout", "never", "never"]
    ]
    large_side = tiny_side + [
        row(0.0, "positive", "error_1", 20.0),
        row(1.0, "negative", "nonfinite", -88.7),
    ]
    cells = threshold_summary(large_side)["rows"][0]
    assert cells[2].startswith("-88.7 ") and "y=1, h < 0" in cells[2]
    assert cells[3] == "never" and cells[4].startswith("20 ") and "y=0, h > 0" in cells[4]
