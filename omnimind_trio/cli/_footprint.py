"""What ``omnimind serve`` leaves on disk when it fails to start: nothing it made.

A start creates its home's files before it knows it will run: the credentials file
(generated on first use), the database and its -wal and -shm, the logs directory, and the
directories above them that were missing. When start-up then fails (the port is taken,
another daemon holds the database, the workspace or the task interpreter is missing),
:func:`undone_unless_started` removes what this start made, and only that:

- a path that existed before the start is never touched;
- the credentials file only if this start generated it and it is still the file it wrote;
- the database only while no daemon holds its lock (another daemon's new database,
  created meanwhile on the same home, is left alone);
- a directory only when empty (``rmdir``), deepest first.

Once start-up has succeeded, nothing is undone: from then on the files hold the user's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..config import Settings
from ..credentials import Credentials

log = logging.getLogger(__package__)

DATABASE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database."""


class StartFootprint:
    """The paths a start may create, with whether each existed before it began."""

    def __init__(self, settings: Settings) -> None:
        self.started = False
        try:
            database: Path | None = settings.database_path.absolute()
        except ValueError:  # memory://: no file
            database = None
        self._auth_file = settings.auth_file.absolute()
        self._generated: tuple[int, int] | None = None
        self._new_auth_file = not _exists(self._auth_file)
        self._new_database_files: list[Path] = []
        if database is not None and not _exists(database):
            companions = [database.with_name(database.name + s) for s in DATABASE_COMPANIONS]
            self._new_database_files = [database, *filter(_is_new, companions)]
        dirs = [settings.home, settings.auth_file.parent, settings.logs_dir]
        if database is not None:
            dirs.append(database.parent)
        self._new_dirs = sorted(
            {missing for path in dirs for missing in _missing_chain(path.absolute())},
            key=lambda path: len(path.parts),
            reverse=True,  # deepest first
        )

    def generated(self, credentials: Credentials) -> None:
        """Note the credentials file this start wrote (``source == "generated"``)."""
        if credentials.source == "generated" and credentials.path is not None:
            with contextlib.suppress(OSError):
                status = os.stat(credentials.path)
                self._generated = (status.st_dev, status.st_ino)

    def undo(self) -> list[Path]:
        """Remove what this start created; returns the removed paths."""
        removed: list[Path] = []
        if self._new_auth_file and self._still_generated():
            removed += _unlink(self._auth_file)
        if self._new_database_files:
            removed += self._undo_database()
        for directory in self._new_dirs:
            with contextlib.suppress(OSError):  # not empty, or gone: left as it is
                directory.rmdir()
                removed.append(directory)
        return removed

    def _still_generated(self) -> bool:
        try:
            status = os.stat(self._auth_file)
        except OSError:
            return False
        return self._generated == (status.st_dev, status.st_ino)

    def _undo_database(self) -> list[Path]:
        database, *companions = self._new_database_files
        try:
            fd = os.open(database, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return []  # not created after all (or not a file to open)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # a daemon holds it: its database, made meanwhile, not ours
            # Companions first: a database without its WAL is never left behind.
            return [p for path in (*companions, database) for p in _unlink(path)]
        finally:
            os.close(fd)  # the lock goes with it


@contextlib.contextmanager
def undone_unless_started(settings: Settings) -> Iterator[StartFootprint]:
    """Undo the start's files when the block fails before ``footprint.started`` is set."""
    footprint = StartFootprint(settings)
    try:
        yield footprint
    except BaseException:
        if not footprint.started:
            removed = footprint.undo()
            if removed:
                log.debug("failed start: removed %s", ", ".join(map(str, removed)))
        raise


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _is_new(path: Path) -> bool:
    return not _exists(path)


def _missing_chain(path: Path) -> list[Path]:
    """``path`` (absolute) and its ancestors that do not exist."""
    missing = []
    for candidate in (path, *path.parents):
        if _exists(candidate):
            break
        missing.append(candidate)
    return missing


def _unlink(path: Path) -> list[Path]:
    try:
        path.unlink()
    except FileNotFoundError:
        return []
    return [path]
