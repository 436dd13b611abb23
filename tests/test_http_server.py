"""The API on a real socket, served by hypercorn's trio worker as ``omnimind serve`` does."""

from __future__ import annotations

import base64
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import httpx
import hypercorn.trio
import hypercorn.trio.run
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from trio_websocket import open_websocket_url

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.cli._serve import serve
from omnimind_trio.credentials import Credentials
from omnimind_trio.exceptions import StartupError
from omnimind_trio.http import _connection, create_app, hypercorn_config, serve_http
from omnimind_trio.http._connection import Connection

from .conftest import make_settings

pytestmark = pytest.mark.slow

KEEP_ALIVE = 1.0
GRACEFUL = 8.0
AUTH = "Basic " + base64.b64encode(b"tester:secret-pass").decode()
STATUS_REQUEST = (
    f"GET /daemon/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: {AUTH}\r\n\r\n"
).encode()


@asynccontextmanager
async def serving(
    tmp_path: Path, *, connection_fix: bool = True
) -> AsyncIterator[tuple[str, trio.Event]]:
    """The API on a free port, with a short keep-alive timeout and a long graceful timeout
    (so that a shutdown held up by a connection shows); set the event to shut down."""
    settings = make_settings(tmp_path, port=0)
    credentials = Credentials("tester", "secret-pass", "environment")
    config = hypercorn_config(settings)
    config.keep_alive_timeout = KEEP_ALIVE
    config.graceful_timeout = GRACEFUL
    shutdown = trio.Event()
    async with (
        open_daemon(settings, metrics_source=FakeSource(5)) as daemon,
        trio.open_nursery() as nursery,
    ):
        urls = await nursery.start(
            partial(
                serve_http,
                create_app(daemon, credentials),
                config,
                shutdown_trigger=shutdown.wait,
                connection_fix=connection_fix,
            )
        )
        yield urls[0], shutdown
        shutdown.set()


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving(tmp_path) as (url, _):
        yield url


async def open_connection(base_url: str) -> trio.SocketStream:
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    return await trio.open_tcp_stream(url.hostname, url.port)


async def receive_response(stream: trio.SocketStream) -> bytes:
    """One whole response (this API always sends a Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        assert chunk, "the server closed the connection before answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += await stream.receive_some()
    return head


async def seconds_until_closed(stream: trio.SocketStream) -> float:
    t0 = time.perf_counter()
    with trio.fail_after(10 * KEEP_ALIVE + 5):
        assert await stream.receive_some() == b""
    return time.perf_counter() - t0


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    base_url: str,
) -> None:
    """Each answer re-arms the timer: a client that keeps asking keeps its connection, and
    one that goes quiet has it closed after keep_alive_timeout, not later and not earlier."""
    stream = await open_connection(base_url)
    async with stream:
        for _ in range(4):  # 4 x 0.5 s: longer than the timeout, in use all along
            await stream.send_all(STATUS_REQUEST)
            assert (await receive_response(stream)).startswith(b"HTTP/1.1 200")
            await trio.sleep(0.5 * KEEP_ALIVE)
        await stream.send_all(STATUS_REQUEST)
        assert (await receive_response(stream)).startswith(b"HTTP/1.1 200")
        idle = await seconds_until_closed(stream)
    assert 0.5 * KEEP_ALIVE <= idle < KEEP_ALIVE + 3.0


async def test_a_connection_that_never_sends_a_request_is_closed_too(base_url: str) -> None:
    stream = await open_connection(base_url)
    async with stream:
        idle = await seconds_until_closed(stream)
    assert 0.5 * KEEP_ALIVE <= idle < KEEP_ALIVE + 3.0


async def test_an_answer_that_leaves_the_body_unread_closes_the_connection(
    base_url: str,
) -> None:
    """The 401 below is sent before the body is read, with ``Connection: close``: the
    server must then really close its end, even for a client that would wait for more."""
    body = b"x" * 100_000
    request = (
        b"POST /daemon/tasks/add HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    stream = await open_connection(base_url)
    async with stream:
        await stream.send_all(request)  # the headers only: the body never comes
        head = await receive_response(stream)
        assert head.startswith(b"HTTP/1.1 401")
        assert b"connection: close" in head.lower()
        assert await seconds_until_closed(stream) < KEEP_ALIVE


async def test_a_websocket_outlives_the_keep_alive_timeout(base_url: str) -> None:
    """A WebSocket is a connection that is never idle: the keep-alive timer must not end it."""
    ws_url = base_url.replace("http://", "ws://") + "/daemon/ws"
    async with (
        open_websocket_url(ws_url, extra_headers=[("Authorization", AUTH)]) as ws,
        httpx.AsyncClient(base_url=base_url, auth=("tester", "secret-pass")) as client,
    ):
        assert json.loads(await ws.get_message())["type"] == "status"
        await trio.sleep(2.5 * KEEP_ALIVE)
        assert (await client.post("/daemon/stop")).status_code == 200
        with trio.fail_after(5):
            while json.loads(await ws.get_message())["type"] != "state_changed":
                pass


class H2Client:
    """HTTP/2 with prior knowledge on a plain socket, as ``curl --http2-prior-knowledge``."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()

    async def get_status(self) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "GET"),
            (":path", "/daemon/status"),
            (":scheme", "http"),
            (":authority", "localhost"),
            ("authorization", AUTH),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        status = 0
        while True:
            await self.stream.send_all(self.h2.data_to_send())
            data = await self.stream.receive_some()
            assert data, "the server closed the connection before answering"
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    await self.stream.send_all(self.h2.data_to_send())
                    return status

    async def seconds_until_closed(self) -> float:
        t0 = time.perf_counter()
        with trio.fail_after(GRACEFUL + 5):
            while data := await self.stream.receive_some():
                self.h2.receive_data(data)
        return time.perf_counter() - t0


