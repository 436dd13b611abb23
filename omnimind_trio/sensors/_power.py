"""On mains power or on battery: the kernel's power supplies, psutil as a fallback.

Each folder of ``/sys/class/power_supply`` (``OMNIMIND_POWER_SUPPLY_DIR``) is a supply:
its ``type`` (Mains, USB, Battery, UPS, Wireless...), ``online`` (external supplies),
``status`` (batteries: Charging, Discharging, Full, Not charging) and ``scope`` (``Device``
for a peripheral's own battery, a mouse or a headset: ignored). The rules, in order:

1. no battery: on AC (a machine with no battery is on AC, whatever else it lists, such as
   the USB-C ports of a desktop with nothing plugged in);
2. an external supply (any type but Battery) online: on AC;
3. external supplies, none online: on battery;
4. batteries only: one Discharging is on battery; Charging, Full, Not charging are on AC;
   any other status is unknown.

When the folder is missing or unreadable, psutil's ``sensors_battery()``: None (no
battery) is on AC; ``power_plugged`` None (it says so when the battery is full) is on AC
at 99 % and above, unknown below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

from ..models import Reading

SYSFS: Final = "sysfs"
PSUTIL: Final = "psutil"
ON_AC_STATUSES: Final = frozenset({"Charging", "Full", "Not charging"})


@dataclass(frozen=True, slots=True)
class Supply:
    name: str
    type: str | None
    online: str | None
    status: str | None
    scope: str | None

    @property
    def is_online(self) -> bool:
        return self.online is not None and self.online.isdigit() and int(self.online) > 0


def _attribute(folder: str, name: str) -> str | None:
    # os.open/os.read: a sysfs attribute is one small read; a file object costs more
    # than the read itself, and this runs on the event loop at every sample.
    try:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # not every supply has every attribute
        return None
    try:
        return os.read(fd, 256).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def read_supplies(folder: Path) -> list[Supply]:
    """The supplies listed in ``folder``, with the attributes the rules use (a battery's
    status, an external supply's online). Raises OSError when it cannot be listed."""
    supplies = []
    with os.scandir(folder) as entries:
        for entry in entries:
            path = entry.path
            kind = _attribute(path, "type")
            battery = kind == "Battery"
            supplies.append(
                Supply(
                    entry.name,
                    kind,
                    None if battery else _attribute(path, "online"),
                    _attribute(path, "status") if battery else None,
                    _attribute(path, "scope"),
                )
            )
    return sorted(supplies, key=lambda s: s.name)


def judge(supplies: list[Supply], folder: Path) -> Reading:
    """The rules of the module's docstring, on supplies read from ``folder``."""
    own = [s for s in supplies if s.type and (s.scope or "").lower() != "device"]
    batteries = [s for s in own if s.type == "Battery"]
    external = [s for s in own if s.type != "Battery"]
    if not batteries:
        listed = f"no battery in {folder}" if own else f"no power supply in {folder}"
        return Reading(True, SYSFS, f"{listed}: a machine with no battery is on AC")
    online = [s for s in external if s.is_online]
    if online:
        return Reading(True, SYSFS, f"{online[0].name} ({online[0].type}) is online")
    if any(s.online is not None for s in external):
        names = ", ".join(f"{s.name} ({s.type})" for s in external)
        return Reading(False, SYSFS, f"no external supply is online ({names})")
    statuses = {s.name: s.status for s in batteries}
    shown = ", ".join(f"{name} {status or 'without a status'}" for name, status in statuses.items())
    if "Discharging" in statuses.values():
        return Reading(False, SYSFS, f"the battery is discharging ({shown})")
    if ON_AC_STATUSES.intersection(s or "" for s in statuses.values()):
        return Reading(True, SYSFS, f"no external supply listed; battery {shown}")
    return Reading(
        None, SYSFS, f"no external supply listed and the battery status says nothing ({shown})"
    )


def from_psutil() -> Reading:
    """psutil's view of the battery (it reads the same folder on Linux)."""
    probe = getattr(psutil, "sensors_battery", None)
    if probe is None:
        return Reading(None, PSUTIL, "psutil cannot read batteries on this system")
    try:
        battery = probe()
    except Exception as exc:  # psutil's own failure on an odd system: unknown, not a crash
        return Reading(None, PSUTIL, f"psutil failed to read the battery: {exc}")
    if battery is None:
        return Reading(True, PSUTIL, "psutil finds no battery: a machine with no battery is on AC")
    percent = f"battery at {battery.percent:.0f} %"
    if battery.power_plugged is not None:
        plugged = bool(battery.power_plugged)
        return Reading(plugged, PSUTIL, f"{'plugged in' if plugged else 'on battery'}, {percent}")
    if battery.percent >= 99:
        return Reading(True, PSUTIL, f"plug state unknown, {percent} (full): taken as on AC")
    return Reading(None, PSUTIL, f"psutil cannot tell whether a charger is plugged in ({percent})")


def read_power(folder: Path) -> Reading:
    """On AC (True), on battery (False) or unknown (None), from ``folder`` or psutil."""
    try:
        supplies = read_supplies(folder)
    except OSError as exc:
        reading = from_psutil()
        why = f"{folder}: {exc.strerror or exc}"
        return Reading(reading.value, reading.source, f"{why}; {reading.detail}")
    return judge(supplies, folder)
