"""The person's idle time over D-Bus: GNOME's Mutter IdleMonitor (session bus) and
logind's idle hint (system bus). The freedesktop ScreenSaver is in :mod:`._screensaver`."""

from __future__ import annotations

import time
from typing import Final

from ..dbus import BusClient, BusError
from ._source import SourceFailed, unsigned

MUTTER: Final = "org.gnome.Mutter.IdleMonitor"
LOGIND: Final = "org.freedesktop.login1"
LOGIND_MANAGER: Final = "org.freedesktop.login1.Manager"


class MutterIdle:
    """``org.gnome.Mutter.IdleMonitor.GetIdletime`` of the ``Core`` monitor: milliseconds
    since the last input of the GNOME session (X11 or Wayland)."""

    name = "mutter"

    def __init__(self, bus: BusClient) -> None:
        self._bus = bus

    async def idle_seconds(self) -> float:
        try:
            body = await self._bus.call(
                MUTTER, "/org/gnome/Mutter/IdleMonitor/Core", MUTTER, "GetIdletime"
            )
        except BusError as exc:
            raise SourceFailed(str(exc)) from None
        return unsigned(body, MUTTER) / 1000


class LogindIdle:
    """logind's ``IdleHint`` of the whole machine (true once every session is idle) and
    when it last changed (``IdleSinceHintMonotonic``, microseconds of CLOCK_MONOTONIC).

    The hint is false: 0 s idle. True: the time since it became true. The desktop sets a
    session's hint after its own idle delay (GNOME: 5 minutes by default), so this source
    sees an absence that much late. At boot logind claims idle since 1970 (both "since"
    values 0): until the hint has changed once, this source does not work.
    """

    name = "logind"

    def __init__(self, bus: BusClient) -> None:
        self._bus = bus

    async def _get(self, name: str) -> object:
        try:
            return await self._bus.get_property(
                LOGIND, "/org/freedesktop/login1", LOGIND_MANAGER, name
            )
        except BusError as exc:
            raise SourceFailed(str(exc)) from None

    async def idle_seconds(self) -> float:
        hint = await self._get("IdleHint")
        since = unsigned((await self._get("IdleSinceHintMonotonic"),), LOGIND)
        now = time.monotonic()  # CLOCK_MONOTONIC on Linux: logind's clock
        if since == 0:  # never changed on the monotonic clock; perhaps on the wall clock
            since = unsigned((await self._get("IdleSinceHint"),), LOGIND)
            now = time.time()
        if since == 0:
            raise SourceFailed("idle hint not set since boot")
        if not isinstance(hint, bool):
            raise SourceFailed(f"{LOGIND} answered IdleHint {hint!r}, not a boolean")
        return max(0.0, now - since / 1e6) if hint else 0.0
