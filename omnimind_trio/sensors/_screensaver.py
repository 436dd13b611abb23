"""The person's idle time from the freedesktop ScreenSaver interface (session bus).

``GetSessionIdleTime`` answers seconds by the specification, and milliseconds in KDE
Plasma (at ``/ScreenSaver`` as well as ``/org/freedesktop/ScreenSaver``). Which one is
told apart by how fast the value grows while nobody types: about 1000 per second or 1
per second, sample after sample over MIN_SPAN_SECONDS. Until then the value is read as
milliseconds: seconds read that way are too small, so the person is never taken for away
too early (at worst later, by the couple of seconds the guess takes).
"""

from __future__ import annotations

from typing import Final

import trio

from ..dbus import BusClient, BusError
from ._source import SourceFailed, unsigned

SCREENSAVER: Final = "org.freedesktop.ScreenSaver"
PATHS: Final = ("/org/freedesktop/ScreenSaver", "/ScreenSaver")
"""Tried in this order; the one that answered is asked first from then on."""
MIN_SPAN_SECONDS: Final = 3.0
"""How long the value must grow like one unit, sample after sample, before it is decided."""
SECONDS_SLACK: Final = 1.0
"""Off by this much from one per second is still seconds (the value is whole seconds)."""
_NO_OBJECT: Final = {
    f"org.freedesktop.DBus.Error.{name}"
    for name in ("UnknownObject", "UnknownMethod", "UnknownInterface")
}


class UnitGuess:
    """Tells milliseconds from seconds by the growth of successive values: the unit is
    decided only once every sample over MIN_SPAN_SECONDS grew like it (a person typing on
    KDE gives small random milliseconds, which must never pass for seconds)."""

    def __init__(self) -> None:
        self.unit: str | None = None
        """``ms``, ``s``, or None while unknown."""
        self._anchor: tuple[int, float] | None = None
        self._like = {"s": True, "ms": True}

    def seconds(self, value: int, now: float) -> float:
        """``value`` in seconds, as far as the unit is known (milliseconds until then)."""
        if self.unit is None:
            self._observe(value, now)
        return float(value) if self.unit == "s" else value / 1000

    def _observe(self, value: int, now: float) -> None:
        if self._anchor is None:
            self._start(value, now)
            return
        start, since = self._anchor
        span = now - since
        grown = value - start
        like = {
            "s": self._like["s"] and abs(grown - span) <= SECONDS_SLACK,
            "ms": self._like["ms"] and abs(grown - 1000 * span) <= max(100.0, 100 * span),
        }
        if not any(like.values()):  # an input in between: measure again from here
            self._start(value, now)
            return
        self._like = like
        if span >= MIN_SPAN_SECONDS:
            self.unit = "ms" if like["ms"] else "s"

    def _start(self, value: int, now: float) -> None:
        self._anchor = (value, now)
        self._like = {"s": True, "ms": True}


class ScreenSaverIdle:
    """``org.freedesktop.ScreenSaver.GetSessionIdleTime``, in seconds or milliseconds."""

    name = "screensaver"

    def __init__(self, bus: BusClient) -> None:
        self._bus = bus
        self._paths = list(PATHS)
        self.guess = UnitGuess()

    async def idle_seconds(self) -> float:
        failures: list[str] = []
        for path in list(self._paths):
            try:
                body = await self._bus.call(SCREENSAVER, path, SCREENSAVER, "GetSessionIdleTime")
            except BusError as exc:
                if exc.name not in _NO_OBJECT:  # not there at all, or too slow: no other try
                    raise SourceFailed(str(exc)) from None
                failures.append(str(exc))
                continue
            if path != self._paths[0]:
                self._paths.remove(path)
                self._paths.insert(0, path)
            return self.guess.seconds(unsigned(body, SCREENSAVER), trio.current_time())
        raise SourceFailed("; ".join(failures))
