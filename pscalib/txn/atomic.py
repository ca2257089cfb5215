"""Atomic file replacement: private copies, fsync, rename, leftovers.

Every file pscalib writes appears complete or not at all: stores (through
:class:`~pscalib.txn.transaction.FileTransaction`), alias files and exported files
(:func:`write_file_atomic`) are written as a temporary file in the target's directory,
fsynced, renamed over the target, and the directory is fsynced.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Union

from ..errors import PscalibError, StoreIOError, StorePermissionError

__all__ = ["TMP_MARK", "tmp_path_for", "copy_file", "copy_progress", "fsync_file", "fsync_dir",
           "atomic_replace", "cleanup_leftovers", "os_error", "umask_file_mode",
           "write_file_atomic"]

#: Temporary copies are ``.<name>.pscalib-tmp-<host>-<pid>-<random>`` beside the target.
TMP_MARK = ".pscalib-tmp-"
_FICLONE = 0x40049409  # ioctl request number of FICLONE on Linux (btrfs, xfs reflinks)

PathLike = Union[str, Path]


def os_error(exc: OSError, action: str, path: PathLike) -> PscalibError:
    """Map an OSError during a write to a pscalib error that says what to do."""
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorePermissionError(
            f"cannot {action} {path}: {exc.strerror or exc}; check write permission on "
            f"{Path(path).parent} (nothing was changed)")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        # os.strerror: h5py puts a multi-line HDF5 report into strerror
        return StoreIOError(f"cannot {action} {path}: {os.strerror(exc.errno)}; free some "
                            f"space (nothing was changed)")
    return StoreIOError(f"cannot {action} {path}: {' '.join(str(exc).split())} (nothing was "
                        f"changed)")


def tmp_path_for(path: PathLike) -> Path:
    p = Path(path)
    host = socket.gethostname().split(".")[0][:20] or "host"
    return p.with_name(f".{p.name}{TMP_MARK}{host}-{os.getpid()}-{secrets.token_hex(4)}")


def _try_reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return True
    except OSError:
        return False


#: Bytes per copy step, so that progress can be reported on big files.
COPY_STEP = 64 * 1024 * 1024
_copy_reporters: List[Callable[[int, int], None]] = []


@contextlib.contextmanager
def copy_progress(report: Callable[[int, int], None]) -> Iterator[None]:
    """Call ``report(bytes_done, total)`` during file copies made inside the block.

    Used by ``dcs`` to show a progress bar while a transaction copies a big store.
    """
    _copy_reporters.append(report)
    try:
        yield
    finally:
        _copy_reporters.remove(report)


def _report(done: int, total: int) -> None:
    for report in _copy_reporters:
        report(done, total)


def copy_file(src: PathLike, dst: PathLike, mode: Optional[int] = None) -> str:
    """Copy ``src`` to new file ``dst`` as cheaply as the OS allows; return the method used.

    Tries a reflink (copy-on-write clone), then ``os.copy_file_range`` (in-kernel, may
    share extents on NFS 4.2 / XFS), then a plain read/write copy.
    """
    with open(src, "rb") as fs:
        size = os.fstat(fs.fileno()).st_size
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is None else mode)
        with os.fdopen(fd, "wb") as fd_out:
            if _try_reflink(fs.fileno(), fd_out.fileno()):
                _report(size, size)
                return "reflink"
            if hasattr(os, "copy_file_range"):
                try:
                    done = 0
                    while done < size:
                        n = os.copy_file_range(fs.fileno(), fd_out.fileno(),
                                               min(size - done, COPY_STEP))
                        if n == 0:
                            break
                        done += n
                        _report(done, size)
                    if done == size:
                        return "copy_file_range"
                    fs.seek(done)
                    fd_out.seek(done)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP,
                                         errno.EINVAL, errno.EBADF):
                        raise
                    fs.seek(0)
                    fd_out.seek(0)
                    fd_out.truncate()
            done = fs.tell()
            while True:
                block = fs.read(COPY_STEP)
                if not block:
                    return "copy"
                fd_out.write(block)
                done += len(block)
                _report(done, size)


def fsync_file(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: PathLike) -> None:
    """fsync a directory so a rename in it is durable (ignored where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_replace(tmp: PathLike, target: PathLike) -> None:
    """fsync ``tmp``, rename it over ``target`` and fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)


def umask_file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open()`` would give a new file.

    The umask can only be read by setting it; it is set straight back (read each time: a
    program may change its umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_file_atomic(path: PathLike, write: Callable[[BinaryIO], object],
                      new_file_mode: Optional[int] = None) -> None:
    """Create or replace ``path`` with what ``write(binary_file)`` writes, atomically.

    The content goes to a private temporary file in the same directory, which is fsynced,
    given its mode (an existing file's mode is kept; a new file gets ``new_file_mode``,
    default ``0o666`` minus umask), renamed over ``path``; then the directory is fsynced.
    On any error (or interrupt) the temporary file is removed, ``path`` is unchanged and
    the error is raised as it came (an OSError for the caller to map).
    """
    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except FileNotFoundError:
        mode = umask_file_mode() if new_file_mode is None else new_file_mode
    tmp = tmp_path_for(p)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            os.fchmod(fh.fileno(), mode)
        atomic_replace(tmp, p)  # the same fsync-rename-fsync as a store's commit
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cleanup_leftovers(path: PathLike, log: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Remove temporary copies that killed writers left beside ``path``.

    Must only be called while holding the file's lock: only the lock holder creates
    temporary copies, so every one found then belongs to a dead writer. They are deleted,
    never renamed, so they can never shadow or replace a newer file.
    """
    p = Path(path)
    removed: List[Path] = []
    prefix = f".{p.name}{TMP_MARK}"
    try:
        entries = list(os.scandir(p.parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
                if log:
                    log(f"removed leftover {entry.path}")
            except FileNotFoundError:
                pass
    return removed
