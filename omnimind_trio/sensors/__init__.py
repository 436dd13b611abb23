"""Sensors: what task conditions depend on, read from the machine.

The person's idle time (GNOME's Mutter IdleMonitor, the freedesktop ScreenSaver, logind's
idle hint, or a command such as ``xprintidle``: the first that works), whether the machine
is on AC power (the kernel's power supplies, psutil), and whether the network is metered
(NetworkManager). Each measurement is a :class:`~omnimind_trio.models.Reading`: a value, or
unknown with the reason. The sensors keep no global state and are sampled by their owner.
Imports: models, dbus.
"""

from ._bus_sources import LogindIdle, MutterIdle
from ._command import CommandIdle
from ._fake import FakeSensors
from ._network import NetworkSensor
from ._power import from_psutil, read_power
from ._presence import REPROBE_SECONDS, Presence
from ._screensaver import ScreenSaverIdle, UnitGuess
from ._sensors import Sensors, SensorSettings, SystemSensors
from ._source import IDLE_SOURCES, IdleSource, SourceFailed

__all__ = [
    "IDLE_SOURCES",
    "REPROBE_SECONDS",
    "CommandIdle",
    "FakeSensors",
    "IdleSource",
    "LogindIdle",
    "MutterIdle",
    "NetworkSensor",
    "Presence",
    "ScreenSaverIdle",
    "SensorSettings",
    "Sensors",
    "SourceFailed",
    "SystemSensors",
    "UnitGuess",
    "from_psutil",
    "read_power",
]
