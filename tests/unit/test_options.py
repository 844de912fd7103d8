"""One table of options feeds the CLI, the pytest plugin and [tool.gradverify]."""

from __future__ import annotations

import argparse

import pytest

from gradverify.edges.cli import build_parser
from gradverify.edges.config import ConfigError, parse_section
from gradverify.edges.options import (
    MAX_EXAMPLES_LIMIT,
    OPTIONS,
    Option,
    counts_as_failure,
    option_by_config_key,
    parse_name_list,
    resolve_function_names,
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
    for dest, pytest_flag in [
        ("dtypes", "--gradverify-dtypes"),
        ("max_examples", "--gradverify-max-examples"),
        ("report_dir", "--gradverify-report"),
        ("seed", "--gradverify-seed"),
    ]:
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
    values = {
        "dtypes": ["float64"],
        "activations": ["tanh", "mypkg.acts:square_plus"],
        "losses": ["bce"],
        "max-examples": 3,
        "seed": 4,
        "tolerance-factor": 8.0,
        "timeout": 2.5,
        "isolate": False,
        "fail-on": "incorrect",
        "report-dir": "r",
        "policy": "strict",
    }
    assert set(values) == set(option_by_config_key())
    parsed = parse_section(values, "pyproject.toml").values
    assert parsed == {
        "dtypes": ("float64",),
        "activations": ("tanh", "mypkg.acts:square_plus"),
        "losses": ("bce",),
        "max_examples": 3,
        "seed": 4,
        "timeout": 2.5,
        "isolate": False,
        "tolerance_factor": 8.0,
        "fail_on": "incorrect",
        "report_dir": "r",
        "policy": "strict",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float32,float64", ("float32", "float64")),
        (" float32 , float64 ", ("float32", "float64")),
        ("float32 float64", ("float32", "float64")),
        ("sigmoid", ("sigmoid",)),
    ],
)
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
    assert search_arguments(resolve_settings()) == {"tolerance_factor": 32.0, "policy": "autograd"}
    settings = resolve_settings(
        {"dtypes": ["float32"], "max_examples": 9, "seed": 0, "policy": "strict"}
    )
    assert search_arguments(settings) == {
        "tolerance_factor": 32.0,
        "policy": "strict",
        "dtypes": ("float32",),
        "max_examples": 9,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("verdict", "fail_on", "fails"),
    [
        ("pass", "unstable", False),
        ("pass", "incorrect", False),
        ("unstable", "unstable", True),
        ("unstable", "incorrect", False),
        ("incorrect", "unstable", True),
        ("incorrect", "incorrect", True),
        ("error", "unstable", True),
        ("error", "incorrect", True),
    ],
)
def test_fail_on_policy(verdict, fail_on, fails):
    from gradverify.engine.results import Verdict

    assert counts_as_failure(verdict, fail_on) is fails
    assert counts_as_failure(Verdict(verdict), fail_on) is fails