async def test_http2_requests_share_a_connection_that_times_out_when_idle(
    base_url: str,
) -> None:
    async with await open_connection(base_url) as stream:
        client = H2Client(stream)
        assert [await client.get_status() for _ in range(3)] == [200, 200, 200]
        idle = await client.seconds_until_closed()
    assert 0.5 * KEEP_ALIVE <= idle < KEEP_ALIVE + 3.0


async def test_a_shutdown_closes_idle_http1_and_http2_connections_at_once(
    tmp_path: Path,
) -> None:
    """Not after hypercorn's graceful_timeout: an idle connection has nothing to finish."""
    async with serving(tmp_path) as (url, shutdown):
        http1 = await open_connection(url)
        await http1.send_all(STATUS_REQUEST)
        assert (await receive_response(http1)).startswith(b"HTTP/1.1 200")
        client = H2Client(await open_connection(url))
        assert await client.get_status() == 200
        shutdown.set()
        async with http1, client.stream:
            http1_closed = await seconds_until_closed(http1)
            http2_closed = await client.seconds_until_closed()
    assert http1_closed < GRACEFUL / 4
    assert http2_closed < GRACEFUL / 4


async def test_a_websocket_client_that_talks_can_still_close(base_url: str) -> None:
    """The API never reads what a WebSocket client sends (browsers send keep-alives). Left
    unread, 20 messages stopped the connection reading: the close below took forever."""
    ws_url = base_url.replace("http://", "ws://") + "/daemon/ws"
    async with (
        open_websocket_url(ws_url, extra_headers=[("Authorization", AUTH)]) as ws,
        httpx.AsyncClient(base_url=base_url, auth=("tester", "secret-pass")) as client,
    ):
        assert json.loads(await ws.get_message())["type"] == "status"
        for n in range(100):
            await ws.send_message(f"keep-alive {n}")
        assert (await client.post("/daemon/stop")).status_code == 200
        with trio.fail_after(5):
            while json.loads(await ws.get_message())["type"] != "state_changed":
                pass
        with trio.fail_after(2):
            await ws.aclose()
    with trio.fail_after(5):
        while connection_tasks():
            await trio.sleep(0.01)


def connection_tasks() -> list[str]:
    """The names of the tasks serving connections (their helpers, not their own task)."""
    names = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if "IdleTimer" in task.name or "_send_pings" in task.name:
            names.append(task.name)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return names


async def test_a_closed_connection_leaves_no_task_behind(base_url: str) -> None:
    """After a WebSocket client goes, nothing of its connection keeps running: not its
    keep-alive timer (stopped for good: a task leaked per WebSocket ever opened), not its
    pinger (asleep for websocket_ping_interval, 20 s)."""
    ws_url = base_url.replace("http://", "ws://") + "/daemon/ws"
    async with open_websocket_url(ws_url, extra_headers=[("Authorization", AUTH)]) as ws:
        await ws.get_message()
        assert len(connection_tasks()) == 2  # its timer and its pinger
    with trio.fail_after(5):
        while connection_tasks():
            await trio.sleep(0.01)


def keep_alive_requests(base_url: str) -> list[int]:
    """Requests on ONE keep-alive connection, some answered without reading their body."""
    big = b"x" * 200_000
    statuses = []
    with httpx.Client(base_url=base_url, auth=("tester", "secret-pass"), timeout=3) as client:
        for method, path, body in [
            ("PATCH", "/daemon/tasks/nope", big),  # 404 before the body is read
            ("GET", "/daemon/status", None),
            ("POST", "/daemon/stop", big),  # this route never reads a body
            ("GET", "/daemon/status", None),
            ("PUT", "/daemon/status", big),  # 405
            ("GET", "/daemon/status", None),
        ]:
            statuses.append(client.request(method, path, content=body).status_code)
    with httpx.Client(base_url=base_url, timeout=3) as no_auth:
        statuses.append(no_auth.post("/daemon/tasks/add", content=big).status_code)
        statuses.append(no_auth.get("/daemon/status").status_code)
    return statuses


async def test_an_unread_body_never_hangs_the_next_request(base_url: str) -> None:
    statuses = await trio.to_thread.run_sync(keep_alive_requests, base_url)
    assert statuses == [404, 200, 200, 200, 405, 200, 401, 401]


