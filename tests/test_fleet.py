"""Two daemons on one PostgreSQL database, in one process: what one is told, the other
knows within a second (and tells its WebSocket clients); a run is done by one of them; a
task runs only on the machines it names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.daemon import Daemon
from omnimind_trio.models import Outcome

from .conftest import make_settings
from .pg_cluster import Cluster
from .test_daemon import code_task, history, wait_for

ONE = "def execute():\n    return 1\n"
SLOW = "import time\n\ndef execute():\n    time.sleep(0.5)\n    return 'slow'\n"


@asynccontextmanager
async def fleet(url: str, tmp_path: Path, **more: Any) -> AsyncIterator[tuple[Daemon, Daemon]]:
    async with (
        open_daemon(
            make_settings(tmp_path / "desk", database=url, node_name="desk", **more),
            metrics_source=FakeSource(),
        ) as desk,
        open_daemon(
            make_settings(tmp_path / "lap", database=url, node_name="lap", **more),
            metrics_source=FakeSource(),
        ) as lap,
    ):
        yield desk, lap


def dirs(tmp_path: Path) -> None:
    for name in ("desk", "lap"):
        (tmp_path / name).mkdir()


async def test_changes_through_one_daemon_reach_the_other_and_its_clients(
    postgres: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    dirs(tmp_path)
    async with fleet(postgres_url, tmp_path) as (desk, lap):
        assert desk.status().cloud_enabled and lap.status().cloud_enabled
        seen: list[tuple[str, Any]] = []
        with lap.subscribe() as events:

            async def listen() -> None:
                async for event in events:
                    seen.append((event.type, event.data.get("task_id")))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                await desk.add_task(code_task("shared", ONE, repeat_hours=1), paused=True)
                await wait_for(lambda: "shared" in lap._scheduler.tasks, 1)
                assert lap._scheduler.tasks["shared"].paused
                await lap.resume_task("shared")  # through the other one
                await wait_for(lambda: not desk._scheduler.tasks["shared"].paused, 1)
                # It runs once, on one of them; both count it.
                await wait_for(lambda: desk._scheduler.tasks["shared"].counters.success_count, 5)
                await wait_for(lambda: lap._scheduler.tasks["shared"].counters.success_count, 5)
                run_id = desk.run_task_now("shared")
                await wait_for(lambda: seen.count(("execution_finished", "shared")) == 2, 5)
                await desk.delete_task("shared")
                await wait_for(lambda: ("task_removed", "shared") in seen, 1)
                assert "shared" not in lap._scheduler.tasks
                nursery.cancel_scope.cancel()
        kinds = [kind for kind, task_id in seen if task_id == "shared"]
        assert kinds[0] == "task_added" and kinds[-1] == "task_removed", kinds
        assert "execution_started" in kinds and "execution_finished" in kinds
        runs = await history(desk, "shared")
        assert len(runs) == 2 and {r.outcome for r in runs} == {Outcome.SUCCEEDED}
        (by_request,) = [r for r in runs if r.execution_id == run_id]
        assert by_request.node == "desk"  # a run-now runs where it was asked
        nodes = {n.node: n for n in await lap.nodes()}
        assert set(nodes) == {"desk", "lap"} and nodes["lap"].this and nodes["desk"].alive


async def test_each_due_run_is_done_once_by_one_daemon(
    postgres: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    dirs(tmp_path)
    async with fleet(postgres_url, tmp_path) as (desk, lap):
        for n in range(10):
            await desk.add_task(code_task(f"t{n}", SLOW))  # one-shots, due now on both
        await wait_for(lambda: len(lap._scheduler.tasks) >= 10, 2)

        async def done() -> list[Any]:
            records, _ = await desk._store.list_executions(limit=100)
            return [r for r in records if r.task_id.startswith("t")]

        with trio.fail_after(20):
            while len([r for r in await done() if r.outcome is Outcome.SUCCEEDED]) < 10:
                await trio.sleep(0.05)
        await wait_for(lambda: desk.executions_running + lap.executions_running == 0, 5)
        records = await done()
        assert sorted(r.task_id for r in records) == [f"t{n}" for n in range(10)], [
            (r.task_id, r.node, r.trigger.value, r.scheduled_at, r.started_at, r.registration_id)
            for r in records
            if [q.task_id for q in records].count(r.task_id) > 1
        ]  # once each
        assert {r.node for r in records} <= {"desk", "lap"}
        for daemon in (desk, lap):  # both know every run, whoever ran it
            await wait_for(
                lambda d=daemon: all(
                    e.counters.execution_count == 1
                    for e in d._scheduler.tasks.values()
                    if e.task_id.startswith("t")
                ),
                12,
            )


async def test_a_task_runs_only_on_the_machines_it_names(
    postgres: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    dirs(tmp_path)
    async with fleet(postgres_url, tmp_path) as (desk, lap):
        for n in range(4):
            await desk.add_task(code_task(f"lap-only-{n}", ONE, machines=("lap",)))
        for n in range(4):
            with trio.fail_after(10):
                while not (records := await history(desk, f"lap-only-{n}")):
                    await trio.sleep(0.05)
            assert [r.node for r in records] == ["lap"]
        await wait_for(lambda: lap.executions_running == 0, 10)
        assert desk.executions_running == 0  # never started one


async def test_a_daemon_stopped_mid_run_hands_the_run_to_the_other(
    postgres: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    dirs(tmp_path)
    long = "import time\n\ndef execute():\n    time.sleep(3)\n    return 'done'\n"
    async with fleet(postgres_url, tmp_path, lease_seconds=5) as (desk, lap):
        lap.stop()
        await lap.wait_stopped()  # so that desk runs it
        await desk.add_task(code_task("long", long))
        await wait_for(lambda: desk.executions_running == 1, 5)
        assert await lap.start()
        desk.stop()
        await desk.wait_stopped()
        with trio.fail_after(15):
            while not [r for r in await history(lap, "long") if r.outcome is Outcome.SUCCEEDED]:
                await trio.sleep(0.1)
        runs = sorted(await history(lap, "long"), key=lambda r: r.attempt)
        assert [(r.node, r.outcome, r.trigger.value, r.attempt) for r in runs] == [
            ("desk", Outcome.CANCELLED, "schedule", 0),
            ("lap", Outcome.SUCCEEDED, "takeover", 1),
        ]
        assert runs[0].reason == (
            "the daemon was stopped; another daemon of the fleet runs it again"
        )
