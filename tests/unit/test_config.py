"""[tool.gradverify] in pyproject.toml: parsing, validation and one-line errors naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradverify.edges.config import ConfigError, find_config, load_config


def write(tmp_path: Path, body: str, name: str = "pyproject.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_full_config_is_parsed(tmp_path):
    path = write(
        tmp_path,
        """
        [project]
        name = "demo"

        [tool.gradverify]
        max-examples = 25
        seed = 7
        tolerance-factor = 16
        fail-on = "incorrect"
        dtypes = ["float32"]
        report-dir = "out/report"

        [[tool.gradverify.implementations]]
        target = "pkg.nn:backprop"
        activations = ["sigmoid", "tanh"]
        losses = ["bce"]
        dtypes = ["float32", "float64"]
        layout = "rows"

        [[tool.gradverify.implementations]]
        target = "pkg.other:fn"
        name = "other"
    """,
    )
    config = load_config(path)
    assert config.path == path
    assert config.values == {
        "max_examples": 25,
        "seed": 7,
        "tolerance_factor": 16.0,
        "fail_on": "incorrect",
        "dtypes": ("float32",),
        "report_dir": "out/report",
    }
    assert isinstance(config.values["tolerance_factor"], float)
    first, second = config.implementations
    assert first.target == "pkg.nn:backprop"
    assert first.activations == ("sigmoid", "tanh")
    assert first.losses == ("bce",)
    assert first.dtypes == ("float32", "float64")
    assert first.layout == "rows"
    assert second.name == "other" and second.activations is None and second.layout is None
    assert config.entry_for("pkg.other:fn") is second
    assert config.entry_for("pkg.missing:fn") is None


def test_misspelt_key_is_named_with_a_suggestion(tmp_path):
    path = write(
        tmp_path,
        """
        [tool.gradverify]
        max-exmaples = 10
    """,
    )
    message = error_of(path)
    assert message.startswith(f"{path}: [tool.gradverify] unknown key 'max-exmaples'")
    assert "did you mean 'max-examples'?" in message


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path):
    message = error_of(
        write(
            tmp_path,
            """
        [tool.gradverify]
        zzz = 1
    """,
        )
    )
    assert "unknown key 'zzz'" in message
    assert "max-examples" in message and "implementations" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('max-examples = "10"', "'max-examples' must be an integer; got string '10'"),
        ("max-examples = 2.5", "'max-examples' must be an integer; got float 2.5"),
        ("max-examples = 0", "'max-examples': expected a value >= 1"),
        ("seed = true", "'seed' must be an integer; got boolean True"),
        ("tolerance-factor = true", "'tolerance-factor' must be a number; got boolean True"),
        ("tolerance-factor = 0.5", "'tolerance-factor': expected a value >= 1"),
        (
            'fail-on = "sometimes"',
            "'fail-on': expected one of incorrect, unstable; got 'sometimes'",
        ),
        ("fail-on = 1", "'fail-on' must be a string; got integer 1"),
        ('dtypes = "float32"', "'dtypes' must be an array of strings"),
        ("dtypes = [32]", "'dtypes' must be an array of strings"),
        ("dtypes = []", "'dtypes' must not be empty"),
        ('dtypes = ["float8"]', "'dtypes': unknown dtype 'float8'"),
        ("report-dir = 3", "'report-dir' must be a string; got integer 3"),
        ('report-dir = ""', "'report-dir': expected a path, got an empty string"),
        ("tolerance-factor = nan", "'tolerance-factor': expected a finite number; got nan"),
        ("tolerance-factor = inf", "'tolerance-factor': expected a finite number; got inf"),
        ("tolerance-factor = 0", "'tolerance-factor': expected a value >= 1; got 0.0"),
        ("tolerance-factor = -1", "'tolerance-factor': expected a value >= 1; got -1.0"),
        (
            "max-examples = 10000000000000000000000",
            "'max-examples': expected a value <= 1,000,000; got 10000000000000000000000",
        ),
        ('implementations = "pkg:fn"', "'implementations' must be an array of tables"),
    ],
)
def test_wrong_types_name_the_key_and_the_file(tmp_path, line, expected):
    path = write(tmp_path, f"[tool.gradverify]\n{line}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: [tool.gradverify] ")
    assert expected in message


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '{activations = ["sigmoid"]}',
            "implementations[0]: 'target' must be a string \"module:attribute\"; got nothing",
        ),
        ('{target = "no_colon"}', "'target' must be a string \"module:attribute\"; got string"),
        (
            '{target = "m:f", activation = ["sigmoid"]}',
            "implementations[0]: unknown key 'activation' (did you mean 'activations'?)",
        ),
        ('{target = "m:f", layout = "diagonal"}', "'layout' must be one of columns, rows"),
        ('{target = "m:f", losses = ["hinge"]}', "'losses': unknown loss 'hinge'"),
        ('{target = "m:f", activations = ["swish"]}', "'activations': unknown activation 'swish'"),
        ('{target = "m:f", name = 3}', "'name' must be a string; got integer 3"),
        ('"m:f"', "implementations[0]: must be a table"),
    ],
)
def test_bad_implementation_tables(tmp_path, table, expected):
    path = write(tmp_path, f"[tool.gradverify]\nimplementations = [{table}]\n")
    assert expected in error_of(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[tool.gradverify\nseed = 1\n")
    message = error_of(path)
    assert message.startswith(f"{path}: invalid TOML")


def test_missing_file_and_missing_table(tmp_path):
    assert "no such file" in error_of(tmp_path / "nope.toml")
    path = write(tmp_path, "[project]\nname = 'x'\n")
    assert error_of(path) == f"{path}: no [tool.gradverify] table"
    empty = load_config(path, required=False)
    assert empty.values == {} and empty.implementations == ()


def test_find_config_only_returns_files_with_the_table(tmp_path):
    assert find_config(tmp_path) is None
    write(tmp_path, "[project]\nname = 'x'\n")
    assert find_config(tmp_path) is None
    path = write(tmp_path, "[tool.gradverify]\nseed = 1\n")
    assert find_config(tmp_path) == path


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b"[tool.gradverify]\nseed = 1  # caf\xe9\n")
    assert error_of(path) == (
        f"{path}: not UTF-8 text (byte 0xe9 at offset 33); TOML files must be UTF-8"
    )
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        find_config(tmp_path)  # found by name, then refused with the same message


def test_unreadable_and_absurd_files_are_named(tmp_path):
    assert error_of(tmp_path) == f"{tmp_path}: cannot read: not a regular file"
    deep = write(tmp_path, "a = " + "[" * 5000 + "]" * 5000 + "\n", name="deep.toml")
    assert error_of(deep) == f"{deep}: invalid TOML: nested too deeply"


@pytest.mark.parametrize(
    "content",
    [b"[tool.gradverify]\nseed = 1 # \xff\n", b"[tool.gradverify]\ntolerance-factor = nan\n"],
)
def test_the_cli_exits_2_naming_the_config_file(tmp_path, monkeypatch, capsys, content):
    from gradverify.edges.cli import main

    (tmp_path / "pyproject.toml").write_bytes(content)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "fused"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("gradverify check: error: pyproject.toml: ")


def test_an_implementation_declares_its_architecture(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """
        [[tool.gradverify.implementations]]
        target = "pkg.nn:two_layers"
        depth = 2
        batch = [1, 4]

        [[tool.gradverify.implementations]]
        target = "pkg.nn:mnist"
        widths = [784, "any", 10]
    """,
        )
    )
    first, second = config.implementations
    assert (first.depth, first.widths, first.batch) == (2, None, (1, 4))
    assert (second.depth, second.widths, second.batch) == (None, (784, None, 10), None)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("depth = 0", "'depth': depth must be a positive integer or a (min, max) pair"),
        ('depth = "2"', "'depth' must be like 2 or [2, 3]; got string '2'"),
        ("depth = [3, 2]", "'depth': depth range (3, 2) is empty"),
        ("batch = [1, 2, 3]", "'batch': batch must be a positive integer or a (min, max) pair"),
        ("widths = 3", "'widths' must be like [784, 30, 10] or [784, \"any\", 10]; got integer 3"),
        ('widths = [3, "free", 1]', "'widths' must be like [784, 30, 10]"),
        ("widths = [3, 0, 1]", "'widths': widths lists the input width"),
        (
            "widths = [784, 30, 10]\ndepth = 3",
            "widths=(784, 30, 10) has 3 entries, which is a network of depth 2",
        ),
    ],
)
def test_bad_architectures_name_the_key(tmp_path, keys, expected):
    path = write(tmp_path, f'[[tool.gradverify.implementations]]\ntarget = "m:f"\n{keys}\n')
    message = error_of(path)
    assert message.startswith(f"{path}: [tool.gradverify] implementations[0]:")
    assert expected in message


def test_activations_and_losses_apply_to_every_implementation_and_may_be_module_attr(tmp_path):
    path = write(
        tmp_path,
        """
        [tool.gradverify]
        activations = ["sigmoid", "mypkg.acts:square_plus"]
        losses = ["bce"]

        [[tool.gradverify.implementations]]
        target = "mypkg.nn:backprop"
        activations = ["mypkg.acts:square_plus"]
        """,
    )
    config = load_config(path)
    assert config.values["activations"] == ("sigmoid", "mypkg.acts:square_plus")
    assert config.values["losses"] == ("bce",)
    assert config.implementations[0].activations == ("mypkg.acts:square_plus",)
    bad = write(tmp_path, '[tool.gradverify]\nlosses = ["mypkg.losses:"]\n', "bad.toml")
    assert error_of(bad).endswith(
        "'losses': 'mypkg.losses:' is not MODULE:ATTR (e.g. mypkg.acts:square_plus)"
    )
