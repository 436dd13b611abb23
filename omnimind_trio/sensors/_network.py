"""Whether the network is metered: NetworkManager's ``Metered`` property (system bus).

NetworkManager's NMMetered values: 0 unknown, 1 yes, 2 no, 3 guessed yes (a phone's
hotspot, a mobile broadband modem), 4 guessed no. Without NetworkManager it is unknown.
"""

from __future__ import annotations

from typing import Final

from ..dbus import BusClient, BusError
from ..models import Reading

NETWORKMANAGER: Final = "org.freedesktop.NetworkManager"
SOURCE: Final = "networkmanager"
METERED: Final = {1: True, 2: False, 3: True, 4: False}
WORDS: Final = {1: "metered", 2: "not metered", 3: "guessed metered", 4: "guessed not metered"}


class NetworkSensor:
    """Reads NetworkManager's ``Metered`` on each call (one property read)."""

    def __init__(self, bus: BusClient) -> None:
        self._bus = bus

    async def read(self) -> Reading:
        """True when metered, False when not, None when unknown (the detail says why).
        Never raises but for Cancelled."""
        try:
            value = await self._bus.get_property(
                NETWORKMANAGER, "/org/freedesktop/NetworkManager", NETWORKMANAGER, "Metered"
            )
        except BusError as exc:
            return Reading(None, None, f"{SOURCE}: {exc}")
        if value == 0 and not isinstance(value, bool):
            return Reading(None, SOURCE, "NetworkManager does not know")
        if isinstance(value, int) and not isinstance(value, bool) and value in METERED:
            return Reading(METERED[value], SOURCE, f"Metered {value} ({WORDS[value]})")
        return Reading(None, SOURCE, f"NetworkManager answered Metered {value!r}")
