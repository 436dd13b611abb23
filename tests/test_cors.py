"""Browsers: the Host check (DNS rebinding), the Origin check and CORS for allowed origins,
through Quart's test client (its requests say ``Host: localhost``). The same in Chromium
against a real daemon: ``test_browser.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from omnimind_trio import FakeSource, Settings, open_daemon
from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.exceptions import StoreError
from omnimind_trio.http import create_app

from .conftest import make_settings, task_ids
from .test_api import AUTH, TASK, call
from .test_http_server import base_url, open_connection, receive_response
from .test_websocket import rejected

APP = "http://127.0.0.1:5173"
"""A web app on its own dev server, allowed by the settings."""
EVIL = "http://evil.example"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST"}

AUTH_LINE = f"Authorization: {AUTH['Authorization']}"

__all__ = ["base_url"]  # the fixture, re-used


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        allowed_origins=f"{APP}/, https://other.example:443",
        allowed_hosts="omni.lan",
        max_body_bytes=1024,
    )


@pytest.fixture
def client(daemon: Daemon) -> Any:
    return create_app(daemon, Credentials("tester", "secret-pass", "environment")).test_client()


def cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control")}


# -- preflight ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/daemon/status", "/daemon/tasks/add", "/daemon/tasks/my_custom_task", "/nope"]
)
async def test_a_preflight_from_an_allowed_origin_answers_204_without_credentials(
    client: Any, path: str
) -> None:
    headers = {**PREFLIGHT, "Access-Control-Request-Headers": "authorization,content-type"}
    response = await client.options(path, headers=headers)
    assert response.status_code == 204
    assert await response.get_data() == b""
    assert response.headers["Access-Control-Allow-Origin"] == APP
    methods = response.headers["Access-Control-Allow-Methods"].split(", ")
    assert methods == ["DELETE", "GET", "PATCH", "POST"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower().split(", ")
    assert {"authorization", "content-type"} <= set(allowed)
    assert int(response.headers["Access-Control-Max-Age"]) == 600
    assert "Origin" in response.headers["Vary"]
    # Pages send Authorization themselves; the browser's own cached credentials stay out.
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Private-Network" not in response.headers


async def test_a_preflight_for_a_page_on_a_public_origin_allows_the_private_network(
    client: Any,
) -> None:
    headers = {
        **PREFLIGHT,
        "Origin": "https://other.example",
        "Access-Control-Request-Private-Network": "true",
    }
    response = await client.options("/daemon/status", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://other.example"
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


@pytest.mark.parametrize("origin", [EVIL, "http://127.0.0.1:5174", "null"])
async def test_a_preflight_from_another_origin_is_refused_without_cors_headers(
    client: Any, origin: str
) -> None:
    response = await client.options("/daemon/tasks/add", headers={**PREFLIGHT, "Origin": origin})
    assert response.status_code == 403
    detail = f"Cross-origin request refused: {origin} is not allowed (OMNIMIND_ALLOWED_ORIGINS)"
    assert await response.get_json() == {"detail": detail}
    assert cors_headers(response) == {}


async def test_an_options_request_that_is_no_preflight_still_needs_credentials(
    client: Any,
) -> None:
    assert (await client.options("/daemon/status", headers={"Origin": APP})).status_code == 401
    assert (await client.options("/daemon/status")).status_code == 401


# -- every answer to an allowed origin -------------------------------------------------------


def break_status(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def broken() -> None:
        raise error

    monkeypatch.setattr(daemon, "status", broken)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/daemon/status", None, AUTH, 200),
        ("POST", "/daemon/tasks/add", TASK, AUTH, 200),
        ("POST", "/daemon/tasks/add", {"task_id": "x"}, AUTH, 400),
        ("GET", "/daemon/status", None, {}, 401),
        ("GET", "/nope", None, AUTH, 404),
        ("GET", "/daemon/tasks/nope", None, AUTH, 404),
        ("DELETE", "/daemon/status", None, AUTH, 405),
        ("POST", "/daemon/tasks/add", {**TASK, "code": "#" * 2000}, AUTH, 413),
        ("GET", "/daemon/status", "500", AUTH, 500),
        ("GET", "/daemon/status", "503", AUTH, 503),
    ],
)
async def test_every_answer_to_an_allowed_origin_carries_the_cors_headers(
    client: Any,
    daemon: Daemon,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
) -> None:
    if body == "500":
        break_status(daemon, monkeypatch, RuntimeError("a bug"))
        body = None
    elif body == "503":
        break_status(daemon, monkeypatch, StoreError("disk full"))
        body = None
    response = await call(client, method, path, body, headers={**headers, "Origin": APP})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    if status >= 400:
        assert (await response.get_json())["detail"]


async def test_another_origin_may_read_nothing_and_change_nothing(
    client: Any, daemon: Daemon
) -> None:
    read = await call(client, "GET", "/daemon/status", headers={**AUTH, "Origin": EVIL})
    assert read.status_code == 200  # the browser hides it: no Access-Control-Allow-Origin
    assert cors_headers(read) == {}
    assert "Origin" in read.headers["Vary"]
    write = await call(client, "POST", "/daemon/tasks/add", TASK, headers={**AUTH, "Origin": EVIL})
    assert write.status_code == 403
    assert cors_headers(write) == {}
    assert "my_custom_task" not in task_ids(daemon)


async def test_answers_without_origin_carry_no_cors_headers(client: Any) -> None:
    response = await call(client, "GET", "/daemon/status")
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert "Origin" in response.headers["Vary"]


async def test_an_allowed_origin_may_open_the_websocket(client: Any) -> None:
    async with client.websocket("/daemon/ws", headers={**AUTH, "Origin": APP}) as ws:
        assert '"type": "status"' in await ws.receive()


# -- Host --------------------------------------------------------------------------------


def misdirected(host: str) -> dict[str, str]:
    return {
        "detail": f"Host header {host} is not served here: call the daemon as localhost, "
        "127.0.0.1 or its bound address, or add the name to OMNIMIND_ALLOWED_HOSTS"
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/daemon/status", None), ("POST", "/daemon/tasks/add", TASK), ("GET", "/x", None)],
)
async def test_a_host_the_daemon_does_not_serve_gets_421_even_with_good_credentials(
    client: Any, daemon: Daemon, method: str, path: str, body: Any
) -> None:
    for host in ["evil.example", "evil.example:8000", "localhost.evil", "127.0.0.1.evil", "a b"]:
        response = await call(client, method, path, body, headers={**AUTH, "Host": host})
        assert response.status_code == 421, host
        assert await response.get_json() == misdirected(host)
    assert "my_custom_task" not in task_ids(daemon)


async def test_the_host_is_checked_before_credentials(client: Any) -> None:
    response = await call(client, "GET", "/daemon/status", headers={"Host": "evil.example"})
    assert response.status_code == 421
    assert "WWW-Authenticate" not in response.headers


async def test_a_websocket_to_a_host_the_daemon_does_not_serve_is_refused(client: Any) -> None:
    assert await rejected(client, headers={**AUTH, "Host": "evil.example:8000"}) == 421


async def test_loopback_names_and_configured_names_are_served_on_any_port(client: Any) -> None:
    for host in [
        "localhost",
        "localhost:8000",
        "LocalHost:41234",
        "127.0.0.1:8000",
        "127.0.0.1",
        "[::1]:8000",
        "[0:0:0:0:0:0:0:1]:8000",
        "omni.lan:8000",  # OMNIMIND_ALLOWED_HOSTS
    ]:
        response = await call(client, "GET", "/daemon/status", headers={**AUTH, "Host": host})
        assert response.status_code == 200, host


async def test_the_address_the_connection_arrived_on_is_served(client: Any) -> None:
    """A wildcard bind serves every address of the machine: the one the client reached."""
    arrived = {"server": ("192.0.2.10", 8000)}
    own = {**AUTH, "Host": "192.0.2.10:8000"}
    other = {**AUTH, "Host": "192.0.2.11:8000"}
    # Served: "/" is the dashboard's page (it was an unknown path, 404, before there was one).
    assert (await call(client, "GET", "/", headers=own, scope_base=arrived)).status_code == 200
    assert (await call(client, "GET", "/", headers=other, scope_base=arrived)).status_code == 421


@pytest.mark.slow
async def test_on_a_socket_bound_to_port_0_the_served_names_answer_on_the_real_port(
    base_url: str,
) -> None:
    port = urlsplit(base_url).port
    for host, status in [
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
        (f"[::1]:{port}", 200),
        ("evil.example", 421),
        (f"evil.example:{port}", 421),
    ]:
        stream = await open_connection(base_url)
        request = f"GET /daemon/status HTTP/1.1\r\nHost: {host}\r\n{AUTH_LINE}\r\n\r\n"
        await stream.send_all(request.encode())
        head = await receive_response(stream)
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), (host, head)
        await stream.aclose()


async def test_the_bound_host_is_served(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, host="omni.example")
    async with open_daemon(settings, metrics_source=FakeSource()) as daemon:
        client = create_app(daemon, Credentials("tester", "secret-pass", "env")).test_client()
        headers = {**AUTH, "Host": "omni.example:8000"}
        assert (await call(client, "GET", "/daemon/status", headers=headers)).status_code == 200


async def test_a_star_serves_any_host(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_hosts="*")
    async with open_daemon(settings, metrics_source=FakeSource()) as daemon:
        client = create_app(daemon, Credentials("tester", "secret-pass", "env")).test_client()
        headers = {**AUTH, "Host": "evil.example"}
        assert (await call(client, "GET", "/daemon/status", headers=headers)).status_code == 200


SAME_ORIGIN_CASES = [
    ("localhost:8000", "http://localhost:8000", 200),
    ("localhost:8000", "https://localhost:8000", 200),
    ("localhost:8000", "http://127.0.0.1:8000", 200),  # the daemon under another name
    ("127.0.0.1:8000", "http://[::1]:8000", 200),
    ("omni.lan", "http://omni.lan", 200),
    ("omni.lan", "http://omni.lan:80", 200),
    ("localhost:8000", "http://localhost:3000", 403),  # another program on loopback
    ("localhost:8000", "http://localhost", 403),
    ("localhost:8000", "http://evil.example:8000", 403),
    ("evil.example:8000", "http://evil.example:8000", 421),  # DNS rebinding
]
"""(Host, Origin, status of a POST with good credentials)."""


async def test_the_same_origin_check_uses_the_served_names(client: Any) -> None:
    for host, origin, status in SAME_ORIGIN_CASES:
        headers = {**AUTH, "Host": host, "Origin": origin}
        response = await call(client, "POST", "/daemon/start", headers=headers)
        assert response.status_code == status, (host, origin)


# -- settings ----------------------------------------------------------------------------


def test_allowed_origins_are_stored_as_browsers_send_them(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, allowed_origins=" HTTP://LocalHost:80/ ,,https://[::1]:443, http://a.b:3000"
    )
    assert settings.allowed_origins == "http://localhost,https://[::1],http://a.b:3000"


@pytest.mark.parametrize("bad", ["localhost:3000", "http://a.b/app", "*", "ftp://a.b", "null"])
def test_an_allowed_origin_that_is_no_origin_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin: scheme://host"):
        make_settings(tmp_path, allowed_origins=f"http://ok.example,{bad}")


@pytest.mark.parametrize("bad", ["omni.lan:8000", "http://omni.lan", "a b", "cafe:80"])
def test_an_allowed_host_that_is_no_host_name_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="is not a host name"):
        make_settings(tmp_path, allowed_hosts=bad)


def test_allowed_hosts_accept_names_addresses_and_a_star(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_hosts=" Omni.LAN, 192.0.2.1,[::1], ::2 ,*")
    assert settings.allowed_hosts == "omni.lan,192.0.2.1,[::1],::2,*"


async def test_the_openapi_document_names_the_421_on_every_operation(client: Any) -> None:
    document = await (await call(client, "GET", "/openapi.json")).get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "421" in operation["responses"], (method, path)
