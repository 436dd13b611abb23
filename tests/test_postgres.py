"""The PostgreSQL store's own promises, beyond the contract (``test_store_contract.py``):
one daemon per database, errors in words (the password never in them), a newer or a
foreign schema refused untouched, and a server that goes away and comes back.

On a throwaway cluster (``tests/pg_cluster.py``); skipped, saying so, without PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing

from omnimind_trio import FakeSource, StartupError, StoreError, StoreUnavailable, open_daemon
from omnimind_trio.daemon import _writes
from omnimind_trio.models import DaemonState, Outcome, TaskCounters
from omnimind_trio.store import _postgres_connect, check_store, default_node_name, open_store
from omnimind_trio.store._postgres import PostgresStore
from omnimind_trio.store._postgres_connect import LEGACY_KEY, lock_key, try_lock
from omnimind_trio.store._postgres_schema import SCHEMA_VERSION

from . import pg_cluster
from .conftest import make_settings
from .pg_cluster import PASSWORD, Cluster
from .test_daemon import code_task, history, wait_for
from .test_store_contract import full_task, record, task

ONE = "def execute():\n    return 1\n"

HOST = socket.gethostname()
NODE = default_node_name()


@pytest.fixture(autouse=True)
def quick_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start waits up to a second for a holder that is going: a tenth here."""
    monkeypatch.setattr(_postgres_connect, "LOCK_WAIT_SECONDS", 0.1)


def tables(cluster: Cluster, database: str) -> list[str]:
    with cluster.admin(database) as db:
        return [
            row[0]
            for row in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]


def name_of(url: str) -> str:
    return url.split("/")[3].split("?")[0]


async def opened(url: str) -> PostgresStore:
    """Open and close the store at ``url`` (the error it raises, if any)."""
    async with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        return store


def start_error(url: str) -> str:
    """The StartupError opening ``url`` raises (its detail), the same from check_store."""
    with pytest.raises(StartupError) as checked:
        check_store(url)
    with pytest.raises(StartupError) as raised:
        trio.run(opened, url)
    assert raised.value.detail == checked.value.detail
    detail = raised.value.detail
    assert "\n" not in detail, detail
    return detail


# -- one daemon per name, many per database -------------------------------------------------


async def test_a_second_daemon_of_the_same_name_is_refused_one_of_another_name_shares(
    postgres: Cluster, postgres_url: str
) -> None:
    async with open_store(postgres_url, node="desk") as store:
        await store.insert_task(full_task())
        for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://")):
            with pytest.raises(StartupError) as refused:
                async with open_store(url, node="desk"):
                    pytest.fail("a second store named desk opened the database")
            assert refused.value.detail == (
                f"another omnimind daemon named desk (pid {os.getpid()} on {HOST}) is using"
                f" the database {url}: each daemon sharing a database needs a name of its"
                " own: set OMNIMIND_NODE_NAME"
            )
            with pytest.raises(StartupError, match="another omnimind daemon named desk"):
                await trio.to_thread.run_sync(lambda u=url: check_store(u, node="desk"))
        async with open_store(postgres_url, node="laptop") as other:
            assert other.fleet is not None and other.fleet.node == "laptop"
            assert [t.spec.task_id for t in await other.load_tasks()] == ["full"]
        assert [t.spec.task_id for t in await store.load_tasks()] == ["full"]
    await trio.to_thread.run_sync(lambda: check_store(postgres_url, node="desk"))  # free again
    async with open_store(postgres_url, node="desk") as store:
        assert [t.spec.task_id for t in await store.load_tasks()] == ["full"]


