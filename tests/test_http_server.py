"""The API on a real socket, served by hypercorn's trio worker as ``omnimind serve`` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from hypercorn.trio import serve as hypercorn_serve

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.api import create_app
from omnimind_trio.auth import Credentials
from omnimind_trio.server import hypercorn_config

from .conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = make_settings(tmp_path, port=0)
    credentials = Credentials("tester", "secret-pass", "environment")
    shutdown = trio.Event()
    async with (
        open_daemon(settings, metrics_source=FakeSource(5)) as daemon,
        trio.open_nursery() as nursery,
    ):
        urls = await nursery.start(
            partial(
                hypercorn_serve,
                create_app(daemon, credentials),
                hypercorn_config(settings),
                shutdown_trigger=shutdown.wait,
            )
        )
        yield urls[0]
        shutdown.set()


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
