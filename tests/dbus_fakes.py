"""Private D-Bus buses and fake services for the D-Bus client and sensor tests.

A bus is a real ``dbus-daemon`` with a small configuration (no service activation); a
fake service is a plain jeepney connection that owns a well-known name and answers
method calls and ``Properties.Get`` from tables the test changes as it goes.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from jeepney import message_bus, new_error, new_method_return
from jeepney.io.trio import open_dbus_connection
from jeepney.low_level import HeaderFields, Message, MessageType

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
PROPERTIES = "org.freedesktop.DBus.Properties"


@contextlib.contextmanager
def private_bus(folder: Path) -> Iterator[str]:
    """A ``dbus-daemon`` listening in ``folder``: its address. Skips the test when
    dbus-daemon is not installed."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (apt-get install dbus-daemon)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bus.conf"
    config.write_text(BUS_CONFIG.format(path=folder / "bus"))
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--nosyslog", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bus.stdout is not None
    try:
        yield bus.stdout.readline().strip()
    finally:
        bus.kill()
        bus.wait()
        bus.stdout.close()


@dataclass
class Buses:
    session: str
    system: str

    @property
    def environ(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.session, "DBUS_SYSTEM_BUS_ADDRESS": self.system}


@contextlib.contextmanager
def private_buses(folder: Path) -> Iterator[Buses]:
    """Two private buses: one plays the session bus, the other the system bus."""
    with private_bus(folder / "session") as session, private_bus(folder / "system") as system:
        yield Buses(session, system)


@pytest.fixture
def buses(tmp_path: Path) -> Iterator[Buses]:
    with private_buses(tmp_path / "buses") as addresses:
        yield addresses


Handler = Callable[[tuple[Any, ...]], tuple[str, tuple[Any, ...]]]
"""A method's behaviour: its call's body -> the reply's signature and body."""


class FakeService:
    """A well-known name on a bus answering method calls and property reads.

    ``methods[(path, interface, member)]`` is a :data:`Handler`;
    ``properties[(path, interface, name)]`` is ``(signature, value)``. Anything else gets
    the error a real service sends. With ``hang`` set, calls get no answer at all.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.methods: dict[tuple[str, str, str], Handler] = {}
        self.properties: dict[tuple[str, str, str], tuple[str, Any]] = {}
        self.hang = False
        self.calls = 0
        self.state: dict[str, Any] = {}
        """Values the handlers answer, for the test to change."""
        self._scope: trio.CancelScope | None = None

    async def serve(self, address: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the name on ``address`` and answer until cancelled (or :meth:`vanish`)."""
        with trio.CancelScope() as self._scope:
            connection = await open_dbus_connection(address)
            try:
                await connection.send(message_bus.RequestName(self.name))
                while True:  # the RequestName reply (after the NameAcquired signal)
                    reply = await connection.receive()
                    if reply.header.message_type is MessageType.method_return:
                        break
                assert reply.body == (1,), f"{self.name} is owned already"
                task_status.started()
                while True:
                    call = await connection.receive()
                    if call.header.message_type is MessageType.method_call:
                        self.calls += 1
                        if not self.hang:
                            await connection.send(self._answer(call))
            finally:
                await connection.aclose()

    def vanish(self) -> None:
        """Leave the bus (the name is released as the connection closes)."""
        if self._scope is not None:
            self._scope.cancel()

    def _answer(self, call: Message) -> Message:
        fields = call.header.fields
        path, interface = fields[HeaderFields.path], fields.get(HeaderFields.interface)
        member = fields[HeaderFields.member]
        if interface == PROPERTIES and member == "Get":
            key = (path, *call.body)
            if key not in self.properties:
                return _error(call, "UnknownProperty", f"no property {call.body[1]}")
            signature, value = self.properties[key]
            return new_method_return(call, "v", ((signature, value),))
        handler = self.methods.get((path, interface, member))
        if handler is None:
            known = {p for p, _, _ in self.methods} | {p for p, _, _ in self.properties}
            if path not in known:
                return _error(call, "UnknownObject", f"no object at {path}")
            return _error(call, "UnknownMethod", f"no method {member}")
        signature, body = handler(call.body)
        return new_method_return(call, signature, body)


