"""The registered activations and losses, carried into a worker process at its start.

A worker is forked from a server that imported gradverify before anything was registered, so
the names registered in the parent (:func:`gradverify.register_activation`, ...) would be
unknown there: an implementation that looks a name up (``activation(name).forward``), a
declaration re-made when its module is imported, would fail. :func:`registry_payload` packs
every registration for the worker's start-up and :func:`install_registry` restores them there
before the implementation is loaded.

Each registration is pickled with cloudpickle twice: by reference (functions importable by
module and name stay references) and by value (the modules of its Python functions sent
whole), since a test module or a notebook's functions cannot be imported in the worker. The
worker takes the first that loads; one that loads neither way is left out (a lookup of its
name there then fails with the usual unknown-name message).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from typing import Any

from gradverify.model import registry

__all__ = ["install_registry", "registry_payload"]

_NEVER_BY_VALUE = ("gradverify", "numpy", "mpmath", "ml_dtypes", "cloudpickle")


def _function_modules(entry: registry.Registration) -> set[types.ModuleType]:
    """The modules of the Python functions the caller gave, that may be sent by value."""
    found = set()
    for _, value in entry.given:
        name = getattr(value, "__module__", None) if isinstance(value, types.FunctionType) else None
        module = sys.modules.get(name or "")
        if module is None or name == "__main__" or name.split(".")[0] in _NEVER_BY_VALUE:
            continue
        found.add(module)
    return found


@contextlib.contextmanager
def _by_value(modules: set[types.ModuleType]) -> Iterator[None]:
    import cloudpickle

    registered = []
    try:
        for module in modules:
            with contextlib.suppress(Exception):
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
        yield
    finally:
        for module in registered:
            with contextlib.suppress(Exception):
                cloudpickle.unregister_pickle_by_value(module)


def _dumps(entry: registry.Registration) -> tuple[bytes | None, bytes | None]:
    import cloudpickle

    by_reference = by_value = None
    with contextlib.suppress(Exception):
        by_reference = cloudpickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    modules = _function_modules(entry)
    if modules:
        with contextlib.suppress(Exception), _by_value(modules):
            by_value = cloudpickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    return by_reference, by_value


def registry_payload() -> bytes:
    """Every current registration, packed for a worker's start-up (empty when there is none)."""
    entries = registry.registrations()
    if not entries:
        return b""
    return pickle.dumps([_dumps(e) for e in entries], protocol=pickle.HIGHEST_PROTOCOL)


def _loaded(blobs: tuple[bytes | None, bytes | None]) -> Any:
    for blob in blobs:
        if blob is None:
            continue
        try:
            entry = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - try the other way, else leave it out
            continue
        if isinstance(entry, registry.Registration):
            return entry
    return None


def install_registry(payload: bytes) -> None:
    """In the worker: restore the registrations of :func:`registry_payload`."""
    if not payload:
        return
    loaded = [_loaded(blobs) for blobs in pickle.loads(payload)]
    registry.restore(e for e in loaded if e is not None)
