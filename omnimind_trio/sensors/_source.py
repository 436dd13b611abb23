"""What a source of the person's idle time is, and how it says it cannot answer."""

from __future__ import annotations

from typing import Final, Protocol

IDLE_SOURCES: Final = ("mutter", "screensaver", "logind", "command")
"""The sources of the person's idle time, by name, in the order they are tried by default."""


class SourceFailed(Exception):
    """A source gave no idle time now; the message says why, in words (``not on the
    session bus``, ``idle hint not set since boot``, ``exit status 1: ...``)."""


class IdleSource(Protocol):
    """One way of reading how long the person has not touched keyboard or mouse."""

    @property
    def name(self) -> str:
        """One of :data:`IDLE_SOURCES`."""
        ...

    async def idle_seconds(self) -> float:
        """Seconds since the last input. Raises :class:`SourceFailed` (never anything
        else but Cancelled), within the source's timeout."""
        ...


def unsigned(body: tuple[object, ...], what: str) -> int:
    """The one unsigned integer of a reply's ``body``; SourceFailed when it is not."""
    match body:
        case (int() as value,) if not isinstance(value, bool) and value >= 0:
            return value
    raise SourceFailed(f"{what} answered {body!r}, not a count")
