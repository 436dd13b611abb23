"""The sensors the daemon samples: the protocol, and the real ones of this machine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

import trio

from ..dbus import BusClient
from ..models import Reading, Surroundings
from ._bus_sources import LogindIdle, MutterIdle
from ._command import CommandIdle
from ._network import NetworkSensor
from ._power import PowerSensor
from ._presence import REPROBE_SECONDS, Presence
from ._screensaver import ScreenSaverIdle
from ._source import IDLE_SOURCES, IdleSource

log = logging.getLogger(__package__)


class Sensors(Protocol):
    """What task conditions depend on, measured on demand."""

    async def sample(self) -> Surroundings:
        """One sample of the three measurements. Never raises but for Cancelled; bounded
        in time (every source has its timeout)."""
        ...

    async def aclose(self) -> None:
        """Release what the sensors hold (bus connections)."""
        ...


class SensorSettings(Protocol):
    """The settings the sensors read (:class:`omnimind_trio.Settings` has them)."""

    @property
    def user_idle_sources(self) -> str: ...
    @property
    def user_idle_command(self) -> str | None: ...
    @property
    def power_supply_dir(self) -> Path: ...


SLOW_POWER_SECONDS: Final = 0.002
"""A power read longer than this moves power reads off the event loop."""


class SystemSensors:
    """The person's idle time, the power supply and the network's metered state, read
    from this machine. Constructing it costs nothing: the buses are connected at the first
    sample that needs them (a machine without them answers at once, unknown)."""

    def __init__(
        self,
        *,
        idle_sources: Sequence[str] = IDLE_SOURCES,
        idle_command: str | None = None,
        power_supply_dir: Path = Path("/sys/class/power_supply"),
        environ: Mapping[str, str] = os.environ,
        timeout_seconds: float = 1.0,
        reprobe_seconds: float = REPROBE_SECONDS,
    ) -> None:
        """``idle_sources``: names among :data:`IDLE_SOURCES`, tried in this order
        (ValueError for another name). ``timeout_seconds`` bounds each source."""
        self.session_bus = BusClient.session(environ, timeout_seconds=timeout_seconds)
        self.system_bus = BusClient.system(environ, timeout_seconds=timeout_seconds)
        known: dict[str, IdleSource] = {
            "mutter": MutterIdle(self.session_bus),
            "screensaver": ScreenSaverIdle(self.session_bus),
            "logind": LogindIdle(self.system_bus),
            "command": CommandIdle(idle_command, timeout_seconds=timeout_seconds),
        }
        unknown = [name for name in idle_sources if name not in known]
        if unknown:
            raise ValueError(f"unknown idle sources {unknown} (known: {', '.join(known)})")
        self.presence = Presence(
            [known[name] for name in dict.fromkeys(idle_sources)], reprobe_seconds=reprobe_seconds
        )
        self.network = NetworkSensor(self.system_bus, retry_seconds=reprobe_seconds)
        self.power = PowerSensor(power_supply_dir)
        self.power_in_thread = False

    @classmethod
    def from_settings(
        cls, settings: SensorSettings, *, environ: Mapping[str, str] = os.environ
    ) -> SystemSensors:
        """The sensors ``settings`` describe (``user_idle_sources`` is comma-separated)."""
        return cls(
            idle_sources=[s.strip() for s in settings.user_idle_sources.split(",") if s.strip()],
            idle_command=settings.user_idle_command,
            power_supply_dir=settings.power_supply_dir,
            environ=environ,
        )

    async def sample(self) -> Surroundings:
        # One after the other: the person first (what freezes a task when they come
        # back). A NetworkManager that does not answer is asked again only after a while.
        idle = await self.presence.read()
        network = await self.network.read()
        return Surroundings(idle, await self._read_power(), network)

    async def _read_power(self) -> Reading:
        """On the loop while the kernel answers fast (tens of microseconds); in a worker
        thread from the first read over SLOW_POWER_SECONDS: on some laptops reading an AC
        adapter's ``online`` evaluates ACPI in the embedded controller, for milliseconds."""
        if self.power_in_thread:
            return await trio.to_thread.run_sync(self.power.read)
        started = time.perf_counter()
        reading = self.power.read()
        took = time.perf_counter() - started
        if took > SLOW_POWER_SECONDS:
            self.power_in_thread = True
            log.info("the power supplies answer slowly (%.1f ms): read in a thread", took * 1e3)
        return reading

    async def aclose(self) -> None:
        await self.session_bus.aclose()
        await self.system_bus.aclose()
