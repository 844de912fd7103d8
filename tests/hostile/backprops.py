"""Hostile implementations: each tries to fake a green run, hang, crash, or leak its state.

Every one declares a sigmoid output with BCE in float64 only, so a search is one dtype.
Those that misbehave do so on every call, and the CLI tests name them as
``backprops:NAME`` from this directory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

from gradverify import supports
from gradverify.engine.implementations import fused_bce_backprop
from tests.strategies import MARK

DECLARED = {"activations": ("sigmoid",), "losses": ("bce",), "dtypes": ("float64",)}

STARTED = "HOSTILE_STARTED"
"""Environment variable: a file the C-level hangs create once they are inside the call."""


def _right(weights, biases, x, y, activations, loss):
    return fused_bce_backprop(weights, biases, x, y, activations=activations, loss=loss)


def _announce() -> None:
    path = os.environ.get(STARTED)
    if path:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


# -- ending the process ------------------------------------------------------------


@supports(**DECLARED)
def calls_sys_exit(weights, biases, x, y, *, activations, loss):
    sys.exit(0)


@supports(**DECLARED)
def calls_os_exit(weights, biases, x, y, *, activations, loss):
    os._exit(0)


@supports(**DECLARED)
def segfaults(weights, biases, x, y, *, activations, loss):
    ctypes.string_at(0)


@supports(**DECLARED)
def kills_itself(weights, biases, x, y, *, activations, loss):
    os.kill(os.getpid(), signal.SIGKILL)


@supports(**DECLARED)
def raises_keyboard_interrupt(weights, biases, x, y, *, activations, loss):
    raise KeyboardInterrupt


@supports(**DECLARED)
def presses_ctrl_c(weights, biases, x, y, *, activations, loss):
    """What the user's Ctrl-C looks like from inside an in-process call."""
    signal.raise_signal(signal.SIGINT)
    return _right(weights, biases, x, y, activations, loss)


# -- hanging ---------------------------------------------------------------------------


@supports(**DECLARED)
def locks_a_mutex_twice(weights, biases, x, y, *, activations, loss):
    """A default pthread mutex locked twice by its owner: blocks in C, forever."""
    _announce()
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER (glibc)
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)


@supports(**DECLARED)
def pauses_in_c(weights, biases, x, y, *, activations, loss):
    _announce()
    ctypes.CDLL(None).pause()


@supports(**DECLARED)
def swallows_the_time_limit(weights, biases, x, y, *, activations, loss):
    while True:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001, S110 - the point of this implementation
            pass


# -- leaving things behind ----------------------------------------------------------------


@supports(**DECLARED)
def leaves_a_thread(weights, biases, x, y, *, activations, loss):
    """Correct, but starts a non-daemon thread that never ends."""
    threading.Thread(target=lambda: time.sleep(3600), name="left-behind").start()
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def changes_global_state(weights, biases, x, y, *, activations, loss):
    """Correct, but changes every process-wide setting it can reach."""
    import mpmath

    np.seterr(all="raise")
    os.chdir("/")
    warnings.simplefilter("error")
    mpmath.mp.prec = 20
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def warns_on_overflow(weights, biases, x, y, *, activations, loss):
    """Correct, but overflows in exp on every call (a RuntimeWarning each time)."""
    np.exp(np.full(3, 1000.0))
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def calls_breakpoint(weights, biases, x, y, *, activations, loss):
    breakpoint()  # noqa: T100 - the point of this implementation
    return _right(weights, biases, x, y, activations, loss)


# -- misbehaving on one problem of many --------------------------------------------------

# the problem marked by tests.strategies.marked_problems (first bias MARK)


def _marked(biases) -> bool:
    return float(biases[0][0]) == MARK


@supports(**DECLARED)
def exits_when_marked(weights, biases, x, y, *, activations, loss):
    if _marked(biases):
        os._exit(0)
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def pauses_in_c_when_marked(weights, biases, x, y, *, activations, loss):
    if _marked(biases):
        _announce()
        ctypes.CDLL(None).pause()
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def raises_when_marked(weights, biases, x, y, *, activations, loss):
    if _marked(biases):
        raise ValueError("the marked problem")
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def prints_megabytes(weights, biases, x, y, *, activations, loss):
    """Correct, but prints two megabytes to stdout and one to stderr on every call."""
    print("x" * (2 << 20))
    print("y" * (1 << 20), file=sys.stderr)
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def pauses_in_c_when_deep(weights, biases, x, y, *, activations, loss):
    """Correct on one-layer networks; blocks in C on deeper ones (the hidden-layer scan)."""
    if len(weights) > 1:
        ctypes.CDLL(None).pause()
    return _right(weights, biases, x, y, activations, loss)


@supports(**DECLARED)
def sleeps_when_deep(weights, biases, x, y, *, activations, loss):
    """Correct on one-layer networks; sleeps for a minute on deeper ones."""
    if len(weights) > 1:
        time.sleep(60)
    return _right(weights, biases, x, y, activations, loss)


# -- returning or changing the wrong things -------------------------------------------------


@supports(**DECLARED)
def returns_masked_arrays(weights, biases, x, y, *, activations, loss):
    """The right gradients, hidden under a mask that covers every entry."""
    dw, db = _right(weights, biases, x, y, activations, loss)
    return (
        [np.ma.masked_array(w, mask=True) for w in dw],
        [np.ma.masked_array(b, mask=True) for b in db],
    )


@supports(**DECLARED)
def appends_to_weights(weights, biases, x, y, *, activations, loss):
    result = _right(weights, biases, x, y, activations, loss)
    weights.append(weights[0].copy())
    return result


@supports(**DECLARED)
def clears_biases(weights, biases, x, y, *, activations, loss):
    result = _right(weights, biases, x, y, activations, loss)
    biases.clear()
    return result


@supports(**DECLARED)
def replaces_a_weight(weights, biases, x, y, *, activations, loss):
    result = _right(weights, biases, x, y, activations, loss)
    weights[0] = weights[0].copy()
    return result


@supports(**DECLARED)
def zeroes_y(weights, biases, x, y, *, activations, loss):
    result = _right(weights, biases, x, y, activations, loss)
    y[...] = 0
    return result


@supports(**DECLARED)
def answers_at_random(weights, biases, x, y, *, activations, loss):
    dw, db = _right(weights, biases, x, y, activations, loss)
    return [w + np.random.default_rng().random() for w in dw], db


@supports(**DECLARED)
def right(weights, biases, x, y, *, activations, loss):
    return _right(weights, biases, x, y, activations, loss)
