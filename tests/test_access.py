"""Who may do what, through the app: the viewer over every route of the Routes registry, the
failed-authentication throttle on a fake clock, and credentials replaced while serving."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import trio
import trio.testing

try:  # Quart 0.22 / quart-trio 0.12
    from quart.testing.connections import WebsocketDisconnectError as ClosedError
except ImportError:  # Quart 0.23 / quart-trio 0.13 raise this one, with the close code
    from quart.wrappers.base import ClientDisconnectedError as ClosedError  # type: ignore[attr-defined,no-redef]

from omnimind_trio.credentials import Credentials, Keyring
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app
from omnimind_trio.http._dashboard import dashboard_bundle

from .test_api import TASK, call, wait_for
from .test_websocket import rejected


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("tester", "secret-pass")
VIEWER = basic("peek", "only-look")
WRONG = basic("tester", "guess")
READ_ONLY = {"detail": "this credential can only read"}


def credentials(password: str = "secret-pass", viewer: str = "only-look") -> Credentials:
    return Credentials("tester", password, "environment", viewer=("peek", viewer))


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(credentials())


@pytest.fixture
def app(daemon: Daemon, keyring: Keyring) -> Any:
    return create_app(daemon, keyring)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


# -- the viewer ----------------------------------------------------------------------------------

WRITE_BODIES: dict[tuple[str, str], Any] = {
    ("post", "/daemon/tasks/add"): {**TASK, "task_id": "viewer_add"},
    ("patch", "/daemon/tasks/{task_id}"): {"name": "renamed by a viewer"},
    ("post", "/daemon/tasks/batch"): {"operations": [{"op": "delete", "task_id": "seeded"}]},
}
"""A body that would be accepted, for the writes that take one."""


async def seed(client: Any, daemon: Daemon) -> dict[str, str]:
    """A task that stays (LOW: waits for the night) and one execution; their ids."""
    low = {**TASK, "task_id": "seeded", "priority": "LOW"}
    assert (await call(client, "POST", "/daemon/tasks/add", low)).status_code == 200
    ran = {**TASK, "task_id": "ran", "priority": "CRITICAL", "repeat_hours": None}
    assert (await call(client, "POST", "/daemon/tasks/add", ran)).status_code == 200
    await wait_for(lambda: daemon.get_task("ran").execution_count == 1)
    page = await (await call(client, "GET", "/daemon/executions")).get_json()
    return {"task_id": "seeded", "execution_id": page["executions"][0]["execution_id"]}


async def snapshot(client: Any, daemon: Daemon) -> Any:
    tasks = await (await call(client, "GET", "/daemon/tasks")).get_json()
    details = [
        {k: v for k, v in daemon.get_task(t["task_id"]).json_body().items() if k != "waiting"}
        for t in tasks["tasks"]
    ]
    executions = await (await call(client, "GET", "/daemon/executions")).get_json()
    return tasks, details, executions["total"], daemon.running


async def test_a_viewer_reads_every_get_and_is_refused_every_write(
    app: Any, client: Any, daemon: Daemon
) -> None:
    ids = await seed(client, daemon)
    ids |= {"version": dashboard_bundle().version, "name": "app.js"}  # a dashboard file
    before = await snapshot(client, daemon)
    operations = app.extensions["omnimind_routes"].operations
    reads = [op for op in operations if op.reads]
    writes = [op for op in operations if not op.reads]
    assert {op.method for op in reads} == {"get", "post"}  # POST /daemon/ws/token reads
    assert {op.method for op in writes} == {"post", "patch", "delete"}

    for op in reads:
        path = op.path.format(**ids)
        response = await call(client, op.method.upper(), path, headers=VIEWER)
        assert response.status_code == 200, (op.method, path, await response.get_data())
        if op.method == "get":
            head = await call(client, "HEAD", path, headers=VIEWER)
            assert head.status_code == 200, path

    for op in writes:
        path = op.path.format(**ids)
        body = WRITE_BODIES.get((op.method, op.path))
        response = await call(client, op.method.upper(), path, body, headers=VIEWER)
        assert response.status_code == 403, (op.method, path)
        assert await response.get_json() == READ_ONLY, (op.method, path)
    await trio.sleep(0.2)  # anything a write could have set off has had time to show
    assert await snapshot(client, daemon) == before

    # The same requests with the admin credential get through: they were real writes.
    for op in writes:
        path = op.path.format(**ids)
        body = WRITE_BODIES.get((op.method, op.path))
        response = await call(client, op.method.upper(), path, body, headers=ADMIN)
        assert response.status_code not in (401, 403), (op.method, path)


async def test_whoami_names_the_credential_and_its_role(client: Any, keyring: Keyring) -> None:
    viewer = await call(client, "GET", "/daemon/whoami", headers=VIEWER)
    assert await viewer.get_json() == {"user": "peek", "role": "viewer"}
    admin = await call(client, "GET", "/daemon/whoami", headers=ADMIN)
    assert await admin.get_json() == {"user": "tester", "role": "admin"}
    assert (await call(client, "GET", "/daemon/whoami", headers=WRONG)).status_code == 401
    keyring.replace(credentials(viewer="new-look"))
    assert (await call(client, "GET", "/daemon/whoami", headers=VIEWER)).status_code == 401


async def test_a_viewer_on_an_unknown_path_reads_404_and_writes_403(client: Any) -> None:
    assert (await call(client, "GET", "/no/such", headers=VIEWER)).status_code == 404
    refused = await call(client, "POST", "/no/such", {}, headers=VIEWER)
    assert (refused.status_code, await refused.get_json()) == (403, READ_ONLY)
    wrong_method = await call(client, "DELETE", "/daemon/status", headers=VIEWER)
    assert wrong_method.status_code == 403


async def test_a_viewer_reads_the_websocket_by_header_and_by_token(client: Any) -> None:
    async with client.websocket("/daemon/ws", headers=VIEWER) as ws:
        assert json.loads(await ws.receive())["type"] == "status"
    response = await call(client, "POST", "/daemon/ws/token", headers=VIEWER)
    token = (await response.get_json())["token"]
    async with client.websocket("/daemon/ws", query_string={"token": token}) as ws:
        assert json.loads(await ws.receive())["type"] == "status"


# -- throttling ----------------------------------------------------------------------------------


async def test_the_eleventh_wrong_password_in_a_minute_gets_429_even_with_the_right_one(
    daemon_clock: trio.testing.MockClock, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "omnimind_trio.http")
    for _ in range(10):
        daemon_clock.jump(5)  # ten failures spread over 50 s
        assert (await call(client, "GET", "/daemon/status", headers=WRONG)).status_code == 401
    failures = [r for r in caplog.records if r.getMessage().startswith("failed authentication")]
    assert len(failures) == 10
    assert all("<local>" in r.getMessage() for r in failures)  # the test client's address

    response = await call(client, "GET", "/daemon/status", headers=ADMIN)
    assert response.status_code == 429
    # The oldest failure was 45 s ago: the window clears in 15 s.
    assert response.headers["Retry-After"] == "15"
    assert await response.get_json() == {
        "detail": "Too many failed authentication attempts from <local>: try again in 15 s"
    }
    daemon_clock.jump(14.5)
    response = await call(client, "POST", "/daemon/tasks/add", TASK, headers=ADMIN)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    daemon_clock.jump(0.5)
    assert (await call(client, "GET", "/daemon/status", headers=ADMIN)).status_code == 200
    # A sliding window: one more failure now makes ten in the last minute again.
    assert (await call(client, "GET", "/daemon/status", headers=WRONG)).status_code == 401
    assert (await call(client, "GET", "/daemon/status", headers=ADMIN)).status_code == 429


async def test_requests_without_credentials_are_not_failures_and_429s_do_not_extend(
    daemon_clock: trio.testing.MockClock, client: Any
) -> None:
    for _ in range(30):
        assert (await call(client, "GET", "/daemon/status", headers={})).status_code == 401
    for _ in range(10):
        assert (await call(client, "GET", "/daemon/status", headers=WRONG)).status_code == 401
    for _ in range(20):  # hammering while locked: refused before any check, not counted
        daemon_clock.jump(1)
        assert (await call(client, "GET", "/daemon/status", headers=WRONG)).status_code == 429
    daemon_clock.jump(40)
    assert (await call(client, "GET", "/daemon/status", headers=ADMIN)).status_code == 200


async def test_one_address_locked_leaves_the_others_alone_and_spoofing_does_not_help(
    daemon_clock: trio.testing.MockClock, client: Any
) -> None:
    attacker = {"client": ("10.0.0.66", 4000)}
    user = {"client": ("10.0.0.7", 4000)}
    for _ in range(10):
        response = await call(client, "GET", "/daemon/status", headers=WRONG, scope_base=attacker)
        assert response.status_code == 401
    assert (
        await call(client, "GET", "/daemon/status", headers=ADMIN, scope_base=attacker)
    ).status_code == 429
    # A header naming another address changes nothing: the address is the connection's.
    spoofed = {**ADMIN, "Remote-Addr": "10.0.0.7", "X-Forwarded-For": "10.0.0.7"}
    response = await call(client, "GET", "/daemon/status", headers=spoofed, scope_base=attacker)
    assert response.status_code == 429
    # The other address was never locked, before or after its own successes.
    for _ in range(3):
        ok = await call(client, "GET", "/daemon/status", headers=ADMIN, scope_base=user)
        assert ok.status_code == 200
    # A success does not reset an address's count (documented): 9 failures, a success,
    # and the next failure locks.
    for _ in range(9):
        await call(client, "GET", "/daemon/status", headers=WRONG, scope_base=user)
    assert (
        await call(client, "GET", "/daemon/status", headers=ADMIN, scope_base=user)
    ).status_code == 200
    await call(client, "GET", "/daemon/status", headers=WRONG, scope_base=user)
    assert (
        await call(client, "GET", "/daemon/status", headers=ADMIN, scope_base=user)
    ).status_code == 429


async def test_websocket_failures_count_and_a_locked_address_cannot_open_one(
    daemon_clock: trio.testing.MockClock, client: Any
) -> None:
    for index in range(10):
        kind = {"headers": WRONG} if index % 2 else {"query_string": {"token": "forged"}}
        assert await rejected(client, **kind) == 401
    assert await rejected(client, headers=ADMIN) == 429
    response = await call(client, "GET", "/daemon/status", headers=ADMIN)
    assert response.status_code == 429
    metrics = await (await call(client, "GET", "/metrics", headers=ADMIN)).get_data()
    assert b"omnimind_auth_failures_total" not in metrics  # still locked: 429, no metrics
    daemon_clock.jump(60)
    metrics = (await (await call(client, "GET", "/metrics", headers=ADMIN)).get_data()).decode()
    assert "# TYPE omnimind_auth_failures_total counter" in metrics
    assert "\nomnimind_auth_failures_total 10.0\n" in metrics


# -- credentials replaced while serving ----------------------------------------------------------


async def test_replaced_credentials_work_at_once_and_the_old_ones_stop(
    client: Any, keyring: Keyring
) -> None:
    old_token = await call(client, "POST", "/daemon/ws/token", headers=ADMIN)
    token = (await old_token.get_json())["token"]
    keyring.replace(credentials(password="rotated"))
    assert (await call(client, "GET", "/daemon/status", headers=ADMIN)).status_code == 401
    new = basic("tester", "rotated")
    assert (await call(client, "GET", "/daemon/status", headers=new)).status_code == 200
    assert (await call(client, "GET", "/daemon/status", headers=VIEWER)).status_code == 200
    # A token the old credential asked for is worth no more than that credential.
    assert await rejected(client, query_string={"token": token}) == 401


async def closed_with(ws: Any) -> int:
    with trio.fail_after(5):
        try:
            while True:
                await ws.receive()
        except ClosedError as closed:
            return int(closed.args[0])


async def test_websockets_of_a_replaced_credential_are_closed_and_others_stay(
    client: Any, keyring: Keyring
) -> None:
    async with (
        client.websocket("/daemon/ws", headers=ADMIN) as admin_ws,
        client.websocket("/daemon/ws", headers=VIEWER) as viewer_ws,
    ):
        await admin_ws.receive()
        await viewer_ws.receive()
        keyring.replace(credentials(password="rotated"))  # the viewer's is unchanged
        assert await closed_with(admin_ws) == 1008
        await call(client, "POST", "/daemon/stop", headers=basic("tester", "rotated"))
        assert json.loads(await viewer_ws.receive())["type"] == "state_changed"
        keyring.replace(credentials(password="rotated", viewer="new-look"))
        assert await closed_with(viewer_ws) == 1008
