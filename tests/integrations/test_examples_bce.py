"""examples/bce_saturation.py runs, and what it prints is true (checked by brute force)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradverify.engine.implementations import fused_bce_backprop, naive_bce_backprop
from tests.png_helpers import assert_nontrivial_png

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bce_saturation.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("example")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, out


def per_unit_gradients(impl, logits: np.ndarray) -> np.ndarray:
    """dJ/db of a 1 -> K sigmoid layer whose K logits are exactly ``logits`` (W = 0, x = 1),
    labels 0: one independent output unit per logit, in one call."""
    k = logits.size
    dtype = logits.dtype
    _, db = impl(
        [np.zeros((k, 1), dtype)],
        [logits],
        np.ones((1, 1), dtype),
        np.zeros((k, 1), dtype),
        activations=("sigmoid",),
        loss="bce",
    )
    return np.asarray(db[0])


def printed_threshold(text: str, name: str, dtype: str) -> tuple[float, str]:
    match = re.search(
        rf"^\s+{name}\s+{dtype}\s+[\d.]+\s+h = (\S+) \((0x[0-9a-f]+)\)", text, re.MULTILINE
    )
    assert match, f"no inf/NaN threshold printed for {name} {dtype}"
    return float(match.group(1)), match.group(2)


def test_it_explains_why_the_fused_form_needs_no_constant(run):
    text, _ = run
    assert "needs no constant in the denominator" in text
    assert "= yhat - y" in text and "cancel" in text and "nothing is divided" in text
    assert "delta_{i-1} = (W_i^T delta_i)" in text  # how earlier layers get their gradient


def test_it_prints_the_three_verdicts(run):
    text, _ = run
    verdicts = dict(re.findall(r"^\s+(naive|epsilon|fused)\s+([A-Z]+)\s+\(", text, re.MULTILINE))
    assert verdicts["fused"] == "PASS"
    assert verdicts["naive"] == "UNSTABLE"
    assert verdicts["epsilon"] in ("UNSTABLE", "INCORRECT")


def test_float16_threshold_is_the_first_bad_float_by_enumeration(run):
    text, _ = run
    value, bits = printed_threshold(text, "naive", "float16")
    positive = np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16)  # ascending, finite
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(per_unit_gradients(naive_bce_backprop, positive))
    first = positive[np.argmax(bad)]
    assert bad.any() and bits == f"0x{first.view(np.uint16):04x}"
    assert value == float(f"{float(first):.6g}")
    # the fused form is finite on every finite float16 logit, positive and negative
    every = np.concatenate([positive, -positive, np.zeros(1, np.float16)])
    with np.errstate(all="ignore"):
        assert np.isfinite(per_unit_gradients(fused_bce_backprop, every)).all()
    assert re.search(r"^\s+fused\s+float16\s+[\d.]+\s+finite throughout", text, re.MULTILINE)


def test_float32_threshold_is_exact_within_a_dense_neighbourhood(run):
    text, _ = run
    value, bits = printed_threshold(text, "naive", "float32")
    t = np.array([int(bits, 16)], dtype=np.uint32).view(np.float32)[0]
    assert float(f"{float(t):.6g}") == value  # the decimal printed is this float's
    below = (t.view(np.uint32) - np.arange(1, 100_001, dtype=np.uint32)).view(np.float32)
    with np.errstate(all="ignore"):
        assert np.isfinite(per_unit_gradients(naive_bce_backprop, below)).all()
        assert not np.isfinite(per_unit_gradients(naive_bce_backprop, np.array([t]))).all()
    assert abs(value - 24 * np.log(2)) < 0.1  # 1 - sigmoid(h) rounds to 0 near p ln 2


def test_it_saves_the_error_vs_saturation_plot(run):
    text, out = run
    match = re.search(r"one line per way of writing the output layer: (\S+\.png)", text)
    assert match
    path = Path(match.group(1))
    assert path.parent == out and path.is_file()
    assert_nontrivial_png(path.read_bytes())
