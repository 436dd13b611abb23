"""The concurrency limits: slots for gated runs, slots for CRITICAL runs, and one catch-up."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Trigger
from ._running import Running


@dataclass
class Slots:
    """How many runs hold each kind of slot, against its limit. A run keeps the kind of
    slot it took at its start (``Running.critical_slot``), whatever its task's priority
    becomes meanwhile. A frozen run gives its slot back (two runs frozen for the day must
    not keep every other task waiting); it takes one again to thaw, before any new run
    starts."""

    gated: int
    """Limit of HIGH, MEDIUM and LOW runs at once (``max_concurrent``)."""
    critical: int
    """Limit of CRITICAL runs at once, on top (``max_concurrent_critical``)."""
    running_gated: int = 0
    running_critical: int = 0
    catch_up_running: int = 0
    """Catch-ups of missed runs in flight: they are released one at a time."""

    @property
    def running(self) -> int:
        return self.running_gated + self.running_critical

    def use(self, *, critical: bool) -> tuple[int, int]:
        """(in use, limit) of one kind of slot."""
        if critical:
            return self.running_critical, self.critical
        return self.running_gated, self.gated

    def full(self, *, critical: bool) -> bool:
        used, limit = self.use(critical=critical)
        return used >= limit

    def take(self, run: Running) -> None:
        if run.holds_slot:
            return
        run.holds_slot = True
        if run.critical_slot:
            self.running_critical += 1
        else:
            self.running_gated += 1
        if run.trigger is Trigger.CATCH_UP:
            self.catch_up_running += 1

    def give_back(self, run: Running) -> None:
        """At the run's end, or while it is frozen (it takes one again to thaw)."""
        if not run.holds_slot:
            return
        run.holds_slot = False
        if run.critical_slot:
            self.running_critical -= 1
        else:
            self.running_gated -= 1
        if run.trigger is Trigger.CATCH_UP:
            self.catch_up_running -= 1
