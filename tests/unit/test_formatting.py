"""gradverify.common.formatting: every kind of number written one way, in every output.

Expected strings are written out by hand (or come from the float's bit pattern), never
from the function under test.
"""

from __future__ import annotations

import json
import math
import struct

import pytest

from gradverify.common.formatting import (
    MISSING,
    as_float,
    format_bits,
    format_duration,
    format_fd_error,
    format_gradient,
    format_label,
    format_logit,
    format_number,
    format_relative_error,
    format_side,
    format_threshold,
    format_time_limit,
    format_ulps,
    json_number,
    shorten,
    threshold_cell,
)

INF, NAN = math.inf, math.nan


def float32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


# ---------------------------------------------------------------------------
# JSON and reading back
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [(INF, "inf"), (-INF, "-inf"), (NAN, "nan"), (None, None), (1.5, 1.5), (0, 0.0), (-0.0, 0.0)],
)
def test_json_number_stores_what_json_cannot(value, stored):
    out = json_number(value)
    assert out == stored and type(out) is type(stored)
    json.dumps(out, allow_nan=False)  # raises on a bare inf/NaN


def test_json_numbers_read_back_as_the_same_float():
    for x in (INF, -INF, 2.0**-1074, 1e308, -3.25):
        assert as_float(json.loads(json.dumps(json_number(x)))) == x
    assert math.isnan(as_float(json_number(NAN)))


def test_as_float_gives_the_default_for_no_number():
    assert as_float(None) is None and as_float("abc") is None and as_float([1]) is None
    assert math.isnan(as_float("abc", math.nan))
    assert as_float("inf") == INF and as_float("-inf") == -INF and as_float(3) == 3.0


# ---------------------------------------------------------------------------
# Numbers as text
# ---------------------------------------------------------------------------


def test_format_number_conventions():
    assert MISSING == "-" and format_number(None) == "-"
    assert format_number("nan") == format_number(NAN) == "NaN"
    assert format_number(NAN, nan="?") == "?"
    assert format_number("inf") == "inf" and format_number(-INF, ".1f") == "-inf"
    assert format_number("not a number") == "not a number"
    assert format_number(0.000123456, ".3g") == "0.000123"
    assert format_number(INF, "<8.3g") == "inf     "  # padded like any number


@pytest.mark.parametrize(
    ("bits", "text"),
    [(None, "-"), (NAN, "-"), ("nan", "-"), (12.345, "12.3"), (0, "0.0"), (64.0, "64.0")],
)
def test_bits_have_one_decimal_and_none_when_not_measured(bits, text):
    assert format_bits(bits) == text


def test_bits_of_a_nonfinite_count_show_as_inf():
    assert format_bits("inf") == "inf"


def test_error_measures_have_three_digits_and_estimates_one():
    assert format_relative_error(1.9073486328125e-06) == "1.91e-06"
    assert format_relative_error(0.5) == "0.5" and format_relative_error(INF) == "inf"
    assert format_ulps(8388608.0) == "8.39e+06"
    assert format_fd_error(7.34e-10) == "7e-10"


def test_gradient_values_tell_neighbouring_float32s_apart():
    bits = 0x3DCCCCCD  # the float32 nearest 0.1
    a, b = float32(bits), float32(bits + 1)
    assert format_gradient(a) == "0.100000001" and format_gradient(b) == "0.100000009"
    assert float32(struct.unpack("<I", struct.pack("<f", float(format_gradient(a))))[0]) == a
    assert format_gradient(NAN) == "NaN"


def test_logits_thresholds_and_labels():
    h = float32(0x41851592)  # where naive BCE first gives inf/NaN in float32
    assert format_logit(h) == "16.64"
    assert format_threshold(h) == "16.6355"
    assert format_logit(None) == "-"
    assert [format_label(y) for y in (0.0, 1.0, 0.5, "1")] == ["0", "1", "0.5", "1"]


def test_seconds():
    assert format_time_limit(10.0) == "10 s" and format_time_limit(0.2) == "0.2 s"
    assert format_duration(12.345) == "12.3 s" and format_duration(None) == "- s"


def test_sides_of_zero():
    assert format_side("positive") == "h > 0" and format_side("negative") == "h < 0"
    assert format_side("positive", compact=True) == "h>0"
    assert format_side("negative", compact=True) == "h<0"


def test_shorten_marks_a_cut_and_keeps_the_limit():
    assert shorten("naive", 5) == "naive"
    cut = shorten("a" * 50, 10)
    assert cut == "a" * 9 + "~" and len(cut) == 10
    assert shorten(12345, 3) == "12~"


# ---------------------------------------------------------------------------
# Threshold cells: one wording for the CLI table and the report
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((7.625, "0x47a0"), {}, "7.625 0x47a0"),
        ((float32(0xC2B17218), "0xc2b17218"), {}, "-88.7228 0xc2b17218"),
        ((float32(0x41135F51), "0x41135f51"), {"settled": False}, "<=9.21077 0x41135f51"),
        ((0.223755, "0x3329"), {"monotone": False}, "0.223755 0x3329*"),
        ((5.5, "0x40b0"), {"settled": False, "monotone": False}, "<=5.5 0x40b0*"),
        ((20.0, "0x41a00000"), {"where": "y=0, h > 0"}, "20 0x41a00000 (y=0, h > 0)"),
        ((1.0, None), {}, "1"),
        (("16.6355", "0x41851592"), {}, "16.6355 0x41851592"),  # as stored in JSON
        ((None,), {"criterion": "nonfinite"}, "finite throughout"),
        ((None,), {"criterion": "nonfinite", "raises_anywhere": True}, "finite where returned"),
        ((None,), {"criterion": "error_1"}, "never"),
        ((None,), {"criterion": "error_1", "raises_anywhere": True}, "never"),
        ((None, "0x47a0"), {}, "never"),
    ],
)
def test_threshold_cell(args, kwargs, text):
    assert threshold_cell(*args, **kwargs) == text


def test_the_scan_table_and_the_report_word_each_threshold_alike():
    from gradverify.engine.implementations import naive_bce_backprop
    from gradverify.exploration.scan import format_scan_table, scan
    from gradverify.report.scan_data import scan_thresholds, threshold_table

    result = scan(
        naive_bce_backprop,
        dtypes=("float16",),
        labels=(0.0,),
        sweep_points=8,
        check_points=16,
        neighbourhood=2,
        hidden_activations=(),
    )
    cli = format_scan_table([result])
    report = threshold_table(scan_thresholds(result.to_dict()))
    cells = [c for row in report["rows"] for c in row[4:-1]]
    found = [c for c in cells if "0x" in c]
    assert found and len(cells) >= 8
    for cell in cells:  # each in its own column of the fixed-width table
        assert f"  {cell}  " in cli or f"  {cell}\n" in cli, cell
