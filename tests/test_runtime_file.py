"""The runtime file: ``omnimind serve`` announces its URL and home to this user's client
commands, which find it from any directory; a real daemon, and the file's rules."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from omnimind_trio.cli._main import main
from omnimind_trio.cli._runtime import (
    RuntimeInfo,
    announced,
    find_daemon,
    local_url,
    locate,
    read_runtime,
    runtime_path,
    write_runtime,
)

from .test_process import START_DEADLINE, free_port
from .test_tls import no_omnimind_env, run_cli, start, wait_announced  # noqa: F401 (a fixture)


@pytest.mark.slow
@pytest.mark.usefixtures("no_omnimind_env")
def test_the_cli_finds_the_daemon_from_any_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    path = runtime / "omnimind" / "daemon.json"
    # No credentials in the environment: generated into the daemon's home.
    served = start(tmp_path, env={"XDG_RUNTIME_DIR": str(runtime)})
    try:
        info = wait_announced(served, path)
        assert info == RuntimeInfo(
            url=f"http://127.0.0.1:{served.port}", home=str(served.home.resolve()), pid=served.pid
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

        done = run_cli("--json", "status", cwd="/tmp", XDG_RUNTIME_DIR=str(runtime))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["workspace"] == str(served.workspace)
        # In-process from here: the same code, without a second interpreter's start-up.
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        capsys.readouterr()
        assert main(["status"]) == 0
        # Explicit settings win: another URL is tried, and fails.
        elsewhere = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("OMNIMIND_URL", elsewhere)
        assert main(["status"]) == 3 and elsewhere in capsys.readouterr().err
        # Given the announced daemon's URL (with or without a final slash), its home still
        # gives the credentials.
        assert main(["--url", info.url + "/", "status"]) == 0
        capsys.readouterr()
        # Another home named: the file describes some other daemon.
        monkeypatch.delenv("OMNIMIND_URL")
        monkeypatch.setenv("OMNIMIND_HOME", str(tmp_path))
        assert main(["status"]) == 3

        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=START_DEADLINE) == 0
        assert not path.exists()
    finally:
        served.kill_all()


def test_a_stale_or_foreign_runtime_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "omnimind" / "daemon.json"
    path.parent.mkdir(mode=0o755)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_runtime(RuntimeInfo("http://127.0.0.1:1", str(tmp_path), gone.pid), path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_runtime(path) is None  # its daemon was killed without removing it

    me = RuntimeInfo("http://127.0.0.1:2", str(tmp_path), os.getpid())
    write_runtime(me, path)
    assert read_runtime(path) == me
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert find_daemon(environ) == me
    assert find_daemon({**environ, "OMNIMIND_HOME": str(tmp_path)}) == me
    assert find_daemon({**environ, "OMNIMIND_HOME": str(tmp_path / "other")}) is None
    # What a client command (and a completion) talks to, and where its credentials are.
    default = "http://127.0.0.1:8000"
    assert locate(None, default, environ) == (me.url, tmp_path)
    assert locate(me.url + "/", default, environ) == (me.url + "/", tmp_path)
    assert locate("http://127.0.0.1:3", default, environ) == ("http://127.0.0.1:3", None)
    assert locate(None, default, {"XDG_RUNTIME_DIR": str(tmp_path / "none")}) == (default, None)
    path.write_text("{not json")
    assert read_runtime(path) is None


def test_the_last_daemon_started_owns_the_file(tmp_path: Path) -> None:
    path = tmp_path / "omnimind" / "daemon.json"
    with announced(["http://127.0.0.1:1"], tmp_path, path):
        first = read_runtime(path)
        assert first is not None and first.url == "http://127.0.0.1:1"
        # A second daemon of this user (here a stand-in: our parent's pid) takes it over...
        later = RuntimeInfo("http://127.0.0.1:3", str(tmp_path), os.getppid())
        write_runtime(later, path)
    # ... and the first one, leaving, does not remove the second one's file.
    assert read_runtime(path) == later
    assert not [p for p in path.parent.iterdir() if p.name != "daemon.json"]  # no temp left


def test_a_daemon_leaving_names_the_one_it_took_over_from_if_it_still_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "omnimind" / "daemon.json"
    first = RuntimeInfo("http://127.0.0.1:3", str(tmp_path), os.getppid())  # still running
    write_runtime(first, path)
    with announced(["http://127.0.0.1:4"], tmp_path, path):
        assert read_runtime(path) == RuntimeInfo("http://127.0.0.1:4", str(tmp_path), os.getpid())
    assert read_runtime(path) == first  # found again, not lost with the file
    # One that has gone meanwhile is not named again: the file goes.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with announced(["http://127.0.0.1:4"], tmp_path, path):
        pass
    write_runtime(RuntimeInfo("http://127.0.0.1:5", str(tmp_path), gone.pid), path)
    with announced(["http://127.0.0.1:6"], tmp_path, path):
        pass
    assert not path.exists()


def test_a_wildcard_address_is_announced_as_loopback() -> None:
    assert local_url("http://0.0.0.0:8000") == "http://127.0.0.1:8000"
    assert local_url("https://[::]:8443") == "https://[::1]:8443"
    assert local_url("https://192.0.2.7:8443") == "https://192.0.2.7:8443"


def test_runtime_path_prefers_xdg_runtime_dir(tmp_path: Path) -> None:
    assert runtime_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/omnimind/daemon.json"
    )
    assert runtime_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "omnimind/daemon.json"
    assert runtime_path({}) == Path.home() / ".local/state/omnimind/daemon.json"
    assert runtime_path({"XDG_RUNTIME_DIR": "relative"}).is_relative_to(Path.home())
