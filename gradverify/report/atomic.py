"""Replacing a whole output directory atomically: a new report appears complete or not at all.

The files are built in a temporary sibling directory (same parent, so the same file
system) and swapped into place only when everything has been written:

* on Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so at every instant the
  output path holds either the complete old report or the complete new one;
* elsewhere (or where the file system refuses the exchange) the old directory is first
  renamed aside and then the new one renamed into place; the old one is put back if the
  second rename fails.

If building raises or is interrupted (Ctrl-C), the temporary directory is removed and the
previous report is untouched. A hard kill (SIGKILL) can leave a ``.<name>.tmp-<pid>-*``
sibling behind (and, in the two-rename fallback, a ``.<name>.old-<pid>-*`` one); the next
run removes half-built leftovers and puts an orphaned previous report back in place.

An existing output directory is replaced only if it is empty or holds a previous report
(``marker`` file present), so a mistyped ``--out`` never deletes unrelated files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputDirectoryError", "check_output_directory", "replace_directory"]

_RENAME_EXCHANGE = 2  # linux/fs.h


class OutputDirectoryError(Exception):
    """The output directory cannot be (re)placed; the message says why, in one line."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover_and_clean(out: Path) -> None:
    """Clean up after killed runs (whose process no longer exists).

    A leftover ``.<name>.old-*`` is a previous report that was renamed aside when the run
    died before the new one was renamed in: it is put back if ``out`` is missing. Leftover
    ``.<name>.tmp-*`` directories are half-built reports and are removed.
    """
    for prefix in (f".{out.name}.old-", f".{out.name}.tmp-"):
        for path in sorted(out.parent.glob(prefix + "*")):
            pid_text = path.name[len(prefix):].split("-", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(
                int(pid_text)
            ):
                continue
            if prefix.endswith(".old-") and not out.exists():
                os.replace(path, out)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False when unsupported here."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported on this fs/kernel
        return False
    raise OSError(errno, f"cannot swap {a} and {b}: {os.strerror(errno)}")


def _check_replaceable(out: Path, marker: str) -> None:
    if not out.exists():
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputDirectoryError(f"{out} exists and is not a directory; choose another output")
    if any(out.iterdir()) and not (out / marker).is_file():
        raise OutputDirectoryError(
            f"refusing to replace {out}: it is not empty and holds no previous report "
            f"({marker} missing); choose a new or empty directory"
        )


def check_output_directory(out_dir: str | os.PathLike[str], *, marker: str) -> None:
    """Raise :class:`OutputDirectoryError` now if ``out_dir`` could not be replaced later."""
    out = Path(out_dir).absolute()
    if out.parent == out:
        raise OutputDirectoryError(f"cannot write a report over the root directory {out}")
    _check_replaceable(out, marker)


@contextlib.contextmanager
def replace_directory(out_dir: str | os.PathLike[str], *, marker: str) -> Iterator[Path]:
    """Yield a fresh temporary directory; on normal exit it replaces ``out_dir`` atomically.

    Args:
        out_dir: the directory to (re)place. Its parent is created if needed.
        marker: a file name that every report contains; an existing non-empty ``out_dir``
            without it is never replaced.

    Raises:
        OutputDirectoryError: ``out_dir`` is unsuitable (a file, or unrelated contents).
    """
    out = Path(out_dir).absolute()
    if out.parent == out:
        raise OutputDirectoryError(f"cannot write a report over the root directory {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover_and_clean(out)
    _check_replaceable(out, marker)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
        if not (tmp / marker).is_file():
            raise OutputDirectoryError(f"internal: the new report has no {marker}")
        os.chmod(tmp, 0o755 & ~_umask())
        _check_replaceable(out, marker)  # it may have changed while we worked
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old report
            return
        if not out.exists():
            os.replace(tmp, out)
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
