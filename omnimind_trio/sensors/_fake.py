"""Sensors whose measurements a test sets."""

from __future__ import annotations

from ..models import Reading, Surroundings


class FakeSensors:
    """Answers what its attributes say; set them between samples. None is unknown."""

    def __init__(
        self,
        *,
        user_idle_seconds: float | None = 0.0,
        on_ac_power: bool | None = True,
        network_metered: bool | None = False,
    ) -> None:
        self.user_idle_seconds = user_idle_seconds
        self.on_ac_power = on_ac_power
        self.network_metered = network_metered
        self.idle_source = "fake"
        self.power_source = "fake"
        self.network_source = "fake"
        self.samples = 0
        self.closed = False

    async def sample(self) -> Surroundings:
        self.samples += 1
        return Surroundings(
            _reading(self.user_idle_seconds, self.idle_source),
            _reading(self.on_ac_power, self.power_source),
            _reading(self.network_metered, self.network_source),
        )

    async def aclose(self) -> None:
        self.closed = True


def _reading(value: float | bool | None, source: str) -> Reading:
    if value is None:
        return Reading(None, None, f"{source}: unknown (set by the test)")
    return Reading(value, source)
