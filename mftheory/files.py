"""Files that are either complete or untouched: atomic writes and a folder lock.

Every file mftheory writes (the command line's data and figures, kernels, the validation
runner's cells, summaries and reports) goes through ``atomic_write``: the content goes to a
temporary file beside the target, which is flushed to disk and renamed over the target only
when it is complete. An interrupted or failed write (an exception, Ctrl-C) leaves the old file
as it was and no temporary file behind; a reader sees either the old file or the new one, never
a part.

``folder_lock`` keeps two runs from working in the same results folder at once: the second
one is refused while the first is alive; a lock left by a process that died is taken over.

The numerical core never writes files; only ``mftheory.plotting``, ``mftheory.validation``
and ``mftheory.cli`` use this module.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mftheory.errors import MFTheoryError

__all__ = ["LOCK_NAME", "TEMP_SUFFIX", "atomic_write", "folder_lock", "lock_holder"]

#: Suffix of the temporary files ``atomic_write`` makes (``.<name>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"
#: Name of the lock file ``folder_lock`` keeps in the folder while a run holds it.
LOCK_NAME = ".mftheory.lock"


def _new_file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _remove(path: str) -> None:
    """Delete ``path`` if it exists; a second Ctrl-C during the deletion does not stop it."""
    for _ in range(3):
        try:
            os.unlink(path)
            return
        except FileNotFoundError:
            return
        except KeyboardInterrupt:
            continue
        except OSError:
            return


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a renamed file to disk (POSIX; a no-op where unsupported)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[Any]:
    """Open a temporary file beside ``path`` for writing; put it in place when the block ends.

    Parameters
    ----------
    path : str or path-like
        The file to (over)write. A symbolic link is followed: its target is replaced.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    encoding, newline : str, optional
        As for ``open`` (text mode only; default encoding UTF-8).

    Yields
    ------
    file object
        The temporary file (a text file for ``"w"``, binary for ``"wb"``); write the whole
        content to it.

    Raises
    ------
    OSError
        The folder is missing or not writable, the disk is full, ``path`` is a folder, ...
        Whatever the block raises (an exception, ``KeyboardInterrupt``) passes through.

    Notes
    -----
    The file is flushed and ``fsync``-ed, then renamed over ``path`` with ``os.replace``
    (atomic on POSIX and Windows when both are in the same folder, as here). On any exception
    the temporary file is deleted and ``path`` is left as it was. A replaced file keeps its
    permission bits; a new one gets the usual ``0o666`` less the umask.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    folder = target.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        if "b" in mode:
            fh: IO[Any] = os.fdopen(fd, mode)
        else:
            fh = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline=newline)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            bits = target.stat().st_mode & 0o7777
        except OSError:
            bits = _new_file_mode()
        os.chmod(tmp, bits)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _sync_folder(folder)


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def lock_holder(folder: str | os.PathLike[str]) -> int | None:
    """The process id written in ``folder``'s lock file, or None (no file, or unreadable)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="ascii").strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _refuse(folder: Path, pid: int | None) -> MFTheoryError:
    who = f"process {pid}" if pid is not None else "another process"
    return MFTheoryError(
        f"{str(folder)!r} is in use by another mftheory run ({who}): wait for it to finish,"
        f" or choose another --output"
    )


@contextlib.contextmanager
def _flock(folder: Path) -> Iterator[Path]:
    """The lock through ``fcntl.flock`` (released by the kernel when the holder dies)."""
    import fcntl

    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _refuse(folder, lock_holder(folder)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed it as we opened it: lock the new file
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        _remove(str(path))
        os.close(fd)


@contextlib.contextmanager
def _pidfile(folder: Path) -> Iterator[Path]:
    """The lock as a file created exclusively (where ``fcntl`` is missing); stale ones go."""
    path = folder / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            pid = lock_holder(folder)
            if pid is not None and _pid_alive(pid):
                raise _refuse(folder, pid) from None
            _remove(str(path))
    else:
        raise _refuse(folder, lock_holder(folder))
    try:
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        os.close(fd)
        yield path
    finally:
        _remove(str(path))


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder``'s lock (the file ``LOCK_NAME`` with this process id) while a block runs.

    Parameters
    ----------
    folder : str or path-like
        An existing folder.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    MFTheoryError
        Another live process holds the lock (the message names its process id). A lock file
        left by a process that has died is taken over.
    OSError
        The lock file cannot be created (a read-only folder, ...).

    Notes
    -----
    On POSIX the lock is ``fcntl.flock`` on the file, which the system releases when its holder
    dies however it dies; elsewhere the file is created exclusively and a holder that is no
    longer running counts as gone. The file is deleted when the block ends.
    """
    folder = Path(folder)
    if sys.platform != "win32":
        with _flock(folder) as path:
            yield path
    else:  # pragma: no cover - exercised on Windows only
        with _pidfile(folder) as path:
            yield path
