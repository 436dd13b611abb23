"""Connecting to the PostgreSQL server: the URL (its password kept out of every message),
the errors in words, and the connection that holds this daemon's place in the database.

Several daemons may share one database (a fleet, see ``_postgres_fleet``), one per node
name. The store's *writer* connection holds a session-level advisory lock keyed by the
node's name (:func:`lock_key`) for the store's lifetime, and every write goes through that
connection: a second daemon started under the same name fails its try-lock and refuses to
start, naming the holder (its pid and host: each connection's ``application_name``).

A lost writer connection (the server restarted, the network cut) is made again at the next
write, and takes the lock again before it writes: if another daemon of the same name took it
meanwhile, every write is refused from then on (:class:`LockLost`). Our own session of
before, still alive on the server (a half-open TCP connection), holds it: it is ended
(``pg_terminate_backend``), being ours (our ``application_name``'s token).
A write whose connection was lost before its COMMIT is sent was not made: it is tried once
more on a new connection. One lost during its COMMIT may have been made or not, as with any
network database; it is reported as refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import time
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..exceptions import StartupError
from ._postgres_schema import check_version, prepare, read_version
from ._url import masked

log = logging.getLogger(__package__)

T = TypeVar("T")

CONNECT_SECONDS = 5
"""Bound on connecting to the server (libpq's ``connect_timeout``, the pool's wait)."""

LOCK_CLASS = 0x6F6D6E69
"""The first key of omnimind's advisory locks (``pg_try_advisory_lock(int, int)``): 'omni'."""


LEGACY_KEY = (LOCK_CLASS, 1)
"""The lock omnimind held before the fleet (one daemon per database): a daemon of that
version still running refuses this one's start."""


def lock_key(node: str) -> tuple[int, int]:
    """The advisory lock of the daemon named ``node``: 'omni' and a 31-bit hash of the name
    (two names of one fleet sharing a hash is one in two billion, and refused clearly)."""
    return LOCK_CLASS, zlib.crc32(node.encode()) & 0x7FFFFFFF | 0x100  # never LEGACY_KEY


LOCK_WAIT_SECONDS = 1.0
"""How long a start waits for the lock before it says another daemon holds it."""

SHARING = "each daemon sharing a database needs a name of its own: set OMNIMIND_NODE_NAME"

