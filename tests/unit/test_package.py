"""Package-level promises: a cheap import, a thin public façade, the 0.1 paths as aliases."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import gradverify
from gradverify import _aliases


def test_import_is_cheap():
    code = (
        "import sys, gradverify\n"
        "heavy = [m for m in ('numpy', 'mpmath', 'matplotlib', 'hypothesis', 'torch', 'jax')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_plugin_load_is_cheap():
    code = (
        "import sys, gradverify.edges.pytest_plugin\n"
        "heavy = [m for m in ('numpy', 'mpmath', 'matplotlib', 'hypothesis', 'torch', 'jax')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", gradverify.__all__)
def test_every_public_name_resolves_to_what_its_module_defines(name):
    value = getattr(gradverify, name)
    if name == "__version__":
        assert isinstance(value, str) and value.count(".") == 2
        return
    module = importlib.import_module(gradverify._EXPORTS[name])
    assert value is getattr(module, name)
    assert name in dir(gradverify)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gradverify.nope  # noqa: B018


@pytest.mark.parametrize("old", sorted(_aliases.MOVED_MODULES))
def test_each_old_module_path_still_imports_with_a_deprecation_warning(old):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    module = importlib.import_module({old!r})\n"
        "messages = [str(w.message) for w in caught if w.category is DeprecationWarning]\n"
        f"assert any({old!r} in m and 'moved to' in m for m in messages), messages\n"
        "assert dir(module), 'the alias forwards nothing'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_old_imports_reach_the_same_objects_and_renamed_names():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from gradverify.adapters import torch_module  # noqa: F401  (the 0.1 spelling)
        from gradverify.check import check_problem
        from gradverify.implementations import fused_bce_backprop
        from gradverify.reference import ReferenceError as OldName
    from gradverify.engine.check import check_problem as new_check_problem
    from gradverify.exact.reference import ExactReferenceError

    assert check_problem is new_check_problem
    assert fused_bce_backprop is gradverify.fused_bce_backprop
    assert OldName is ExactReferenceError


def test_check_search_and_scan_stay_the_functions_after_their_old_modules_are_imported():
    code = (
        "import warnings; warnings.simplefilter('ignore', DeprecationWarning)\n"
        "import gradverify\n"
        "import gradverify.check, gradverify.search, gradverify.scan\n"
        "from gradverify.exploration.checking import check\n"
        "from gradverify.exploration.search import search, SearchResult\n"
        "from gradverify.exploration.scan import scan\n"
        "assert gradverify.check is check, gradverify.check\n"
        "assert gradverify.search is search, gradverify.search\n"
        "assert gradverify.scan is scan, gradverify.scan\n"
        "assert gradverify.SearchResult is SearchResult\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