async def test_serve_freezes_what_start_up_made_and_collects_after(tmp_path: Path) -> None:
    """``omnimind serve`` starts without garbage collections and freezes what it made
    (bench C and D); afterwards the collector runs as usual."""
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    settings = make_settings(tmp_path, port=0)
    gc.unfreeze()
    gc.collect()  # from here, far fewer allocations than a collection waits for
    gc.callbacks.append(count)
    try:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve, settings))
            gc.callbacks.remove(count)
            assert collections == []
            assert gc.isenabled()
            assert gc.get_freeze_count() > 0
            async with httpx.AsyncClient(auth=("tester", "secret-pass")) as client:
                assert (await client.get(urls[0] + "/daemon/status")).status_code == 200
            nursery.cancel_scope.cancel()
    finally:
        if count in gc.callbacks:
            gc.callbacks.remove(count)
        gc.unfreeze()


async def test_a_failed_start_up_leaves_the_collector_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, port=0, workspace=tmp_path / "missing")
    with pytest.raises(StartupError, match="workspace"):
        await serve(settings)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


# -- which connection class serves (the fix is per server, and can be turned off) ---------


@pytest.fixture
def connection_classes(monkeypatch: pytest.MonkeyPatch) -> list[type[TCPServer]]:
    """The class of every connection any hypercorn trio server makes from now on."""
    seen: list[type[TCPServer]] = []
    original = TCPServer.__init__

    def spy(self: TCPServer, *args: Any, **kwargs: Any) -> None:
        seen.append(type(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(TCPServer, "__init__", spy)
    return seen


async def one_request(base_url: str) -> bytes:
    """The status line of ``GET /`` on a new connection (whatever the answer)."""
    async with await open_connection(base_url) as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with trio.fail_after(10):
            head = await receive_response(stream)
    return head.split(b"\r\n", 1)[0]


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: another hypercorn server's, in the same process as the API."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_another_hypercorn_server_in_the_process_keeps_hypercorn_s_connection(
    tmp_path: Path, connection_classes: list[type[TCPServer]]
) -> None:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    other_shutdown = trio.Event()
    async with serving(tmp_path) as (ours, _), trio.open_nursery() as nursery:
        # Started after ours: a process-wide install would have reached it.
        [theirs] = await nursery.start(
            partial(hypercorn.trio.serve, hello, config, shutdown_trigger=other_shutdown.wait)
        )
        assert await one_request(theirs) == b"HTTP/1.1 200 "
        assert await one_request(ours) == b"HTTP/1.1 401 "
        assert await one_request(theirs) == b"HTTP/1.1 200 "
        other_shutdown.set()
    assert connection_classes == [TCPServer, Connection, TCPServer]
    assert hypercorn.trio.run.TCPServer is TCPServer  # nothing of hypercorn's was rebound


async def test_without_the_fix_the_api_is_served_with_hypercorn_s_class(
    tmp_path: Path, connection_classes: list[type[TCPServer]]
) -> None:
    async with serving(tmp_path, connection_fix=False) as (url, _):
        assert await one_request(url) == b"HTTP/1.1 401 "
    assert connection_classes == [TCPServer]


async def test_the_setting_turns_the_fix_off_for_omnimind_serve(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connection_classes: list[type[TCPServer]],
) -> None:
    monkeypatch.setenv("OMNIMIND_HTTP_CONNECTION_FIX", "false")
    settings = make_settings(tmp_path, port=0)
    assert settings.http_connection_fix is False
    try:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve, settings))
            assert await one_request(urls[0]) == b"HTTP/1.1 401 "
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()  # serve froze what its start-up made
    assert connection_classes == [TCPServer]


async def test_on_a_hypercorn_it_was_not_written_for_it_warns_once_and_falls_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    connection_classes: list[type[TCPServer]],
) -> None:
    monkeypatch.setattr(_connection, "HYPERCORN_VERSION", "0.19.0")
    with caplog.at_level(logging.WARNING, logger=_connection.__name__):
        async with serving(tmp_path) as (url, _):
            assert await one_request(url) == b"HTTP/1.1 401 "
            assert await one_request(url) == b"HTTP/1.1 401 "
    assert connection_classes == [TCPServer, TCPServer]
    [warning] = [r for r in caplog.records if r.name == _connection.__name__]
    assert warning.levelno == logging.WARNING
    assert "hypercorn 0.19.0 is not a version" in warning.getMessage()
    assert "OMNIMIND_HTTP_CONNECTION_FIX=false" in warning.getMessage()


def test_the_versions_the_connection_class_was_written_for() -> None:
    assert _connection.unsupported_because() is None  # the installed one
    assert _connection.unsupported_because("0.17.2") is None
    assert _connection.unsupported_because("0.18.0") is None
    for other in ("0.16.0", "0.19.0", "1.0.0"):
        assert f"hypercorn {other} is not" in str(_connection.unsupported_because(other))
