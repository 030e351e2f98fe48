"""What went wrong with the disk under the store, in words the clerk can act on.

SQLite reports a full disk as SQLITE_FULL, and a write the operating system refused (a full
disk on some systems, a file size limit, a failing disk) as one of the SQLITE_IOERR codes; a
folder or file it may not write as SQLITE_READONLY (or SQLITE_CANTOPEN when it cannot even
create the file); a damaged file as SQLITE_CORRUPT or SQLITE_NOTADB
(https://www.sqlite.org/rescode.html). Each becomes its own error with its own exit status.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from dhims2.errors import Dhims2Error, ExitStatus

SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_READONLY = 8
SQLITE_NOTADB = 26

_READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class StorageFault(Dhims2Error):
    """The store's disk or file cannot be used; the message says what to do about it."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path
        self.details = {"path": str(path)}


class DiskFull(StorageFault):
    code = "DISK_FULL"
    exit_status = ExitStatus.DISK_FULL


class StoreReadOnly(StorageFault):
    code = "STORE_READ_ONLY"
    exit_status = ExitStatus.STORE_READ_ONLY


class StoreCorrupt(StorageFault):
    code = "STORE_CORRUPT"
    exit_status = ExitStatus.STORE_CORRUPT


def storage_fault(error: BaseException, path: Path) -> StorageFault | None:
    """The fault `error` (from sqlite3 or the OS) means for the store at `path`, if it is one."""
    if isinstance(error, sqlite3.Error):
        primary = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if primary in (SQLITE_FULL, SQLITE_IOERR):
            return disk_full(path)
        if primary in (SQLITE_READONLY, SQLITE_CANTOPEN):
            return read_only(path)
        if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return StoreCorrupt(
                f"the upload store {path} is damaged; run the command again: it is moved aside,"
                " what can be read from it is kept, and records already in DHIS2 are found"
                " there and updated, not created twice",
                path,
            )
        return None
    if isinstance(error, OSError):
        if error.errno in _READ_ONLY_ERRNOS:
            return read_only(path)
        if error.errno in _FULL_ERRNOS:
            return disk_full(path)
    return None


def disk_full(path: Path) -> DiskFull:
    return DiskFull(
        f"the disk holding {path.parent} is full or refused to write: free some space and run"
        " the command again; everything saved before is kept",
        path,
    )


def read_only(path: Path) -> StoreReadOnly:
    return StoreReadOnly(
        f"the data folder {path.parent} cannot be written: give your user write access to it"
        " (or set DHIMS2_DATA_DIR to a folder you can write) and run the command again",
        path,
    )