async def test_a_daemon_of_a_version_before_the_fleet_is_not_shared_with(
    postgres: Cluster, postgres_url: str
) -> None:
    """An older omnimind (one daemon per database: it held LEGACY_KEY) cannot claim runs:
    a daemon of this version refuses to start beside it, saying so, and starts once it is
    gone."""
    with psycopg.connect(postgres_url, application_name="omnimind [0ld] pid 7 on nas") as old:
        assert try_lock(old, LEGACY_KEY)
        expected = (
            "an omnimind daemon of a version before the fleet (pid 7 on nas) is using the"
            f" database {postgres_url}: it cannot share it; stop it (or upgrade it) first"
        )
        with pytest.raises(StartupError) as refused:
            async with open_store(postgres_url, node="desk"):
                pytest.fail("opened beside an older daemon")
        assert refused.value.detail == expected
        with pytest.raises(StartupError) as checked:
            await trio.to_thread.run_sync(lambda: check_store(postgres_url, node="desk"))
        assert checked.value.detail == expected
    async with open_store(postgres_url, node="desk") as store:
        assert store.fleet is not None


def test_the_check_creates_nothing(postgres: Cluster, postgres_url: str) -> None:
    check_store(postgres_url)
    assert tables(postgres, name_of(postgres_url)) == []
    trio.run(opened, postgres_url)
    assert tables(postgres, name_of(postgres_url)) == [
        "claims",
        "executions",
        "nodes",
        "omnimind_schema",
        "space_probe",
        "tasks",
    ]


async def test_the_lock_is_taken_again_after_a_lost_connection(
    postgres: Cluster, postgres_url: str
) -> None:
    """Every connection of the store cut (a restart would): the next calls connect again,
    nothing is lost, and the database is still held."""
    async with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        await store.insert_task(task("a"))
        assert kill_sessions(postgres, store) >= 2  # the writer and a reader
        await store.insert_task(task("b", 2))
        assert [t.spec.task_id for t in await store.load_tasks()] == ["a", "b"]
        with pytest.raises(StartupError, match="another omnimind daemon"):
            await trio.to_thread.run_sync(check_store, postgres_url)


async def test_a_daemon_that_lost_the_database_to_another_writes_nothing_more(
    postgres: Cluster, postgres_url: str
) -> None:
    """Its connection cut, a second daemon took the database meanwhile: the first one's
    writes are refused, saying why; the second one's are not."""
    async with open_store(postgres_url) as first:
        assert isinstance(first, PostgresStore)
        await first.insert_task(task("a"))
        kill_sessions(postgres, first)
        async with open_store(postgres_url) as second:
            with pytest.raises(StoreUnavailable) as refused:
                await first.insert_task(task("lost", 2))
            assert refused.value.reason == (
                f"another omnimind daemon named {NODE} (pid {os.getpid()} on {HOST}) took the"
                " database while this one's connection was lost: this daemon writes nothing"
                " more to it; stop one of them (each daemon sharing a database needs a name"
                " of its own: set OMNIMIND_NODE_NAME)"
            )
            await second.insert_task(task("b", 2))
            assert [t.spec.task_id for t in await second.load_tasks()] == ["a", "b"]


async def test_our_own_session_of_before_is_ended_to_take_the_lock_again(
    postgres_url: str,
) -> None:
    """A connection lost on our side whose session lives on at the server (a half-open TCP
    connection) still holds the lock: being ours (its name says so), it is ended, and the
    write goes through."""
    async with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        writer = store._writer
        ghost = psycopg.connect(
            postgres_url, application_name=writer.identity.name, autocommit=True
        )
        with ghost:
            assert writer._db is not None
            writer._db.close()  # our side of the connection gone...
            assert try_lock(
                ghost, lock_key(writer.node)
            )  # ...its session, holding the lock, still there
            await store.insert_task(task("a"))
            with pytest.raises(psycopg.OperationalError):
                ghost.execute("SELECT 1")  # ended
        assert [t.spec.task_id for t in await store.load_tasks()] == ["a"]
        with pytest.raises(StartupError, match="another omnimind daemon"):
            await trio.to_thread.run_sync(check_store, postgres_url)


def kill_sessions(cluster: Cluster, store: PostgresStore) -> int:
    """End every session of ``store`` on the server (as an administrator would)."""
    with cluster.admin() as db:
        row = db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE %s",
            (f"omnimind [{store._writer.identity.token}]%",),
        ).fetchone()
    assert row is not None
    return int(row[0])


# -- errors in words -------------------------------------------------------------------------


