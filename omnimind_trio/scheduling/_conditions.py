"""Task conditions: whether the person is away, the machine on mains power, the network
unmetered, judged from the latest :class:`~.models.Surroundings` sample.

- ``user_away`` holds once the person has been idle ``away_seconds``, and stops at the first
  input: an input is unambiguous, so there is no dwell either way.
- ``on_ac_power`` and ``unmetered_network`` follow their measurement through a
  :class:`~._gates.Gate`, with the load gates' dwell (a charger plugged in for a second does
  not start the night's work). The first known reading is taken as it is.
- A measurement that is unknown (no source works) counts as holding, and says so.

The sampling loop (:class:`ConditionMonitor`) calls a source on a fixed time grid, like the
load monitor; the daemon gives it the sensors of :mod:`omnimind_trio.sensors`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from ..models import (
    CONDITION_NAMES,
    MEASUREMENTS,
    Conditions,
    ConditionStatus,
    Reading,
    Surroundings,
)
from ._clock import on_a_grid
from ._gates import Gate

log = logging.getLogger(__package__)

MEASURED_BY = {
    "user_away": "user_idle_seconds",
    "on_ac_power": "on_ac_power",
    "unmetered_network": "network_metered",
}
"""The measurement of :class:`~.models.Surroundings` each condition is judged by."""
UNKNOWN_GRACE_SECONDS: Final = 60.0
"""How long a measurement that was known keeps its last value once its source stops
answering, before it counts as unknown (and so as holding)."""
LOST_WORDS = {
    "user_away": "the person came back",
    "on_ac_power": "the machine went on battery",
    "unmetered_network": "the network became metered",
}
"""What happened when a condition stops holding (a cancelled run's reason says it)."""
assert set(MEASURED_BY) == set(LOST_WORDS) == set(CONDITION_NAMES)
assert set(MEASURED_BY.values()) == set(MEASUREMENTS)


@dataclass
class ConditionState:
    """The conditions as the scheduler judges them. Call :meth:`update` with each sample."""

    away_seconds: float = 180.0
    power: Gate = field(default_factory=lambda: Gate(5.0, 3.0))
    network: Gate = field(default_factory=lambda: Gate(5.0, 3.0))
    """Open while the network is unmetered."""
    readings: Surroundings = field(default_factory=Surroundings)
    sampled_at: float = 0.0
    """When ``readings`` were taken (Trio time)."""
    _unknown_since: dict[str, float] = field(default_factory=dict, repr=False)
    """Since when each measurement that was known has been unknown."""

    @classmethod
    def create(
        cls, *, away_seconds: float, open_seconds: float, close_seconds: float
    ) -> ConditionState:
        return cls(
            away_seconds, Gate(open_seconds, close_seconds), Gate(open_seconds, close_seconds)
        )

    def update(self, sample: Surroundings, now_monotonic: float) -> bool:
        """Take a new sample; True when any condition started or stopped holding or
        admitting new runs."""
        before = self._verdicts()
        sample = Surroundings(
            **{
                name: self._steady(name, getattr(sample, name), now_monotonic)
                for name in MEASUREMENTS
            }
        )
        self._feed(self.power, self.readings.on_ac_power, sample.on_ac_power, now_monotonic)
        previous = self.readings.network_metered
        self._feed(
            self.network, _negated(previous), _negated(sample.network_metered), now_monotonic
        )
        self.readings, self.sampled_at = sample, now_monotonic
        return self._verdicts() != before

    def _steady(self, name: str, reading: Reading, now: float) -> Reading:
        """``reading``, or the last known value while a measurement that was known has been
        unknown less than UNKNOWN_GRACE_SECONDS (a source that missed one call, a
        NetworkManager restarting): one failed read must not start every waiting task."""
        previous: Reading = getattr(self.readings, name)
        if reading.value is not None or previous.value is None:
            self._unknown_since.pop(name, None)
            return reading
        since = self._unknown_since.setdefault(name, now)
        if now - since >= UNKNOWN_GRACE_SECONDS:
            return reading
        return Reading(previous.value, previous.source, f"last known value ({reading.detail})")

    @staticmethod
    def _feed(gate: Gate, previous: Reading, reading: Reading, now: float) -> None:
        if reading.value is None:
            return
        if previous.value is None:  # the first known reading: no dwell
            gate.is_open = bool(reading.value)
            gate.update(gate.is_open, now)  # forget a trend from before the gap
            return
        gate.update(bool(reading.value), now)

    def holds(self, name: str) -> bool:
        """Whether condition ``name`` holds now (an unknown measurement holds)."""
        reading = self.reading(name)
        if reading.value is None:
            return True
        if name == "user_away":
            return float(reading.value) >= self.away_seconds
        return (self.power if name == "on_ac_power" else self.network).is_open

    def _verdicts(self) -> tuple[bool, ...]:
        return tuple(f(name) for name in CONDITION_NAMES for f in (self.holds, self.admits))

    def holding(self) -> list[str]:
        """The conditions that hold now."""
        return [name for name in CONDITION_NAMES if self.holds(name)]

    def reading(self, name: str) -> Reading:
        reading: Reading = getattr(self.readings, MEASURED_BY[name])
        return reading

    def admits(self, name: str) -> bool:
        """Whether a new run may start on condition ``name``: it holds, and for power and
        network the latest reading agrees (the close dwell spares a running task a
        blip; it must not let new ones start on battery or a metered network)."""
        if not self.holds(name):
            return False
        value = self.reading(name).value
        if value is None or name == "user_away":
            return True
        return bool(value) if name == "on_ac_power" else not value

    def failing(self, conditions: Conditions | None, *, starting: bool = False) -> str | None:
        """The first of ``conditions`` that does not hold (``starting``: that does not
        admit a new run); None when all do."""
        if conditions is None:
            return None
        judge = self.admits if starting else self.holds
        for name in conditions.required:
            if not judge(name):
                return name
        return None

    def allows(self, conditions: Conditions | None) -> bool:
        """Whether a new run may start under ``conditions``."""
        return self.failing(conditions, starting=True) is None

    def describe(self, name: str) -> str:
        """Where condition ``name`` stands, in words, with its measurement and source."""
        reading = self.reading(name)
        source = f"; from {reading.source}" if reading.source else ""
        if reading.value is None:
            return f"{name}: unknown ({reading.detail or 'no source works'}); counts as holding"
        if name == "user_away":
            idle = float(reading.value)
            state = "away" if idle >= self.away_seconds else "present"
            return (
                f"{name}: the person is {state}: no input for {idle:.0f} s "
                f"(away after {self.away_seconds:g} s{source})"
            )
        gate = self.power if name == "on_ac_power" else self.network
        if name == "on_ac_power":
            state = "on mains power" if reading.value else "on battery"
        else:
            state = "metered" if reading.value else "not metered"
        text = f"{name}: {state}{source}"
        remaining = gate.remaining(self.sampled_at)
        if remaining is not None:
            text += f"; it {'holds' if gate.is_open else 'fails'} for {remaining:.0f} s more"
        return text

    def explain(self, name: str) -> dict[str, Any]:
        """Why a task waits for condition ``name``, as the waiting explanation's keys."""
        reading = self.reading(name)
        found: dict[str, Any] = {
            "condition": name,
            "value": reading.value,
            "source": reading.source,
            "detail": f"waiting for {self.describe(name)}",
        }
        if name == "user_away" and reading.value is not None:
            found["dwell_remaining_seconds"] = round(
                max(0.0, self.away_seconds - float(reading.value)), 1
            )
        return found

    def status(self, conditions: Conditions | None) -> list[ConditionStatus]:
        """Each condition a task asks for, with where it stands now."""
        if conditions is None:
            return []
        return [
            ConditionStatus(
                name=name,
                holds=self.holds(name),
                value=self.reading(name).value,
                source=self.reading(name).source,
                detail=self.describe(name),
            )
            for name in conditions.required
        ]


def _negated(reading: Reading) -> Reading:
    """``network_metered`` as the ``unmetered_network`` condition sees it."""
    if reading.value is None:
        return reading
    return Reading(not reading.value, reading.source, reading.detail)


class ConditionMonitor:
    """Calls ``sample`` (the sensors': :class:`omnimind_trio.sensors.Sensors`) every
    ``interval`` seconds, on a fixed grid as the load monitor does, and ``on_sample`` with
    each result. The sensors promise not to raise; should they, the sample is skipped (the
    conditions keep the previous one) and logged."""

    def __init__(
        self,
        sample: Callable[[], Awaitable[Surroundings]],
        interval: float,
        on_sample: Callable[[Surroundings], None],
    ) -> None:
        self._sample = sample
        self.interval = interval
        self._on_sample = on_sample

    async def sample_now(self) -> None:
        try:
            sample = await self._sample()
        except Exception:  # a bug in a sensor must not stop the daemon
            log.exception("sampling the conditions failed; keeping the previous sample")
            return
        self._on_sample(sample)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now (so no task starts on conditions not measured yet), report started,
        then sample on a fixed grid for ever."""
        await on_a_grid(self.interval, self.sample_now, task_status)
