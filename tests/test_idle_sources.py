"""Each source of the person's idle time on its own: the D-Bus ones against fake services
on private buses, the command one with real scripts."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from omnimind_trio.dbus import BusClient
from omnimind_trio.sensors import (
    CommandIdle,
    LogindIdle,
    MutterIdle,
    ScreenSaverIdle,
    SourceFailed,
    UnitGuess,
)

from .dbus_fakes import (
    MUTTER,
    Buses,
    answer,
    buses,
    fake_logind,
    fake_mutter,
    fake_screensaver,
    serving,
    set_logind,
)

__all__ = ["buses"]  # the fixture, re-used


# -- mutter ------------------------------------------------------------------------


@pytest.mark.slow
async def test_mutter_answers_milliseconds_read_as_seconds(buses: Buses) -> None:
    bus = BusClient(buses.session)
    source = MutterIdle(bus)
    with pytest.raises(SourceFailed, match=r"^org\.gnome\.Mutter\.IdleMonitor is not on the"):
        await source.idle_seconds()
    async with trio.open_nursery() as nursery:
        mutter = await serving(nursery, fake_mutter(idle_ms=183_250), buses.session)
        assert await source.idle_seconds() == 183.25
        mutter.state["idle"] = 40
        assert await source.idle_seconds() == 0.04
        core = ("/org/gnome/Mutter/IdleMonitor/Core", MUTTER, "GetIdletime")
        mutter.methods[core] = answer("s", "soon")  # not a count: that is no answer
        with pytest.raises(SourceFailed, match=r"answered \('soon',\), not a count$"):
            await source.idle_seconds()
        nursery.cancel_scope.cancel()
    await bus.aclose()


# -- screensaver -------------------------------------------------------------------


def test_the_unit_is_told_by_how_fast_the_value_grows() -> None:
    seconds, millis = UnitGuess(), UnitGuess()
    # Unknown at first: read as milliseconds (too small if it is seconds: never away early).
    assert seconds.seconds(200, now=0.0) == 0.2
    assert millis.seconds(200_000, now=0.0) == 200.0
    for t in (1.0, 2.0):  # under three seconds: still unknown
        assert seconds.seconds(200 + int(t), now=t) == (200 + t) / 1000
        millis.seconds(200_000 + int(1000 * t), now=t)
    assert seconds.seconds(203, now=3.0) == 203.0  # 1 per second, sample after sample
    assert millis.seconds(203_000, now=3.0) == 203.0  # 1000 per second: milliseconds
    assert (seconds.unit, millis.unit) == ("s", "ms")
    # An input between two readings (the value drops) starts the measure again.
    guess = UnitGuess()
    guess.seconds(5000, now=0.0)
    guess.seconds(300, now=1.5)
    guess.seconds(1300, now=2.5)
    guess.seconds(2300, now=3.5)
    assert guess.unit is None  # 1000 per second, but for two seconds only
    guess.seconds(3300, now=4.5)
    assert guess.unit == "ms"
    # An idle time that does not grow (a busy person, in seconds) decides nothing.
    still = UnitGuess()
    for t in range(10):
        assert still.seconds(0, now=float(t)) == 0.0
    assert still.unit is None


def test_a_person_typing_on_kde_is_never_taken_for_seconds() -> None:
    """KDE answers milliseconds; while the person types they are small and random. Read as
    seconds they would make the person 'away' after 180 ms (the review's finding: the old
    guess took them for seconds in 185 runs of 200)."""
    rng = random.Random(14)
    for run in range(200):
        guess, now, last_input, next_input = UnitGuess(), 0.0, 0.0, 0.0
        for _ in range(600):  # five minutes of samples every 0.5 s
            now += 0.5
            while next_input < now:  # an input every 150 ms on average
                last_input, next_input = next_input, next_input + rng.expovariate(1 / 0.15)
            guess.seconds(int(1000 * (now - last_input)), now)
        assert guess.unit != "s", f"run {run}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "unit", "values", "expected"),
    [
        ("/org/freedesktop/ScreenSaver", "s", (0, 1, 3), (0.0, 0.001, 3.0)),
        ("/ScreenSaver", "ms", (10, 1010, 3010), (0.01, 1.01, 3.01)),  # KDE Plasma
    ],
)
async def test_the_screensaver_in_seconds_or_in_milliseconds(
    buses: Buses,
    mock_clock: trio.testing.MockClock,
    path: str,
    unit: str,
    values: tuple[int, ...],
    expected: tuple[float, ...],
) -> None:
    bus = BusClient(buses.session)
    source = ScreenSaverIdle(bus)
    async with trio.open_nursery() as nursery:
        screensaver = await serving(nursery, fake_screensaver(paths=(path,)), buses.session)
        read = []
        for value in values:  # nobody types: the value grows a second each second
            screensaver.state["idle"] = value
            read.append(await source.idle_seconds())
            mock_clock.jump(1.0 if value == values[0] else 2.0)
        assert tuple(read) == expected
        assert source.guess.unit == unit
        nursery.cancel_scope.cancel()
    await bus.aclose()


# -- logind ------------------------------------------------------------------------


@pytest.mark.slow
async def test_logind_counts_only_once_its_hint_changed_since_boot(buses: Buses) -> None:
    bus = BusClient(buses.system, bus="system bus")
    source = LogindIdle(bus)
    with pytest.raises(SourceFailed, match=r"^org\.freedesktop\.login1 is not on the system bus$"):
        await source.idle_seconds()
    async with trio.open_nursery() as nursery:
        logind = await serving(nursery, fake_logind(), buses.system)
        # At boot: "idle since 1970" (both since values 0). Not an answer.
        with pytest.raises(SourceFailed, match=r"^idle hint not set since boot$"):
            await source.idle_seconds()
        # The desktop said the session went idle 42 s ago (CLOCK_MONOTONIC microseconds).
        since = int((time.monotonic() - 42) * 1e6)
        set_logind(logind, True, since, int((time.time() - 42) * 1e6))
        assert 42 <= await source.idle_seconds() < 43
        # Back: the hint is false, whenever it changed.
        set_logind(logind, False, int(time.monotonic() * 1e6), int(time.time() * 1e6))
        assert await source.idle_seconds() == 0.0
        # Only the wall-clock "since" is set: it is read on the wall clock.
        set_logind(logind, True, 0, int((time.time() - 10) * 1e6))
        assert 10 <= await source.idle_seconds() < 11
        nursery.cancel_scope.cancel()
    await bus.aclose()


# -- command -----------------------------------------------------------------------


def script(folder: Path, body: str) -> str:
    path = folder / "idle.sh"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.slow
async def test_the_command_prints_milliseconds_read_from_a_file(tmp_path: Path) -> None:
    value = tmp_path / "idle"
    command = script(tmp_path, f"cat '{value}'")
    source = CommandIdle(f"{command} --ignored 'an argument'")
    value.write_text("183250\n")
    assert await source.idle_seconds() == 183.25
    value.write_text("7")  # no newline: also fine
    assert await source.idle_seconds() == 0.007


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("echo 'no idea'", r"^.*idle\.sh printed 'no idea', not milliseconds$"),
        ("echo 12.5", r"printed '12\.5', not milliseconds$"),
        ("echo -5", r"printed '-5', not milliseconds$"),
        ("echo", r"printed '', not milliseconds$"),
        ("echo 'cannot open display' >&2; exit 3", r"idle\.sh: exit status 3: 'cannot open"),
        ("kill -9 $$", r"idle\.sh: killed by signal 9$"),
    ],
)
async def test_a_command_that_does_not_answer_a_count_does_not_work(
    tmp_path: Path, body: str, detail: str
) -> None:
    with pytest.raises(SourceFailed, match=detail):
        await CommandIdle(script(tmp_path, body)).idle_seconds()


@pytest.mark.slow
async def test_a_command_that_hangs_is_killed_with_its_children(tmp_path: Path) -> None:
    child = tmp_path / "child"
    source = CommandIdle(
        script(tmp_path, f"sleep 30 & echo $! > '{child}'; wait"), timeout_seconds=0.3
    )
    started = trio.current_time()
    with pytest.raises(SourceFailed, match=r"idle\.sh did not answer within 0\.3 s \(killed\)$"):
        await source.idle_seconds()
    assert trio.current_time() - started < 1.0
    pid = int(child.read_text())
    with trio.fail_after(5):  # the kill is delivered; the orphan is reaped by init
        while _alive(pid):
            await trio.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("command", "detail"),
    [
        (None, r"^not configured \(OMNIMIND_USER_IDLE_COMMAND\)$"),
        ("  ", r"^not configured"),
        ("xprintidle 'unbalanced", r"^cannot split .*: No closing quotation$"),
        ("/nonexistent/xprintidle", r"^/nonexistent/xprintidle: no such program$"),
    ],
)
async def test_a_command_missing_or_unusable_does_not_work(
    command: str | None, detail: str
) -> None:
    with pytest.raises(SourceFailed, match=detail):
        await CommandIdle(command).idle_seconds()


@pytest.mark.slow
async def test_a_command_that_is_not_executable_says_so(tmp_path: Path) -> None:
    path = tmp_path / "idle.sh"
    path.write_text("#!/bin/sh\necho 1\n")
    os.chmod(path, 0o644)
    with pytest.raises(SourceFailed, match=r"idle\.sh: Permission denied$"):
        await CommandIdle(str(path)).idle_seconds()


@pytest.mark.slow
async def test_a_cancelled_command_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    source = CommandIdle(script(tmp_path, f"echo $$ > '{pid_file}'; exec sleep 30"))
    with trio.move_on_after(5) as scope:  # cancelled once the command runs
        async with trio.open_nursery() as nursery:
            nursery.start_soon(source.idle_seconds)
            while not pid_file.exists() or not pid_file.read_text().strip():
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    pid = int(pid_file.read_text())
    with trio.fail_after(5):
        while _alive(pid):
            await trio.sleep(0.01)


@pytest.mark.slow
async def test_without_pidfd_the_end_is_awaited_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pidfd_open")  # Linux before 5.3
    value = tmp_path / "idle"
    value.write_text("2500")
    assert await CommandIdle(script(tmp_path, f"cat '{value}'")).idle_seconds() == 2.5


@pytest.mark.slow
async def test_a_command_is_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "idle").write_text("1500")
    script(tmp_path, f"cat '{tmp_path / 'idle'}'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert await CommandIdle("idle.sh").idle_seconds() == 1.5
    with pytest.raises(SourceFailed, match=r"^xprintidle-nowhere: no such program on PATH$"):
        await CommandIdle("xprintidle-nowhere").idle_seconds()
