"""Three daemons, three processes, one PostgreSQL on the loopback address: every occurrence of
50 repeating tasks runs at least once and is claimed by one daemon; a daemon killed
(``kill -9``) in the middle of runs has them taken over within its lease; no history row is
lost.
"""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from . import pg_cluster
from .test_process import Served, add, spawn, wait_for  # noqa: F401

TASKS = 50
LEASE_SECONDS = 5
RUN_SECONDS = 3
SLOW_CODE = f"import time\n\ndef execute():\n    time.sleep({RUN_SECONDS})\n    return 'ok'\n"
NODES = ("alpha", "bravo", "charlie")


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute(query, params).fetchall()


@pytest.fixture
def tcp_url() -> Iterator[str]:
    """A database of a cluster of this test's own, reached over TCP on 127.0.0.1 (as the
    daemons of other machines would reach it)."""
    why = pg_cluster.missing()
    if why is not None:
        pytest.skip(why)
    with pg_cluster.cluster(tcp=True) as running:
        yield running.tcp_url(running.database())


@pytest.mark.timeout(240)
def test_three_daemons_share_the_schedule_and_take_over_a_killed_ones_runs(
    tcp_url: str,
    tmp_path: Path,
    spawn: Callable[..., Served],  # noqa: F811
) -> None:
    postgres_url = tcp_url
    daemons = {
        node: spawn(
            tmp_path / node,
            env={
                "OMNIMIND_DATABASE": postgres_url,
                "OMNIMIND_NODE_NAME": node,
                "OMNIMIND_LEASE_SECONDS": str(LEASE_SECONDS),
                "OMNIMIND_MAX_CONCURRENT_CRITICAL": "8",
            },
        )
        for node in NODES
    }
    clients = {node: served.client() for node, served in daemons.items()}
    alpha = clients["alpha"]
    assert alpha.get("/daemon/status").json()["cloud_enabled"] is True

    # 50 tasks, each due now and then every minute, added through one daemon: all three
    # know them within a second (LISTEN/NOTIFY), and claim their runs between them.
    started = time.time()
    for n in range(TASKS):
        add(alpha, f"t{n:02d}", SLOW_CODE, repeat_minutes=1)
    for node in ("bravo", "charlie"):
        wait_for(
            lambda n=node: len(clients[n].get("/daemon/tasks").json()["tasks"]) >= TASKS,
            5,
            f"{node} to know the {TASKS} tasks",
        )

    # Kill bravo while it runs some: its claims are taken over within the lease.
    wait_for(
        lambda: (
            rows(postgres_url, "SELECT count(*) FROM claims WHERE node = 'bravo' AND NOT finished")[
                0
            ][0]
            >= 1
        ),
        20,
        "bravo to claim a run",
        interval=0.1,
    )
    killed_at = time.time()
    daemons["bravo"].proc.send_signal(signal.SIGKILL)
    daemons["bravo"].proc.wait(timeout=10)
    orphaned = rows(
        postgres_url, "SELECT occurrence FROM claims WHERE node = 'bravo' AND NOT finished"
    )
    assert orphaned

    # The second occurrence of every task falls due a minute after the first.
    def every_task_ran_twice() -> bool:
        done = rows(
            postgres_url,
            "SELECT task_id, count(DISTINCT scheduled_at) FROM executions"
            " WHERE outcome = 'succeeded' AND task_id LIKE 't%%' GROUP BY task_id",
        )
        return len(done) == TASKS and all(count >= 2 for _, count in done)

    deadline = time.monotonic() + 150
    while not every_task_ran_twice():
        if time.monotonic() > deadline:
            pytest.fail(
                "not every task ran twice: "
                + repr(
                    rows(
                        postgres_url,
                        "SELECT t.task_id, t.next_due, t.execution_count,"
                        " (SELECT count(DISTINCT e.scheduled_at) FROM executions e"
                        "  WHERE e.task_id = t.task_id AND e.outcome = 'succeeded')"
                        " FROM tasks t ORDER BY 4, 1 LIMIT 8",
                    )
                )
                + f" now {time.time()}"
            )
        time.sleep(0.5)
    elapsed = time.time() - started

    records = rows(
        postgres_url,
        "SELECT execution_id, task_id, scheduled_at, trigger, outcome, started_at FROM executions"
        " WHERE task_id LIKE 't%%'",
    )
    # None claimed twice: one first claim (not a takeover) per occurrence.
    firsts = collections.Counter((r[1], r[2]) for r in records if r[3] != "takeover")
    assert max(firsts.values()) == 1, [k for k, v in firsts.items() if v > 1]
    claims = rows(postgres_url, "SELECT occurrence, node, attempt, finished FROM claims")
    assert len(claims) == len({c[0] for c in claims})
    # Bravo's runs: closed as interrupted, and run again by another daemon in time.
    taken = [r for r in records if r[3] == "takeover"]
    interrupted = [r for r in records if r[4] == "interrupted"]
    assert len(taken) == len(orphaned) == len(interrupted), (taken, orphaned, interrupted)
    assert all(r[4] == "succeeded" for r in taken)
    # Claimed again within the lease and one heartbeat of another daemon (1 s of slack);
    # started once that daemon had a free slot (its own runs take 3 s each).
    (claimed_again,) = rows(
        postgres_url, "SELECT max(extract(epoch FROM claimed_at)) FROM claims WHERE attempt = 1"
    )[0]
    claimed_seconds = float(claimed_again) - killed_at
    assert claimed_seconds < LEASE_SECONDS + LEASE_SECONDS / 3 + 1, claimed_seconds
    takeover_seconds = max(r[5] for r in taken) - killed_at
    assert takeover_seconds < claimed_seconds + RUN_SECONDS + 3, takeover_seconds
    # No history row lost: every run of every daemon is in the history, finished.
    assert not [r for r in records if r[4] == "running"]
    by_node = rows(postgres_url, "SELECT node, count(*) FROM claims GROUP BY node")
    print(
        f"fleet: {len(records)} records in {elapsed:.0f} s, claims by node {dict(by_node)},"
        f" {len(taken)} run(s) claimed again {claimed_seconds:.1f} s after the kill, the last"
        f" started {takeover_seconds:.1f} s after it"
    )
