"""A start that fails leaves the directory as it found it, and says why in words.

Each failure runs ``omnimind serve`` as a user does: a real process, in an empty directory
(its home and workspace by default), with no ``OMNIMIND_*`` variable but the one that
breaks it. A failure found before anything is created (the port, another daemon's
database, settings) creates nothing; one found later (a missing workspace or task
interpreter, a port taken in the instant between the check and the bind) removes what
the start made, and never what was there before.
"""

from __future__ import annotations

import fcntl
import gc
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omnimind_trio import Settings
from omnimind_trio.cli import _serve
from omnimind_trio.cli._footprint import StartFootprint
from omnimind_trio.exceptions import StartupError

from .test_process import Served, spawn

__all__ = ["spawn"]

pytestmark = pytest.mark.slow

START_SECONDS = 20.0


def run_serve(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``omnimind serve`` in ``cwd``, which must fail; only ``env`` of OMNIMIND_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    return subprocess.run(
        [sys.executable, "-m", "omnimind_trio", "serve", *args],
        cwd=cwd,
        env={**clean, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )


def listing(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory``, with a file's bytes (None for a directory)."""
    return {
        str(path.relative_to(directory)): None if path.is_dir() else path.read_bytes()
        for path in sorted(directory.rglob("*"))
    }


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def in_use(port: int) -> str:
    return (
        f"omnimind: port {port} on 127.0.0.1 is already in use (by another omnimind or"
        " another program); choose another with --port or OMNIMIND_PORT\n"
    )


# -- a port that cannot be bound ---------------------------------------------------------


def test_a_taken_port_creates_nothing_and_says_so_in_words(tmp_path: Path, taken_port: int) -> None:
    done = run_serve(tmp_path, "--port", str(taken_port))
    assert done.returncode == 1
    assert done.stderr == in_use(taken_port)  # the whole of it: one line, no log noise
    assert done.stdout == ""  # no credentials printed that were never kept
    assert listing(tmp_path) == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNIMIND_PORT": "taken"}, "is already in use"),
        ({"OMNIMIND_WORKSPACE": "/nonexistent"}, "the workspace /nonexistent is not a directory"),
        ({"OMNIMIND_TASK_PYTHON": "/nonexistent/python3"}, "cannot be started"),
    ],
)
def test_a_failed_start_leaves_an_earlier_home_as_it_was(
    tmp_path: Path,
    taken_port: int,
    spawn: Callable[..., Served],
    env: dict[str, str],
    message: str,
) -> None:
    """A home that has been used: its credentials, database and the user's own file are
    all still there, the credentials and the file byte for byte."""
    home = tmp_path / "home"
    served = spawn(home, credentials=False)
    served.proc.terminate()
    assert served.proc.wait(timeout=10) == 0
    (home / "notes.txt").write_text("mine\n")
    before = listing(home)
    assert {"config/dashboard_auth.json", "omnimind.db", "notes.txt"} <= set(before)
    env = {k: str(taken_port) if v == "taken" else v for k, v in env.items()}
    done = run_serve(home, **{"OMNIMIND_PORT": "0", **env})
    assert done.returncode == 1
    assert message in done.stderr.splitlines()[-1]
    after = listing(home)
    assert set(after) == set(before)
    for name in ("config/dashboard_auth.json", "notes.txt"):
        assert after[name] == before[name], name
    if "OMNIMIND_TASK_PYTHON" not in env:  # refused before the database is opened
        assert after["omnimind.db"] == before["omnimind.db"]


@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
async def test_a_port_taken_after_the_check_undoes_what_the_start_made(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program binds the port between ``check_bind`` and hypercorn's bind: the
    database, the credentials, the logs directory and the missing home are made by then,
    and removed; what was there before stays."""
    monkeypatch.setattr(_serve, "check_bind", lambda settings, config: None)
    (tmp_path / "notes.txt").write_text("mine\n")
    home = tmp_path / "new" / "home"
    settings = Settings(home=home, workspace=tmp_path, port=taken_port)
    failed = pytest.RaisesExc(StartupError, match=f"port {taken_port} on 127.0.0.1 is already in")
    with pytest.RaisesGroup(failed, flatten_subgroups=True) as raised:
        await _serve.serve(settings)
    assert listing(tmp_path) == {"notes.txt": b"mine\n"}
    # hypercorn leaves the socket whose bind failed to the garbage collector (its
    # Config._create_sockets): collected here, under this test's warning filter.
    del raised
    gc.collect()


# -- invalid settings ----------------------------------------------------------------------


def test_invalid_settings_create_nothing(tmp_path: Path) -> None:
    done = run_serve(tmp_path, OMNIMIND_MAX_MEMORY_MB="-1")
    assert done.returncode == 2
    # One line per problem, naming the variable that was set, without pydantic's codes.
    assert done.stderr == (
        "omnimind: invalid settings:\n"
        "  OMNIMIND_MAX_MEMORY_MB='-1': Input should be greater than or equal to 0\n"
    )
    assert listing(tmp_path) == {}


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "OMNIMIND_WORKSPACE",
            "/nonexistent/workspace",
            "omnimind: the workspace /nonexistent/workspace is not a directory",
        ),
        (
            "OMNIMIND_TASK_PYTHON",
            "/nonexistent/python3",
            "omnimind: the task interpreter /nonexistent/python3 cannot be started:"
            " No such file or directory",
        ),
    ],
)
def test_a_setting_found_wrong_while_starting_leaves_nothing_behind(
    tmp_path: Path, setting: str, value: str, message: str
) -> None:
    """Found after the credentials were generated (the workspace) and the database made
    (the interpreter, at the fork server's start): both removed, and the home's
    directories that were missing."""
    (tmp_path / "notes.txt").write_text("mine\n")
    done = run_serve(tmp_path, "--port", "0", OMNIMIND_HOME=str(tmp_path / "a" / "b"), **{
        setting: value
    })  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == message
    assert "cannot serve on" not in done.stderr
    assert done.stdout == ""
    assert listing(tmp_path) == {"notes.txt": b"mine\n"}


# -- a locked database (a second daemon on the same home) --------------------------------


@pytest.mark.parametrize("same_port", [True, False])
def test_a_second_daemon_on_the_same_home_changes_nothing(
    tmp_path: Path, spawn: Callable[..., Served], same_port: bool
) -> None:
    """The first daemon takes its credentials from the environment: the second, without
    them, would generate config/dashboard_auth.json, and does not. On the first's port
    too, it names the database (the real trouble), not the port."""
    home = tmp_path / "home"
    first = spawn(home)
    before = listing(home)
    assert "config" not in before
    port = str(first.port) if same_port else "0"
    done = run_serve(home, "--port", port, OMNIMIND_WORKSPACE=str(first.workspace))
    assert done.returncode == 1
    assert done.stderr == (
        f"omnimind: another omnimind daemon is using the database {home / 'omnimind.db'}\n"
    )
    assert set(listing(home)) == set(before)  # (the first daemon writes to its database)
    assert first.proc.poll() is None
    assert first.client().get("/daemon/status").status_code == 200


# -- what the undo never removes -----------------------------------------------------------


def test_the_undo_leaves_what_another_start_made_meanwhile(tmp_path: Path) -> None:
    """Two starts on an empty home at once: the other one generated the credentials and
    holds the new database when this one fails. Neither is this start's to remove."""
    settings = Settings(home=tmp_path / "home", workspace=tmp_path)
    footprint = StartFootprint(settings)  # before anything exists
    settings.auth_file.parent.mkdir(parents=True)
    settings.auth_file.write_text('{"user": "omnimind", "pass": "theirs"}\n')
    database = settings.database_path
    held = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the other daemon does
        assert footprint.undo() == []
        assert settings.auth_file.read_text() == '{"user": "omnimind", "pass": "theirs"}\n'
        assert database.exists()
    finally:
        os.close(held)
    # Unheld, the database that was not there before goes; the home keeps their file.
    assert footprint.undo() == [database]
    assert settings.auth_file.exists()


def test_an_invalid_option_is_named_as_given_and_every_problem_is_said(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "--port", "99999", OMNIMIND_IDLE_CPU_PERCENT="abc")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "omnimind: invalid settings:",
        "  --port=99999: Input should be less than or equal to 65535",
        "  OMNIMIND_IDLE_CPU_PERCENT='abc': Input should be a valid number, unable to parse"
        " string as a number",
    ]
    done = run_serve(tmp_path, OMNIMIND_VIEWER_USER="viewer")  # a rule between two settings
    assert done.stderr == (
        "omnimind: invalid settings:\n  OMNIMIND_VIEWER_USER and OMNIMIND_VIEWER_PASS go together\n"
    )
    assert listing(tmp_path) == {}
