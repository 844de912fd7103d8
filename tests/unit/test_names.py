"""Names of activations, losses and dtypes: one list of each, one message for an unknown one.

Every surface that takes names (declarations, the strategies, the options, the config, the
lookups) refuses an unknown name with the very same sentence, from gradverify.model.names.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gradverify.edges.config import ConfigError, parse_section
from gradverify.edges.options import validate_names as validate_option_names
from gradverify.engine.bounds import rounding_error_bounds
from gradverify.engine.compare import validate_policy
from gradverify.engine.implementations import Capabilities, supports
from gradverify.exploration.strategies import dtypes, network_specs, problems
from gradverify.model.dtypes import SUPPORTED_DTYPES, resolve_dtype, usable_dtypes
from gradverify.model.functions import ACTIVATIONS, LOSSES, activation, loss_function
from gradverify.model.names import (
    ACTIVATION_NAMES,
    DTYPE_NAMES,
    LOSS_NAMES,
    check_name,
    check_table,
    known_names,
    unknown_name,
    unsupported_dtype,
    validate_names,
)
from gradverify.model.network import NetworkSpec, Problem

SWISH = (
    "unknown activation 'swish'; known activations: sigmoid, tanh, relu, softplus, identity, "
    "gelu, gelu_tanh, silu, leaky_relu, elu"
)
HINGE = "unknown loss 'hinge'; known losses: bce, mse, softmax_ce, l1, huber"
FLOAT8 = "unknown dtype 'float8'; known dtypes: float16, bfloat16, float32, float64"


def message(call) -> str:
    with pytest.raises((ValueError, ConfigError)) as info:
        call()
    return str(info.value)


def test_the_lists_are_the_tables_in_their_order():
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    assert tuple(LOSSES) == LOSS_NAMES
    assert SUPPORTED_DTYPES == DTYPE_NAMES == ("float16", "bfloat16", "float32", "float64")
    assert known_names("activation") == ACTIVATION_NAMES
    assert known_names("loss") == LOSS_NAMES
    assert known_names("dtype") == DTYPE_NAMES


def test_known_names_are_returned_as_a_tuple_in_the_given_order():
    assert validate_names("loss", ["mse", "bce"]) == ("mse", "bce")
    assert validate_names("dtype", iter(["float64"])) == ("float64",)
    assert validate_names("activation", [], empty_ok=True) == ()
    assert check_name("activation", "tanh") == "tanh"


@pytest.mark.parametrize(
    ("kind", "names", "expected"),
    [
        ("activation", ["sigmoid", "gelu", "swish", "elu"], SWISH),
        ("loss", ["hinge"], HINGE),
        ("dtype", ["float32", "float8"], FLOAT8),
    ],
)
def test_the_first_unknown_name_is_refused_with_the_known_ones(kind, names, expected):
    assert message(lambda: validate_names(kind, names)) == expected


def test_no_name_at_all_is_refused_unless_allowed():
    assert message(lambda: validate_names("loss", ())) == "at least one loss is needed"
    assert message(lambda: Capabilities(activations=())) == "at least one activation is needed"


def test_an_unknown_kind_is_a_programming_error_named_as_such():
    assert "kind must be one of activation, loss, dtype" in message(lambda: known_names("layer"))


def test_other_closed_sets_get_the_same_sentence():
    assert str(unknown_name("policy", "lenient", ("autograd", "strict"))) == (
        "unknown policy 'lenient'; known policies: autograd, strict"
    )
    assert message(lambda: validate_policy("lenient")) == (
        "unknown policy 'lenient'; known policies: autograd, strict"
    )
    spec = NetworkSpec((1, 1), ("sigmoid",), "bce")
    problem = Problem.from_arrays(
        spec, [np.ones((1, 1))], [np.zeros(1)], np.ones((1, 1)), np.ones((1, 1)), "float32"
    )
    assert message(lambda: rounding_error_bounds(problem, "textbook")) == (
        "unknown formulation 'textbook'; known formulations: stable, autograd"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: activation("swish"),
        lambda: Capabilities(activations=("swish",)),
        lambda: supports(activations=["swish"]),
        lambda: network_specs(activations=["swish"]),
        lambda: problems(activations=["swish"]),
        lambda: validate_option_names("activations", ["swish"]),
    ],
)
def test_every_surface_refuses_an_unknown_activation_with_the_same_sentence(call):
    assert message(call) == SWISH


@pytest.mark.parametrize(
    "call",
    [
        lambda: loss_function("hinge"),
        lambda: Capabilities(losses=("hinge",)),
        lambda: network_specs(losses=["hinge"]),
        lambda: validate_option_names("losses", ["hinge"]),
    ],
)
def test_every_surface_refuses_an_unknown_loss_with_the_same_sentence(call):
    assert message(call) == HINGE


@pytest.mark.parametrize(
    "call",
    [
        lambda: Capabilities(dtypes=("float8",)),
        lambda: dtypes(names=["float8"]),
        lambda: problems(dtypes=["float8"]),
        lambda: validate_option_names("dtypes", ["float8"]),
        lambda: usable_dtypes(["float8"]),
    ],
)
def test_every_surface_refuses_an_unknown_dtype_with_the_same_sentence(call):
    assert message(call) == FLOAT8


def test_the_config_prefixes_the_same_sentence_with_the_file_and_key():
    assert message(lambda: parse_section({"dtypes": ["float8"]}, "pyproject.toml")) == (
        f"pyproject.toml: [tool.gradverify] 'dtypes': {FLOAT8}"
    )
    entry = {"implementations": [{"target": "m:f", "losses": ["hinge"]}]}
    assert message(lambda: parse_section(entry, "pyproject.toml")) == (
        f"pyproject.toml: [tool.gradverify] implementations[0]: 'losses': {HINGE}"
    )


def test_options_leave_other_option_names_alone_and_accept_no_names():
    validate_option_names("max_examples", ["anything"])
    validate_option_names("dtypes", [])


def test_a_dtype_value_that_is_not_one_of_the_four_formats_is_unsupported():
    supported = "supported: float16, bfloat16, float32, float64"
    assert message(lambda: resolve_dtype("float8")) == f"unsupported dtype 'float8'; {supported}"
    assert message(lambda: resolve_dtype(np.int32)) == f"unsupported dtype int32; {supported}"
    assert str(unsupported_dtype(np.dtype("complex64"))) == (
        f"unsupported dtype complex64; {supported}"
    )


def test_usable_dtypes_keeps_the_order_and_names_what_it_skips(monkeypatch):
    assert usable_dtypes(["float64", "float16"]) == (("float64", "float16"), {})
    assert usable_dtypes("float32") == (("float32",), {})
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # as if it were not installed
    usable, skipped = usable_dtypes(["bfloat16", "float32"])
    assert usable == ("float32",)
    assert list(skipped) == ["bfloat16"] and skipped["bfloat16"].startswith("ml_dtypes is not")
    assert message(lambda: usable_dtypes(["bfloat16"])).startswith(
        "no usable dtype among bfloat16 (skipped bfloat16: ml_dtypes is not installed"
    )
    assert message(lambda: usable_dtypes([])) == (
        "no usable dtype among (none); available here: float16, float32, float64"
    )


def test_a_table_that_drifts_from_the_list_fails_naming_both():
    check_table("loss", ["bce", "mse", "softmax_ce", "l1", "huber"])
    with pytest.raises(RuntimeError) as info:
        check_table("loss", ["bce", "mse", "softmax_ce", "hinge"])
    assert "bce, mse, softmax_ce, hinge" in str(info.value)
    assert "(bce, mse, softmax_ce, l1, huber)" in str(info.value)
    with pytest.raises(RuntimeError):
        check_table("activation", reversed(ACTIVATION_NAMES))


def test_checking_a_name_imports_no_numpy():
    code = (
        "import sys\n"
        "from gradverify.model.names import validate_names\n"
        "validate_names('dtype', ['float32'])\n"
        "import gradverify.edges.options\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
