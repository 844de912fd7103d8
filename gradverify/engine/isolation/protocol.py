"""The messages between the parent and a worker process, and how each side reads them.

Every message is a pickled tuple whose first item names it:

* worker -> parent, once: ``("ready", metadata)`` (:func:`metadata`, plain data) or
  ``("load-failed", stage, exception type, message, exception text)``;
* parent -> worker: ``("call", problem, layout, repeat, errstate)``, ``("calls", problems,
  layout, errstate)`` (one call per problem, in a row) or ``("close",)``;
* worker -> parent, per call, as soon as it ends: ``("ok", dweights bytes, dbiases bytes,
  warnings, elapsed)`` or ``("failed", failure, message, warnings, elapsed)``
  (:func:`encode`).

The parent decodes replies with :func:`plain_loads`, an unpickler that accepts no classes at
all: the worker can send tuples, bytes, strings and numbers, never an object that runs code
in the parent. :func:`decode` then checks that a reply fits the problem it answers.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import pickle
from collections.abc import Callable
from typing import Any

from gradverify.engine.call_outcome import CallFailure, CallOutcome
from gradverify.engine.implementations import (
    Capabilities,
    capabilities_of,
    implementation_name,
)
from gradverify.engine.results import WarningCount
from gradverify.model.network import Problem

__all__ = [
    "MAX_WARNING_LOCATIONS",
    "decode",
    "encode",
    "load_failure",
    "metadata",
    "plain_loads",
    "send",
]

MAX_WARNING_LOCATIONS = 100
"""Warning locations a worker reports per call (the rest are dropped)."""


def send(conn: Any, message: tuple) -> None:
    """Pickle ``message`` onto ``conn``."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: only plain data is accepted")


def plain_loads(data: bytes) -> Any:
    """``data`` unpickled as plain data (pickle.UnpicklingError for any class or function)."""
    return _PlainUnpickler(io.BytesIO(data)).load()


def load_failure(exc: BaseException) -> str:
    """``"ValueError: bad"`` on one line, or ``"SystemExit(0) (sys.exit)"``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (sys.exit)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _capabilities_data(caps: Capabilities) -> dict[str, Any]:
    return {f.name: getattr(caps, f.name) for f in dataclasses.fields(caps)}


def _source_location(impl: Callable) -> tuple[str, int] | None:
    try:
        path = inspect.getsourcefile(impl)
        _, line = inspect.getsourcelines(impl)
    except (TypeError, OSError):
        return None
    return (str(path), int(line)) if path else None


def metadata(impl: Callable) -> dict[str, Any]:
    """What the parent needs to know of an implementation it does not hold (plain data)."""
    from gradverify.engine.repro import import_path

    if not callable(impl):
        raise TypeError(f"it is a {type(impl).__name__}, not a callable backprop")
    found = import_path(impl)
    return {
        "name": implementation_name(impl),
        "capabilities": _capabilities_data(capabilities_of(impl)),
        "module": str(getattr(impl, "__module__", None) or ""),
        "qualname": str(getattr(impl, "__qualname__", None) or type(impl).__qualname__),
        "doc": str(getattr(impl, "__doc__", None) or ""),
        "import_path": tuple(found) if found is not None else None,
        "source": _source_location(impl),
    }


def encode(outcome: CallOutcome) -> tuple:
    """The worker's reply for one call: plain bytes, strings and numbers."""
    caught = [
        (w.category, w.message, w.filename, w.lineno, w.count)
        for w in outcome.warnings[:MAX_WARNING_LOCATIONS]
    ]
    if outcome.ok:
        return (
            "ok",
            [a.tobytes() for a in outcome.dweights],
            [b.tobytes() for b in outcome.dbiases],
            caught,
            outcome.elapsed,
        )
    return ("failed", outcome.failure.value, outcome.error, caught, outcome.elapsed)


def decode(reply: Any, problem: Problem) -> CallOutcome:
    """A worker's reply as a CallOutcome; ValueError/TypeError when it is not well formed."""
    status, *rest = reply
    caught = tuple(
        WarningCount(str(c), str(m)[:500], str(f), int(n), int(k)) for c, m, f, n, k in rest[2]
    )
    elapsed = float(rest[3])
    if status == "failed":
        return CallOutcome(None, None, str(rest[1]), elapsed, CallFailure(rest[0]), caught)
    if status != "ok":
        raise ValueError(f"unknown reply {status!r}")
    import numpy as np

    grads = []
    for blobs, params in ((rest[0], problem.weights), (rest[1], problem.biases)):
        if len(blobs) != len(params):
            raise ValueError("wrong number of arrays")
        grads.append(
            tuple(
                np.frombuffer(bytes(b), dtype=problem.dtype).reshape(p.shape).copy()
                for b, p in zip(blobs, params, strict=True)
            )
        )
    return CallOutcome(grads[0], grads[1], None, elapsed, None, caught)