DEFAULTS = {
    "connect_timeout": str(CONNECT_SECONDS),
    # A server gone without a word (a host down, a network cut) is noticed in about a
    # minute, not after the kernel's TCP timeouts (many minutes): a call cannot hang on.
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
"""libpq parameters, each unless the URL gives it."""


class LockLost(Exception):
    """Another daemon took the database while the writer's connection was lost."""


def scrub(text: str, url: str) -> str:
    """``text`` (a message of libpq's) on one line, the URL's password out of it."""
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = text.replace(url, masked(url))
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if isinstance(password, str) and len(password) >= 4:
        text = text.replace(password, "***")
    return text


def options(url: str, name: str) -> dict[str, Any]:
    """What ``psycopg.connect`` is given: the URL's parameters, :data:`DEFAULTS` for
    those it lacks, and ``application_name`` ``name`` (how a holder is named)."""
    given = conninfo_to_dict(url)
    return {**DEFAULTS, **given, "application_name": name, "autocommit": True}


def describe(url: str, exc: psycopg.Error) -> str:
    """Why the server at ``url`` cannot be used, for the operator, on one line."""
    where = masked(url)
    if isinstance(exc, psycopg.ProgrammingError) or "connection is bad: invalid" in str(exc):
        return f"the database URL {where} is not valid: {scrub(str(exc), url)}"
    text = re.sub(r"^connection (failed|is bad): ", "", scrub(str(exc), url))
    advice = ""
    if "password authentication failed" in text or "no password supplied" in text:
        advice = ": check the user and password in OMNIMIND_DATABASE"
    elif re.search(r'(database|role) ".*" does not exist', text):
        advice = ": create it first (docs/operations.md, 'Running on PostgreSQL')"
    return f"cannot connect to the PostgreSQL database {where}: {text}{advice}"


def reason(exc: BaseException, url: str) -> str:
    """Why a call failed, for ``StoreUnavailable`` (the daemon's ``error``)."""
    if isinstance(exc, LockLost):
        return str(exc)
    text = scrub(str(exc), url) or type(exc).__name__
    return re.sub(r"^connection (failed|is bad): ", "", text)


class Identity:
    """How this store's connections name themselves (``application_name``): a token of
    its own, the pid and the host, at most 63 bytes (PostgreSQL's limit)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)
        self.name = f"omnimind [{self.token}] pid {os.getpid()} on {socket.gethostname()}"
        self.name = self.name.encode()[:63].decode(errors="ignore")


_HOLDER = (
    "SELECT l.pid, a.application_name FROM pg_locks l"
    " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid = %s AND l.objid = %s"
)


def try_lock(db: psycopg.Connection[Any], key: tuple[int, int]) -> bool:
    row = db.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
    return bool(row and row[0])


def lock_at_start(db: psycopg.Connection[Any], key: tuple[int, int]) -> bool:
    """Take the lock, waiting up to LOCK_WAIT_SECONDS for a holder that is going: the
    session of a daemon just stopped or killed ends on the server a moment after its
    process did (a restart must not be refused for that)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not try_lock(db, key):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def holder(db: psycopg.Connection[Any], key: tuple[int, int]) -> tuple[int, str] | None:
    """The session holding the lock ``key``: its backend pid, and who it is ("pid 12 on
    desk")."""
    row = db.execute(_HOLDER, key).fetchone()
    if row is None:
        return None
    pid, name = int(row[0]), row[1] or ""
    found = re.fullmatch(r"omnimind \[\w+\] (.*)", name)
    return pid, found.group(1) if found else f"PostgreSQL session {pid}"


def connect_for_start(url: str, name: str) -> psycopg.Connection[Any]:
    """A connection made at start. Error handling: StartupError, saying why."""
    try:
        return psycopg.connect(**options(url, name))
    except psycopg.Error as exc:
        raise StartupError(describe(url, exc)) from None


def take_place(url: str, db: psycopg.Connection[Any], node: str) -> None:
    """Take the lock of the daemon named ``node``. Error handling: StartupError when
    another daemon of that name holds it, or a daemon of a version before the fleet (which
    held :data:`LEGACY_KEY` and cannot share) uses the database."""
    if not lock_at_start(db, lock_key(node)):
        found = holder(db, lock_key(node))
        who = f" ({found[1]})" if found else ""
        raise StartupError(
            f"another omnimind daemon named {node}{who} is using the database"
            f" {masked(url)}: {SHARING}"
        )
    if not try_lock(db, LEGACY_KEY):
        found = holder(db, LEGACY_KEY)
        who = f" ({found[1]})" if found else ""
        raise StartupError(
            f"an omnimind daemon of a version before the fleet{who} is using the database"
            f" {masked(url)}: it cannot share it; stop it (or upgrade it) first"
        )
    db.execute("SELECT pg_advisory_unlock(%s, %s)", LEGACY_KEY)


def check(url: str, node: str) -> None:
    """Raise StartupError when the database at ``url`` cannot be used (unreachable, a bad
    URL or password, missing, a newer schema) or another daemon named ``node`` holds it;
    create nothing. The lock is taken and released at once."""
    db = connect_for_start(url, Identity().name)
    try:
        take_place(url, db, node)
        check_version(read_version(db))
    except psycopg.Error as exc:
        raise StartupError(describe(url, exc)) from None
    finally:
        release(db)


class Writer:
    """The connection that holds the database's lock and makes every write (one thread
    at a time: the store runs it under a ``CapacityLimiter(1)``)."""

    def __init__(
        self, url: str, db: psycopg.Connection[Any], identity: Identity, node: str
    ) -> None:
        self.url = url
        self.identity = identity
        self.node = node
        self._db: psycopg.Connection[Any] | None = db

    @classmethod
    def open(cls, url: str, node: str) -> Writer:
        """Connect, take ``node``'s lock, create or migrate the tables.

        Error handling: StartupError saying why (the server, the URL, the password, the
        database, another daemon of that name holding it, a newer schema, the role's
        rights)."""
        identity = Identity()
        db = connect_for_start(url, identity.name)
        try:
            try:
                take_place(url, db, node)
            except psycopg.Error as exc:
                raise StartupError(describe(url, exc)) from None
            prepare(db)
        except psycopg.Error as exc:
            release(db)
            raise StartupError(
                f"cannot create omnimind's tables in the database {masked(url)}:"
                f" {scrub(str(exc), url)} (the role needs to own the database: see"
                " docs/operations.md)"
            ) from None
        except BaseException:
            release(db)
            raise
        return cls(url, db, identity, node)

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(connection)`` in one transaction, committed. A connection found lost
        before the COMMIT is made again, and ``fn`` run once more.

        Error handling: psycopg's errors, and LockLost, are raised."""
        retried = False
        while True:
            db = self._connected()
            committing = False
            try:
                with db.transaction():  # BEGIN ... COMMIT
                    result = fn(db)
                    committing = True
            except psycopg.OperationalError:
                if not committing and db.broken and not retried:
                    retried = True
                    continue
                raise
            return result

    def check(self) -> str | None:
        """Why this daemon no longer holds the database (another daemon took it), or None:
        it does, or the server cannot be reached (the writes say so). Never raises."""
        try:
            self.run(lambda db: db.execute("SELECT 1"))
        except LockLost as exc:
            return str(exc)
        except psycopg.Error:
            pass
        return None

    def _connected(self) -> psycopg.Connection[Any]:
        db = self._db
        if db is not None and not db.closed and not db.broken:
            return db
        if db is not None:
            db.close()
            self._db = None
        db = psycopg.connect(**options(self.url, self.identity.name))
        try:
            self._lock(db)
        except BaseException:
            db.close()
            raise
        log.warning("connected to the PostgreSQL database %s again", masked(self.url))
        self._db = db
        return db

    def _lock(self, db: psycopg.Connection[Any]) -> None:
        """Take the lock again on a new connection (see the module's docstring)."""
        deadline = time.monotonic() + CONNECT_SECONDS
        while not try_lock(db, lock_key(self.node)):
            found = holder(db, lock_key(self.node))
            if found is not None and f"[{self.identity.token}]" not in _name_of(db, found[0]):
                raise LockLost(
                    f"another omnimind daemon named {self.node} ({found[1]}) took the"
                    " database while this one's connection was lost: this daemon writes"
                    f" nothing more to it; stop one of them ({SHARING})"
                )
            if found is not None:  # our own session of before, not yet gone: end it
                db.execute("SELECT pg_terminate_backend(%s)", (found[0],))
            if time.monotonic() > deadline:
                raise LockLost("the database's lock is still held by this daemon's old session")
            time.sleep(0.05)

    def close(self) -> None:
        """Release the lock, then close: the lock would go with the session, but a moment
        after the connection closes (a daemon started at once must find it free)."""
        db, self._db = self._db, None
        if db is not None:
            release(db)


def release(db: psycopg.Connection[Any]) -> None:
    """Release the lock (if held), then close the connection. The lock would go with the
    session, but a moment after the connection closes: a daemon started at once, or
    ``omnimind serve`` right after its own check, must find it free."""
    with contextlib.suppress(psycopg.Error):
        if not db.closed:
            db.execute("SELECT pg_advisory_unlock_all()")
    db.close()


def _name_of(db: psycopg.Connection[Any], pid: int) -> str:
    row = db.execute(
        "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return "" if row is None or row[0] is None else str(row[0])
