"""The object a ``MODULE:ATTR`` name points at in the user's code, or a one-line reason why not.

Used wherever gradverify imports the user's code by name: implementations on the command
line and in ``[tool.gradverify]`` (:mod:`gradverify.edges.cli.targets`) and registered
activations and losses (:mod:`gradverify.edges.options.functions`). Importing runs the
user's module, which may raise anything or call ``sys.exit``; every outcome is one line.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

__all__ = ["UserCodeError", "import_attribute", "import_user_module", "one_line"]


class UserCodeError(ValueError):
    """The named module or attribute could not be had; the message is one line."""


def one_line(exc: BaseException) -> str:
    """``"TypeName: message"`` with the message's whitespace folded onto one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def import_user_module(module_name: str, spec: str, directory: str | None = None) -> ModuleType:
    """Import ``module_name`` (for the name ``spec``) with ``directory`` (default: the current
    directory) first on ``sys.path``, as ``python -m`` does."""
    where = directory if directory is not None else os.getcwd()
    if where not in sys.path and "" not in sys.path:
        sys.path.insert(0, where)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserCodeError(
                f"cannot import {module_name!r} (for {spec}): no module named "
                f"{exc.name!r} (run from the project directory or install it)"
            ) from None
        raise UserCodeError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything
        raise UserCodeError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    except SystemExit as exc:
        raise UserCodeError(
            f"importing {module_name!r} failed: it called sys.exit({exc.code!r}) "
            "while being imported (guard the script part with "
            "if __name__ == '__main__':)"
        ) from None


def import_attribute(module: ModuleType, attr: str, spec: str) -> Any:
    """``module.attr`` (``attr`` may be dotted), or a UserCodeError naming the missing part."""
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserCodeError(f"{spec}: {module.__name__!r} has no attribute {attr!r}") from None
        except Exception as exc:  # noqa: BLE001 - a property or __getattr__ may raise
            raise UserCodeError(f"{spec}: getting {part!r} failed: {one_line(exc)}") from None
    return obj
