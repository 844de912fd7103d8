"""The one progress display of long runs (a report, a scan), on stderr or to a callback.

No third-party progress library: a report run has a handful of coarse steps (a search and
a scan per implementation, then the figures), so a single self-overwriting line says all
there is to say. By default it is shown only on an interactive terminal and never when the
``CI`` environment variable is set, so logs and CI job output stay clean. A scan asked for
progress writes one line per step instead (``lines=True``), which a log keeps. Either way a
callable receives every update as ``(description, steps_done, steps_total)``
(:data:`ProgressCallback`), the shape the search reports its examples in too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress", "ProgressCallback", "progress_enabled"]

ProgressCallback = Callable[[str, int, int], None]
"""``callback(step_description, steps_done, steps_total)``: a custom progress sink."""


def progress_enabled(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to draw progress: ``progress`` if given, else only on a TTY outside CI."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI"):
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


class Progress:
    """Counts steps of a long run and shows ``[done/total] step (elapsed)`` on one line.

    Args:
        total: the number of steps expected.
        title: a prefix such as ``"gradverify report"``.
        progress: True/False to force the display on/off, None for automatic (TTY and not
            CI), or a callable ``(step, done, total)`` that receives every update instead.
        stream: where to draw (stderr by default).
        lines: write each update as a line of its own (a log) instead of redrawing one line.
    """

    def __init__(
        self,
        total: int,
        *,
        title: str = "gradverify",
        progress: bool | None | ProgressCallback = None,
        stream: TextIO | None = None,
        lines: bool = False,
    ) -> None:
        self.total = max(1, int(total))
        self.done = 0
        self.title = title
        self._lines = lines
        self._stream = sys.stderr if stream is None else stream
        self._callback: ProgressCallback | None = progress if callable(progress) else None
        self._enabled = self._callback is None and progress_enabled(
            None if progress is None else bool(progress), self._stream
        )
        self._start = time.monotonic()
        self._width = 0

    @property
    def enabled(self) -> bool:
        """True when something (the terminal line or a callback) receives updates."""
        return self._enabled or self._callback is not None

    def step(self, description: str) -> None:
        """Announce the step that starts now (the count shows steps already finished)."""
        self._emit(description)

    def advance(self, description: str = "", n: int = 1, *, announce: bool = True) -> None:
        """Mark ``n`` steps finished; ``announce=False`` only counts them (no update)."""
        self.done = min(self.total, self.done + n)
        if announce:
            self._emit(description)

    def _emit(self, description: str) -> None:
        if self._callback is not None:
            self._callback(description, self.done, self.total)
            return
        if not self._enabled:
            return
        elapsed = time.monotonic() - self._start
        text = f"{self.title}: [{self.done}/{self.total}] {description} ({elapsed:.0f} s)"
        if self._lines:
            self._write(text + "\n")
            return
        columns = _terminal_columns(self._stream)
        if len(text) > columns - 1:
            text = text[: columns - 2] + "~"
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self._write("\r" + text + " " * pad)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (ValueError, OSError):
            self._enabled = False

    def close(self) -> None:
        """Erase the line, leaving the terminal as it was."""
        if self._enabled and self._width:
            try:
                self._stream.write("\r" + " " * self._width + "\r")
                self._stream.flush()
            except (ValueError, OSError):
                pass
        self._width = 0
        self._enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _terminal_columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80
    return columns if columns >= 40 else 80  # 0: a terminal that does not say
