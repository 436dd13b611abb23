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


@dataclass(frozen=True)
class Admission:
    """What admits a priority: any of its load gates being open, or the sleep window."""

    gates: tuple[str, ...] = ()
    """Load gates, the first one the priority's own (named in explanations)."""
    window: bool = False
    always: bool = False


ADMISSION: dict[Priority, Admission] = {
    Priority.CRITICAL: Admission(always=True),
    Priority.HIGH: Admission(gates=("idle",)),
    Priority.MEDIUM: Admission(gates=("low_activity", "idle"), window=True),
    Priority.LOW: Admission(window=True),
}
"""The one place that says which priority runs when."""
GATE_WORDS = {"idle": "the machine to be idle", "low_activity": "low activity"}


@dataclass
class GateSet:
    """The load gates, the sleep window, and :data:`ADMISSION`, the rule that maps them to
    priorities.

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

    def _gate(self, name: str) -> tuple[Gate, float]:
        """A load gate and its CPU threshold."""
        if name == "idle":
            return self.idle, self.idle_cpu_percent
        return self.low_activity, self.low_activity_cpu_percent

    def update(self, external_cpu_percent: float, now_monotonic: float, now_epoch: float) -> bool:
        """Feed one sample; returns True when any priority's admission changed."""
        self.cpu_percent, self.sampled_at = external_cpu_percent, now_monotonic
        before = self.open_priorities()
        for name in GATE_WORDS:
            gate, threshold = self._gate(name)
            gate.update(external_cpu_percent < threshold, now_monotonic)
        self.in_sleep_window = self.window.contains(now_epoch)
        return self.open_priorities() != before

    def is_open(self, priority: Priority) -> bool:
        rule = ADMISSION[priority]
        return (
            rule.always
            or any(self._gate(name)[0].is_open for name in rule.gates)
            or (rule.window and self.in_sleep_window)
        )

    def open_priorities(self) -> frozenset[Priority]:
        return frozenset(p for p in Priority if self.is_open(p))

    def closed_reason(self, priority: Priority) -> str | None:
        """Why ``priority`` may not start now, in words; None when it may."""
        if self.is_open(priority):
            return None
        rule = ADMISSION[priority]
        parts = [f"{GATE_WORDS[name]} (CPU < {self._gate(name)[1]:g} %)" for name in rule.gates[:1]]
        if rule.window:
            parts.append("the sleep window" + ("" if parts else f" ({self.window})"))
        return "waiting for " + " or ".join(parts)

    def explain(self, priority: Priority, now_epoch: float) -> dict[str, Any]:
        """Why ``priority`` may not start, with the measurement behind it: the gate, the
        CPU reading against its threshold, and how long the gate still needs to open."""
        rule = ADMISSION[priority]
        if not rule.gates:
            opens = self.window.next_start(now_epoch)
            return {
                "gate": "sleep_window",
                "detail": f"waiting for the sleep window ({self.window})",
                "opens_at": None if math.isinf(opens) else opens,
            }
        name = rule.gates[0]
        gate, threshold = self._gate(name)
        cpu = None if self.cpu_percent is None else round(self.cpu_percent, 1)
        remaining = gate.remaining(self.sampled_at)
        if remaining is not None:
            state = f"it has been below for long enough in {remaining:.0f} s more"
        elif cpu is not None:
            state = "CPU is above the threshold"
        else:
            state = "no reading yet"
        cpu_text = "no reading" if cpu is None else f"{cpu:g} %"
        detail = (
            f"waiting for {GATE_WORDS[name]}: CPU outside the daemon {cpu_text}, needs"
            f" < {threshold:g} % ({state})"
        )
        if rule.window:
            detail += f", or the sleep window ({self.window})"
        return {
            "gate": name,
            "detail": detail,
            "cpu_percent": cpu,
            "threshold_percent": threshold,
            "dwell_remaining_seconds": None if remaining is None else round(remaining, 1),
        }
