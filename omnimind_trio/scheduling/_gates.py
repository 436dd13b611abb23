"""Admission gates: when each priority may start work.

A :class:`Gate` turns a noisy boolean condition (``cpu < 20 %``) into a steady one: it opens
only after the condition held for ``open_seconds`` and closes only after the opposite held
for ``close_seconds``, so a load hovering at a threshold does not make it flap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ..models import Priority

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))


def parse_weekdays(text: str) -> frozenset[int]:
    """``"mon-fri"``, ``"sat,sun"``, ``"mon-wed,fri"`` -> weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"sleep weekdays must look like mon-fri or sat,sun, not {text!r}")
        start, end = DAYS.index(first), DAYS.index(last or first)
        span = (end - start) % 7
        days.update((start + i) % 7 for i in range(span + 1))
    return frozenset(days)


@dataclass(frozen=True)
class SleepWindow:
    """A daily local-time window ``start``-``end``; ``end <= start`` wraps midnight.

    ``weekdays`` are the days on which the window *starts* (a Friday 22:00-06:00 window
    ends on Saturday morning). Times are wall-clock times in ``tz``: across a DST change
    the window keeps its local times (it is an hour shorter or longer that night).
    """

    start: time
    end: time
    tz: tzinfo | None = None
    weekdays: frozenset[int] = ALL_DAYS

    @classmethod
    def parse(
        cls, text: str, tz_name: str | None = None, weekdays: str | None = None
    ) -> SleepWindow:
        """Parse ``"HH:MM-HH:MM"``. Raises ValueError with a readable message."""
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError(f"sleep window must look like 00:00-06:00, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"sleep window has an impossible time: {text!r}")
        end = time(0, 0) if h2 == 24 else time(h2, m2)
        days = parse_weekdays(weekdays) if weekdays else ALL_DAYS
        return cls(time(h1, m1), end, ZoneInfo(tz_name) if tz_name else None, days)

    def _local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, tz=UTC).astimezone(self.tz)

    def contains(self, epoch: float) -> bool:
        """Whether the wall-clock instant ``epoch`` falls inside the window."""
        moment = self._local(epoch)
        now = moment.time().replace(tzinfo=None)
        day = moment.weekday()
        if self.start < self.end:
            inside = self.start <= now < self.end
        elif now >= self.start:  # wraps midnight (or the whole day when start == end)
            inside = True
        else:
            inside = now < self.end
            day = (day - 1) % 7  # the morning part belongs to the night that began before
        return inside and day in self.weekdays

    def next_start(self, epoch: float) -> float:
        """The first instant at or after ``epoch`` inside the window (``epoch`` itself if
        it is inside). Looks a little over a week ahead."""
        if self.contains(epoch):
            return epoch
        day = self._local(epoch).date()
        for offset in range(-1, 9):
            candidate = datetime.combine(day + timedelta(days=offset), self.start, tzinfo=self.tz)
            when = candidate.timestamp()
            # A start time that does not exist that day (DST gap) falls forward an hour.
            if when >= epoch and self.contains(when):
                return when
            if when >= epoch and self.contains(when + 3600):
                return when + 3600
        return math.inf

    def __str__(self) -> str:
        text = f"{self.start:%H:%M}-{self.end:%H:%M}"
        if self.weekdays != ALL_DAYS:
            text += " on " + ",".join(DAYS[d] for d in sorted(self.weekdays))
        return text


@dataclass
class Gate:
    """A boolean with hysteresis in time. Call :meth:`update` with every new sample."""

    open_seconds: float
    close_seconds: float
    is_open: bool = False
    _pending_since: float | None = field(default=None, repr=False)

    def update(self, condition: bool, now: float) -> bool:
        """Feed the raw condition observed at ``now``; returns True when the gate flipped."""
        if condition == self.is_open:
            self._pending_since = None
            return False
        if self._pending_since is None:
            self._pending_since = now
        dwell = self.open_seconds if condition else self.close_seconds
        if now - self._pending_since >= dwell:
            self.is_open = condition
            self._pending_since = None
            return True
        return False

    def remaining(self, now: float) -> float | None:
        """Seconds until the gate flips if the current trend holds; None when steady."""
        if self._pending_since is None:
            return None
        dwell = self.close_seconds if self.is_open else self.open_seconds
        return max(0.0, dwell - (now - self._pending_since))


