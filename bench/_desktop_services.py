"""Fake desktop services for section O, in a process of their own (their CPU is not the
daemon's): GNOME's Mutter IdleMonitor and the freedesktop ScreenSaver on one bus, logind
and NetworkManager on another.

``python -m bench._desktop_services SESSION_ADDRESS SYSTEM_ADDRESS``: prints ``ready``
once every name is owned, then answers until killed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import trio
from jeepney import message_bus, new_error, new_method_return
from jeepney.io.trio import open_dbus_connection
from jeepney.low_level import HeaderFields, Message, MessageType

PROPERTIES = "org.freedesktop.DBus.Properties"
MUTTER = "org.gnome.Mutter.IdleMonitor"
SCREENSAVER = "org.freedesktop.ScreenSaver"
LOGIND = "org.freedesktop.login1"
NM = "org.freedesktop.NetworkManager"
STARTED = time.monotonic()


def _idle_ms() -> int:
    return int((time.monotonic() - STARTED) * 1000)


METHODS: dict[tuple[str, str, str], Any] = {
    ("/org/gnome/Mutter/IdleMonitor/Core", MUTTER, "GetIdletime"): lambda: ("t", _idle_ms()),
    ("/org/freedesktop/ScreenSaver", SCREENSAVER, "GetSessionIdleTime"): lambda: (
        "u",
        _idle_ms(),
    ),
}
SINCE = int((time.monotonic() - 600) * 1e6)
PROPERTY_VALUES: dict[tuple[str, str, str], tuple[str, Any]] = {
    ("/org/freedesktop/login1", f"{LOGIND}.Manager", "IdleHint"): ("b", True),
    ("/org/freedesktop/login1", f"{LOGIND}.Manager", "IdleSinceHintMonotonic"): ("t", SINCE),
    ("/org/freedesktop/login1", f"{LOGIND}.Manager", "IdleSinceHint"): ("t", SINCE),
    ("/org/freedesktop/NetworkManager", NM, "Metered"): ("u", 4),
}


def _answer(call: Message) -> Message:
    fields = call.header.fields
    key = (fields[HeaderFields.path], fields.get(HeaderFields.interface))
    member = fields[HeaderFields.member]
    if key[1] == PROPERTIES and member == "Get":
        value = PROPERTY_VALUES.get((key[0], *call.body))
        if value is None:
            return new_error(call, "org.freedesktop.DBus.Error.UnknownProperty")
        return new_method_return(call, "v", (value,))
    method = METHODS.get((*key, member))
    if method is None:
        return new_error(call, "org.freedesktop.DBus.Error.UnknownMethod")
    signature, value = method()
    return new_method_return(call, signature, (value,))


async def _serve(address: str, names: tuple[str, ...], ready: trio.MemorySendChannel[str]) -> None:
    connection = await open_dbus_connection(address)
    for name in names:
        await connection.send(message_bus.RequestName(name))
        while (await connection.receive()).header.message_type is not MessageType.method_return:
            pass
    await ready.send(address)
    while True:
        call = await connection.receive()
        if call.header.message_type is MessageType.method_call:
            await connection.send(_answer(call))


async def main(session: str, system: str) -> None:
    send, receive = trio.open_memory_channel[str](2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, session, (MUTTER, SCREENSAVER), send)
        nursery.start_soon(_serve, system, (LOGIND, NM), send)
        for _ in range(2):
            await receive.receive()
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
