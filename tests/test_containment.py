"""Containment: no process a task starts outlives its run or the daemon.

A task's escapees leave its process group: one by ``Popen(start_new_session=True)``, one by
a double fork with ``setsid``. Their pids are written to a file; after the run ends (by
itself, a timeout, a cancel, the task's deletion, a graceful SIGTERM of the daemon, or a
``kill -9`` of the fork server then of the daemon followed by a restart) they must be gone.
Executor-level cases run once with the subreaper keeper alone and once with a cgroup per
run, where this machine delegates a cgroup v2 subtree to us.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest
import trio

from omnimind_trio import Settings, open_daemon
from omnimind_trio.execution import (
    Executor,
    Job,
    _cgroups,
    classify,
    kill_tree,
    open_executor,
    process_start,
)
from omnimind_trio.models import ExecutionRecord, Outcome, Trigger
from omnimind_trio.store import MemoryStore, RunProcess

from .conftest import make_settings
from .test_process import Served, add, spawn, wait_for

__all__ = ["spawn"]

GONE_SECONDS = 5.0


def escaping_code(pids_file: Path, then: str) -> str:
    """A task that starts two escapees, writes their pids to ``pids_file``, then ``then``."""
    return (
        "def execute():\n"
        "    import json, os, subprocess, time\n"
        "    first = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "    r, w = os.pipe()\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            os.execvp('sleep', ['sleep', '300'])\n"
        "        os.write(w, str(pid).encode())\n"
        "        os._exit(0)\n"
        "    os.close(w)\n"
        "    second = int(os.read(r, 32))\n"
        "    os.wait()\n"
        f"    tmp = {str(pids_file)!r} + '.tmp'\n"
        "    with open(tmp, 'w') as f:\n"
        "        json.dump([first.pid, second], f)\n"
        f"    os.rename(tmp, {str(pids_file)!r})\n"
        f"    {then}\n"
    )


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that still runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pids(path: Path, timeout: float = 10.0) -> list[int]:
    wait_for(path.exists, timeout, f"the task to write {path.name}")
    pids: list[int] = json.loads(path.read_text())
    return pids


def assert_all_gone(pids: list[int]) -> None:
    wait_for(lambda: not any(running(pid) for pid in pids), GONE_SECONDS, f"{pids} to end")


def assert_all_reaped(pids: list[int]) -> None:
    """Gone, not even zombies: the run's keeper reaped the orphans it inherited."""
    wait_for(
        lambda: not any(psutil.pid_exists(pid) for pid in pids), GONE_SECONDS, f"{pids} reaped"
    )


def cleanup(pids: list[int]) -> None:
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


MODES = ["subreaper", "cgroup"]


@pytest.fixture(params=MODES)
async def executor(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Executor]:
    key = None
    if request.param == "cgroup":
        key = str(tmp_path / "key.db")
        if _cgroups.runs_base(key) is None:
            pytest.skip("no cgroup v2 subtree is delegated to us here")
    async with open_executor(sys.executable, cgroup_key=key) as opened:
        assert (opened.cgroups is not None) == (request.param == "cgroup")
        yield opened


async def run_escaping(
    executor: Executor, tmp_path: Path, then: str, **job: float
) -> tuple[Outcome, list[int], trio.CancelScope]:
    pids_file = tmp_path / "pids.json"
    code = escaping_code(pids_file, then)
    spec = Job(code=code, filename="<escape>", cwd=str(tmp_path), **job)  # type: ignore[arg-type]
    scope = trio.CancelScope(deadline=trio.current_time() + spec.timeout_seconds)
    result = None

    async def go() -> None:
        nonlocal result
        result = await executor.run(spec, scope=scope)

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(go)
            if "timeout_seconds" not in job and then != "return 1":
                while not pids_file.exists():
                    await trio.sleep(0.01)
                scope.cancel()
    assert result is not None
    outcome, _, _ = classify(result, spec)
    return outcome, json.loads(pids_file.read_text()), scope


@pytest.mark.slow
async def test_escapees_end_with_a_run_that_returns(executor: Executor, tmp_path: Path) -> None:
    outcome, pids, _ = await run_escaping(executor, tmp_path, "return 1")
    try:
        assert outcome is Outcome.SUCCEEDED  # the outcome is still the task's own
        assert_all_reaped(pids)
    finally:
        cleanup(pids)


@pytest.mark.slow
async def test_escapees_end_with_a_timeout(executor: Executor, tmp_path: Path) -> None:
    outcome, pids, _ = await run_escaping(
        executor, tmp_path, "time.sleep(300)", timeout_seconds=1.0
    )
    try:
        assert outcome is Outcome.TIMED_OUT
        assert_all_reaped(pids)
    finally:
        cleanup(pids)


@pytest.mark.slow
async def test_escapees_end_with_a_cancel(executor: Executor, tmp_path: Path) -> None:
    outcome, pids, _ = await run_escaping(executor, tmp_path, "time.sleep(300)")
    try:
        assert outcome is Outcome.CANCELLED
        assert_all_reaped(pids)
    finally:
        cleanup(pids)


