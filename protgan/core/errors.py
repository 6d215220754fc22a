"""The one error type users see: a single line naming the file, row or option and what is wrong."""

from __future__ import annotations

import errno
import os


class ProtganError(Exception):
    """A problem with the user's input or options. The CLI prints it as one line and exits 2."""


def describe_os_error(e: OSError) -> str:
    """One line for a file-system fault: the path and what is wrong."""
    names = [n for n in (e.filename, getattr(e, "filename2", None)) if n]
    reason = e.strerror or (os.strerror(e.errno) if e.errno else str(e))
    hints = {errno.EACCES: "check the folder's permissions", errno.EROFS: "the file system is read-only",
             errno.ENOSPC: "the disk is full", errno.EEXIST: "remove it or choose another path",
             errno.EISDIR: "give a file name, not a folder", errno.ENOTDIR: "a file is in the way of a folder"}
    hint = hints.get(e.errno or 0)
    where = " -> ".join(str(n) for n in names) or "file system"
    return f"{where}: {reason}" + (f" ({hint})" if hint else "")
