"""The person's idle time, from the first of its sources that works.

The current source is used while it works. When it fails, the ones after it are tried at
once (in the same sample). A source ranked above the current one that did not work is
tried again every REPROBE_SECONDS (a GNOME session may come up after the daemon) and
taken over when it works. The source that had been working when it failed is tried again
at the next sample before it waits its turn like the others (one failed call is not an
absence of the service). With none working the reading is unknown, and its detail lists
each source and its answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Final

import trio

from ..models import Reading
from ._source import IdleSource, SourceFailed

log = logging.getLogger(__package__)

REPROBE_SECONDS: Final = 30.0


class Presence:
    """Reads the person's idle seconds from ``sources``, tried in their order."""

    def __init__(self, sources: Sequence[IdleSource], *, reprobe_seconds: float = REPROBE_SECONDS):
        self.sources = tuple(sources)
        self.reprobe_seconds = reprobe_seconds
        self.current: IdleSource | None = None
        self._answers: dict[str, str] = {s.name: "not tried yet" for s in self.sources}
        self._next_try: dict[str, float] = {s.name: -math.inf for s in self.sources}
        self._told: str | None = ""
        """The source (or None: none) the log last named; "" before the first sample."""

    async def read(self) -> Reading:
        """One reading: idle seconds and the source, or unknown with every answer.
        Never raises but for Cancelled."""
        now = trio.current_time()
        for source in self.sources:
            is_current = source is self.current
            if not is_current and now < self._next_try[source.name]:
                continue
            try:
                seconds = await source.idle_seconds()
            except SourceFailed as exc:
                self._answers[source.name] = str(exc)
                # The source that was working gets one more try at the next sample.
                self._next_try[source.name] = now if is_current else now + self.reprobe_seconds
                if is_current:
                    self.current = None
                continue
            self._answers[source.name] = "works"
            self.current = source
            self._tell(source)
            return Reading(seconds, source.name)
        self.current = None
        detail = "; ".join(f"{s.name}: {self._answers[s.name]}" for s in self.sources)
        self._tell(None, detail)
        return Reading(None, None, detail or "no source is enabled")

    def _tell(self, source: IdleSource | None, detail: str = "") -> None:
        name = None if source is None else source.name
        if name == self._told:
            return
        lost, self._told = bool(self._told), name
        if source is None:
            # Unknown from the start is the normal state of a server (INFO); a source that
            # stopped answering is news (WARNING): user_away tasks now run as if away.
            log.log(
                logging.WARNING if lost else logging.INFO,
                "the person's idle time is unknown (%s); user_away counts as holding",
                detail,
            )
            return
        above = self.sources[: self.sources.index(source)]
        failed = "; ".join(f"{s.name}: {self._answers[s.name]}" for s in above)
        log.info("the person's idle time is read from %s%s", name, f" ({failed})" if failed else "")
