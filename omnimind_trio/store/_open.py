"""Which backend a database location names, and opening it."""

from __future__ import annotations

import socket
from contextlib import AbstractAsyncContextManager
from os import PathLike
from pathlib import Path

from ..exceptions import StartupError
from ._file import check_free
from ._memory import open_memory_store
from ._protocol import Store
from ._sqlite import open_sqlite_store
from ._url import is_postgres, masked

MEMORY_URL = "memory://"
"""The location of a new, empty store in memory (``:memory:``, SQLite's spelling, too)."""


def is_url(location: str | PathLike[str]) -> bool:
    """Whether ``location`` is a URL of a backend (``memory://``) rather than the path of
    a SQLite file. Only a ``str`` can be a URL; a ``Path`` is always a file."""
    return isinstance(location, str) and ("://" in location or location == ":memory:")


def default_node_name() -> str:
    """A daemon's name in a fleet when none is given (``OMNIMIND_NODE_NAME``'s default):
    the host name up to its first dot (``desktop`` for ``desktop.lan``)."""
    return socket.gethostname().partition(".")[0]


def open_store(
    location: str | PathLike[str], *, node: str | None = None, lease_seconds: float = 30.0
) -> AbstractAsyncContextManager[Store]:
    """Open the store at ``location``, an async context manager that closes it on exit.

    - a path (``str`` or ``Path``): the SQLite file there, created if missing, locked
      against a second daemon;
    - ``memory://`` (or ``:memory:``): a new, empty :class:`MemoryStore`, dropped on exit;
    - ``postgresql://...`` (or ``postgres://...``, libpq's URL): the PostgreSQL database
      there, its tables created if missing, shared by a fleet of daemons, this one named
      ``node`` (default: :func:`default_node_name`; a second daemon of that name is
      refused), its claims' leases ``lease_seconds`` long.

    A new backend is one module with its ``open_*`` function, and one branch here.

    Error handling: an unknown URL, a database another daemon holds, or one that cannot
    be opened raise StartupError.
    """
    if not isinstance(location, str) or not is_url(location):
        return open_sqlite_store(Path(location))
    if location in (MEMORY_URL, ":memory:"):
        return open_memory_store()
    if is_postgres(location):
        # Imported here: psycopg takes a tenth of a second to import, which a daemon on
        # SQLite (and every command of the CLI) need not spend.
        from ._postgres import open_postgres_store

        return open_postgres_store(
            location, node=node or default_node_name(), lease_seconds=lease_seconds
        )
    raise StartupError(
        f"unknown database {masked(location)!r}: give the path of a SQLite file,"
        f" a postgresql:// URL, or {MEMORY_URL}"
    )


def check_store(location: str | PathLike[str], *, node: str | None = None) -> None:
    """Raise StartupError when another daemon holds the store at ``location``; create and
    change nothing. A SQLite file: its lock. A PostgreSQL database: that it can be reached
    and used (the URL, the password, the database), the lock of the daemon named ``node``
    (taken and released at once) and its schema version. ``memory://``: nothing to check."""
    if not isinstance(location, str) or not is_url(location):
        check_free(Path(location))
    elif is_postgres(location):
        from ._postgres_connect import check

        check(location, node or default_node_name())