def test_a_recycled_pid_is_not_killed() -> None:
    decoy = subprocess.Popen(["sleep", "300"])
    try:
        start = process_start(decoy.pid)
        assert start is not None and process_start(os.getpid()) != start
        boot, ticks = start.rsplit("/", 1)
        # The pid as recorded for another process: same pid, another start time.
        assert kill_tree(decoy.pid, f"{boot}/{int(ticks) - 1}") == set()
        assert kill_tree(decoy.pid, f"another-boot/{ticks}") == set()
        time.sleep(0.05)
        assert decoy.poll() is None
        assert kill_tree(decoy.pid, start) == {decoy.pid}
        assert decoy.wait(timeout=GONE_SECONDS) == -signal.SIGKILL
    finally:
        decoy.kill()
        decoy.wait()


TREE = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"


@pytest.mark.slow
async def test_a_start_kills_the_recorded_runs_left_running_and_spares_recycled_pids(
    tmp_path: Path,
) -> None:
    """What the next start does after a crash: the runs recorded ``running`` have their
    processes (matched by pid and start time) killed, with their descendants, and close as
    interrupted. A recorded pid now used by another process is left alone."""
    left = subprocess.Popen([sys.executable, "-c", TREE])
    decoy = subprocess.Popen(["sleep", "300"])
    try:
        wait_for(lambda: psutil.Process(left.pid).children(), 5.0, "the leftover's child")
        (grandchild,) = psutil.Process(left.pid).children()
        store = MemoryStore()
        for execution_id, process in (
            ("left", RunProcess(left.pid, process_start(left.pid))),
            ("recycled", RunProcess(decoy.pid, "another-boot/1")),
        ):
            await store.start_execution(
                ExecutionRecord(
                    execution_id=execution_id,
                    task_id="t",
                    registration_id=None,  # a task no longer stored
                    registered_at=None,
                    trigger=Trigger.SCHEDULE,
                    outcome=Outcome.RUNNING,
                    scheduled_at=1.0,
                    started_at=1.0,
                ),
                last_execution=1.0,
                next_due=None,
            )
            await store.record_process(execution_id, process)
        settings: Settings = make_settings(tmp_path)
        async with open_daemon(settings, store=store, autostart=False):
            for execution_id in ("left", "recycled"):
                closed = await store.get_execution(execution_id)
                assert closed is not None and closed.outcome is Outcome.INTERRUPTED
        assert left.wait(timeout=GONE_SECONDS) == -signal.SIGKILL
        assert_all_gone([grandchild.pid])
        assert decoy.poll() is None
    finally:
        for process in (left, decoy):
            process.kill()
            process.wait()


# -- the daemon as a process ---------------------------------------------------------------


def fork_server_of(served: Served) -> psutil.Process:
    def find() -> psutil.Process | None:
        for child in psutil.Process(served.pid).children():
            if any(part.endswith("_worker.py") for part in child.cmdline()):
                return child
        return None

    found: psutil.Process = wait_for(find, 5.0, "the fork server")
    return found


def start_escaping(served: Served, task_id: str) -> list[int]:
    pids_file = served.workspace / f"{task_id}.json"
    with served.client() as client:
        add(client, task_id, escaping_code(pids_file, "time.sleep(300)"), timeout_seconds=120)
    return read_pids(pids_file)


@pytest.mark.slow
def test_escapees_end_when_their_task_is_deleted(spawn: Callable[..., Served]) -> None:
    served = spawn()
    pids = start_escaping(served, "doomed")
    try:
        with served.client() as client:
            assert client.delete("/daemon/tasks/doomed").status_code == 200
        assert_all_gone(pids)
    finally:
        cleanup(pids)


@pytest.mark.slow
def test_escapees_end_with_a_graceful_stop_of_the_daemon(spawn: Callable[..., Served]) -> None:
    served = spawn()
    pids = start_escaping(served, "stays")
    try:
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=10) == 0
        assert_all_gone(pids)
    finally:
        cleanup(pids)


@pytest.mark.slow
def test_a_keeper_ends_its_run_when_the_fork_server_then_the_daemon_are_killed(
    spawn: Callable[..., Served],
) -> None:
    served = spawn()
    pids = start_escaping(served, "one")
    try:
        fork_server_of(served).kill()
        time.sleep(0.2)  # the run goes on without its fork server, watched by the daemon
        assert all(running(pid) for pid in pids)
        served.proc.kill()
        assert_all_gone(pids)  # its keeper saw the daemon die
    finally:
        cleanup(pids)


@pytest.mark.slow
@pytest.mark.parametrize("cgroups", ["1", "0"])
def test_runs_left_by_a_crash_are_killed_at_the_next_start_and_interrupted(
    spawn: Callable[..., Served], cgroups: str
) -> None:
    """The keepers are frozen first, as if they could not act: what is left of the runs
    is then found by the next start, from its records (and, with cgroups, its cgroups)."""
    env = {"OMNIMIND_TASK_CGROUPS": cgroups}
    served = spawn(env=env)
    pids = start_escaping(served, "one") + start_escaping(served, "two")
    try:
        fork_server = fork_server_of(served)
        keepers = fork_server.children()
        assert len(keepers) == 2
        for keeper in keepers:
            keeper.suspend()
        fork_server.kill()
        served.proc.kill()
        served.proc.wait(timeout=10)
        time.sleep(0.2)
        assert all(running(pid) for pid in pids)  # the bug, without the next start
        again = spawn(home=served.home, env=env)
        assert_all_gone(pids)
        assert_all_gone([keeper.pid for keeper in keepers])
        with again.client() as client:
            for task_id in ("one", "two"):
                found = client.get(f"/daemon/tasks/{task_id}/executions").json()
                assert "interrupted" in [r["outcome"] for r in found["executions"]]
    finally:
        cleanup(pids)
