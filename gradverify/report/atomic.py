"""Output files and directories: checked before a run, written atomically, and never written
over anything gradverify did not write.

**Where.** :func:`resolve_output_path` makes a path absolute once, against the working
directory at start-up, so an implementation that changes directory while it runs cannot
redirect an output; messages name that resolved path. :func:`check_output_file` and
:func:`check_output_directory` say *before* any work whether an output can be written
there (a directory given for a file, a regular file in the middle of the path, a place
where no file can be created such as ``/sys``).

**Files** (:func:`write_file_atomic`) are written to a temporary sibling and renamed into
place, with the permissions a plain ``open()`` would give (``0o666`` minus the umask). An
existing target that is not a regular file (a directory, ``/dev/null``) is never replaced.

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

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "OutputDirectoryError",
    "OutputPathError",
    "check_output_directory",
    "check_output_file",
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


class OutputPathError(Exception):
    """An output file or directory cannot be written; the one-line message names it and why."""


class OutputDirectoryError(OutputPathError):
    """The output directory cannot be (re)placed; the message says why, in one line."""


def _umask() -> int:
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


# ---------------------------------------------------------------------------
# Resolving and checking paths before a run
# ---------------------------------------------------------------------------


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


def _check_creatable(target: Path, what: str) -> None:
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


def _refuse_non_regular(target: Path, what: str) -> None:
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
    _refuse_non_regular(target, what)
    _check_creatable(target, what)
    return target


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
        _check_creatable(out, what)
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
    _refuse_non_regular(target, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputPathError(f"{what} {target}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"{what} {target}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


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


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False when unsupported here."""
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
        os.chmod(tmp, 0o777 & ~_umask())
        _check_replaceable(out)  # it may have changed while we worked
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
