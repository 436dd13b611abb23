"""Whether the database accepts writes, and what the daemon does when it does not.

A full disk, a file system remounted read-only or an I/O error make the store refuse writes
(``StoreUnavailable``, whatever the backend).
The daemon must not die of it: the scheduler keeps its schedule in memory and tasks keep
running; what cannot be saved is lost (an execution record, a schedule change) and logged.
While writes fail the daemon's state is ``error``, with the reason in ``state_changed``
events and the log; the next write that succeeds clears it (a probe tries one every 10 s).
A change asked for through the API is different: it is saved before memory changes, so a
refused one is not made at all (``StoreError``, HTTP 503), and memory and disk agree.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ..exceptions import StoreUnavailable

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


PROBE_SECONDS = 10.0
"""While writes fail, how often :meth:`WriteGuard.recover` tries one."""


class WriteGuard:
    """Runs the daemon's writes and remembers whether the last one failed."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.problem: str | None = None
        """Why the last write failed (``database or disk is full``); None when it worked."""
        self._on_change = on_change

    async def write(self, write: Awaitable[None], what: str) -> bool:
        """Await ``write``; False (and logged, once per outage) if the database refused it.
        Other errors (TaskExists: the data clashes) are not an outage, and are raised."""
        try:
            await write
        except StoreUnavailable as exc:
            self.failed(exc, what)
            return False
        if self.problem is not None:
            log.warning("the database accepts writes again")
            self._set(None)
        return True

    def failed(self, exc: StoreUnavailable, what: str) -> None:
        """A write (``what``) that the database refused."""
        if self.problem is None:
            log.error(
                "the database refused a write (%s): %s; the daemon keeps running and "
                "tries again with the next write",
                what,
                exc.reason,
            )
        self._set(exc.reason)

    def _set(self, problem: str | None) -> None:
        changed = problem != self.problem
        self.problem = problem
        if changed:
            self._on_change()

    async def recover(self, probe: Callable[[], Awaitable[None]]) -> None:
        """Runs for ever: while writes fail, tries ``probe`` every PROBE_SECONDS, so the
        error clears soon after space is freed even when the daemon has nothing to save."""
        while True:
            await trio.sleep(PROBE_SECONDS)
            if self.problem is not None:
                await self.write(probe(), "a probe")
