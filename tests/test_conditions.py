"""Task conditions (user_away, on_ac_power, unmetered_network) on the fake clock: what defers a
run, what freezes, cancels or thaws one, what an unknown measurement does, and what the task
says about it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio.daemon import Daemon
from omnimind_trio.exceptions import InvalidInput
from omnimind_trio.models import (
    Conditions,
    OnBusy,
    Priority,
    Reading,
    Surroundings,
    parse_task_spec,
)
from omnimind_trio.scheduling import ConditionState, TaskEntry
from omnimind_trio.sensors import FakeSensors

from .test_api import call, client, wait_for
from .test_api_schedule import BASE, add, send
from .test_scheduler import NOON, Harness, harness

__all__ = ["client"]  # the fixture, re-used

AWAY = 180.0


@dataclass
class Sensed:
    """The harness with a settable set of measurements."""

    h: Harness
    state: ConditionState
    idle: float | None = 0.0
    ac: bool | None = True
    metered: bool | None = False

    def sense(self, **changes: Any) -> None:
        """Change measurements and deliver a sample, as the condition monitor does."""
        for name, value in changes.items():
            setattr(self, name, value)
        sample = Surroundings(
            user_idle_seconds=Reading(self.idle, "command" if self.idle is not None else None),
            on_ac_power=Reading(self.ac, "sysfs" if self.ac is not None else None),
            network_metered=Reading(
                self.metered, "networkmanager" if self.metered is not None else None
            ),
        )
        if self.state.update(sample, trio.current_time()):
            self.h.scheduler.wake()

    def add(self, task_id: str, priority: Priority = Priority.HIGH, **fields: Any) -> TaskEntry:
        conditions = fields.pop("conditions", None)
        return self.h.add(
            task_id,
            priority,
            conditions=None if conditions is None else Conditions(**conditions),
            **fields,
        )


@asynccontextmanager
async def sensed(*, open_seconds: float = 0.0, close_seconds: float = 0.0) -> AsyncIterator[Sensed]:
    state = ConditionState.create(
        away_seconds=AWAY, open_seconds=open_seconds, close_seconds=close_seconds
    )
    async with harness(conditions=state) as h:
        h.load(5.0)  # an idle machine: every gate open but the sleep window's
        s = Sensed(h, state)
        s.sense()
        yield s


async def test_a_user_away_task_waits_for_the_person_to_leave_and_says_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:
        s.add("backup", conditions={"user_away": True})
        s.add("plain")
        await trio.sleep(1)
        assert s.h.runner.started("plain") == [0.0]
        assert s.h.runner.started("backup") == []
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["backup"])
        assert explained is not None
        assert explained["reason"] == "condition"
        assert (explained["condition"], explained["value"], explained["source"]) == (
            "user_away",
            0.0,
            "command",
        )
        assert explained["dwell_remaining_seconds"] == AWAY
        assert (
            "the person is present: no input for 0 s (away after 180 s; from command)"
            in (explained["detail"])
        )

        s.sense(idle=179.0)
        await trio.sleep(1)
        assert s.h.runner.started("backup") == []
        s.sense(idle=180.0)  # idle exactly away_seconds: away
        await trio.sleep(0.001)
        assert s.h.runner.started("backup") == [pytest.approx(2.0)]


async def test_the_first_input_freezes_the_run_at_once_and_leaving_again_thaws_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed(open_seconds=5.0, close_seconds=3.0) as s:  # dwell: power, network
        s.sense(idle=600.0)
        s.h.runner.durations["render"] = 100
        s.add("render", conditions={"user_away": True})
        await trio.sleep(10)
        [(_, run)] = s.h.runner.runs
        assert not run.frozen

        s.sense(idle=0.2)  # a key press: no dwell
        await trio.sleep(0)
        await trio.sleep(0)
        assert run.frozen
        assert run.freeze_reason == "the person came back (condition user_away)"
        entry = s.h.scheduler.tasks["render"]
        explained = s.h.scheduler.explain(entry)
        assert explained is not None
        assert (explained["reason"], explained["condition"]) == ("frozen", "user_away")
        assert explained["detail"].startswith("frozen until user_away: the person is present")

        s.sense(idle=100.0)  # quiet again, not yet long enough
        await trio.sleep(1)
        assert run.frozen
        s.sense(idle=AWAY)
        await trio.sleep(0.001)
        assert not run.frozen
        [(frozen_at, thawed_at)] = run.pauses
        assert thawed_at - frozen_at == pytest.approx(1.0, abs=0.01)
        await trio.sleep(200)
        assert s.h.scheduler.running_count == 0  # it finished its 100 s of work


async def test_frozen_runs_give_their_slots_to_other_tasks_and_thaw_when_one_is_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:  # max_concurrent 2
        s.sense(idle=600.0)
        for name in ("render", "encode"):
            s.h.runner.durations[name] = 100
            s.add(name, conditions={"user_away": True})
        await trio.sleep(1)
        assert s.h.scheduler.slots.running_gated == 2
        s.sense(idle=0.0)  # the person is back: both frozen, their slots free
        await trio.sleep(0.001)
        assert [run.frozen for _, run in s.h.runner.runs] == [True, True]
        s.h.runner.durations["report"] = 50
        s.add("report")  # no conditions: it runs while the others are frozen
        await trio.sleep(1)
        assert s.h.runner.started("report") == [pytest.approx(1.0, abs=0.01)]

        s.sense(idle=AWAY)  # gone again: one slot is free, one run thaws
        await trio.sleep(0.001)
        frozen = {name: run.frozen for name, run in s.h.runner.runs}
        assert frozen == {"render": False, "encode": True, "report": False}
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["encode"])
        assert explained is not None
        assert explained["detail"] == "frozen until a slot is free to thaw it (2 of 2 in use)"
        assert s.h.scheduler.running_count == 3  # a frozen run is still in flight
        await trio.sleep(60)  # report ends: encode thaws in its slot
        assert not dict(s.h.runner.runs)["encode"].frozen
        assert s.h.scheduler.slots.running_gated == 2


async def test_on_busy_cancel_and_continue_apply_to_conditions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:
        s.sense(idle=600.0)
        for name, policy in (("polite", OnBusy.CANCEL), ("stubborn", OnBusy.CONTINUE)):
            s.h.runner.durations[name] = 100
            s.add(name, conditions={"user_away": True}, on_busy=policy)
        await trio.sleep(10)
        s.sense(idle=0.0)
        await trio.sleep(1)
        runs = dict(s.h.runner.runs)
        assert s.h.runner.cancelled == ["polite"]
        assert runs["polite"].cancel_reason == (
            "the person came back (condition user_away) (on_busy=cancel)"
        )
        assert not runs["stubborn"].frozen and runs["stubborn"].pauses == []


async def test_an_unknown_measurement_counts_as_holding_and_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:
        s.sense(ac=False)  # the person is here, the laptop on battery
        s.sense(idle=None, ac=None, metered=None)  # then no source answers
        s.add(
            "anyway",
            conditions={"user_away": True, "on_ac_power": True, "unmetered_network": True},
        )
        # One failed read must not start every waiting task: the last known values stand
        # for a minute.
        for _ in range(59):
            await trio.sleep(1)
            s.sense()
        assert s.h.runner.started("anyway") == []
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["anyway"])
        assert explained is not None
        assert (explained["condition"], explained["value"]) == ("user_away", 0.0)
        await trio.sleep(1)
        s.sense()
        await trio.sleep(0.001)
        assert s.h.runner.started("anyway") == [pytest.approx(60.0, abs=0.01)]
        status = s.state.status(s.h.scheduler.tasks["anyway"].spec.conditions)
        assert [(c.name, c.holds, c.value) for c in status] == [
            ("user_away", True, None),
            ("on_ac_power", True, None),
            ("unmetered_network", True, None),
        ]
        assert all(c.detail.endswith("counts as holding") for c in status)


async def test_power_waits_out_the_dwell_and_the_first_reading_needs_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state = ConditionState.create(away_seconds=AWAY, open_seconds=5.0, close_seconds=3.0)
    on_battery = Surroundings(on_ac_power=Reading(False, "sysfs"))
    on_ac = Surroundings(on_ac_power=Reading(True, "sysfs"))
    state.update(on_ac, 0.0)  # first known reading: taken as it is
    assert state.holds("on_ac_power")
    state.update(on_battery, 1.0)
    state.update(on_battery, 3.9)
    assert state.holds("on_ac_power")  # unplugged 2.9 s: not yet
    assert state.update(on_battery, 4.0)  # 3 s: it stops holding (the change is reported)
    assert not state.holds("on_ac_power")
    state.update(on_ac, 5.0)
    state.update(on_battery, 6.0)  # a blip of AC resets the trend
    state.update(on_ac, 7.0)
    assert not state.holds("on_ac_power")
    assert state.update(on_ac, 12.0)
    assert state.holds("on_ac_power")
    # Unknown for a moment: the last known value stands, and the dwell applies.
    state.update(Surroundings(), 13.0)
    assert state.holds("on_ac_power")
    state.update(on_battery, 14.0)
    assert state.holds("on_ac_power")
    # Unknown for over a minute: it holds, then the first known value counts at once.
    state.update(Surroundings(), 20.0)
    state.update(Surroundings(), 80.0)
    assert state.reading("on_ac_power").value is None and state.holds("on_ac_power")
    state.update(on_battery, 81.0)
    assert not state.holds("on_ac_power")


async def test_going_on_battery_freezes_an_on_ac_power_run_and_a_metered_network_defers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed(open_seconds=5.0, close_seconds=3.0) as s:
        s.h.runner.durations["sync"] = 100
        s.add("sync", conditions={"on_ac_power": True})
        s.add("upload", conditions={"unmetered_network": True})
        await trio.sleep(1)
        [(_, run)] = [r for r in s.h.runner.runs if r[0] == "sync"]
        assert s.h.runner.started("upload") == [0.0]

        for _ in range(4):  # on battery for 3 s, sampled every second
            s.sense(ac=False)
            await trio.sleep(1)
        assert run.frozen
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["sync"])
        assert explained is not None
        assert (explained["condition"], explained["value"]) == ("on_ac_power", False)

        s.sense(metered=True)
        s.add("upload2", conditions={"unmetered_network": True}, due_in=5)
        for _ in range(10):
            s.sense()
            await trio.sleep(1)
        assert s.h.runner.started("upload2") == []  # metered for 3 s before it was due
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["upload2"])
        assert explained is not None
        assert explained["detail"] == (
            "waiting for unmetered_network: metered; from networkmanager"
        )


async def test_a_deferred_task_holds_back_no_one_and_critical_tasks_wait_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:
        s.sense(ac=False)
        s.add("first", conditions={"on_ac_power": True})
        s.add("second")
        s.add("urgent-but-plugged", Priority.CRITICAL, conditions={"on_ac_power": True})
        await trio.sleep(1)
        assert s.h.runner.started("second") == [0.0]
        assert s.h.runner.started("first") == []
        assert s.h.runner.started("urgent-but-plugged") == []
        s.sense(ac=True)
        await trio.sleep(0.001)
        assert s.h.runner.started("first") == [pytest.approx(1.0)]
        assert s.h.runner.started("urgent-but-plugged") == [pytest.approx(1.0)]


async def test_max_delay_and_run_now_win_over_conditions_and_are_never_frozen_by_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed() as s:
        s.sense(idle=0.0)
        for name in ("late", "manual"):
            s.h.runner.durations[name] = 1000
        s.add("late", conditions={"user_away": True}, max_delay_hours=1)
        s.add("manual", conditions={"user_away": True}, due_in=86400)
        s.h.scheduler.run_now("manual")
        await trio.sleep(1)
        assert s.h.runner.started("manual") == [0.0]
        explained = s.h.scheduler.explain(s.h.scheduler.tasks["late"])
        assert explained is not None
        assert explained["run_by"] == pytest.approx(NOON + 3600)
        await trio.sleep(3600)
        assert s.h.runner.started("late") == [pytest.approx(3600.0)]
        s.sense(idle=600.0)
        s.sense(idle=0.0)
        await trio.sleep(1)
        assert all(not run.frozen for _, run in s.h.runner.runs)


def test_conditions_are_validated_naming_what_is_wrong() -> None:
    def parse(conditions: Any) -> Any:
        body = {
            "task_id": "t",
            "name": "t",
            "description": "",
            "priority": "LOW",
            "code": "def execute(): pass",
            "conditions": conditions,
        }
        return parse_task_spec(body, max_code_bytes=10_000).conditions

    assert parse({"user_away": True}) == Conditions(user_away=True)
    assert parse({}) == Conditions()
    assert parse(None) is None
    cases = {
        "conditions: unknown name 'on_wifi' (known: user_away, on_ac_power, unmetered_network)": {
            "on_wifi": True
        },
        "conditions.user_away: Input should be a valid boolean": {"user_away": "yes"},
        "conditions.on_ac_power: Input should be a valid boolean": {"on_ac_power": 1},
        "conditions: Input should be an object": ["user_away"],
    }
    for message, conditions in cases.items():
        with pytest.raises(InvalidInput) as caught:
            parse(conditions)
        assert str(caught.value) == message


# -- over the API, on a whole daemon with fake sensors --------------------------------------


async def test_conditions_over_the_api(client: Any, daemon: Daemon, sensors: FakeSensors) -> None:
    body = {**BASE, "priority": "CRITICAL", "code": "def execute():\n    return 1"}
    bad = {**body, "conditions": {"user_away": True, "on_wifi": True}}
    assert await send(client, "POST", "/daemon/tasks/add", bad, 400) == {
        "detail": "conditions: unknown name 'on_wifi' (known: user_away, on_ac_power, "
        "unmetered_network)"
    }
    assert not daemon.has_task(BASE["task_id"])  # a refused add changes nothing

    sensors.user_idle_seconds = 12.0  # the person is here
    await wait_for(lambda: daemon.machine().conditions.user_idle_seconds.value == 12.0)
    await add(client, conditions={"user_away": True}, priority="CRITICAL")
    task_id = BASE["task_id"]
    detail = await send(client, "GET", f"/daemon/tasks/{task_id}")
    assert detail["conditions"] == {
        "user_away": True,
        "on_ac_power": False,
        "unmetered_network": False,
    }
    assert detail["status"] == "waiting"
    assert detail["waiting"]["reason"] == "condition"
    assert (detail["waiting"]["condition"], detail["waiting"]["value"]) == ("user_away", 12.0)
    assert detail["conditions_status"] == [
        {
            "name": "user_away",
            "holds": False,
            "value": 12.0,
            "source": "fake",
            "detail": "user_away: the person is present: no input for 12 s "
            "(away after 180 s; from fake)",
        }
    ]
    machine = await send(client, "GET", "/daemon/machine")
    assert machine["conditions"]["holding"] == ["on_ac_power", "unmetered_network"]
    metrics = (await (await call(client, "GET", "/metrics")).get_data()).decode()
    assert "omnimind_user_idle_seconds 12.0" in metrics
    assert "omnimind_network_metered 0.0" in metrics

    patched = await send(client, "PATCH", f"/daemon/tasks/{task_id}", {"conditions": None})
    assert patched["task"]["conditions"] is None
    await wait_for(lambda: daemon.get_task(task_id).execution_count == 1)


async def test_unplugged_a_moment_a_running_task_goes_on_but_no_new_one_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with sensed(open_seconds=5.0, close_seconds=3.0) as s:
        s.h.runner.durations["sync"] = 100
        s.add("sync", conditions={"on_ac_power": True})
        await trio.sleep(1)
        s.sense(ac=False)  # the cable slips out
        s.add("backup", conditions={"on_ac_power": True})
        await trio.sleep(1)
        s.sense()
        [(_, sync)] = [r for r in s.h.runner.runs if r[0] == "sync"]
        assert not sync.frozen  # within the close dwell: a blip spares it
        assert s.h.runner.started("backup") == []  # but nothing new starts on battery
        s.sense(ac=True)  # plugged back in
        await trio.sleep(0.001)
        assert s.h.runner.started("backup") == [pytest.approx(2.0, abs=0.01)]
        assert not sync.frozen and sync.pauses == []
