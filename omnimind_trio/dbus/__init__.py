"""A minimal D-Bus client: short calls and property reads on the session or system bus.

Used by the sensors (the person's idle time, NetworkManager) and the desktop notifier.
Built on jeepney's plain Trio connection, imported at the first call in a worker thread.
Imports: the standard library, jeepney and trio only.
"""

from ._address import session_bus_address, system_bus_address
from ._client import RECONNECT_SECONDS, TIMEOUT_SECONDS, BusClient, BusError

__all__ = [
    "RECONNECT_SECONDS",
    "TIMEOUT_SECONDS",
    "BusClient",
    "BusError",
    "session_bus_address",
    "system_bus_address",
]