@dataclass
class GateSet:
    """The three gates and the rule that maps them to priorities.

    - CRITICAL: always open.
    - HIGH: the idle gate (external CPU below ``idle_cpu_percent``).
    - MEDIUM: the low-activity gate, or idle, or inside the sleep window.
    - LOW: inside the sleep window.
    """

    idle_cpu_percent: float
    low_activity_cpu_percent: float
    window: SleepWindow
    idle: Gate
    low_activity: Gate
    in_sleep_window: bool = False
    cpu_percent: float | None = None
    """The last external CPU reading (the daemon and its tasks left out)."""
    sampled_at: float = 0.0

    @classmethod
    def create(
        cls,
        *,
        idle_cpu_percent: float,
        low_activity_cpu_percent: float,
        window: SleepWindow,
        open_seconds: float,
        close_seconds: float,
    ) -> GateSet:
        return cls(
            idle_cpu_percent,
            low_activity_cpu_percent,
            window,
            Gate(open_seconds, close_seconds),
            Gate(open_seconds, close_seconds),
        )

    def update(self, external_cpu_percent: float, now_monotonic: float, now_epoch: float) -> bool:
        """Feed one sample; returns True when any priority's admission changed."""
        self.cpu_percent, self.sampled_at = external_cpu_percent, now_monotonic
        before = self.open_priorities()
        self.idle.update(external_cpu_percent < self.idle_cpu_percent, now_monotonic)
        self.low_activity.update(
            external_cpu_percent < self.low_activity_cpu_percent, now_monotonic
        )
        self.in_sleep_window = self.window.contains(now_epoch)
        return self.open_priorities() != before

    def is_open(self, priority: Priority) -> bool:
        if priority is Priority.CRITICAL:
            return True
        if priority is Priority.HIGH:
            return self.idle.is_open
        if priority is Priority.MEDIUM:
            return self.low_activity.is_open or self.idle.is_open or self.in_sleep_window
        return self.in_sleep_window

    def open_priorities(self) -> frozenset[Priority]:
        return frozenset(p for p in Priority if self.is_open(p))

    def closed_reason(self, priority: Priority) -> str | None:
        """Why ``priority`` may not start now, in words; None when it may."""
        if self.is_open(priority):
            return None
        if priority is Priority.HIGH:
            return f"waiting for the machine to be idle (CPU < {self.idle_cpu_percent:g} %)"
        if priority is Priority.MEDIUM:
            return (
                "waiting for low activity "
                f"(CPU < {self.low_activity_cpu_percent:g} %) or the sleep window"
            )
        return f"waiting for the sleep window ({self.window})"

    def explain(self, priority: Priority, now_epoch: float) -> dict[str, Any]:
        """Why ``priority`` may not start, with the measurement behind it: the gate, the
        CPU reading against its threshold, and how long the gate still needs to open."""
        cpu = None if self.cpu_percent is None else round(self.cpu_percent, 1)
        if priority is Priority.LOW:
            opens = self.window.next_start(now_epoch)
            return {
                "gate": "sleep_window",
                "detail": f"waiting for the sleep window ({self.window})",
                "opens_at": None if math.isinf(opens) else opens,
            }
        gate, threshold = (
            (self.idle, self.idle_cpu_percent)
            if priority is Priority.HIGH
            else (self.low_activity, self.low_activity_cpu_percent)
        )
        name = "idle" if priority is Priority.HIGH else "low_activity"
        remaining = gate.remaining(self.sampled_at)
        if remaining is not None:
            state = f"it has been below for long enough in {remaining:.0f} s more"
        elif cpu is not None:
            state = "CPU is above the threshold"
        else:
            state = "no reading yet"
        cpu_text = "no reading" if cpu is None else f"{cpu:g} %"
        words = "the machine to be idle" if name == "idle" else "low activity"
        detail = (
            f"waiting for {words}: CPU outside the daemon {cpu_text}, needs < {threshold:g} %"
            f" ({state})"
        )
        if priority is Priority.MEDIUM:
            detail += f", or the sleep window ({self.window})"
        return {
            "gate": name,
            "detail": detail,
            "cpu_percent": cpu,
            "threshold_percent": threshold,
            "dwell_remaining_seconds": None if remaining is None else round(remaining, 1),
        }
