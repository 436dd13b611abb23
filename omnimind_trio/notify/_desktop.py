"""Desktop notifications: ``org.freedesktop.Notifications.Notify`` on the session bus.

Through jeepney (pure-Python D-Bus, with Trio I/O). A daemon without a session bus (a
system service, a server, a container) skips them with one log line, and tries the bus
again every RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Final

import trio

from ..dbus import session_bus_address

log = logging.getLogger(__package__)

RETRY_SECONDS: Final = 300.0
"""After the bus (or the notification server) failed, notifications are skipped this long
before it is tried again."""
TIMEOUT_SECONDS: Final = 5.0
"""Bound on connecting to the bus and getting the answer to one Notify call."""
APP_NAME: Final = "omnimind"
URGENCY_NORMAL, URGENCY_CRITICAL = 1, 2


def _load_jeepney_and_find_bus(environ: Mapping[str, str]) -> str | None:
    import jeepney.io.trio
    import jeepney.wrappers  # noqa: F401

    return session_bus_address(environ)


class DesktopNotifier:
    """Shows notifications on the user's desktop, or says once that it cannot."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str] = os.environ,
        retry_seconds: float = RETRY_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self._environ = environ
        self.retry_seconds = retry_seconds
        self.timeout_seconds = timeout_seconds
        self._off_until: float | None = None
        """While set (Trio time), the bus is not tried: it failed, and was logged once."""
        self.shown = 0
        self.skipped = 0

    @property
    def available(self) -> bool:
        """False while notifications are skipped after a failure of the bus."""
        return self._off_until is None

    async def notify(self, summary: str, body: str, *, urgent: bool) -> bool:
        """Show one notification; False when it was skipped (no bus now, or it failed).
        Never raises, but for Cancelled."""
        if self._off_until is not None and trio.current_time() < self._off_until:
            self.skipped += 1
            return False
        failure: BaseException | None = None
        try:
            await self._call(summary, body, urgent)
        except* Exception as group:  # no bus, refused, no notification server, too slow...
            failure = group  # (a Cancelled beside it, from jeepney's nursery, propagates)
        if failure is not None:
            self._failed(failure)
            self.skipped += 1
            return False
        if self._off_until is not None:
            log.info("desktop notifications work again")
            self._off_until = None
        self.shown += 1
        return True

    def _failed(self, exc: BaseException) -> None:
        if self._off_until is None:
            log.warning(
                "desktop notifications are skipped: %s; trying the session bus again every %g s",
                _describe(exc),
                self.retry_seconds,
            )
        else:
            log.debug("desktop notifications still unavailable: %s", _describe(exc))
        self._off_until = trio.current_time() + self.retry_seconds

    async def _call(self, summary: str, body: str, urgent: bool) -> None:
        # jeepney is imported here, at the first notification (a daemon that shows none
        # does not load it), in a thread like the bus lookup (a stat): not on the loop.
        address = await trio.to_thread.run_sync(_load_jeepney_and_find_bus, self._environ)
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.trio import open_dbus_router
        from jeepney.wrappers import unwrap_msg

        if address is None:
            raise KeyError("no session bus (DBUS_SESSION_BUS_ADDRESS is not set)")
        notifications = DBusAddress(
            "/org/freedesktop/Notifications",
            bus_name="org.freedesktop.Notifications",
            interface="org.freedesktop.Notifications",
        )
        message = new_method_call(
            notifications,
            "Notify",
            "susssasa{sv}i",
            (
                APP_NAME,
                0,  # replaces no earlier notification
                "dialog-error" if urgent else "dialog-information",
                summary,
                body,
                [],  # no actions
                {"urgency": ("y", URGENCY_CRITICAL if urgent else URGENCY_NORMAL)},
                -1,  # the server's default expiry
            ),
        )
        with trio.fail_after(self.timeout_seconds):
            async with open_dbus_router(bus=address) as router:
                unwrap_msg(await router.send_and_get_reply(message))


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # from the nursery inside jeepney's router
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "no session bus"
    if isinstance(exc, trio.TooSlowError):
        return "the session bus did not answer in time"
    name, data = getattr(exc, "name", None), getattr(exc, "data", None)
    if isinstance(name, str) and isinstance(data, tuple):  # jeepney's DBusErrorResponse
        detail = data[0] if data and isinstance(data[0], str) else ""
        return f"{name} ({detail})" if detail else name  # ServiceUnknown: no server runs
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
