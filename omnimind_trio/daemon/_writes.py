"""Whether the database accepts writes and is still on disk, and what the daemon does when
it does not.

A full disk, a file system remounted read-only or an I/O error make the store refuse writes
(``StoreUnavailable``, whatever the backend).
The daemon must not die of it: the scheduler keeps its schedule in memory and tasks keep
running; what cannot be saved is lost (an execution record, a schedule change) and logged.
While writes fail the daemon's state is ``error``, with the reason in ``state_changed``
events and the log. A write that succeeds does not clear it: on a full disk a write that
rewrites a row in place commits while a new run record is refused. The error clears when
no write was refused for QUIET_SECONDS and then a probe that needs new space (the store's
``probe_write``) succeeds; the probe runs every PROBE_SECONDS while the error lasts.
A change asked for through the API is different: it is saved before memory changes, so a
refused one is not made at all (``StoreError``, HTTP 503), and memory and disk agree.

Every PROBE_SECONDS the store is also asked whether its file is still where it was opened
(``check_file``). A file deleted while the daemon runs (``rm omnimind.db*``) puts the state
in ``error`` (``the database file ... was deleted``, logged at ERROR), and the store writes
what it holds (tasks and history) to a new file at the path (``restore_file``): once that
worked the error clears, and a restart loses nothing. Until it works (the path is taken by
another file, the directory is gone) it is tried again at every check, the state stays
``error``, and what is saved meanwhile is only in the deleted file. On PostgreSQL the same
check keeps the database held: a lost connection is made again (and the lock taken again)
within PROBE_SECONDS; another daemon that took it meanwhile is the problem said, and
``restore_file`` takes it back once that one is gone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio

from ..exceptions import StoreUnavailable
from ..store import Store

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


PROBE_SECONDS = 10.0
"""How often the store's file is checked, and, while writes fail, a probe is tried."""

QUIET_SECONDS = 30.0
"""How long no write must have been refused before a probe may clear the error."""


class WriteGuard:
    """Runs the daemon's writes and remembers whether the database is in trouble."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.problem: str | None = None
        """Why writes were refused (``database or disk is full``); None once they work."""
        self.file_problem: str | None = None
        """Why the database file is not where it was opened; None while it is."""
        self._on_change = on_change
        self._last_refusal = -math.inf
        """When (``trio.current_time()``) a write was last refused."""

    async def write(self, write: Awaitable[None], what: str) -> bool:
        """Await ``write``; False (and logged, once per outage) if the database refused it.
        Other errors (TaskExists: the data clashes) are not an outage, and are raised."""
        try:
            await write
        except StoreUnavailable as exc:
            self.failed(exc, what)
            return False
        return True

    def failed(self, exc: StoreUnavailable, what: str) -> None:
        """A write (``what``) that the database refused."""
        if self.problem is None:
            log.error(
                "the database refused a write (%s): %s; the daemon keeps running, and clears"
                " the error once no write was refused for %.0f s and a probe write works",
                what,
                exc.reason,
                QUIET_SECONDS,
            )
        self._last_refusal = trio.current_time()
        self._set(exc.reason)

    def _set(self, problem: str | None) -> None:
        changed = problem != self.problem
        self.problem = problem
        if changed:
            self._on_change()

    def _set_file(self, problem: str | None) -> None:
        changed = problem != self.file_problem
        self.file_problem = problem
        if changed:
            self._on_change()

    async def watch(self, store: Store) -> None:
        """Runs for ever: every PROBE_SECONDS, checks the store's file (and re-creates it
        when it was deleted) and, while writes fail, tries to clear the error."""
        while True:
            await trio.sleep(PROBE_SECONDS)
            await self.check_file(store)
            if self.problem is not None:
                await self.probe(store)

    async def probe(self, store: Store) -> None:
        """After a quiet spell, a probe write that needs new space; clears the error if it
        works."""
        if trio.current_time() - self._last_refusal < QUIET_SECONDS:
            return
        try:
            await store.probe_write()
        except StoreUnavailable as exc:
            self.failed(exc, "a probe")
            return
        log.warning("the database accepts writes again")
        self._set(None)

    async def check_file(self, store: Store) -> None:
        """Notice a database file deleted or replaced; re-create a deleted one."""
        problem = await store.check_file()
        if problem is None:
            if self.file_problem is not None:  # (a file put back by hand)
                log.warning("the database is as it should be again (it was: %s)", self.file_problem)
                self._set_file(None)
            return
        if self.file_problem is None:
            log.error(
                "%s while the daemon ran; it keeps serving, and puts it right (a deleted file"
                " re-created from the open database) as soon as it can",
                problem,
            )
        self._set_file(problem)
        try:
            done = await store.restore_file()
        except StoreUnavailable as exc:
            self._set_file(f"{problem} ({exc.reason}; tried again every {PROBE_SECONDS:.0f} s)")
            return
        log.warning("%s", done)
        self._set_file(None)
