"""Credentials in a real ``omnimind serve``: rotation taken up on SIGHUP and by watching the
file, WebSockets of the old credential closed, unsafe files refused at start and at reload,
and the failure throttle keyed on the real peer address."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from omnimind_trio.credentials import rotate_credentials

from .conftest import make_settings
from .test_process import Served, free_port, spawn, wait_for

__all__ = ["spawn"]

pytestmark = pytest.mark.slow


def stored(served: Served) -> dict[str, str]:
    return dict(json.loads((served.home / "config" / "dashboard_auth.json").read_text()))


def status_code(served: Served, auth: tuple[str, str], method: str = "GET") -> int:
    path = "/daemon/status" if method == "GET" else "/daemon/stop"
    with httpx.Client(base_url=served.url, auth=auth, timeout=10.0) as client:
        return client.request(method, path).status_code


def rotate_in(served: Served, *extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    done = subprocess.run(
        [sys.executable, "-m", "omnimind_trio", "--json", "credentials", "rotate",
         "--home", str(served.home), *extra],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_sighup_puts_rotated_credentials_in_force_and_closes_old_websockets(
    spawn: Callable[..., Served],
) -> None:
    served = spawn(credentials=False)
    old = stored(served)
    old_auth = (old["user"], old["pass"])
    header = "Basic " + base64.b64encode(f"{old['user']}:{old['pass']}".encode()).decode()
    assert status_code(served, old_auth) == 200
    timings: dict[str, float] = {}

    async def scenario() -> ConnectionClosed:
        async with (
            await trio.open_tcp_stream("127.0.0.1", served.port) as stream,
            trio.open_nursery() as nursery,
        ):
            ws = await wrap_client_stream(
                nursery, stream, "127.0.0.1", "/daemon/ws",
                extra_headers=[("Authorization", header)],
            )  # fmt: skip
            assert json.loads(await ws.get_message())["type"] == "status"
            # In-process (quick), then at once the signal: the file watch (every 2 s) is
            # unlikely to see the new file first, and either way the old one must stop.
            settings = make_settings(served.home, dashboard_user=None, dashboard_pass=None)
            rotate_credentials(settings, viewer="new")
            t0 = time.perf_counter()
            served.proc.send_signal(signal.SIGHUP)
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
                while True:
                    await ws.get_message()
            timings["closed"] = time.perf_counter() - t0
            return closed.value

    closed = trio.run(scenario)
    assert closed.reason.code == 1008
    assert closed.reason.reason == "the credentials changed: reconnect with the new ones"
    assert status_code(served, old_auth) == 401  # at once: the socket is already closed
    new = stored(served)
    assert status_code(served, (new["user"], new["pass"])) == 200
    viewer = (new["viewer_user"], new["viewer_pass"])
    assert status_code(served, viewer) == 200
    assert status_code(served, viewer, "POST") == 403
    assert served.proc.poll() is None  # SIGHUP did not end it
    wait_for(lambda: "SIGHUP: " in served.stderr(), 5, "the SIGHUP to be logged")
    print(f"\nrotation + SIGHUP: old WebSocket closed in {timings['closed'] * 1000:.1f} ms")

    # A reload that finds an unsafe file keeps the credentials in force, and says why.
    (served.home / "config" / "dashboard_auth.json").chmod(0o644)
    served.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "are too open; chmod 600 it; keeping" in served.stderr(), 5, "the error")
    assert status_code(served, (new["user"], new["pass"])) == 200
    assert served.proc.poll() is None


def test_the_daemon_notices_a_rotated_file_without_a_signal(
    spawn: Callable[..., Served],
) -> None:
    served = spawn(credentials=False)
    old = stored(served)
    new = rotate_in(served)
    t0 = time.perf_counter()
    wait_for(lambda: status_code(served, (old["user"], old["pass"])) == 401, 10, "old refused")
    taken_up = time.perf_counter() - t0
    assert status_code(served, (new["user"], new["pass"])) == 200
    print(f"\nrotated file taken up without a signal in {taken_up:.2f} s (poll: 2 s)")
    assert taken_up < 5


def test_a_world_readable_credentials_file_is_a_start_up_error(tmp_path: Path) -> None:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir()
    path.write_text('{"user": "u", "pass": "p"}')
    path.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(OMNIMIND_HOME=str(tmp_path), OMNIMIND_WORKSPACE=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "omnimind_trio", "serve", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.endswith(
        f"omnimind: permissions 0644 for {path} are too open; chmod 600 it\n"
    )


def test_the_eleventh_wrong_password_from_the_peer_address_gets_429(
    spawn: Callable[..., Served],
) -> None:
    served = spawn()
    wrong = (served.auth[0], "guess") if served.auth else ("", "")
    for _ in range(10):
        assert status_code(served, wrong) == 401
    with httpx.Client(base_url=served.url, auth=served.auth, timeout=10.0) as client:
        response = client.get("/daemon/status")
    assert response.status_code == 429
    assert 55 <= int(response.headers["Retry-After"]) <= 60
    assert "from 127.0.0.1" in response.json()["detail"]
    assert (
        served.stderr().count("WARNING omnimind_trio.http: failed authentication from 127.0.0.1")
        == 10
    )