def _error(call: Message, name: str, text: str) -> Message:
    return new_error(call, f"org.freedesktop.DBus.Error.{name}", "s", (text,))


def answer(signature: str, *values: Any) -> Handler:
    """A handler answering ``values`` whatever the call."""
    return lambda _body: (signature, values)


async def serving(nursery: trio.Nursery, service: FakeService, address: str) -> FakeService:
    """Start ``service`` on ``address`` in ``nursery``; return it once it owns its name."""
    await nursery.start(service.serve, address)
    return service


# -- the services the sensors read ---------------------------------------------------

MUTTER = "org.gnome.Mutter.IdleMonitor"
SCREENSAVER = "org.freedesktop.ScreenSaver"
LOGIND, LOGIND_PATH = "org.freedesktop.login1", "/org/freedesktop/login1"
NM = "org.freedesktop.NetworkManager"


def fake_mutter(idle_ms: int = 0) -> FakeService:
    """GNOME's IdleMonitor; ``state["idle"]`` milliseconds."""
    service = FakeService(MUTTER)
    service.state["idle"] = idle_ms
    core = ("/org/gnome/Mutter/IdleMonitor/Core", MUTTER, "GetIdletime")
    service.methods[core] = lambda _body: ("t", (service.state["idle"],))
    return service


def fake_screensaver(
    idle: int = 0, paths: tuple[str, ...] = ("/org/freedesktop/ScreenSaver",)
) -> FakeService:
    """The freedesktop ScreenSaver at ``paths``; ``state["idle"]`` in its own unit."""
    service = FakeService(SCREENSAVER)
    service.state["idle"] = idle
    for path in paths:
        method = (path, SCREENSAVER, "GetSessionIdleTime")
        service.methods[method] = lambda _body: ("u", (service.state["idle"],))
    return service


def set_logind(service: FakeService, hint: bool, since_monotonic_us: int, since_us: int) -> None:
    manager = (LOGIND_PATH, f"{LOGIND}.Manager")
    service.properties[(*manager, "IdleHint")] = ("b", hint)
    service.properties[(*manager, "IdleSinceHintMonotonic")] = ("t", since_monotonic_us)
    service.properties[(*manager, "IdleSinceHint")] = ("t", since_us)


def fake_logind(hint: bool = True, since_monotonic_us: int = 0, since_us: int = 0) -> FakeService:
    """logind's Manager properties; the defaults are a machine's at boot (idle since 1970)."""
    service = FakeService(LOGIND)
    set_logind(service, hint, since_monotonic_us, since_us)
    return service


def set_metered(service: FakeService, metered: int) -> None:
    service.properties[("/org/freedesktop/NetworkManager", NM, "Metered")] = ("u", metered)


def fake_networkmanager(metered: int) -> FakeService:
    """NetworkManager's ``Metered`` (0 unknown, 1 yes, 2 no, 3 guess yes, 4 guess no)."""
    service = FakeService(NM)
    set_metered(service, metered)
    return service


async def wait_gone(address: str, name: str) -> None:
    """Return once ``name`` has no owner on the bus (a vanished service's connection is
    closed by the bus after it returns from ``vanish``). Polls without sleeping: each
    poll is a round trip to the bus (so it works on a mock clock too)."""
    from omnimind_trio.dbus import BusClient

    bus = BusClient(address)
    try:
        for _ in range(1000):
            await trio.lowlevel.checkpoint()
            (owned,) = await bus.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                (name,),
            )
            if not owned:
                return
        raise AssertionError(f"{name} is still on the bus")
    finally:
        await bus.aclose()