def test_an_unreachable_server_is_said_in_one_line(postgres: Cluster) -> None:
    url = f"postgresql://omnimind@/db?host={postgres.root}/nowhere"
    detail = start_error(url)
    assert detail.startswith(
        f"cannot connect to the PostgreSQL database {url}: connection to server on socket"
        f' "{postgres.root}/nowhere/.s.PGSQL.5432" failed: No such file or directory'
    ), detail


def test_a_wrong_password_is_said_and_never_shown(postgres: Cluster, postgres_url: str) -> None:
    wrong = "not-the-pw-9"
    database = name_of(postgres_url)
    url = postgres.url(database, user="omnimind_pw", password=wrong)
    detail = start_error(url)
    assert wrong not in detail and PASSWORD not in detail
    shown = url.replace(wrong, "***")
    assert detail == (
        f"cannot connect to the PostgreSQL database {shown}: connection to server on socket"
        f' "{postgres.socket_dir}/.s.PGSQL.5432" failed: FATAL:  password authentication'
        ' failed for user "omnimind_pw": check the user and password in OMNIMIND_DATABASE'
    )
    as_parameter = f"postgresql:///{database}?host={postgres.socket_dir}&user=omnimind_pw"
    detail = start_error(f"{as_parameter}&password={wrong}")
    assert wrong not in detail and f"{as_parameter}&password=***" in detail


def test_a_missing_database_or_role_is_said(postgres: Cluster) -> None:
    detail = start_error(postgres.url("nosuchdb"))
    assert detail.endswith(
        'FATAL:  database "nosuchdb" does not exist: create it first (docs/operations.md,'
        " 'Running on PostgreSQL')"
    ), detail
    detail = start_error(postgres.url("postgres", user="nobody_here"))
    assert 'role "nobody_here" does not exist: create it first' in detail, detail


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret-pw@[::1/db",
        "postgresql://u:secret-pw@localhost/db?sslmode=sometimes",
        "postgresql://u:secret-pw@localhost/db?no_such_option=1",
    ],
)
def test_a_bad_url_is_said_without_its_password(url: str) -> None:
    detail = start_error(url)
    assert detail.startswith("the database URL postgresql://u:***@"), detail
    assert "is not valid: " in detail
    assert "secret-pw" not in detail


def test_a_role_that_may_not_create_the_tables_is_said(postgres: Cluster) -> None:
    database = postgres.database(owner="postgres")  # PostgreSQL 15: public is the owner's
    detail = start_error_on_open(postgres.url(database))
    assert detail.startswith(
        f"cannot create omnimind's tables in the database {postgres.url(database)}:"
        " permission denied for schema public"
    ), detail
    assert tables(postgres, database) == []


def start_error_on_open(url: str) -> str:
    check_store(url)  # (it may connect and lock: the tables are made at open)
    with pytest.raises(StartupError) as raised:
        trio.run(opened, url)
    return raised.value.detail


# -- the schema ------------------------------------------------------------------------------


def test_a_database_of_a_newer_version_is_refused_untouched(
    postgres: Cluster, postgres_url: str
) -> None:
    trio.run(opened, postgres_url)
    database = name_of(postgres_url)
    with postgres.admin(database) as db:
        db.execute("UPDATE omnimind_schema SET version = %s", (SCHEMA_VERSION + 1,))
        db.execute("ALTER TABLE tasks RENAME COLUMN name TO title")  # as a later one might
    detail = start_error(postgres_url)
    assert detail == (
        f"the database was written by a newer omnimind (schema version {SCHEMA_VERSION + 1};"
        f" this one knows up to {SCHEMA_VERSION}): upgrade omnimind, or give it another"
        " database (OMNIMIND_DATABASE)"
    )
    with postgres.admin(database) as db:
        columns = {
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'"
            )
        }
    assert "title" in columns and "name" not in columns


def test_another_programs_tables_are_left_alone(postgres: Cluster, postgres_url: str) -> None:
    database = name_of(postgres_url)
    with postgres.admin(database) as db:
        db.execute("CREATE TABLE tasks (id serial PRIMARY KEY, what text)")
    detail = start_error(postgres_url)
    assert detail == (
        "the database holds tables omnimind did not make (tasks): give omnimind a database"
        " of its own (createdb); it was not changed"
    )
    assert tables(postgres, database) == ["tasks"]


