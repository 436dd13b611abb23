"""The sensors the daemon samples: the protocol, and the real ones of this machine."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import trio

from ..dbus import BusClient
from ..models import Reading, Surroundings
from ._bus_sources import LogindIdle, MutterIdle
from ._command import CommandIdle
from ._network import NetworkSensor
from ._power import read_power
from ._presence import REPROBE_SECONDS, Presence
from ._screensaver import ScreenSaverIdle
from ._source import IDLE_SOURCES, IdleSource


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
        self.network = NetworkSensor(self.system_bus)
        self.power_supply_dir = power_supply_dir

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
        network: Reading | None = None

        async def read_network() -> None:
            nonlocal network
            network = await self.network.read()

        # The network is read beside the presence: a slow NetworkManager does not delay
        # the person's idle time (what freezes a task when they come back).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_network)
            idle = await self.presence.read()
        # Small sysfs reads (about 35 us a supply here): on the loop, no thread hop.
        power = read_power(self.power_supply_dir)
        assert network is not None
        return Surroundings(idle, power, network)

    async def aclose(self) -> None:
        await self.session_bus.aclose()
        await self.system_bus.aclose()
