"""The D-Bus client, against private ``dbus-daemon`` buses and fake services: answers,
errors in words, timeouts, reconnection and its throttle."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from omnimind_trio.dbus import BusClient, BusError, session_bus_address, system_bus_address

from .dbus_fakes import FakeService, private_bus, serving

pytestmark = pytest.mark.slow

NAME, PATH, IFACE = "org.example.Thing", "/org/example/Thing", "org.example.Thing"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    with private_bus(tmp_path / "bus") as address:
        yield address


def thing() -> FakeService:
    service = FakeService(NAME)
    service.methods[(PATH, IFACE, "Add")] = lambda body: ("t", (body[0] + body[1],))
    service.properties[(PATH, IFACE, "Level")] = ("u", 7)
    return service


def test_the_session_bus_is_found_where_systemd_puts_it(tmp_path: Path) -> None:
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    with socket.socket(socket.AF_UNIX) as bus:
        bus.bind(str(tmp_path / "bus"))
        assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == (
            f"unix:path={tmp_path / 'bus'}"
        )


def test_the_system_bus_is_named_or_at_its_standard_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert system_bus_address({"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/y"}) == "unix:path=/y"
    monkeypatch.setattr("omnimind_trio.dbus._address.SYSTEM_BUS_SOCKET", tmp_path / "system")
    assert system_bus_address({}) is None
    with socket.socket(socket.AF_UNIX) as bus:
        bus.bind(str(tmp_path / "system"))
        assert system_bus_address({}) == f"unix:path={tmp_path / 'system'}"


async def test_a_call_and_a_property_over_one_connection(bus: str) -> None:
    client = BusClient(bus)
    async with trio.open_nursery() as nursery:
        await serving(nursery, thing(), bus)
        assert await client.call(NAME, PATH, IFACE, "Add", "tt", (2, 3)) == (5,)
        assert await client.get_property(NAME, PATH, IFACE, "Level") == 7
        # Calls at once take turns on the one connection, each getting its own reply.
        sums: dict[int, tuple[object, ...]] = {}

        async def add(i: int) -> None:
            sums[i] = await client.call(NAME, PATH, IFACE, "Add", "tt", (i, 100))

        async with trio.open_nursery() as calls:
            for i in range(10):
                calls.start_soon(add, i)
        assert sums == {i: (i + 100,) for i in range(10)}
        assert client.connections == 1
        nursery.cancel_scope.cancel()
    await client.aclose()
    assert not client.connected


async def test_error_replies_say_what_is_missing_and_keep_the_connection(bus: str) -> None:
    client = BusClient(bus)
    with pytest.raises(BusError, match=r"^org\.example\.Thing is not on the session bus$") as err:
        await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 2))
    assert err.value.name == "org.freedesktop.DBus.Error.ServiceUnknown"
    async with trio.open_nursery() as nursery:
        await serving(nursery, thing(), bus)
        with pytest.raises(
            BusError, match=r"^org\.example\.Thing has no org\.example\.Thing\.Sub at"
        ):
            await client.call(NAME, PATH, IFACE, "Sub", "tt", (1, 2))
        with pytest.raises(BusError, match=r"has no property org\.example\.Thing\.Colour at /org/"):
            await client.get_property(NAME, PATH, IFACE, "Colour")
        assert await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 2)) == (3,)
        nursery.cancel_scope.cancel()
    assert client.connections == 1  # the bus answered every time: the connection is sound
    await client.aclose()


async def test_no_bus_fails_at_once_and_is_tried_again_after_a_while(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    looked: list[str] = []

    def locate() -> str | None:
        looked.append("here")
        return None

    client = BusClient(locate, missing="DBUS_SESSION_BUS_ADDRESS is not set", reconnect_seconds=10)
    for _ in range(3):
        with pytest.raises(BusError, match=r"^no session bus \(DBUS_SESSION_BUS_ADDRESS is not"):
            await client.call(NAME, PATH, IFACE, "Add")
    assert len(looked) == 1  # not looked for again before reconnect_seconds
    mock_clock.jump(10)
    with pytest.raises(BusError):
        await client.call(NAME, PATH, IFACE, "Add")
    assert len(looked) == 2

    gone = BusClient(f"unix:path={tmp_path / 'nothing'}", bus="system bus")
    with pytest.raises(
        BusError, match=r"^no system bus at .*nothing \(No such file or directory\)"
    ):
        await gone.get_property(NAME, PATH, IFACE, "Level")
    with pytest.raises(BusError, match=r"^no session bus at 'tcp:host=x,port=1' \(only unix"):
        await BusClient("tcp:host=x,port=1").call(NAME, PATH, IFACE, "Add")


async def test_a_service_that_does_not_answer_times_out_and_the_next_call_reconnects(
    bus: str,
) -> None:
    client = BusClient(bus, timeout_seconds=0.2)
    service = thing()
    async with trio.open_nursery() as nursery:
        await serving(nursery, service, bus)
        service.hang = True
        started = trio.current_time()
        with pytest.raises(
            BusError,
            match=r"^org.example.Thing did not answer org.example.Thing.Add at /org/"
            r"example/Thing within 0.2 s$",
        ):
            await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 2))
        assert 0.2 <= trio.current_time() - started < 0.5
        assert not client.connected
        service.hang = False
        assert await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 2)) == (3,)
        assert client.connections == 2
        nursery.cancel_scope.cancel()
    await client.aclose()


async def test_a_bus_that_goes_away_is_a_failure_then_a_missing_bus(tmp_path: Path) -> None:
    folder = tmp_path / "bus"
    client = BusClient(lambda: f"unix:path={folder / 'bus'}")
    with private_bus(folder) as address:
        async with trio.open_nursery() as nursery:
            await serving(nursery, thing(), address)
            assert await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 1)) == (2,)
            nursery.cancel_scope.cancel()
    with pytest.raises(BusError, match=r"^the connection to the session bus failed: "):
        await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 1))
    with pytest.raises(BusError, match=r"^no session bus at .*bus \((Connection refused|No such)"):
        await client.call(NAME, PATH, IFACE, "Add", "tt", (1, 1))


async def test_a_bus_that_never_answers_the_greeting_times_out(tmp_path: Path) -> None:
    # A socket that accepts and stays silent: the authentication never gets its answer.
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(tmp_path / "silent"))
        silent.listen()
        client = BusClient(f"unix:path={tmp_path / 'silent'}", timeout_seconds=0.2)
        with pytest.raises(BusError, match=r"^the session bus did not answer within 0.2 s$"):
            await client.call(NAME, PATH, IFACE, "Add")
        # A failure to connect: not tried again before reconnect_seconds, same words.
        with pytest.raises(BusError, match=r"^the session bus did not answer within 0.2 s$"):
            await client.call(NAME, PATH, IFACE, "Add")
        assert client.connections == 0