async def test_an_older_database_gains_the_columns_of_new_fields(
    postgres: Cluster, postgres_url: str
) -> None:
    """As SQLite's: a field added to a model since the database was written is a column
    added at open, with its default in the rows that were there."""
    async with open_store(postgres_url) as store:
        await store.insert_task(task("a"))
        await store.finish_execution(record(1, "a", stdout="out"), TaskCounters(1, 1, 0))
    with postgres.admin(name_of(postgres_url)) as db:
        db.execute("ALTER TABLE executions DROP COLUMN attempt")  # (default 1)
        db.execute("ALTER TABLE tasks DROP COLUMN retry_attempt")  # (default 0)
    async with open_store(postgres_url) as store:
        assert await store.get_execution("e1") == record(1, "a", stdout="out")
        (loaded,) = await store.load_tasks()
        expected = task("a")
        expected.counters = TaskCounters(1, 1, 0)
        assert loaded == expected


async def test_a_database_from_before_nodes_gains_machines_and_node(
    postgres: Cluster, postgres_url: str
) -> None:
    """The columns of a task's ``machines`` and a record's ``node`` are added at open; the
    rows that were there have none (null: any machine; not known), and new rows keep them."""
    async with open_store(postgres_url) as store:
        await store.insert_task(task("a"))
        await store.finish_execution(record(1, "a", node="laptop"), TaskCounters(1, 1, 0))
    with postgres.admin(name_of(postgres_url)) as db:
        db.execute("ALTER TABLE executions DROP COLUMN node")
        db.execute("ALTER TABLE tasks DROP COLUMN machines")
    async with open_store(postgres_url) as store:
        assert await store.get_execution("e1") == record(1, "a")
        (loaded,) = await store.load_tasks()
        assert loaded.spec.machines is None
        await store.update_task(loaded.spec.replace(machines=("desktop",)), next_due=None)
        await store.finish_execution(record(2, "a", node="desktop"), TaskCounters(2, 2, 0))
        page, total = await store.list_executions(node="desktop")
        assert [r.execution_id for r in page] == ["e2"] and total == 1
    async with open_store(postgres_url) as store:
        (loaded,) = await store.load_tasks()
        assert loaded.spec.machines == ("desktop",)


# -- the server goes away and comes back --------------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own, to stop and start."""
    why = pg_cluster.missing()
    if why is not None:
        pytest.skip(why)
    with pg_cluster.cluster() as running:
        yield running


async def test_a_server_that_goes_away_is_an_outage_and_its_return_the_end_of_it(
    own_cluster: Cluster,
) -> None:
    url = own_cluster.url(own_cluster.database())
    async with open_store(url) as store:
        await store.insert_task(task("a"))
        await store.start_execution(
            record(1, "a", Outcome.RUNNING), last_execution=1.0, next_due=None
        )
        await trio.to_thread.run_sync(own_cluster.stop)
        calls: dict[str, Any] = {
            "a write": lambda: store.set_schedule("a", next_due=5.0, paused=True),
            "a read": store.load_tasks,
            "a read of several statements": store.list_executions,
        }
        for what, call in calls.items():
            with pytest.raises(StoreUnavailable) as refused:
                await call()
            assert "\n" not in refused.value.reason, what
            assert refused.value.reason.startswith(
                f'connection to server on socket "{own_cluster.socket_dir}/.s.PGSQL.5432"'
                " failed: No such file or directory"
            ), (what, refused.value.reason)
        await trio.to_thread.run_sync(own_cluster.start)
        await store.finish_execution(record(1, "a"), TaskCounters(1, 1, 0))
        (loaded,) = await store.load_tasks()
        assert loaded.counters == TaskCounters(1, 1, 0)
        assert not loaded.paused  # the refused write changed nothing
        assert await store.list_executions() == ([record(1, "a")], 1)
        with pytest.raises(StartupError, match="another omnimind daemon"):
            await trio.to_thread.run_sync(check_store, url)


