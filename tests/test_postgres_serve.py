"""``omnimind serve`` on PostgreSQL, as a user runs it: real processes, over HTTP.

A task added through one daemon runs, and is there with its history after a restart; a
second daemon on the same database is refused at start, saying so; a wrong password is
said, never shown, and the start leaves nothing behind. On the session's throwaway
cluster (skipped, saying so, without PostgreSQL).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnimind_trio.store import default_node_name

from .pg_cluster import Cluster
from .test_database import serve
from .test_process import (  # noqa: F401
    QUICK_CODE,
    Served,
    add,
    spawn,
    tasks_by_id,
    wait_counts,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_a_daemon_on_postgresql_keeps_its_tasks_and_history_across_a_restart(
    postgres_url: str,
    tmp_path: Path,
    spawn: Callable[..., Served],  # noqa: F811
) -> None:
    env = {"OMNIMIND_DATABASE": postgres_url}
    t0 = time.perf_counter()
    first = spawn(tmp_path / "first", env=env)
    started = time.perf_counter() - t0
    client = first.client()
    add(client, "quick", QUICK_CODE)
    wait_counts(client, "quick", 30, execution_count=1, success_count=1)

    # (the counts change a moment before the final record is written)
    def final() -> Any:
        runs = client.get("/daemon/tasks/quick/executions").json()["executions"]
        return runs if [r["outcome"] for r in runs] == ["succeeded"] else None

    (run,) = wait_for(final, 10, "the final record")
    assert client.get("/daemon/status").json()["cloud_enabled"] is True  # a fleet of one

    # A second daemon of the same name on the database: refused before it creates anything.
    code, stderr = serve(tmp_path / "second", postgres_url)  # type: ignore[arg-type]
    assert code == 1, stderr
    assert (
        f"omnimind: another omnimind daemon named {default_node_name()} (pid {first.pid} on "
        in stderr
        and f"is using the database {postgres_url}: each daemon sharing a database needs a"
        " name of its own: set OMNIMIND_NODE_NAME"
        in stderr
    ), stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "second" / "config").exists()  # no credentials made
    assert first.proc.poll() is None

    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=30) == 0, first.stderr()
    again = spawn(tmp_path / "third", env=env)
    client = again.client()
    task = tasks_by_id(client)["quick"]
    assert (task["execution_count"], task["success_count"]) == (1, 1)
    listed = client.get("/daemon/tasks/quick/executions").json()
    assert [r["execution_id"] for r in listed["executions"]] == [run["execution_id"]]
    assert client.get(f"/daemon/executions/{run['execution_id']}").json()["result"] == {
        "status": "completed"
    }
    print(f"start-up on PostgreSQL, to serving: {started:.2f} s")


def test_a_wrong_password_is_said_at_start_and_never_shown(
    postgres: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    database = postgres_url.split("/")[3].split("?")[0]
    url = postgres.url(database, user="omnimind_pw", password="wrong-pw-77")
    code, stderr = serve(tmp_path / "home", url)  # type: ignore[arg-type]
    assert code == 1, stderr
    assert "wrong-pw-77" not in stderr
    assert (
        f"omnimind: cannot connect to the PostgreSQL database {url.replace('wrong-pw-77', '***')}:"
        in stderr
    )
    assert "password authentication failed" in stderr
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == []
