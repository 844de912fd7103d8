"""One table of options feeds the CLI, the pytest plugin and [tool.gradverify]."""

from __future__ import annotations

import argparse

import pytest

from gradverify.cli import build_parser
from gradverify.config import parse_section
from gradverify.options import (
    OPTIONS,
    Option,
    counts_as_failure,
    option_by_config_key,
    parse_name_list,
    resolve_settings,
    search_arguments,
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_cli_option_reaches_its_subcommands_with_the_table_help():
    subcommands = _subparsers(build_parser())
    assert set(subcommands) == {"check", "scan", "report"}
    for option in OPTIONS:
        if option.cli_flag is None:
            continue
        for name, sub in subcommands.items():
            action = sub._option_string_actions.get(option.cli_flag)
            if name in option.subcommands:
                assert action is not None, (option.cli_flag, name)
                assert action.dest == option.dest
                assert action.help == option.help
            else:
                assert action is None, (option.cli_flag, name)


def test_the_required_flags_exist_on_every_surface():
    by_dest = {o.dest: o for o in OPTIONS}
    for dest, pytest_flag in [("dtypes", "--gradverify-dtypes"),
                              ("max_examples", "--gradverify-max-examples"),
                              ("report_dir", "--gradverify-report"),
                              ("seed", "--gradverify-seed")]:
        option = by_dest[dest]
        assert option.pytest_flag == pytest_flag
        assert option.ini_name == pytest_flag[2:].replace("-", "_")
        assert option.config_key is not None
    for dest in ("activations", "losses", "layout"):
        assert by_dest[dest].cli_flag == f"--{dest}"


def test_the_plugin_registered_every_pytest_option_and_ini_key(pytestconfig):
    for option in OPTIONS:
        if option.pytest_flag:
            assert pytestconfig.getoption(option.pytest_dest) is None  # given nowhere here
        if option.ini_name:
            assert pytestconfig.getini(option.ini_name) == ""


def test_every_config_key_is_accepted_by_the_config_loader():
    values = {"dtypes": ["float64"], "max-examples": 3, "seed": 4, "tolerance-factor": 8.0,
              "fail-on": "incorrect", "report-dir": "r"}
    assert set(values) == set(option_by_config_key())
    parsed = parse_section(values, "pyproject.toml").values
    assert parsed == {"dtypes": ("float64",), "max_examples": 3, "seed": 4,
                      "tolerance_factor": 8.0, "fail_on": "incorrect", "report_dir": "r"}


@pytest.mark.parametrize(("text", "expected"), [
    ("float32,float64", ("float32", "float64")),
    (" float32 , float64 ", ("float32", "float64")),
    ("float32 float64", ("float32", "float64")),
    ("sigmoid", ("sigmoid",)),
])
def test_name_lists(text, expected):
    assert parse_name_list(text) == expected


def test_parse_rejects_bad_text_with_one_line_reasons():
    by_dest = {o.dest: o for o in OPTIONS}
    with pytest.raises(ValueError, match="expected an integer, got 'ten'"):
        by_dest["max_examples"].parse("ten")
    with pytest.raises(ValueError, match="expected a value >= 1"):
        by_dest["max_examples"].parse("0")
    with pytest.raises(ValueError, match="expected a number, got 'x'"):
        by_dest["tolerance_factor"].parse("x")
    with pytest.raises(ValueError, match="expected one of incorrect, unstable; got 'never'"):
        by_dest["fail_on"].parse("never")
    with pytest.raises(ValueError, match="at least one name"):
        by_dest["dtypes"].parse(" , ")
    assert by_dest["seed"].parse(" 12 ") == 12
    assert by_dest["tolerance_factor"].parse("2.5") == 2.5


def test_resolution_order_first_layer_wins_then_defaults():
    cli = {"max_examples": 5, "seed": None, "command": "check"}  # argparse leftovers ignored
    config = {"max_examples": 50, "seed": 3, "fail_on": "incorrect"}
    settings = resolve_settings(cli, config)
    assert settings.max_examples == 5
    assert settings.seed == 3
    assert settings.fail_on == "incorrect"
    assert settings.tolerance_factor == 32.0  # the table's default
    assert settings.dtypes is None
    assert not hasattr(settings, "command")
    defaults = resolve_settings()
    assert {o.dest: o.default for o in OPTIONS} == defaults.as_dict()


def test_search_arguments_pass_only_what_was_set():
    assert search_arguments(resolve_settings()) == {"tolerance_factor": 32.0}
    settings = resolve_settings({"dtypes": ["float32"], "max_examples": 9, "seed": 0})
    assert search_arguments(settings) == {"tolerance_factor": 32.0, "dtypes": ("float32",),
                                          "max_examples": 9, "seed": 0}


@pytest.mark.parametrize(("verdict", "fail_on", "fails"), [
    ("pass", "unstable", False), ("pass", "incorrect", False),
    ("unstable", "unstable", True), ("unstable", "incorrect", False),
    ("incorrect", "unstable", True), ("incorrect", "incorrect", True),
    ("error", "unstable", True), ("error", "incorrect", True),
])
def test_fail_on_policy(verdict, fail_on, fails):
    from gradverify.results import Verdict

    assert counts_as_failure(verdict, fail_on) is fails
    assert counts_as_failure(Verdict(verdict), fail_on) is fails


def test_option_is_declarative():
    option = Option("x", "int", None, "help", minimum=2)
    assert option.check(2) == 2
    with pytest.raises(ValueError):
        option.check(1)
