"""Choosing the source of the person's idle time: the order, falling through, trying a
better source again, and saying why it is unknown. First on fake sources and the fake
clock, then end to end through SystemSensors against fake services on private buses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from omnimind_trio.models import Reading
from omnimind_trio.sensors import REPROBE_SECONDS, Presence, SourceFailed, SystemSensors

from .dbus_fakes import (
    MUTTER,
    Buses,
    buses,
    fake_logind,
    fake_mutter,
    fake_screensaver,
    serving,
    wait_gone,
)

__all__ = ["buses"]  # the fixture, re-used


class FakeIdle:
    """A source answering ``answer``: seconds, or a string (its failure)."""

    def __init__(self, name: str, answer: float | str) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0

    async def idle_seconds(self) -> float:
        self.calls += 1
        if isinstance(self.answer, str):
            raise SourceFailed(self.answer)
        return self.answer


def sources() -> tuple[FakeIdle, FakeIdle, FakeIdle]:
    return (
        FakeIdle("mutter", "not on the session bus"),
        FakeIdle("screensaver", 12.0),
        FakeIdle("command", 99.0),
    )


async def test_the_first_source_that_works_answers(mock_clock: trio.testing.MockClock) -> None:
    mutter, screensaver, command = sources()
    presence = Presence([mutter, screensaver, command])
    assert await presence.read() == Reading(12.0, "screensaver")
    assert (mutter.calls, screensaver.calls, command.calls) == (1, 1, 0)
    # The current source is used while it works; the one above is not asked meanwhile.
    mock_clock.jump(REPROBE_SECONDS - 1)
    screensaver.answer = 13.0
    assert await presence.read() == Reading(13.0, "screensaver")
    assert (mutter.calls, screensaver.calls) == (1, 2)


async def test_a_better_source_is_tried_again_and_taken_over_when_it_works(
    mock_clock: trio.testing.MockClock,
) -> None:
    mutter, screensaver, command = sources()
    presence = Presence([mutter, screensaver, command])
    await presence.read()
    mock_clock.jump(REPROBE_SECONDS)
    assert await presence.read() == Reading(12.0, "screensaver")  # tried: still failing
    assert mutter.calls == 2
    mutter.answer = 0.5  # a GNOME session came up after the daemon
    mock_clock.jump(REPROBE_SECONDS - 1)
    assert (await presence.read()).source == "screensaver"  # not its turn yet
    mock_clock.jump(1)
    assert await presence.read() == Reading(0.5, "mutter")
    assert presence.current is mutter


async def test_a_failing_source_falls_through_in_the_same_sample(
    mock_clock: trio.testing.MockClock,
) -> None:
    mutter, screensaver, command = sources()
    mutter.answer = 1.0
    presence = Presence([mutter, screensaver, command])
    assert (await presence.read()).source == "mutter"
    mutter.answer = "the connection to the session bus failed"
    assert await presence.read() == Reading(12.0, "screensaver")
    # The source that had been working gets one more try at the next sample...
    mock_clock.jump(0.5)
    assert (await presence.read()).source == "screensaver"
    assert mutter.calls == 3
    # ... then waits its turn like any other.
    mock_clock.jump(0.5)
    await presence.read()
    assert mutter.calls == 3


async def test_with_no_source_working_it_is_unknown_and_says_why(
    mock_clock: trio.testing.MockClock,
) -> None:
    mutter, screensaver, command = sources()
    screensaver.answer = "org.freedesktop.ScreenSaver is not on the session bus"
    command.answer = "not configured (OMNIMIND_USER_IDLE_COMMAND)"
    presence = Presence([mutter, screensaver, command])
    expected = Reading(
        None,
        None,
        "mutter: not on the session bus; screensaver: org.freedesktop.ScreenSaver is not on"
        " the session bus; command: not configured (OMNIMIND_USER_IDLE_COMMAND)",
    )
    assert await presence.read() == expected
    assert await presence.read() == expected  # (the answers of the last tries)
    assert (mutter.calls, screensaver.calls, command.calls) == (1, 1, 1)
    mock_clock.jump(REPROBE_SECONDS)
    command.answer = 4.0
    assert await presence.read() == Reading(4.0, "command")
    assert await Presence([]).read() == Reading(None, None, "no source is enabled")


async def test_a_switch_of_source_is_logged_once(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnimind_trio.sensors")
    mutter, screensaver, command = sources()
    presence = Presence([mutter, screensaver, command])
    for _ in range(3):
        await presence.read()
    screensaver.answer = "gone"
    command.answer = "not configured"
    for _ in range(3):
        mock_clock.jump(1)
        await presence.read()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "INFO",
            "the person's idle time is read from screensaver (mutter: not on the session bus)",
        ),
        (
            "WARNING",
            "the person's idle time is unknown (mutter: not on the session bus;"
            " screensaver: gone; command: not configured); user_away counts as holding",
        ),
    ]


async def test_unknown_from_the_start_is_news_for_no_one(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A server has no desktop: its unknown idle time is logged at INFO, not WARNING."""
    caplog.set_level(logging.INFO, logger="omnimind_trio.sensors")
    mutter, screensaver, command = sources()
    screensaver.answer = command.answer = "not here"
    presence = Presence([mutter, screensaver, command])
    for _ in range(3):
        await presence.read()
    assert [r.levelname for r in caplog.records] == ["INFO"]


