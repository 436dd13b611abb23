"""The credentials in force while the daemon serves, and their reloading.

A :class:`Keyring` holds the current :class:`Credentials`; the HTTP app checks every
request against them, and a WebSocket waits on :meth:`Keyring.wait_revoked` to be closed
when the credential that opened it is replaced. :func:`reload_credentials` reads the
credentials again (on SIGHUP, or when :func:`watch_credentials_file` sees the file change):
a file that is broken, unsafe or gone keeps the current credentials and logs an error, so a
bad edit never locks everyone out nor stops the daemon.
"""

from __future__ import annotations

import logging
import os

import trio

from ..config import Settings
from ._check import Credentials, Role
from ._file import environment_wins, read_credentials

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

POLL_SECONDS = 2.0
"""How often :func:`watch_credentials_file` looks at the file's status."""


class Keyring:
    """The credentials in force; :meth:`replace` swaps them at once."""

    def __init__(self, credentials: Credentials) -> None:
        self._current = credentials
        self._changed = trio.Event()
        self.reloading = trio.Lock()
        """Held by a reload: two at once (SIGHUP and the file watch) could otherwise put
        the older read in force last."""

    @property
    def current(self) -> Credentials:
        return self._current

    def replace(self, credentials: Credentials) -> None:
        """Put ``credentials`` in force: the next request is checked against them, and
        whatever waits in :meth:`wait_revoked` looks again."""
        self._current = credentials
        self._changed.set()
        self._changed = trio.Event()

    async def wait_revoked(self, role: Role, fingerprint: bytes | None) -> None:
        """Return once ``role``'s credential is no longer the one ``fingerprint`` names
        (:meth:`Credentials.fingerprint`); wait forever while it is."""
        while self._current.fingerprint(role) == fingerprint:
            await self._changed.wait()


async def reload_credentials(keyring: Keyring, settings: Settings, why: str) -> bool:
    """Read the credentials again and put them in force if they changed; True if they did.
    Never raises for a bad file: it logs an error and keeps the current credentials.
    Environment credentials win over the file: nothing is reloaded then (a warning says so)."""
    if environment_wins(settings):
        log.warning(
            "%s: the credentials come from OMNIMIND_DASHBOARD_USER and "
            "OMNIMIND_DASHBOARD_PASS, which win over %s; nothing reloaded (change them "
            "where they are set and restart)",
            why,
            settings.auth_file,
        )
        return False
    async with keyring.reloading:
        return await _reload(keyring, settings, why)


async def _reload(keyring: Keyring, settings: Settings, why: str) -> bool:
    try:
        new = await trio.to_thread.run_sync(read_credentials, settings)
    except Exception as exc:  # a bad file must never stop the daemon nor lock anyone out
        log.error("%s: %s; keeping the current credentials", why, exc)
        return False
    if new is None:
        log.error(
            "%s: the credentials file %s is gone; keeping the current credentials",
            why,
            settings.auth_file,
        )
        return False
    old = keyring.current
    changed = [r.value for r in Role if new.fingerprint(r) != old.fingerprint(r)]
    if not changed:
        log.info("%s: credentials unchanged", why)
        return False
    keyring.replace(new)
    log.info(
        "%s: new credentials in force (%s changed); the old ones no longer work",
        why,
        " and ".join(changed),
    )
    return True


def _file_signature(path: os.PathLike[str]) -> tuple[int, ...] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_mode,
        status.st_uid,
    )


async def watch_credentials_file(
    keyring: Keyring,
    settings: Settings,
    *,
    poll_seconds: float = POLL_SECONDS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reload the credentials whenever the credentials file changes (replaced, edited,
    chmod-ed, removed), looking at its status every ``poll_seconds`` (in a worker thread:
    ``stat`` may block on a slow file system). Never returns, except at once when the
    credentials come from the environment (the file is not used then)."""
    path = settings.auth_file
    last = await trio.to_thread.run_sync(_file_signature, path)
    task_status.started()
    if environment_wins(settings):
        return
    while True:
        await trio.sleep(poll_seconds)
        now = await trio.to_thread.run_sync(_file_signature, path)
        if now != last:
            last = now
            await reload_credentials(keyring, settings, f"{path} changed")
