"""The sensors as the daemon samples them: one sample of the three measurements, the
network's metered state from NetworkManager, the settings, and the fake for tests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from omnimind_trio.models import Reading, Surroundings
from omnimind_trio.sensors import (
    IDLE_SOURCES,
    REPROBE_SECONDS,
    FakeSensors,
    Sensors,
    SystemSensors,
)

from .conftest import make_settings
from .dbus_fakes import (
    Buses,
    buses,
    fake_logind,
    fake_networkmanager,
    serving,
    set_metered,
)

__all__ = ["buses"]  # the fixture, re-used


def battery_laptop(root: Path, online: str) -> Path:
    for name, attributes in {
        "AC": {"type": "Mains", "online": online},
        "BAT0": {"type": "Battery", "status": "Discharging" if online == "0" else "Charging"},
    }.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for attribute, value in attributes.items():
            (root / name / attribute).write_text(value + "\n")
    return root


@pytest.mark.slow
async def test_one_sample_reads_presence_power_and_network(tmp_path: Path, buses: Buses) -> None:
    power = battery_laptop(tmp_path / "power", online="1")
    sensors = SystemSensors(
        idle_sources=("logind",), idle_command=None, power_supply_dir=power, environ=buses.environ
    )
    async with trio.open_nursery() as nursery:
        since = int((time.monotonic() - 300) * 1e6)
        await serving(nursery, fake_logind(True, since, since), buses.system)
        await serving(nursery, fake_networkmanager(metered=4), buses.system)
        sample = await sensors.sample()
        (power / "AC" / "online").write_text("0\n")
        unplugged = await sensors.sample()
        nursery.cancel_scope.cancel()
    await sensors.aclose()
    assert sample.user_idle_seconds.source == "logind"
    assert 300 <= (sample.user_idle_seconds.value or 0) < 301
    assert sample.on_ac_power == Reading(True, "sysfs", "AC (Mains) is online")
    assert sample.network_metered == Reading(
        False, "networkmanager", "Metered 4 (guessed not metered)"
    )
    assert unplugged.on_ac_power == Reading(
        False, "sysfs", "no external supply is online (AC (Mains))"
    )
    assert sensors.system_bus.connections == 1  # logind and NetworkManager share it


@pytest.mark.slow
async def test_the_network_is_metered_as_networkmanager_says(
    tmp_path: Path, buses: Buses, mock_clock: trio.testing.MockClock
) -> None:
    sensors = SystemSensors(idle_sources=(), power_supply_dir=tmp_path, environ=buses.environ)
    absent = Reading(
        None, None, "networkmanager: org.freedesktop.NetworkManager is not on the system bus"
    )
    assert (await sensors.sample()).network_metered == absent
    read = {}
    async with trio.open_nursery() as nursery:
        nm = await serving(nursery, fake_networkmanager(metered=0), buses.system)
        # After a failure, NetworkManager is asked again only after a while.
        mock_clock.jump(REPROBE_SECONDS - 1)
        assert (await sensors.sample()).network_metered == absent
        mock_clock.jump(1)
        for value in range(6):
            set_metered(nm, value)
            read[value] = (await sensors.sample()).network_metered
        nursery.cancel_scope.cancel()
    await sensors.aclose()
    assert read == {
        0: Reading(None, "networkmanager", "NetworkManager does not know"),
        1: Reading(True, "networkmanager", "Metered 1 (metered)"),
        2: Reading(False, "networkmanager", "Metered 2 (not metered)"),
        3: Reading(True, "networkmanager", "Metered 3 (guessed metered)"),  # a phone's hotspot
        4: Reading(False, "networkmanager", "Metered 4 (guessed not metered)"),
        5: Reading(None, "networkmanager", "NetworkManager answered Metered 5"),
    }


def test_the_settings_choose_the_sources(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        user_idle_sources="command, logind",
        user_idle_command="xprintidle",
        power_supply_dir=tmp_path / "power",
    )
    sensors = SystemSensors.from_settings(settings)
    assert [s.name for s in sensors.presence.sources] == ["command", "logind"]
    assert sensors.power.folder == tmp_path / "power"
    default = SystemSensors.from_settings(make_settings(tmp_path))
    assert tuple(s.name for s in default.presence.sources) == IDLE_SOURCES
    with pytest.raises(ValueError, match=r"unknown idle sources \['xidle'\]"):
        SystemSensors(idle_sources=("mutter", "xidle"))


async def test_fake_sensors_answer_what_the_test_sets() -> None:
    fake = FakeSensors(user_idle_seconds=12.5)
    sensors: Sensors = fake  # the protocol the daemon takes
    assert await sensors.sample() == Surroundings(
        Reading(12.5, "fake"), Reading(True, "fake"), Reading(False, "fake")
    )
    fake.user_idle_seconds = None
    fake.on_ac_power = False
    fake.network_metered = True
    fake.idle_source = "mutter"
    sample = await sensors.sample()
    assert sample.user_idle_seconds == Reading(None, None, "mutter: unknown (set by the test)")
    assert (sample.on_ac_power.value, sample.network_metered.value) == (False, True)
    await sensors.aclose()
    assert (fake.samples, fake.closed) == (2, True)


@pytest.mark.slow
async def test_a_networkmanager_that_hangs_costs_its_timeout_once(
    tmp_path: Path, buses: Buses
) -> None:
    sensors = SystemSensors(
        idle_sources=(), power_supply_dir=tmp_path, environ=buses.environ, timeout_seconds=0.3
    )
    async with trio.open_nursery() as nursery:
        nm = await serving(nursery, fake_networkmanager(metered=1), buses.system)
        nm.hang = True
        started = trio.current_time()
        first = (await sensors.sample()).network_metered
        assert 0.3 <= trio.current_time() - started < 1.0
        started = trio.current_time()
        assert (await sensors.sample()).network_metered == first
        assert trio.current_time() - started < 0.1
        nursery.cancel_scope.cancel()
    await sensors.aclose()
    assert first == Reading(
        None,
        None,
        "networkmanager: org.freedesktop.NetworkManager did not answer property"
        " org.freedesktop.NetworkManager.Metered at /org/freedesktop/NetworkManager within 0.3 s",
    )


def test_constructing_the_sensors_loads_no_dbus_library() -> None:
    """jeepney is imported at the first call on a bus, in a worker thread: a daemon that
    asks for no condition, or a machine without buses, never loads it."""
    probe = (
        "import sys\n"
        "from omnimind_trio.sensors import SystemSensors\n"
        "SystemSensors(idle_command='xprintidle')\n"
        "print('jeepney' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


async def test_slow_power_supplies_are_read_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AC adapter that takes milliseconds to answer (ACPI in the embedded controller)
    must not hold the event loop at every sample."""
    power = battery_laptop(tmp_path / "power", online="1")
    sensors = SystemSensors(idle_sources=(), power_supply_dir=power, environ={})
    loop_thread = threading.get_ident()
    readers: list[int] = []
    real_read = sensors.power.read

    def slow_read() -> Reading:
        readers.append(threading.get_ident())
        time.sleep(0.005)
        return real_read()

    monkeypatch.setattr(sensors.power, "read", slow_read)
    for _ in range(3):
        assert (await sensors.sample()).on_ac_power.value is True
    await sensors.aclose()
    assert readers[0] == loop_thread  # the first read shows it is slow
    assert loop_thread not in readers[1:] and sensors.power_in_thread
