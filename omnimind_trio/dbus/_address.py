"""Where the buses are: the session bus of the person's login, and the machine's system bus."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

SYSTEM_BUS_SOCKET: Final = Path("/run/dbus/system_bus_socket")


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """``DBUS_SESSION_BUS_ADDRESS``, else the socket systemd's user manager opens at
    ``$XDG_RUNTIME_DIR/bus`` (where sd-bus looks too), else None."""
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").is_socket():
        return f"unix:path={Path(runtime, 'bus')}"
    return None


def system_bus_address(environ: Mapping[str, str]) -> str | None:
    """``DBUS_SYSTEM_BUS_ADDRESS``, else ``/run/dbus/system_bus_socket`` when that socket
    exists, else None."""
    address = environ.get("DBUS_SYSTEM_BUS_ADDRESS", "").strip()
    if address:
        return address
    if SYSTEM_BUS_SOCKET.is_socket():
        return f"unix:path={SYSTEM_BUS_SOCKET}"
    return None
