"""The database in trouble: a second daemon on the same file by another name, a full disk,
a file deleted while the daemon runs, and a database that is read-only, corrupt or full at
start (``omnimind serve`` processes: the message, the exit code, the file unchanged)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio import FakeSource, Settings, StartupError, StoreUnavailable, open_daemon
from omnimind_trio.daemon import Daemon, _writes
from omnimind_trio.models import DaemonState, Outcome
from omnimind_trio.store import MemoryStore, SQLiteStore, open_store
from omnimind_trio.store._sqlite_schema import SCHEMA_VERSION

from .conftest import make_settings
from .test_daemon import code_task, history, wait_for
from .test_process import Served, spawn  # noqa: F401 (a fixture)
from .test_store_contract import full_task

ONE = "def execute():\n    return 1\n"


# -- one daemon per database file, by whatever name -------------------------------------------


async def test_a_second_open_of_the_same_file_by_another_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "omnimind.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    symlink = elsewhere / "symlink.db"
    symlink.symlink_to(path)
    hard_link = elsewhere / "hard-link.db"
    async with open_store(path) as store:
        await store.insert_task(full_task())
        os.link(path, hard_link)
        relative = os.path.relpath(path)
        for name in (symlink, hard_link, relative, str(path)):
            with pytest.raises(StartupError) as refused:
                async with open_store(name):
                    pytest.fail(f"opened {name} while the daemon holds {path}")
            detail = refused.value.detail
            assert detail.startswith("another omnimind daemon is using the database"), detail
            assert str(name) in detail
        with pytest.raises(StartupError, match=f"the file {path}"):  # the symlink's target
            async with open_store(symlink):
                pass
    async with open_store(symlink) as store:  # once it is closed, any name opens it
        assert [t.spec.task_id for t in await store.load_tasks()] == ["full"]


# -- a full disk -----------------------------------------------------------------------------


async def test_the_probe_needs_new_space_where_a_rewrite_in_place_does_not(
    tmp_path: Path,
) -> None:
    """``max_page_count`` at the current size: as a full disk, SQLite refuses what needs a
    new page and commits what fits in place (an unchanged schedule)."""
    async with open_store(tmp_path / "omnimind.db") as store:
        assert isinstance(store, SQLiteStore)
        await store.insert_task(full_task())
        db = store._db
        pages = await store._run(lambda: db.execute("PRAGMA page_count").fetchone()[0])
        await store._run(lambda: db.execute(f"PRAGMA max_page_count = {pages}"))
        await store.set_schedule("full", next_due=500.0, paused=False)
        with pytest.raises(StoreUnavailable, match="full"):
            await store.probe_write()
        assert [t.next_due for t in await store.load_tasks()] == [500.0]


class FullDisk(MemoryStore):
    """A store on a full disk: while ``full``, it refuses the writes that need new space
    (a new task, run records, the probe) and accepts those that rewrite a row in place
    (a task's schedule)."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.schedules_written = 0
        self.refused_at = -1.0

    def _space(self) -> None:
        if self.full:
            self.refused_at = trio.current_time()
            raise StoreUnavailable("database or disk is full")

    async def insert_task(self, *args: Any, **kwargs: Any) -> None:
        self._space()
        await super().insert_task(*args, **kwargs)

    async def start_execution(self, *args: Any, **kwargs: Any) -> None:
        self._space()
        await super().start_execution(*args, **kwargs)

    async def finish_execution(self, *args: Any, **kwargs: Any) -> None:
        self._space()
        await super().finish_execution(*args, **kwargs)

    async def probe_write(self) -> None:
        self._space()
        await super().probe_write()

    async def set_schedule(self, *args: Any, **kwargs: Any) -> None:
        await super().set_schedule(*args, **kwargs)
        self.schedules_written += 1


async def test_the_error_outlasts_writes_that_need_no_space(
    settings: Settings, source: FakeSource, daemon_clock: trio.testing.MockClock
) -> None:
    """A one-shot run on a full disk: its records are refused, then its unchanged schedule
    is written (and commits). The error stays: it clears only after a quiet spell, on a
    probe that needs new space."""
    store = FullDisk()
    async with open_daemon(settings, metrics_source=source, store=store) as daemon:
        await daemon.add_task(code_task("once", ONE))
        entry = daemon._scheduler.get("once")
        await wait_for(lambda: entry.counters.execution_count == 1)
        await wait_for(lambda: daemon.state is DaemonState.IDLE)
        store.full = True
        written = store.schedules_written
        daemon.run_task_now("once")
        await wait_for(lambda: entry.counters.execution_count == 2)
        await wait_for(lambda: store.schedules_written > written)  # it committed
        await trio.sleep(1)
        assert daemon.state is DaemonState.ERROR
        assert daemon.error == "the database refuses writes (database or disk is full)"

        await trio.sleep(3 * _writes.QUIET_SECONDS)
        assert daemon.state is DaemonState.ERROR  # the probes are refused too
        store.full = False
        daemon.run_task_now("once")  # its records are written now, but that is no proof
        await wait_for(lambda: entry.counters.execution_count == 3)
        assert len(await history(daemon, "once")) == 2
        quiet_from = store.refused_at  # the last probe refused
        await trio.sleep_until(quiet_from + _writes.QUIET_SECONDS - 1)
        assert daemon.state is DaemonState.ERROR  # not quiet long enough yet
        await trio.sleep_until(quiet_from + _writes.QUIET_SECONDS + _writes.PROBE_SECONDS + 1)
        assert daemon.state is DaemonState.IDLE
        assert daemon.error is None


# -- the database file deleted while the daemon runs -------------------------------------------


def state_changes(events: Any) -> list[dict[str, Any]]:
    changes = []
    while True:
        try:
            message = json.loads(events.receive_nowait().as_json())
        except trio.WouldBlock:
            return changes
        if message["type"] == "state_changed":
            changes.append(message["data"])


def remove_database(path: Path) -> None:
    """``rm omnimind.db*``."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)


async def run_once(daemon: Daemon, task_id: str) -> None:
    await daemon.add_task(code_task(task_id, ONE))
    await wait_for(lambda: daemon.get_task(task_id).execution_count == 1)
    while not [r for r in await history(daemon, task_id) if r.outcome is Outcome.SUCCEEDED]:
        await trio.sleep(0.01)


async def test_a_deleted_database_file_is_noticed_said_and_re_created(
    settings: Settings,
    source: FakeSource,
    daemon_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = settings.database_path
    async with open_daemon(settings, metrics_source=source) as daemon:
        await run_once(daemon, "before")
        with daemon.subscribe() as events:
            remove_database(path)
            await trio.sleep(_writes.PROBE_SECONDS + 1)  # noticed within one check period
            await wait_for(lambda: daemon.state is DaemonState.IDLE)  # re-created (threads)
            changes = state_changes(events)
        assert {
            "state": "error",
            "previous": "idle",
            "reason": f"the database file {path} was deleted",
        } in changes
        assert changes[-1] == {"state": "idle", "previous": "error", "reason": None}
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(f"the database file {path} was deleted" in m for m in errors), errors
        assert "re-created from the open database" in caplog.text
        assert path.is_file()
        await run_once(daemon, "after")  # saved in the new file
    async with open_daemon(settings, metrics_source=source) as daemon:  # a restart
        assert {"before", "after"} <= set(daemon._scheduler.tasks)
        assert len(await history(daemon, "before")) == 1
        assert len(await history(daemon, "after")) == 1


async def test_a_deleted_database_that_cannot_be_re_created_keeps_the_error(
    tmp_path: Path, source: FakeSource, daemon_clock: trio.testing.MockClock
) -> None:
    """Its directory is gone too: the state stays ``error`` and says why; the daemon goes
    on (with the deleted file) and tries again at every check."""
    path = tmp_path / "data" / "omnimind.db"
    async with open_daemon(make_settings(tmp_path, database=path), metrics_source=source) as d:
        shutil.rmtree(path.parent)
        await trio.sleep(_writes.PROBE_SECONDS + 1)
        await wait_for(lambda: "cannot be re-created" in (d.error or ""))
        assert d.state is DaemonState.ERROR
        assert (d.error or "").startswith(f"the database file {path} was deleted (it cannot")
        await d.add_task(code_task("later", ONE))  # still served, from the open file
        path.parent.mkdir()  # the directory is back: the next check re-creates the file
        await trio.sleep(_writes.PROBE_SECONDS + 1)
        await wait_for(lambda: d.state is not DaemonState.ERROR)
    async with open_daemon(make_settings(tmp_path, database=path), metrics_source=source) as d:
        assert "later" in d._scheduler.tasks


async def test_a_database_file_replaced_by_another_is_said_and_left_alone(
    settings: Settings,
    source: FakeSource,
    daemon_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = settings.database_path
    async with open_daemon(settings, metrics_source=source) as daemon:
        remove_database(path)
        path.write_bytes(b"another file")
        await trio.sleep(_writes.PROBE_SECONDS + 1)
        assert daemon.state is DaemonState.ERROR
        assert (daemon.error or "").startswith(
            f"the database file {path} was replaced by another file"
        )
        assert f"the database file {path} was replaced" in caplog.text
        await trio.sleep(3 * _writes.PROBE_SECONDS)
        assert path.read_bytes() == b"another file"
        assert daemon.state is DaemonState.ERROR


# -- a database in trouble at start: `omnimind serve` processes --------------------------------

START_SECONDS = 30.0
"""Bound on a start that must fail (it fails in about a second)."""

AS_OWNER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)
"""Run as root, a process writes a file whatever its mode: without these capabilities,
root is held to the file's mode as its owner is (as the daemon's user would be)."""


def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")


def stored_database(path: Path) -> bytes:
    """A database holding a task; returns its bytes (it is closed: no -wal left)."""

    async def store() -> None:
        async with open_store(path) as opened:
            await opened.insert_task(full_task())

    path.parent.mkdir(parents=True, exist_ok=True)
    trio.run(store)
    assert not path.with_name(path.name + "-wal").exists()
    return path.read_bytes()


def serve(home: Path, database: Path, *, prefix: list[str] | None = None) -> tuple[int, str]:
    """Run ``omnimind serve`` on ``database``, which must make it exit; its exit code and
    stderr."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(
        OMNIMIND_HOME=str(home),
        OMNIMIND_WORKSPACE=str(home),
        OMNIMIND_DATABASE=str(database),
        OMNIMIND_DASHBOARD_USER="tester",
        OMNIMIND_DASHBOARD_PASS="secret-pass",
    )
    command = [sys.executable, "-m", "omnimind_trio", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*(prefix or []), *command],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=START_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail(f"omnimind serve on {database} did not exit: it started")
    return proc.returncode, stderr.decode(errors="replace")


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A small file system of its own (root only)."""
    root_only()
    where = Path(tempfile.mkdtemp(prefix="omnimind-tmpfs-"))
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        where.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def test_a_read_only_database_file_is_refused_at_start_untouched(tmp_path: Path) -> None:
    if os.geteuid() == 0 and not AS_OWNER:
        pytest.skip("root writes a read-only file, and setpriv is missing")
    database = tmp_path / "data" / "omnimind.db"
    before = stored_database(database)
    database.chmod(0o444)
    code, stderr = serve(tmp_path / "home", database, prefix=AS_OWNER)
    assert code == 1, stderr
    assert f"omnimind: the database {database} is read-only (Permission denied)" in stderr
    assert "Traceback" not in stderr
    assert database.read_bytes() == before
    assert sorted(p.name for p in database.parent.iterdir()) == ["omnimind.db"]


def test_a_read_only_database_directory_is_refused_at_start(tmp_path: Path) -> None:
    if os.geteuid() == 0 and not AS_OWNER:
        pytest.skip("root writes a read-only directory, and setpriv is missing")
    database = tmp_path / "data" / "omnimind.db"
    before = stored_database(database)
    database.parent.chmod(0o555)
    try:
        code, stderr = serve(tmp_path / "home", database, prefix=AS_OWNER)
    finally:
        database.parent.chmod(0o755)
    assert code == 1, stderr
    assert f"omnimind: the directory {database.parent} of the database is read-only" in stderr
    assert database.read_bytes() == before


def test_a_database_on_a_read_only_file_system_is_refused_at_start(tmp_path: Path) -> None:
    with tmpfs("4m") as mount:
        database = mount / "omnimind.db"
        before = stored_database(database)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        code, stderr = serve(tmp_path / "home", database)
        assert code == 1, stderr
        assert f"the database {database} is read-only (Read-only file system)" in stderr
        assert database.read_bytes() == before


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_database_is_refused_at_start_never_repaired(tmp_path: Path, damage: str) -> None:
    database = tmp_path / "data" / "omnimind.db"
    stored = stored_database(database)
    if damage == "garbage":
        database.write_bytes(b"\x00garbage\xff" * 4096)
        expected = f"omnimind: the database {database} is not a SQLite database"
    else:
        database.write_bytes(stored[: len(stored) // 2])
        expected = f"omnimind: the database {database} is corrupt: it is truncated"
    before = database.read_bytes()
    code, stderr = serve(tmp_path / "home", database)
    assert code == 1, stderr
    assert expected in stderr
    assert "did not change it. Move it away" in stderr
    assert database.read_bytes() == before
    assert sorted(p.name for p in database.parent.iterdir()) == ["omnimind.db"]


def test_a_database_on_a_full_disk_is_refused_at_start_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    with tmpfs("2m") as mount:
        database = mount / "omnimind.db"
        before = stored_database(database)
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
        os.close(fd)
        code, stderr = serve(tmp_path / "home", database)
        assert code == 1, stderr
        assert f"cannot open the database {database}: the disk that holds it is full" in stderr
        assert database.read_bytes() == before
        filler.unlink()  # space again: the next start has everything

        async def tasks() -> list[str]:
            async with open_store(database) as store:
                return [t.spec.task_id for t in await store.load_tasks()]

        assert trio.run(tasks) == ["full"]


def test_a_second_daemon_on_the_same_file_by_another_name_is_refused(
    tmp_path: Path,
    spawn: Callable[..., Served],  # noqa: F811
) -> None:
    database = tmp_path / "data" / "omnimind.db"
    running = spawn(tmp_path / "first", env={"OMNIMIND_DATABASE": str(database)})
    symlink = tmp_path / "symlink.db"
    symlink.symlink_to(database)
    code, stderr = serve(tmp_path / "second", symlink)
    assert code == 1, stderr
    assert (
        f"omnimind: another omnimind daemon is using the database {symlink} (the file {database})"
    ) in stderr
    assert running.proc.poll() is None


def test_a_database_of_a_newer_version_is_refused_at_start_untouched(tmp_path: Path) -> None:
    database = tmp_path / "data" / "omnimind.db"
    stored_database(database)
    with sqlite3.connect(database) as db:  # as a later omnimind would leave it
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = database.read_bytes()
    code, stderr = serve(tmp_path / "home", database)
    assert code == 1, stderr
    assert (
        f"the database was written by a newer omnimind (schema version {SCHEMA_VERSION + 1};"
        f" this one knows up to {SCHEMA_VERSION}): upgrade omnimind" in stderr
    )
    assert "Traceback" not in stderr
    assert database.read_bytes() == before