def test_option_is_declarative():
    option = Option("x", "int", None, "help", minimum=2)
    assert option.check(2) == 2
    with pytest.raises(ValueError):
        option.check(1)


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [
        ("--tolerance-factor", "nan", "expected a finite number; got nan"),
        ("--tolerance-factor", "inf", "expected a finite number; got inf"),
        ("--tolerance-factor", "-inf", "expected a finite number; got -inf"),
        ("--tolerance-factor", "0", "expected a value >= 1; got 0.0"),
        ("--tolerance-factor", "-1", "expected a value >= 1; got -1.0"),
        ("--max-examples", str(10**22), f"expected a value <= 1,000,000; got {10**22}"),
        ("--max-examples", "0", "expected a value >= 1; got 0"),
    ],
)
def test_absurd_values_exit_2_naming_the_option_before_anything_runs(capsys, flag, value, reason):
    from gradverify.edges.cli import main

    assert main(["check", "no_such_module:fn", f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"gradverify check: error: argument {flag}: {reason}"


def test_the_limits_are_inclusive():
    by_dest = {o.dest: o for o in OPTIONS}
    assert by_dest["max_examples"].parse("1000000") == MAX_EXAMPLES_LIMIT == 1_000_000
    assert by_dest["tolerance_factor"].parse("1") == 1.0
    assert by_dest["tolerance_factor"].parse("1e300") == 1e300


class _PytestConfig:
    """The two methods of pytest.Config that values_from_pytest reads."""

    def __init__(self, flags: dict, ini: dict) -> None:
        self.flags, self.ini = flags, ini

    def getoption(self, dest):
        return self.flags.get(dest)

    def getini(self, name):
        return self.ini.get(name, "")


@pytest.mark.parametrize(
    ("ini", "where", "reason"),
    [
        (False, "--gradverify-tolerance-factor", "expected a finite number; got nan"),
        (True, "gradverify_tolerance_factor", "expected a finite number; got nan"),
        (False, "--gradverify-max-examples", "expected a value <= 1,000,000"),
        (True, "gradverify_max_examples", "expected a value <= 1,000,000"),
    ],
)
def test_pytest_flags_and_ini_keys_go_through_the_same_checks(ini, where, reason):
    from gradverify.edges.options import values_from_pytest

    value = "nan" if "tolerance" in where else str(10**22)
    (option,) = [o for o in OPTIONS if where in (o.pytest_flag, o.ini_name)]
    config = _PytestConfig(
        {} if ini else {option.pytest_dest: value}, {where: value} if ini else {}
    )
    with pytest.raises(ValueError) as info:
        values_from_pytest(config, ini=ini)
    assert str(info.value).startswith(f"{where}: {reason}")


def test_isolate_is_one_switch_on_every_surface():
    by_dest = {o.dest: o for o in OPTIONS}
    isolate = by_dest["isolate"]
    assert (isolate.cli_flag, isolate.pytest_flag, isolate.ini_name, isolate.config_key) == (
        "--isolate",
        "--gradverify-isolate",
        "gradverify_isolate",
        "isolate",
    )
    assert [isolate.parse(t) for t in ("true", "off", " Yes ", "0")] == [True, False, True, False]
    with pytest.raises(ValueError, match="expected true or false, got 'sometimes'"):
        isolate.parse("sometimes")
    subcommands = _subparsers(build_parser())
    for name in ("check", "scan", "report"):
        parse = subcommands[name].parse_args
        assert vars(parse(["--no-isolate"]))["isolate"] is False
        assert vars(parse(["--isolate"]))["isolate"] is True
        assert "isolate" not in vars(parse([]))  # the default is the surface's own
        assert vars(parse(["--timeout", "2"]))["timeout"] == 2.0
    with pytest.raises(ValueError, match="expected a value >= 0.01"):
        by_dest["timeout"].parse("0")


def test_isolate_in_pyproject_must_be_a_boolean():
    with pytest.raises(ConfigError, match="'isolate' must be true or false; got string 'no'"):
        parse_section({"isolate": "no"}, "pyproject.toml")


def test_activation_names_may_be_module_attr_checked_for_form_then_resolved(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["check", "x:f", "--activations", "tanh,pkg.acts:square_plus"])
    assert args.activations == ("tanh", "pkg.acts:square_plus")  # imported only when used
    with pytest.raises(ConfigError, match=r"'activations': 'pkg\.acts:' is not MODULE:ATTR"):
        parse_section({"activations": ["pkg.acts:"]}, "pyproject.toml")
    with pytest.raises(ConfigError, match="unknown activation 'swish'"):
        parse_section({"activations": ["swish"]}, "pyproject.toml")
    with pytest.raises(ConfigError, match="unknown dtype 'a:b'"):  # only functions are specs
        parse_section({"dtypes": ["a:b"]}, "pyproject.toml")
    module = tmp_path / "opts_registering.py"
    module.write_text(
        "import numpy as np, gradverify\n"
        "act = gradverify.register_activation('opts_sq', lambda h: (h + np.sqrt(h * h + 4)) / 2,"
        " lambda ctx, h: (h + ctx.sqrt(h * h + 4)) / 2)\n"
        "NAME = 'opts_sq'\n"
    )
    from gradverify.model import registry

    try:
        got = resolve_function_names(
            "activations",
            ["opts_registering:act", "opts_registering:NAME", "tanh"],
            directory=str(tmp_path),
        )
        assert got == ("opts_sq", "opts_sq", "tanh")
        with pytest.raises(ValueError, match="opts_registering:act is an activation, not a"):
            resolve_function_names("losses", ["opts_registering:act"], directory=str(tmp_path))
        with pytest.raises(ValueError, match="has no attribute 'nope'"):
            resolve_function_names("activations", ["opts_registering:nope"])
        with pytest.raises(ValueError, match="no module named 'no_such_mod'"):
            resolve_function_names("activations", ["no_such_mod:act"])
    finally:
        registry.unregister("activation", "opts_sq")
        import sys

        sys.modules.pop("opts_registering", None)
