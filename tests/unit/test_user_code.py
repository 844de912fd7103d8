"""Importing the user's code by MODULE:ATTR: every outcome is an object or one line."""

from __future__ import annotations

import pytest

from gradverify.edges.user_code import UserCodeError, import_attribute, import_user_module


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "uc_good.py").write_text("class A:\n    b = 3\n")
    (tmp_path / "uc_raises.py").write_text("raise ImportError('needs a\\n GPU')\n")
    (tmp_path / "uc_exits.py").write_text("import sys\nsys.exit(2)\n")
    (tmp_path / "uc_deep.py").write_text("import no_such_dependency_here\n")
    return tmp_path


def test_a_dotted_attribute_is_found(project):
    module = import_user_module("uc_good", "uc_good:A.b", str(project))
    assert import_attribute(module, "A.b", "uc_good:A.b") == 3


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("uc_missing", "cannot import 'uc_missing' (for spec): no module named 'uc_missing'"),
        ("uc_raises", "importing 'uc_raises' failed: ImportError: needs a GPU"),
        ("uc_exits", "importing 'uc_exits' failed: it called sys.exit(2) while being imported"),
        ("uc_deep", "importing 'uc_deep' failed: ModuleNotFoundError: No module named"),
    ],
)
def test_each_failure_is_one_line(project, module, message):
    with pytest.raises(UserCodeError) as caught:
        import_user_module(module, "spec", str(project))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_attribute_names_the_module(project):
    module = import_user_module("uc_good", "uc_good:A.c", str(project))
    with pytest.raises(UserCodeError, match="uc_good:A.c: 'uc_good' has no attribute 'A.c'"):
        import_attribute(module, "A.c", "uc_good:A.c")
