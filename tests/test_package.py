"""Package-level promises: a cheap import, lazy public names, private mpmath contexts."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gradverify


def test_import_is_cheap():
    code = (
        "import sys, gradverify\n"
        "heavy = [m for m in ('numpy', 'mpmath', 'matplotlib', 'hypothesis', 'torch', 'jax')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_core_never_imports_the_edges():
    code = (
        "import sys\n"
        "import gradverify.check, gradverify.reference, gradverify.finite_diff\n"
        "edges = [m for m in ('pytest', 'matplotlib', 'torch', 'jax', 'gradverify.cli')"
        " if m in sys.modules]\n"
        "assert not edges, edges\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve():
    for name in ("check", "check_problem", "assert_gradients_match", "reference_gradients",
                 "NetworkSpec", "Problem", "supports", "Verdict", "fused_bce_backprop"):
        assert callable(getattr(gradverify, name)) or getattr(gradverify, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gradverify.nope  # noqa: B018


def test_check_search_and_scan_stay_the_functions_after_their_modules_are_imported():
    code = (
        "import gradverify\n"
        "import gradverify.check, gradverify.search, gradverify.scan\n"
        "from gradverify.search import SearchResult\n"
        "from gradverify.check import check\n"
        "assert gradverify.check is check, gradverify.check\n"
        "assert gradverify.search.__module__ == 'gradverify.search'\n"
        "assert callable(gradverify.search) and callable(gradverify.scan)\n"
        "assert gradverify.SearchResult is SearchResult\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
