"""Supervised worker processes: the implementation runs where nothing it does can reach us.

:func:`isolated` wraps a backprop in an :class:`IsolatedImplementation`. The harness
(:func:`gradverify.engine.harness.call_backprop`) sees the wrapper and sends each call to the
wrapper's worker process, which runs exactly the in-process checks of
:func:`gradverify.engine.harness.call_once` and sends back plain bytes. The parent process (the
CLI, pytest, your program) keeps the time, owns every result, output file and the exit
status, and judges whatever comes back:

* a call with no answer within the per-call time limit (a hang in C code, a time-out the
  code swallows) ends with SIGKILL of the worker: a ``timed_out`` failure;
* a worker that dies (``os._exit``, a segfault, any signal) is a ``crashed`` failure naming
  the exit code or the signal;
* ``sys.exit`` and ``KeyboardInterrupt`` raised by the code are ``raised`` failures (the
  worker ignores SIGINT, so a real Ctrl-C reaches only the parent, which stops);
* threads the code leaves behind die with the worker, and whatever global state it changes
  (numpy's error state, the cwd, warning filters, mpmath's precision) stays in the worker.

:func:`~gradverify.engine.harness.call_backprop_many` sends a list of problems in one
request; the worker makes the calls in a row (its set-up once, a
:class:`~gradverify.engine.harness.CallSession`) and answers each as it ends, and the parent
times each answer as above. A hang or a crash
ends the list at that call (the worker is then killed; the calls after it are the caller's
to make again, in a new worker).

One worker serves one implementation for the duration of its check and is started again
after a crash or a kill. Workers come from multiprocessing's ``forkserver`` (``spawn`` where
there is none): a fresh process forked from a small server that has already imported
gradverify and numpy, so a start costs milliseconds, and nothing of the parent's threads
(torch's or jax's pools) is forked. The implementation is sent with cloudpickle: by
reference (module and name) when it can be imported, by value otherwise (closures,
lambdas, ``__main__``, the adapters' wrappers). :func:`load_isolated` instead loads it in
the worker from a factory (the CLI's ``MODULE:ATTR``), so the module's own code runs there.

Replies are decoded by an unpickler that accepts no classes at all: the worker can send
tuples, bytes, strings and numbers, never an object that runs code in the parent.

The package, one side each:

- :mod:`~gradverify.engine.isolation.protocol`: the messages and how each side reads them;
- :mod:`~gradverify.engine.isolation.registrations`: the registered activations and losses,
  sent with a worker's start-up so that their names work there;
- :mod:`~gradverify.engine.isolation.worker`: the worker process's loop;
- :mod:`~gradverify.engine.isolation.supervisor`: the parent's end of one worker (start,
  time, kill);
- :mod:`~gradverify.engine.isolation.proxy`: :class:`IsolatedImplementation` and the
  functions that make one.
"""

from __future__ import annotations

from gradverify.engine.isolation.proxy import (
    IsolatedImplementation,
    is_isolated,
    isolate_option,
    isolated,
    isolated_if,
    load_isolated,
)
from gradverify.engine.isolation.supervisor import (
    LOAD_TIMEOUT,
    ImplementationLoadError,
    IsolationError,
)

__all__ = [
    "IsolatedImplementation",
    "IsolationError",
    "ImplementationLoadError",
    "LOAD_TIMEOUT",
    "is_isolated",
    "isolate_option",
    "isolated",
    "isolated_if",
    "load_isolated",
]
