"""R. A fleet on one PostgreSQL (issue 15): how fast three daemons claim the runs they all
find due, beside one daemon alone, and how long a run of a daemon killed with ``kill -9``
waits before another daemon of the fleet takes it over.

Claims: three stores opened as daemons ``a``, ``b`` and ``c`` (``open_store(url,
node=...)``) on one database of a throwaway cluster with PostgreSQL's defaults (a flushed
WAL at each commit, as in Q), in one process. Each walks the same N occurrences of one task
in the same order, as daemons finding the same due runs do, and tries to claim each
(``fleet.claim``: the claim and the run's start record, one transaction); the one that wins
writes the run's final record (``fleet.finish``). Every occurrence must be won exactly once.
Beside it, in the same run, one store alone claims and finishes N occurrences. The rate is
N over the wall time; a claim attempt's latency counts the losers' attempts too.

Takeover: three ``omnimind serve`` processes on one database (``OMNIMIND_LEASE_SECONDS=5``),
a CRITICAL task sleeping 30 s added through one of them; the daemon that claimed its run is
killed (SIGKILL) as soon as its claim is seen in ``claims`` (so its lease was just set: the
worst case), and the figure is the time from the kill to the ``started_at`` of the run's
``takeover`` record, written by the daemon that took it over. N/A where PostgreSQL is
not installed.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import trio

from omnimind_trio.models import (
    ExecutionRecord,
    Outcome,
    Priority,
    TaskCounters,
    TaskSpec,
    Trigger,
)
from omnimind_trio.store import Fleet, Occurrence, StoredTask, open_store
from tests import pg_cluster
from tests.test_process import task_body

from .common import (
    Figure,
    Mode,
    Server,
    base_env,
    free_port,
    log,
    omnimind_command,
    percentile,
    running_server,
    skipped,
    temp_home,
)

NODES = ("a", "b", "c")
CODE = "def execute():\n    return 1\n"
REGISTRATION = f"{1:032x}"
LEASE_SECONDS = 5.0
SLEEP_CODE = "import time\n\ndef execute():\n    time.sleep(30)\n    return 'ok'\n"
CLAIM_WAIT_SECONDS = 20.0
"""How long the task may wait for a daemon to claim its run."""
TAKEOVER_WAIT_SECONDS = 4 * LEASE_SECONDS
"""How long the run may wait to be taken over before the repetition counts as failed."""


# -- claims per second ---------------------------------------------------------------------


def _task() -> StoredTask:
    spec = TaskSpec("t", "Task", "a task", Priority.MEDIUM, CODE, repeat_hours=24)
    return StoredTask(spec, TaskCounters(), 1, False, 100.0, 0.0, REGISTRATION)


def _start(node: str, i: int) -> ExecutionRecord:
    """The start record of occurrence ``i`` as daemon ``node`` writes it: an execution id of
    its own (every attempt has one; the losers' are never written)."""
    now = time.time()
    return ExecutionRecord(
        execution_id=f"{node}-{i}-{uuid.uuid4().hex[:8]}",
        task_id="t",
        registration_id=REGISTRATION,
        registered_at=100.0,
        node=node,
        trigger=Trigger.SCHEDULE,
        outcome=Outcome.RUNNING,
        scheduled_at=float(i),
        started_at=now,
    )


def _final(start: ExecutionRecord) -> ExecutionRecord:
    return start.model_copy(
        update={
            "outcome": Outcome.SUCCEEDED,
            "finished_at": time.time(),
            "result": {"status": "completed"},
            "stdout": "done\n",
        }
    )


async def _walk(fleet: Fleet, count: int, won: list[int], latencies: list[float]) -> None:
    """Try every occurrence in order, as a daemon finding each due; finish the ones won."""
    for i in range(count):
        start = _start(fleet.node, i)
        t0 = time.perf_counter()
        due = Occurrence("due", at=float(i))  # stored next_due: i, once i - 1 was claimed
        claim = await fleet.claim(start, due, last_execution=float(i), next_due=i + 1.0)
        latencies.append((time.perf_counter() - t0) * 1000)
        if claim is not None:
            won.append(i)
            if not await fleet.finish(_final(start), claim):
                raise AssertionError(f"{fleet.node} lost its own claim of occurrence {i}")


async def _claims(url: str, nodes: tuple[str, ...], count: int) -> tuple[float, list[float]]:
    """Claim and finish ``count`` occurrences with a daemon per name in ``nodes``, all
    trying each; returns the wall time and every claim attempt's latency (ms). Checks that
    each occurrence was won once, and that the database holds one finished claim and one
    succeeded record per occurrence."""
    won: dict[str, list[int]] = {node: [] for node in nodes}
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        fleets: list[Fleet] = []
        for node in nodes:
            store = await stack.enter_async_context(
                open_store(url, node=node, lease_seconds=LEASE_SECONDS)
            )
            assert store.fleet is not None
            fleets.append(store.fleet)
        await store.insert_task(_task())
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for fleet in fleets:
                nursery.start_soon(_walk, fleet, count, won[fleet.node], latencies)
        wall = time.perf_counter() - t0
        (task,) = await store.load_tasks()
    every = sorted(i for numbers in won.values() for i in numbers)
    if every != list(range(count)):
        twice = sorted({i for i in every if every.count(i) > 1})
        lost = sorted(set(range(count)) - set(every))
        raise AssertionError(f"claims won twice: {twice[:10]}, never won: {lost[:10]}")
    stored = _rows(
        url,
        "SELECT (SELECT count(*) FROM claims WHERE finished),"
        " (SELECT count(*) FROM claims WHERE NOT finished),"
        " (SELECT count(*) FROM executions WHERE outcome = 'succeeded'),"
        " (SELECT count(*) FROM executions)",
    )[0]
    if stored != (count, 0, count, count) or task.counters.execution_count != count:
        raise AssertionError(
            f"the database holds (finished claims, open claims, succeeded, records) {stored}"
            f" and {task.counters.execution_count} runs counted, not {count} of each"
        )
    if len(nodes) > 1:
        log(f"R claims won by node: { {n: len(w) for n, w in won.items()} }")
    return wall, latencies


def _rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute(query, params).fetchall()


# -- takeover after kill -9 ----------------------------------------------------------------


@contextlib.contextmanager
def _fleet_of_three(url: str, root: Path) -> Iterator[dict[str, Server]]:
    """Three ``omnimind serve`` on ``url``, named after NODES, each with its own home; every
    process they started is killed at the end, whatever happened."""
    homes = {node: root / node for node in NODES}
    try:
        with contextlib.ExitStack() as stack:
            servers = {}
            for node, home in homes.items():
                home.mkdir()
                port = free_port()
                env = base_env(
                    home,
                    port,
                    OMNIMIND_DATABASE=url,
                    OMNIMIND_NODE_NAME=node,
                    OMNIMIND_LEASE_SECONDS=f"{LEASE_SECONDS:g}",
                )
                servers[node] = stack.enter_context(
                    running_server(omnimind_command("--port", str(port)), env, port, log_dir=home)
                )
            yield servers
    finally:
        _kill_left_over({str(home) for home in homes.values()})


def _kill_left_over(workspaces: set[str]) -> None:
    """Kill every process started for these daemons, found by the workspace in its
    environment (a killed daemon's task process lives on in a session of its own until
    its parent's death reaches it)."""
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and proc.environ().get("OMNIMIND_WORKSPACE") in workspaces:
                proc.kill()


def _poll(url: str, query: str, *params: Any, timeout: float, what: str) -> tuple[Any, ...]:
    deadline = time.monotonic() + timeout
    while True:
        found = _rows(url, query, *params)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _takeover(url: str) -> tuple[float, str, str]:
    """One kill: returns the seconds from the kill to the takeover record's start, the
    killed daemon's name and the name of the one that took the run over."""
    with temp_home("omnimind-bench-fleet-") as root, _fleet_of_three(url, root) as servers:
        with servers["a"].client() as http:
            response = http.post("/daemon/tasks/add", json=task_body("sleeper", SLEEP_CODE))
            if response.status_code != 200:
                raise RuntimeError(f"adding the task: {response.status_code} {response.text}")
        (victim, first) = _poll(
            url,
            "SELECT node, execution_id FROM claims WHERE NOT finished",
            timeout=CLAIM_WAIT_SECONDS,
            what="a daemon to claim the run",
        )
        server = servers[victim]
        left = server.tree()
        killed_at = time.time()
        server.process.kill()
        server.process.wait(10)
        started_at, taker, outcome = _poll(
            url,
            "SELECT t.started_at, t.node, o.outcome FROM executions t, executions o"
            " WHERE t.trigger = 'takeover' AND o.execution_id = %s",
            first,
            timeout=TAKEOVER_WAIT_SECONDS,
            what=f"the run of {victim}, killed, to be taken over",
        )
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    if taker == victim or outcome != Outcome.INTERRUPTED.value:
        raise AssertionError(f"taken over by {taker} (killed: {victim}), old run {outcome}")
    return float(started_at) - killed_at, victim, taker


# -- the section ---------------------------------------------------------------------------


def run(mode: Mode) -> list[Figure]:
    quick = mode.name == "quick"
    count = 300 if quick else 2000
    kills = 2 if quick else 5
    heartbeat = LEASE_SECONDS / 3
    names = [
        ("R1", "Claims won per second, three daemons", "/s"),
        ("R2", "Claims per second, one daemon alone", "/s"),
        ("R3", "Three daemons over one, claims per second", "x"),
        ("R4", "Claim attempt, three daemons, p50", "ms"),
        ("R5", "Claim attempt, three daemons, p99", "ms"),
        ("R6", "Claim attempt, one daemon alone, p50", "ms"),
        ("R7", "Takeover after kill -9 of the running daemon", "s"),
    ]
    why = pg_cluster.missing()
    if why:
        return [skipped(id_, name, unit, why) for id_, name, unit in names]
    runs: dict[str, list[float]] = {id_: [] for id_, _, _ in names}
    cluster = pg_cluster.Cluster(durable=True)
    try:
        for rep in range(mode.repeats):
            three, attempts = trio.run(_claims, cluster.url(cluster.database()), NODES, count)
            one, alone = trio.run(_claims, cluster.url(cluster.database()), ("solo",), count)
            runs["R1"].append(count / three)
            runs["R2"].append(count / one)
            runs["R3"].append(one / three)
            runs["R4"].append(percentile(attempts, 50))
            runs["R5"].append(percentile(attempts, 99))
            runs["R6"].append(percentile(alone, 50))
            log(
                f"R run {rep + 1}: three daemons {count / three:.0f} claims/s, one alone"
                f" {count / one:.0f} claims/s, attempt p50 {percentile(attempts, 50):.2f} ms"
            )
        for rep in range(kills):
            seconds, victim, taker = _takeover(cluster.url(cluster.database()))
            runs["R7"].append(seconds)
            log(f"R kill {rep + 1}: {victim} killed, taken over by {taker} after {seconds:.2f} s")
    finally:
        cluster.close()
    claims_note = (
        f"{count} occurrences of one task, each tried by every daemon (stores in one process,"
        " one database, PostgreSQL's default durability); every one won exactly once"
    )
    kill = runs["R7"]
    takeover_note = (
        f"{kills} kills, min {min(kill):.2f} / median {statistics.median(kill):.2f} /"
        f" max {max(kill):.2f} s; lease {LEASE_SECONDS:g} s, heartbeat every {heartbeat:.2f} s."
        " The kill comes within tens of ms of the claim, so the lease ends about"
        f" {LEASE_SECONDS:g} s after it, and another daemon looks at most one heartbeat later"
        f" (bound {LEASE_SECONDS + heartbeat:.2f} s)"
    )
    targets: dict[str, tuple[str, float]] = {"R7": ("<", LEASE_SECONDS + heartbeat)}
    return [
        Figure(
            id_,
            name,
            unit,
            runs[id_],
            targets.get(id_),
            note=takeover_note if id_ == "R7" else claims_note if id_ == "R1" else "",
        )
        for id_, name, unit in names
    ]
