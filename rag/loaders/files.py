"""Reading a document file safely: regular files only, opening never blocks, at most the limit read.

    from rag.loaders import read_file
    data = read_file(Path("docs/guide.md"), max_bytes=20 * 1024 * 1024)

A FIFO, socket or device in a source folder would block a plain open() or read() forever (or
never end): the file is opened non-blocking and its type checked on the open descriptor, so a
file replaced after the folder scan is refused too.
"""

import errno
import os
import stat
from pathlib import Path

from .base import LoadError, human_size

# distinct bits, so their sum is their union; a flag this platform lacks counts 0
OPEN_FLAGS = os.O_RDONLY + sum(getattr(os, flag, 0) for flag in ("O_NONBLOCK", "O_CLOEXEC", "O_NOCTTY", "O_BINARY"))
KINDS = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def read_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file; the size limit is checked before anything is read.

    Raises LoadError: "file not found", "permission denied", "not a regular file (fifo)",
    "file too large (30 MB > 20 MB)", ...
    """
    try:
        descriptor = os.open(path, OPEN_FLAGS)
    except OSError as error:
        raise open_error(path, error) from None
    try:
        info = os.fstat(descriptor)  # the opened file itself: no race with a file swapped in after a check
        reason = not_regular(info.st_mode)
        if reason:
            raise LoadError(reason)
        check_size(info.st_size, max_bytes)
        with open(descriptor, "rb", closefd=False) as handle:
            # a file that grew after fstat() is caught by the check below
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as error:
        raise LoadError(describe(error)) from None
    finally:
        os.close(descriptor)
    check_size(len(data), max_bytes)
    return data


def not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read ("not a regular file (fifo)"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "not a regular file"
    kind = next((name for test, name in KINDS if test(mode)), "special file")
    return f"not a regular file ({kind})"


def check_size(size: int, max_bytes: int | None):
    if max_bytes is not None and size > max_bytes:
        raise LoadError(f"file too large ({human_size(size)} > {human_size(max_bytes)})")


def open_error(path: Path, error: OSError) -> LoadError:
    if isinstance(error, FileNotFoundError):
        return LoadError("file not found")
    if isinstance(error, IsADirectoryError):
        return LoadError("not a regular file")
    if error.errno == errno.ENXIO:  # a socket, or a device without a driver
        try:
            return LoadError(not_regular(os.stat(path).st_mode) or describe(error))
        except OSError:
            pass
    return LoadError(describe(error))


def describe(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()
