"""Output files and directories: checked before a run, written atomically, and never written
over anything gradverify did not write.

**Where.** :func:`resolve_output_path` makes a path absolute once, against the working
directory at start-up, so an implementation that changes directory while it runs cannot
redirect an output; messages name that resolved path. :func:`check_output_file` and
:func:`check_output_directory` say *before* any work whether an output can be written
there (a directory given for a file, a regular file in the middle of the path, a place
where no file can be created such as ``/sys``). The path checks live in
:mod:`gradverify.report.output_paths` and are re-exported here.

**Files** (:func:`write_file_atomic`) are written to a temporary sibling and renamed into
place, with the permissions a plain ``open()`` would give (``0o666`` minus the umask). An
existing target that is not a regular file (a directory, ``/dev/null``) is never replaced.
:func:`append_file_atomic` appends the same way (old content plus the new text, renamed
into place), for files other steps also write to, such as ``$GITHUB_STEP_SUMMARY``.

**Directories** (:func:`replace_directory`). A report directory may be replaced only when
it is provably a previous gradverify report: it holds a manifest (:data:`MANIFEST`, naming
the tool, the document's schema and every file written) and nothing besides the files the
manifest lists. A missing or empty directory is fine too. Anything else is refused with
:class:`OutputDirectoryError` naming the files gradverify did not write; nothing is deleted.

The new report is built in a temporary sibling directory (same parent, so the same file
system) and swapped into place only when everything has been written:

* on Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so at every instant the
  output path holds either the complete old report or the complete new one;
* elsewhere (or where the file system refuses the exchange) the old directory is first
  renamed aside and then the new one renamed into place; the old one is put back if the
  second rename fails.

If building raises or is interrupted (Ctrl-C), the temporary directory is removed and the
previous report is untouched. A hard kill (SIGKILL) can leave a ``.<name>.tmp-<pid>-*``
sibling behind (and, in the two-rename fallback, a ``.<name>.old-<pid>-*`` one); the next
run removes half-built leftovers that carry gradverify's manifest and puts an orphaned
previous report back in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from gradverify.report.output_paths import (
    OutputPathError,
    check_creatable,
    check_output_file,
    process_umask,
    refuse_non_regular,
    resolve_output_path,
)

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "OutputDirectoryError",
    "OutputPathError",
    "append_file_atomic",
    "check_output_directory",
    "check_output_file",
    "exchange_directories",
    "replace_directory",
    "resolve_output_path",
    "write_file_atomic",
]

MANIFEST = "gradverify-manifest.json"
"""The file in every report directory that proves gradverify wrote it, and what it wrote."""
MANIFEST_FORMAT = "gradverify.manifest/1"
TOOL = "gradverify"

_RENAME_EXCHANGE = 2  # linux/fs.h
_SHOWN_NAMES = 6  # names listed in a refusal before "and N more"


class OutputDirectoryError(OutputPathError):
    """The output directory cannot be (re)placed; the message says why, in one line."""


def check_output_directory(
    out_dir: str | os.PathLike[str],
    *,
    what: str = "output directory",
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Resolve ``out_dir`` and raise now if :func:`replace_directory` would refuse it later.

    Returns:
        The resolved absolute path.

    Raises:
        OutputDirectoryError: the directory holds files gradverify did not write, is a
            file or a link, is the root, or no directory can be created beside it.
    """
    out = resolve_output_path(out_dir, what=what, base=base)
    if out.parent == out:
        raise OutputDirectoryError(f"cannot write a report over the root directory {out}")
    _check_replaceable(out)
    try:
        check_creatable(out, what)
    except OutputPathError as exc:
        raise OutputDirectoryError(str(exc)) from None
    return out


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def write_file_atomic(
    path: str | os.PathLike[str], text: str, *, what: str = "output file"
) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary sibling and ``os.replace``.

    A reader never sees a half-written file, and an interrupted run leaves any previous file
    in place. The file gets ``0o666 & ~umask``, like a file made by ``open()``. A relative
    ``path`` is resolved against the current directory; pass the path returned by
    :func:`check_output_file` to write where it was checked.

    Raises:
        OutputPathError: the file cannot be written (message names ``what`` and the path).
    """
    target = resolve_output_path(path, what=what)
    refuse_non_regular(target, what)
    _replace_file(target, text, 0o666 & ~process_umask(), f"{what} {target}: cannot write")
    return target


def append_file_atomic(
    path: str | os.PathLike[str], text: str, *, what: str = "output file"
) -> Path:
    """Append ``text`` (UTF-8) to ``path``, atomically: the file's old bytes and ``text`` are
    written to a temporary sibling that then replaces it (see :func:`write_file_atomic`).

    A reader sees the old content or the whole new one, never a partial append. A missing
    file is created (``0o666 & ~umask``); an existing one keeps its permission bits.

    Raises:
        OutputPathError: the file cannot be read or written (message names ``what``, the
            path and "cannot append").
    """
    target = resolve_output_path(path, what=what)
    failure = f"{what} {target}: cannot append"
    if target.is_symlink():  # append to the file it points to, as open(path, "a") would
        target = target.resolve()
    refuse_non_regular(target, what)
    try:
        old = target.read_bytes()
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        old, mode = b"", 0o666 & ~process_umask()
    except OSError as exc:
        raise OutputPathError(f"{failure}: {exc.strerror or exc}") from None
    _replace_file(target, text, mode, failure, prefix=old)
    return target


def _replace_file(target: Path, text: str, mode: int, failure: str, *, prefix: bytes = b"") -> None:
    """Write ``prefix`` (bytes, as they are) and ``text`` (UTF-8, in text mode like
    ``open()``) to a temporary sibling of ``target`` with ``mode``, then rename it over
    ``target``; on an error, remove the sibling and raise ``failure: reason``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputPathError(f"{failure}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.buffer.write(prefix)  # before any text, so it comes first
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"{failure}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Directories: the manifest
# ---------------------------------------------------------------------------


def _write_manifest(directory: Path, schema: str, files: Iterable[str] | None) -> None:
    """``files=None`` marks a directory still being built."""
    data = {
        "tool": TOOL,
        "manifest": MANIFEST_FORMAT,
        "schema": schema,
        "complete": files is not None,
        "files": sorted(files or ()),
    }
    (directory / MANIFEST).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..", MANIFEST)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _manifest(directory: Path) -> dict | str:
    """The manifest of ``directory``, or the reason there is no valid one."""
    path = directory / MANIFEST
    if path.is_symlink() or not path.is_file():
        return f"no {MANIFEST}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {MANIFEST} is not one gradverify wrote (not valid JSON)"
    if (
        not isinstance(data, dict)
        or data.get("tool") != TOOL
        or data.get("manifest") != MANIFEST_FORMAT
    ):
        return f"its {MANIFEST} is not one gradverify wrote"
    files = data.get("files")
    if not isinstance(files, list) or not all(_plain_name(f) for f in files):
        return f"its {MANIFEST} does not list plain file names"
    return data


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _foreign_entries(directory: Path, ours: set[str]) -> list[str]:
    """Entries of ``directory`` that are not regular files named in ``ours`` (dirs as ``x/``)."""
    foreign = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in ours and entry.is_file(follow_symlinks=False):
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            foreign.append(entry.name + ("/" if is_dir else ""))
    return sorted(foreign)


def _check_replaceable(out: Path) -> None:
    try:
        mode = os.lstat(out).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there to replace
        return
    except OSError as exc:
        raise OutputDirectoryError(f"cannot use {out}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(mode):
        raise OutputDirectoryError(
            f"refusing to replace {out}: it is a symbolic link; give the directory itself"
        )
    if not stat.S_ISDIR(mode):
        raise OutputDirectoryError(f"{out} exists and is not a directory; choose another output")
    manifest = _manifest(out)
    if isinstance(manifest, str):
        foreign = _foreign_entries(out, set())
        if not foreign:
            return  # empty
        reason = (
            f"it holds files gradverify did not write ({_listing(foreign)})"
            if manifest == f"no {MANIFEST}"
            else f"{manifest}, and it holds {_listing(foreign)}"
        )
    else:
        foreign = _foreign_entries(out, {*manifest["files"], MANIFEST})
        if not foreign:
            return
        reason = f"it holds files gradverify did not write ({_listing(foreign)})"
    raise OutputDirectoryError(
        f"refusing to replace {out}: {reason}; choose a new or empty directory"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_ours(directory: Path, *, complete: bool) -> bool:
    manifest = _manifest(directory)
    if isinstance(manifest, str):
        return False
    if not complete:
        return True  # a half-built report: the manifest was written first
    return not _foreign_entries(directory, {*manifest["files"], MANIFEST})


def _recover_and_clean(out: Path) -> None:
    """Clean up after killed runs (whose process no longer exists).

    A leftover ``.<name>.old-*`` is a previous report that was renamed aside when the run
    died before the new one was renamed in: it is put back if ``out`` is missing, and removed
    otherwise if it holds only what its manifest lists. Leftover ``.<name>.tmp-*``
    directories are half-built reports, removed if they carry gradverify's manifest.
    """
    for prefix in (f".{out.name}.old-", f".{out.name}.tmp-"):
        for path in sorted(out.parent.glob(prefix + "*")):
            pid_text = path.name[len(prefix) :].split("-", 1)[0]
            if (
                not pid_text.isdigit()
                or int(pid_text) == os.getpid()
                or _pid_alive(int(pid_text))
                or path.is_symlink()
                or not path.is_dir()
            ):
                continue
            if prefix.endswith(".old-") and not os.path.lexists(out):
                os.replace(path, out)
            elif _is_ours(path, complete=prefix.endswith(".old-")):
                shutil.rmtree(path, ignore_errors=True)


def exchange_directories(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``); False when
    this platform or file system cannot, and :func:`replace_directory` then falls back to
    two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported on this fs/kernel
        return False
    raise OSError(errno, f"cannot swap {a} and {b}: {os.strerror(errno)}")


def _written_files(directory: Path) -> list[str]:
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == MANIFEST:
                continue
            if not entry.is_file(follow_symlinks=False):
                raise OutputDirectoryError(
                    f"internal: the new report holds {entry.name}, which is not a regular file"
                )
            names.append(entry.name)
    return names


@contextlib.contextmanager
def replace_directory(out_dir: str | os.PathLike[str], *, schema: str) -> Iterator[Path]:
    """Yield a fresh temporary directory; on normal exit it replaces ``out_dir`` atomically.

    The temporary directory already holds the manifest (marked incomplete); on exit it is
    rewritten to list every file written, so the next run may replace the directory.

    Args:
        out_dir: the directory to (re)place. Its parent is created if needed. A relative
            path is resolved against the current directory now.
        schema: the schema of the document the directory holds (recorded in the manifest).

    Raises:
        OutputDirectoryError: ``out_dir`` is unsuitable (a file, a link, or it holds files
            gradverify did not write).
    """
    out = resolve_output_path(out_dir, what="output directory")
    if out.parent == out:
        raise OutputDirectoryError(f"cannot write a report over the root directory {out}")
    _check_replaceable(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _recover_and_clean(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise OutputDirectoryError(
            f"cannot create a directory beside {out}: {exc.strerror or exc}"
        ) from None
    try:
        _write_manifest(tmp, schema, None)
        yield tmp
        _write_manifest(tmp, schema, _written_files(tmp))
        os.chmod(tmp, 0o777 & ~process_umask())
        _check_replaceable(out)  # it may have changed while we worked
        if out.exists() and exchange_directories(tmp, out):
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