def test_a_store_cannot_write_through_a_pooled_connection(postgres_url: str) -> None:
    """The pool's connections read only: every write is the lock holder's."""

    async def main() -> None:
        async with open_store(postgres_url) as store:
            assert isinstance(store, PostgresStore)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await trio.to_thread.run_sync(write_through_pool, store)

    def write_through_pool(store: PostgresStore) -> None:
        with store._pool.connection() as db:
            db.execute("DELETE FROM tasks")

    trio.run(main)


async def test_a_daemon_rides_out_a_server_outage(
    own_cluster: Cluster,
    tmp_path: Path,
    source: FakeSource,
    daemon_clock: trio.testing.MockClock,
) -> None:
    """The server stops while the daemon runs: the state is ``error``, saying why, runs go
    on; the server back, the error clears as it does for SQLite (a quiet spell, then a
    probe), and what is saved after is there at the next start."""
    url = own_cluster.url(own_cluster.database())
    settings = make_settings(tmp_path, database=url)
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.add_task(code_task("once", ONE))
        entry = daemon._scheduler.get("once")
        await wait_for(lambda: entry.counters.execution_count == 1)
        await wait_for(lambda: daemon.state is DaemonState.IDLE)
        await trio.to_thread.run_sync(own_cluster.stop)
        daemon.run_task_now("once")
        await wait_for(lambda: entry.counters.execution_count == 2, 10)
        await wait_for(lambda: daemon.state is DaemonState.ERROR, 10)
        assert (daemon.error or "").startswith(
            "the database refuses writes (connection to server on socket"
        ), daemon.error
        with pytest.raises(StoreError):  # a change asked for is refused, not half made
            await daemon.add_task(code_task("during", ONE))
        await trio.to_thread.run_sync(own_cluster.start)
        # (a sleep, not a poll: each step of the virtual clock costs 20 ms of real time)
        await trio.sleep(_writes.QUIET_SECONDS + 2 * _writes.PROBE_SECONDS)
        await wait_for(lambda: daemon.state is DaemonState.IDLE)
        assert daemon.error is None
        third = daemon.run_task_now("once")
        with trio.fail_after(10):
            while (found := await daemon._store.get_execution(third)) is None or (
                found.outcome is Outcome.RUNNING
            ):
                await trio.sleep(0.05)
        # The counts are the database's (a fleet's daemons add to them): the run during
        # the outage was not recorded there.
        await wait_for(lambda: entry.counters.execution_count == 2, 15)
    async with open_daemon(settings, metrics_source=source) as daemon:
        assert set(daemon._scheduler.tasks) >= {"once"} and "during" not in daemon._scheduler.tasks
        runs = await history(daemon, "once")
        assert [r.outcome for r in runs] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]  # 1st, 3rd


async def test_the_periodic_check_takes_the_lock_again_and_says_when_another_daemon_has_it(
    postgres: Cluster, postgres_url: str
) -> None:
    """``check_file`` (every 10 s in the daemon): a lost connection is made again and the
    lock taken again at once, not at the next write; another daemon that took the database
    meanwhile is the problem, and ``restore_file`` takes it back once that one is gone."""
    async with open_store(postgres_url) as first:
        assert isinstance(first, PostgresStore)
        kill_sessions(postgres, first)
        assert await first.check_file() is None
        with pytest.raises(StartupError, match="another omnimind daemon"):
            await trio.to_thread.run_sync(check_store, postgres_url)  # held again

        kill_sessions(postgres, first)
        async with open_store(postgres_url):
            problem = await first.check_file()
            assert problem is not None and problem.startswith(
                f"another omnimind daemon named {NODE} (pid {os.getpid()} on {HOST}) took the"
                " database"
            )
            with pytest.raises(StoreUnavailable, match="took the database"):
                await first.restore_file()
        assert await first.restore_file() == "this daemon holds the database again"
        assert await first.check_file() is None
        await first.insert_task(task("a"))
        with pytest.raises(StartupError, match="another omnimind daemon"):
            await trio.to_thread.run_sync(check_store, postgres_url)
