"""Output paths, checked before a run: resolved once, and refused early where no file can be
written.

:func:`resolve_output_path` makes a path absolute once, against the working directory at
start-up, so an implementation that changes directory while it runs cannot redirect an
output; messages name that resolved path. :func:`check_output_file` says *before* any work
whether a file can be written there (a directory given for a file, a regular file in the
middle of the path, a place where no file can be created such as ``/sys``). The writers are
in :mod:`gradverify.report.atomic`, which re-exports these names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = [
    "OutputPathError",
    "check_creatable",
    "check_output_file",
    "process_umask",
    "refuse_non_regular",
    "resolve_output_path",
]


class OutputPathError(Exception):
    """An output file or directory cannot be written; the one-line message names it and why."""


def process_umask() -> int:
    """The process umask; read from /proc where possible, since setting it to read it back
    briefly changes it for every thread."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolve_output_path(
    path: str | os.PathLike[str],
    *,
    what: str = "output",
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """``path`` made absolute against ``base`` (default: the current directory, now).

    The directories on the way are resolved (symbolic links followed, ``..`` applied); the
    last component is kept as named. ``what`` names the option in messages.

    Raises:
        OutputPathError: an empty path, or one containing a NUL character.
    """
    text = os.fspath(path)
    if not text:
        raise OutputPathError(f"{what}: expected a path, got an empty string")
    if "\0" in text:
        raise OutputPathError(f"{what}: the path {text!r} contains a NUL character")
    full = Path(base if base is not None else os.getcwd(), text)
    if full.name in ("", ".."):
        return full.resolve()
    return full.parent.resolve() / full.name


def _nearest_existing(path: Path) -> Path:
    ancestor = path
    while not os.path.lexists(ancestor) and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    return ancestor


def check_creatable(target: Path, what: str) -> None:
    """Raise unless files can be created where ``target``'s parent is (or will be made).

    A temporary file is created and removed in the nearest existing directory: permission
    bits alone do not tell (root may "write" to /sys, yet nothing can be created there).
    """
    ancestor = _nearest_existing(target.parent)
    if not ancestor.is_dir():
        raise OutputPathError(f"{what} {target}: {ancestor} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gradverify-probe-", dir=ancestor)
    except OSError as exc:
        raise OutputPathError(
            f"{what} {target}: cannot create files in {ancestor}: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(probe)


def refuse_non_regular(target: Path, what: str) -> None:
    if target.is_dir():
        raise OutputPathError(f"{what} {target}: is a directory; give a file path")
    if os.path.lexists(target) and not target.is_file() and not target.is_symlink():
        raise OutputPathError(
            f"{what} {target}: exists and is not a regular file; "
            "gradverify replaces only regular files"
        )


def check_output_file(
    path: str | os.PathLike[str],
    *,
    what: str = "output file",
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Resolve ``path`` and raise now if a file could not be written there later.

    Returns:
        The resolved absolute path, to write to later whatever the working directory.

    Raises:
        OutputPathError: a one-line message naming ``what`` and the resolved path.
    """
    target = resolve_output_path(path, what=what, base=base)
    refuse_non_regular(target, what)
    check_creatable(target, what)
    return target