# -- end to end: SystemSensors on private buses --------------------------------------


def idle_script(tmp_path: Path, value: str) -> str:
    (tmp_path / "idle").write_text(value)
    path = tmp_path / "idle.sh"
    path.write_text(f"#!/bin/sh\ncat '{tmp_path / 'idle'}'\n")
    path.chmod(0o755)
    return str(path)


def system_sensors(tmp_path: Path, buses: Buses, *, timeout_seconds: float = 1.0) -> SystemSensors:
    return SystemSensors(
        idle_sources=("mutter", "screensaver", "logind", "command"),
        idle_command=idle_script(tmp_path, "5000"),
        power_supply_dir=tmp_path,
        environ=buses.environ,
        timeout_seconds=timeout_seconds,
    )


@pytest.mark.slow
async def test_sources_in_order_a_service_that_vanishes_and_comes_back(
    tmp_path: Path, buses: Buses, mock_clock: trio.testing.MockClock
) -> None:
    sensors = system_sensors(tmp_path, buses)
    async with trio.open_nursery() as nursery:
        mutter = await serving(nursery, fake_mutter(idle_ms=1500), buses.session)
        await serving(nursery, fake_screensaver(idle=2500), buses.session)
        await serving(nursery, fake_logind(), buses.system)  # not set since boot
        assert (await sensors.sample()).user_idle_seconds == Reading(1.5, "mutter")

        mutter.vanish()
        await wait_gone(buses.session, MUTTER)
        # Falls through in the same sample (the screensaver's unit is not known yet:
        # milliseconds).
        assert (await sensors.sample()).user_idle_seconds == Reading(2.5, "screensaver")
        mock_clock.jump(1)
        assert (await sensors.sample()).user_idle_seconds.source == "screensaver"  # retried
        mutter = await serving(nursery, fake_mutter(idle_ms=10), buses.session)
        mock_clock.jump(REPROBE_SECONDS - 1)
        assert (await sensors.sample()).user_idle_seconds.source == "screensaver"  # too soon
        mock_clock.jump(1)
        assert (await sensors.sample()).user_idle_seconds == Reading(0.01, "mutter")
        nursery.cancel_scope.cancel()
    await sensors.aclose()


@pytest.mark.slow
async def test_down_to_the_command_then_unknown_with_every_answer(
    tmp_path: Path, buses: Buses
) -> None:
    sensors = system_sensors(tmp_path, buses)
    async with trio.open_nursery() as nursery:
        await serving(nursery, fake_logind(), buses.system)
        assert (await sensors.sample()).user_idle_seconds == Reading(5.0, "command")
        (tmp_path / "idle").write_text("whenever")
        reading = (await sensors.sample()).user_idle_seconds
        nursery.cancel_scope.cancel()
    assert reading == Reading(
        None,
        None,
        "mutter: org.gnome.Mutter.IdleMonitor is not on the session bus; screensaver:"
        " org.freedesktop.ScreenSaver is not on the session bus; logind: idle hint not set"
        f" since boot; command: {tmp_path}/idle.sh printed 'whenever', not milliseconds",
    )
    await sensors.aclose()


@pytest.mark.slow
async def test_a_hanging_service_costs_its_timeout_once(tmp_path: Path, buses: Buses) -> None:
    sensors = system_sensors(tmp_path, buses, timeout_seconds=0.3)
    async with trio.open_nursery() as nursery:
        mutter = await serving(nursery, fake_mutter(), buses.session)
        mutter.hang = True
        await serving(nursery, fake_screensaver(idle=800), buses.session)
        started = trio.current_time()
        assert (await sensors.sample()).user_idle_seconds == Reading(0.8, "screensaver")
        assert 0.3 <= trio.current_time() - started < 1.0
        started = trio.current_time()
        assert (await sensors.sample()).user_idle_seconds.source == "screensaver"
        assert trio.current_time() - started < 0.25  # the hanging one waits its turn
        nursery.cancel_scope.cancel()
    await sensors.aclose()


@pytest.mark.slow
async def test_a_machine_without_buses_answers_at_once(tmp_path: Path) -> None:
    nothing = tmp_path / "no-system-bus"
    sensors = SystemSensors(
        idle_sources=("mutter", "logind", "command"),
        idle_command=None,
        power_supply_dir=tmp_path,
        environ={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={nothing}"},
    )
    assert not sensors.session_bus.connected  # constructing it costs nothing
    with trio.fail_after(0.5):
        sample = await sensors.sample()
    assert sample.user_idle_seconds == Reading(
        None,
        None,
        "mutter: no session bus (DBUS_SESSION_BUS_ADDRESS is not set and there is no"
        f" $XDG_RUNTIME_DIR/bus); logind: no system bus at {nothing} (No such file or"
        " directory); command: not configured (OMNIMIND_USER_IDLE_COMMAND)",
    )
    assert sample.network_metered == Reading(
        None, None, f"networkmanager: no system bus at {nothing} (No such file or directory)"
    )
    assert sample.on_ac_power.value is True
    await sensors.aclose()
