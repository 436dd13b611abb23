"""The example tasks of contrib/tasks, each run as a task by a daemon (the ``daemon``
fixture: real task processes), on files the test makes, with results checked against
what is there (and, for the disk usage, against ``df`` on this machine)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from omnimind_trio import Priority
from omnimind_trio.daemon import Daemon
from omnimind_trio.models import ExecutionQuery, ExecutionRecord, Outcome, TaskSpec

TASKS = Path(__file__).resolve().parents[1] / "contrib" / "tasks"
RUN_SECONDS = 30.0


def test_every_example_task_has_its_test() -> None:
    tested = {"disk_usage_report", "old_files_report", "duplicate_files_report", "sqlite_backup"}
    assert {path.stem for path in TASKS.glob("*.py")} == tested


async def run_task(daemon: Daemon, name: str, **env: str) -> ExecutionRecord:
    """Add ``contrib/tasks/<name>.py`` as a CRITICAL task (it runs at once, once) and
    answer its finished run."""
    code = (TASKS / f"{name}.py").read_text()
    await daemon.add_task(TaskSpec(name, name, name, Priority.CRITICAL, code, env=env))
    with trio.fail_after(RUN_SECONDS):
        while daemon.get_task(name).execution_count == 0:
            await trio.sleep(0.02)
    page = await daemon.list_executions(ExecutionQuery(task_id=name))
    [record] = page.executions
    return record


def succeeded(record: ExecutionRecord) -> Any:
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    assert record.result["status"] == "completed"
    return record.result


# -- disk_usage_report: as df counts -----------------------------------------------------


def df(path: Path) -> tuple[int, int, int]:
    """``df``'s used and available bytes and its Use% for the file system of ``path``."""
    done = subprocess.run(
        ["df", "-B1", "--output=used,avail,pcent", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    used, avail, percent = done.stdout.splitlines()[1].split()
    return int(used), int(avail), int(percent.rstrip("%"))


@pytest.mark.skipif(shutil.which("df") is None, reason="no df here")
async def test_disk_usage_is_the_percentage_df_shows(daemon: Daemon) -> None:
    workspace = daemon.settings.workspace
    result = succeeded(await run_task(daemon, "disk_usage_report", DISK_USAGE_PATHS="/"))
    assert [disk["path"] for disk in result["disks"]] == [str(workspace), "/"]
    for disk in result["disks"]:
        used, avail, percent = df(Path(disk["path"]))
        # df rounds Use% up to a whole number; the task keeps one decimal.
        assert percent - 1.05 <= disk["used_percent"] <= percent + 0.05, (disk, percent)
        # Other programs write meanwhile: the figures agree to within 0.5 GB.
        assert abs(disk["used_gb"] - used / 1e9) < 0.5
        assert abs(disk["free_gb"] - avail / 1e9) < 0.5
        exact = 100 * used / (used + avail)
        assert abs(disk["used_percent"] - exact) < 0.2


async def test_disk_usage_fails_the_run_above_the_limit(daemon: Daemon) -> None:
    _, _, percent = df(daemon.settings.workspace)
    limit = max(percent - 5, 0)
    record = await run_task(daemon, "disk_usage_report", DISK_USAGE_FAIL_PERCENT=str(limit))
    assert record.outcome is Outcome.FAILED
    assert f"disk usage above {limit:g} % for: {daemon.settings.workspace}" in (record.reason or "")


# -- old_files_report ------------------------------------------------------------------------


def write(path: Path, size: int, *, days_old: float = 0, fill: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * size)
    when = time.time() - days_old * 86400
    os.utime(path, (when, when))
    return path


async def test_old_files_are_counted_and_the_largest_listed(daemon: Daemon) -> None:
    root = daemon.settings.workspace
    write(root / "reports" / "2019.pdf", 3_000_000, days_old=400)
    write(root / "reports" / "2020.pdf", 2_000_000, days_old=300)
    write(root / "notes.txt", 1_000_000, days_old=200)
    write(root / "today.txt", 5_000_000)  # new: not old however large
    write(root / ".git" / "objects" / "pack", 9_000_000, days_old=999)  # skipped
    result = succeeded(
        await run_task(daemon, "old_files_report", OLD_FILES_DAYS="180", OLD_FILES_TOP="2")
    )
    assert result["root"] == str(root)
    assert result["older_than_days"] == 180
    assert result["old_files"] == 3
    assert result["old_mb"] == pytest.approx(6.0, abs=0.01)
    assert result["largest_old_files"] == [
        {"path": "reports/2019.pdf", "mb": 3.0},
        {"path": "reports/2020.pdf", "mb": 2.0},
    ]
    assert result["unreadable"] == 0
    # The daemon's own files in the workspace (the database, the logs) are there too.
    assert result["files_scanned"] >= 4


# -- duplicate_files_report ----------------------------------------------------------------


async def test_duplicates_are_grouped_by_content_and_hard_links_waste_nothing(
    daemon: Daemon,
) -> None:
    root = daemon.settings.workspace / "photos"
    same = b"\x01" * 4096
    for name in ("a.jpg", "copy/a.jpg", "copy/again/a.jpg"):
        write(root / name, 1, fill=same)
    write(root / "other.jpg", 4096, fill=b"\x02")  # the same size, another content
    os.link(root / "other.jpg", root / "other-link.jpg")  # one file, two names
    write(root / "small.jpg", 1, fill=b"\x01" * 10)
    write(root / "small-copy.jpg", 1, fill=b"\x01" * 10)  # below the minimum size
    result = succeeded(
        await run_task(
            daemon,
            "duplicate_files_report",
            DUPLICATES_MIN_BYTES="1000",
            DUPLICATES_PARALLEL="2",
        )
    )
    assert result["duplicate_groups"] == 1
    [group] = result["groups"]
    assert group["paths"] == ["photos/a.jpg", "photos/copy/a.jpg", "photos/copy/again/a.jpg"]
    assert group["wasted_mb"] == round(2 * 4096 / 1e6, 2)
    assert result["files_hashed"] == 4  # three copies and other.jpg, once
    assert result["unreadable"] == 0


# -- sqlite_backup -------------------------------------------------------------------------


async def test_a_backup_is_a_checked_copy_and_old_copies_rotate(daemon: Daemon) -> None:
    workspace = daemon.settings.workspace
    source = workspace / "my notes #1.db"  # SQLite's URI would cut a path at "#"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.executemany("INSERT INTO notes VALUES (?)", [("one",), ("two",)])
    db.close()
    backups = workspace / "backups"
    backups.mkdir()
    for stamp in ("20200101T000000Z", "20210101T000000Z"):  # earlier runs' copies
        (backups / f"my notes #1-{stamp}.db").write_bytes(b"")
    (backups / "unrelated.db").write_bytes(b"mine")
    result = succeeded(
        await run_task(
            daemon, "sqlite_backup", SQLITE_BACKUP_SOURCE=str(source), SQLITE_BACKUP_KEEP="2"
        )
    )
    backup = Path(result["backup"])
    assert backup.parent == backups
    with sqlite3.connect(backup) as copy:
        assert copy.execute("SELECT body FROM notes ORDER BY rowid").fetchall() == [
            ("one",),
            ("two",),
        ]
    copy.close()
    assert result["removed"] == ["my notes #1-20200101T000000Z.db"]
    assert result["kept"] == 2
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        ["my notes #1-20210101T000000Z.db", backup.name, "unrelated.db"]
    )


async def test_a_backup_without_its_source_fails_saying_what_to_set(daemon: Daemon) -> None:
    record = await run_task(daemon, "sqlite_backup")
    assert record.outcome is Outcome.FAILED
    assert "set SQLITE_BACKUP_SOURCE to the database file to back up" in (record.reason or "")
