"""The SQLite database file itself: one daemon per file, checked at open, watched while open.

Locking. The daemon holds an exclusive ``flock(2)`` on a descriptor of the database file
itself, so a second daemon on the same file by any name (a symlink, a hard link, a bind
mount, a relative path) is refused: a lock keyed on the path (``<db>.lock``, in earlier versions)
let a daemon on a symlink in. Why ``flock`` and not ``fcntl``: SQLite takes POSIX
(``fcntl``) byte-range locks on the same file, and a process's POSIX locks on a file are
all dropped when *any* of its descriptors on that file is closed. ``flock`` locks belong
to the open file description and on Linux are independent of POSIX locks, so ours and
SQLite's never meet. Our descriptor stays open until SQLite's connection is closed, and
nothing here opens and closes another descriptor on the file while SQLite holds it (the
checks below read through ours: ``os.pread``, ``os.fstat``).

Checks at open, before SQLite touches the file: it must be writable (a read-only file is
refused, not opened read-only) and, when it is not empty, look like a SQLite database (its
magic string, and a size that holds the pages its header counts). SQLite's own errors are
turned into a sentence for the operator. Nothing here writes to an existing file.

Privacy. The database holds task code, output and secrets: it is created 0600 (SQLite
gives its -wal and -shm files the database's mode), and a file others may read (made by an
older version, a copy, a generous umask) is made 0600 at open, with its -wal and -shm,
saying so in the log. Its content is not touched.

Watching. :meth:`DatabaseFile.lost` compares the open file with the one at the path: a
file deleted (``rm omnimind.db*``) or replaced while the daemon runs is noticed.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import StartupError

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

MOVE_AWAY = (
    "omnimind did not change it. Move it away (or restore a backup) and start again: a new,"
    " empty database is created at that path"
)


@dataclass(slots=True)
class DatabaseFile:
    """An open descriptor of the database file, locked against a second daemon."""

    path: Path
    fd: int

    @classmethod
    def open(cls, path: Path) -> DatabaseFile:
        """Open and lock the file at ``path`` (created 0600 when missing: task code and
        output are private, and SQLite gives its -wal and -shm files the database's mode).

        Error handling: another daemon holding it, a read-only file or directory, a file
        that is not a SQLite database or is truncated raise StartupError; nothing is
        written to an existing file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if existed and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StartupError(
                    f"the database {path} is read-only ({exc.strerror}): the daemon must write"
                    " to it. Make it writable by the daemon's user, or give another path"
                    " (OMNIMIND_DATABASE); it was not changed"
                ) from None
            raise StartupError(f"cannot open the database {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _held(path) from None
        opened = cls(path, fd)
        try:
            opened._check(existed)
        except BaseException:
            opened.close()
            raise
        opened._make_private()
        return opened

    def _make_private(self) -> None:
        """Take the group's and others' permissions away from the database and its -wal
        and -shm files (see the module's docstring)."""
        paths = [self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm")]
        for path in (self.path, *paths):
            try:
                mode = os.fstat(self.fd).st_mode if path == self.path else path.stat().st_mode
                if mode & 0o077:
                    if path == self.path:
                        os.fchmod(self.fd, 0o600)
                    else:
                        path.chmod(0o600)
                    log.warning(
                        "%s was readable by others (mode %04o): it holds task code, output"
                        " and secrets; made 0600",
                        path,
                        mode & 0o777,
                    )
            except FileNotFoundError:
                continue
            except OSError as exc:  # not ours (a file of another user that we may write)
                log.warning("%s is readable by others and cannot be made 0600: %s", path, exc)

    def _check(self, existed: bool) -> None:
        path = self.path
        wal = path.with_name(path.name + "-wal")
        if not wal.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
            raise StartupError(
                f"the directory {path.parent} of the database is read-only: SQLite creates"
                f" {wal.name} and {path.name}-shm beside the database. Make the directory"
                " writable by the daemon's user; the database was not changed"
            )
        size = os.fstat(self.fd).st_size
        if size == 0:
            return  # a new database (or an empty file: SQLite makes it one)
        header = os.pread(self.fd, 100, 0)
        if not header.startswith(MAGIC):
            raise StartupError(
                f"the database {path} is not a SQLite database (it does not start as one). "
                + MOVE_AWAY
            )
        expected = _header_size(header)
        wal_size = wal.stat().st_size if wal.exists() else 0
        # With a WAL holding frames, a checkpoint cut short may have written the header
        # before the pages: SQLite completes it from the WAL. Without one, the file must
        # hold every page its header counts.
        if expected is not None and wal_size == 0 and size < expected:
            raise StartupError(
                f"the database {path} is corrupt: it is truncated ({size} bytes; its header"
                f" counts {expected}). " + MOVE_AWAY
            )

    def lost(self) -> str | None:
        """Why the open file is no longer the database at the path, or None when it is."""
        opened = os.fstat(self.fd)
        try:
            there = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            there = None
        except OSError:  # (the directory made unreadable): cannot tell, so no alarm
            return None
        if there is not None and (there.st_dev, there.st_ino) != (opened.st_dev, opened.st_ino):
            return f"the database file {self.path} was replaced by another file"
        if there is None or opened.st_nlink == 0:
            return f"the database file {self.path} was deleted"
        return None

    def close(self) -> None:
        os.close(self.fd)  # the lock goes with it


def check_free(path: Path) -> None:
    """Raise StartupError when a daemon holds the database at ``path``; create nothing.

    A check before a start creates anything (``omnimind serve``): a second daemon on the
    same database is told so, not that its port is taken. It takes a shared lock for an
    instant: a daemon that opens the file in that instant is refused as if this one held it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return  # no file yet (or none to read): opening it will say what is wrong
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _held(path) from None
    except OSError:
        return
    finally:
        os.close(fd)


def _held(path: Path) -> StartupError:
    return StartupError(f"another omnimind daemon is using the database {_named(path)}")


def _named(path: Path) -> str:
    """``path``, and the file it leads to when that is another name (a symlink)."""
    real = os.path.realpath(path)
    return str(path) if real == os.path.abspath(path) else f"{path} (the file {real})"


def _header_size(header: bytes) -> int | None:
    """The file size the header of a database promises, when the header says it reliably
    (its page count is valid only when the change counter matches version-valid-for)."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]
    return pages * page_size if valid and pages > 0 else None


def describe_open_error(path: Path, exc: sqlite3.Error) -> str:
    """What SQLite's error while opening ``path`` means for the operator."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_NOTADB":
        return f"the database {path} is not a SQLite database ({exc}). {MOVE_AWAY}"
    if name.startswith("SQLITE_CORRUPT"):
        return f"the database {path} is corrupt ({exc}). {MOVE_AWAY}"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return (
            f"cannot write the database {path} ({exc}): check that the daemon's user may write"
            f" the file and its directory (SQLite creates {path.name}-wal and {path.name}-shm"
            " beside it)"
        )
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _disk_full(path)):
        # (SQLite says "disk I/O error" when it cannot grow its -shm file.)
        return (
            f"cannot open the database {path}: the disk that holds it is full ({exc}). Free"
            " some space and start again; the database was not changed"
        )
    return f"cannot open the database {path}: {exc}"


def _disk_full(path: Path) -> bool:
    try:
        free = os.statvfs(path.parent)
    except OSError:
        return False
    return free.f_bavail * free.f_frsize < 1024 * 1024


def recreate(db: sqlite3.Connection, path: Path) -> DatabaseFile:
    """Write a copy of the open database ``db`` (everything it holds, its WAL included) to
    a new file at ``path``, which must be free: a file that stands there now (another
    daemon's new database) is never replaced. Returns the new file, opened and locked.

    Error handling: raises OSError, sqlite3.Error or StartupError; ``path`` is then left
    as it was (or holds the complete copy, when only opening it failed)."""
    if path.exists():
        raise FileExistsError("another file stands there, and is left alone")
    temporary = path.with_name(f".{path.name}.recreating-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        copy = sqlite3.connect(temporary)
        try:
            db.backup(copy)
        finally:
            copy.close()
        os.link(temporary, path)  # FileExistsError when the path was taken meanwhile
    finally:
        temporary.unlink(missing_ok=True)
    return DatabaseFile.open(path)
