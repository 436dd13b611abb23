"""HTTPS, the refusal of plain HTTP beyond loopback, and the runtime file, against real
``omnimind serve`` processes: certificates from ``trustme``, clients as a user runs them
(the CLI, httpx with HTTP/2, a ``wss://`` follower, curl)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from omnimind_trio import Settings
from omnimind_trio.cli._client import DaemonUnreachable, OmniMindClient
from omnimind_trio.cli._follow import follow_events
from omnimind_trio.cli._main import main
from omnimind_trio.cli._runtime import (
    RuntimeInfo,
    local_url,
    read_runtime,
)
from omnimind_trio.exceptions import StartupError
from omnimind_trio.http._server import check_transport, hypercorn_config, is_loopback

from .conftest import SLEEP_WINDOW
from .test_process import START_DEADLINE, Served, launch, wait_for

SERVE = [sys.executable, "-m", "omnimind_trio", "serve"]
CLI = [sys.executable, "-m", "omnimind_trio"]
USER = "tls-user"
PASS = "tls-pass-9876"


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    root = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = Certs(root / "ca.pem", root / "cert.pem", root / "key.pem")
    ca.cert_pem.write_to_path(str(paths.ca))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(paths.cert), append=True)
    issued.private_key_pem.write_to_path(str(paths.key))
    return paths


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(extra)
    return env


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """``omnimind serve ARGS`` with its home under ``root``; not waited for."""
    home = root / "home"
    workspace = home / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    environ = clean_env(
        OMNIMIND_HOME=str(home),
        OMNIMIND_WORKSPACE=str(workspace),
        OMNIMIND_SLEEP_WINDOW=SLEEP_WINDOW,
        **(env or {}),
    )
    return launch(home, environ, *args, workspace=workspace, logs=root / "serve")


def wait_announced(served: Served, path: Path) -> RuntimeInfo:
    """The runtime file, once the daemon has written it (it is bound then)."""

    def ready() -> RuntimeInfo | None:
        if served.proc.poll() is not None:
            pytest.fail(f"omnimind serve exited with {served.proc.returncode}:\n{served.stderr()}")
        return read_runtime(path)

    info: RuntimeInfo = wait_for(ready, START_DEADLINE, "the runtime file")
    return info


@pytest.fixture(scope="module")
def https_daemon(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs
) -> Iterator[tuple[Served, str]]:
    """One daemon serving HTTPS on 127.0.0.1, with its own runtime directory."""
    root = tmp_path_factory.mktemp("https")
    runtime = root / "xdg"
    runtime.mkdir(mode=0o700)
    served = start(
        root,
        "--certfile",
        str(certs.cert),
        "--keyfile",
        str(certs.key),
        env={
            "OMNIMIND_DASHBOARD_USER": USER,
            "OMNIMIND_DASHBOARD_PASS": PASS,
            "XDG_RUNTIME_DIR": str(runtime),
        },
    )
    try:
        info = wait_announced(served, runtime / "omnimind" / "daemon.json")
        yield served, info.url
    finally:
        served.kill_all()


def run_cli(*args: str, cwd: Path | str = "/tmp", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=clean_env(**env), cwd=cwd, capture_output=True, text=True, timeout=30
    )


# -- HTTPS --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_daemon_reports_https_urls(https_daemon: tuple[Served, str]) -> None:
    served, url = https_daemon
    assert url == f"https://127.0.0.1:{served.port}"
    assert f"serving on https://127.0.0.1:{served.port}" in served.stderr()


@pytest.fixture
def no_omnimind_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OMNIMIND_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir("/tmp")


@pytest.mark.slow
@pytest.mark.usefixtures("no_omnimind_env")
def test_the_cli_speaks_https_with_a_ca_file(
    https_daemon: tuple[Served, str],
    certs: Certs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = https_daemon
    auth = ["--url", url, "--user", USER, "--password", PASS]
    capsys.readouterr()
    assert main([*auth, "--cacert", str(certs.ca), "--json", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] in {"idle", "running", "waiting"}
    monkeypatch.setenv("OMNIMIND_CACERT", str(certs.ca))
    assert main([*auth, "status"]) == 0
    monkeypatch.delenv("OMNIMIND_CACERT")
    capsys.readouterr()

    # Without the CA the certificate does not verify: refused, and the CLI says why.
    assert main([*auth, "status"]) == 3
    err = capsys.readouterr().err
    assert "certificate does not verify" in err and "--cacert" in err
    assert main([*auth, "logs", "-f"]) == 3
    assert "certificate does not verify" in capsys.readouterr().err
    assert main([*auth, "--cacert", "/nonexistent/ca.pem", "status"]) == 2
    assert "/nonexistent/ca.pem" in capsys.readouterr().err


@pytest.mark.slow
def test_http2_and_http11_over_tls(https_daemon: tuple[Served, str], certs: Certs) -> None:
    served, url = https_daemon
    context = ssl.create_default_context(cafile=str(certs.ca))
    with httpx.Client(http2=True, verify=context, auth=(USER, PASS)) as client:
        response = client.get(f"{url}/daemon/status")
    assert response.status_code == 200 and response.http_version == "HTTP/2"
    with httpx.Client(verify=context, auth=(USER, PASS)) as client:
        response = client.get(f"{url}/daemon/status")
    assert response.status_code == 200 and response.http_version == "HTTP/1.1"

    # The protocol is chosen by ALPN in the handshake.
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"

    # A client that does not trust the CA is refused in the handshake.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/daemon/status", auth=(USER, PASS), timeout=10)
    with OmniMindClient(url, auth=(USER, PASS), cacert=certs.ca) as client:
        assert client.status()["workspace"] == str(served.workspace)


@pytest.mark.slow
def test_a_stalled_handshake_is_closed_like_an_idle_connection(
    https_daemon: tuple[Served, str], tmp_path: Path, certs: Certs
) -> None:
    served, _ = https_daemon
    settings = Settings(home=tmp_path, tls_certfile=certs.cert, tls_keyfile=certs.key)
    timeout = hypercorn_config(settings).ssl_handshake_timeout
    assert timeout == 5
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as raw:
        began = time.monotonic()
        assert raw.recv(1) == b""  # closed by the daemon: we never sent a ClientHello
        elapsed = time.monotonic() - began
    assert timeout - 0.5 < elapsed < 30  # far from hypercorn's default of 60 s


@pytest.mark.slow
def test_the_websocket_over_wss(https_daemon: tuple[Served, str], certs: Certs) -> None:
    _, url = https_daemon
    received: list[dict[str, Any]] = []

    async def follow() -> None:
        with trio.fail_after(10), trio.CancelScope() as scope:

            def handle(message: dict[str, Any]) -> None:
                received.append(message)
                scope.cancel()  # the first message is enough

            await follow_events(url, (USER, PASS), handle, cacert=certs.ca)

    trio.run(follow)
    assert received and received[0]["type"] == "status"
    with pytest.raises(DaemonUnreachable, match="certificate does not verify"):
        trio.run(follow_events, url, (USER, PASS), received.append)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_cacert(https_daemon: tuple[Served, str], certs: Certs) -> None:
    _, url = https_daemon
    done = subprocess.run(
        ["curl", "-sS", "--cacert", str(certs.ca), "-u", f"{USER}:{PASS}", f"{url}/daemon/status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["workspace"]
    done = subprocess.run(
        ["curl", "-sS", f"{url}/daemon/status"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 60  # "peer certificate cannot be authenticated"


# -- start-up refusals --------------------------------------------------------------------------


def non_loopback_address() -> str:
    """This machine's address towards the outside, else 0.0.0.0 (all addresses)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent
            address = str(probe.getsockname()[0])
    except OSError:
        return "0.0.0.0"
    return "0.0.0.0" if is_loopback(address) else address


def finished(served: Served) -> subprocess.CompletedProcess[str]:
    served.proc.wait(timeout=START_DEADLINE)
    return subprocess.CompletedProcess(
        served.proc.args, served.proc.returncode, served.stdout(), served.stderr()
    )


@pytest.mark.slow
def test_plain_http_beyond_loopback_is_refused_unless_allowed(tmp_path: Path) -> None:
    host = non_loopback_address()
    runtime = tmp_path / "xdg"
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    refused = finished(start(tmp_path / "refused", "--host", host, env=env))
    assert refused.returncode == 1
    assert f"refusing to serve plain HTTP on {host}" in refused.stderr
    assert "--allow-plain-http" in refused.stderr and "Traceback" not in refused.stderr
    assert not (runtime / "omnimind" / "daemon.json").exists()
    # Refused before anything was made: no credentials, no database.
    assert sorted(p.name for p in (tmp_path / "refused" / "home").iterdir()) == ["workspace"]

    served = start(tmp_path / "allowed", "--host", host, "--allow-plain-http", env=env)
    try:
        info = wait_announced(served, runtime / "omnimind" / "daemon.json")
        assert info.url == local_url(f"http://{host}:{served.port}")
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=START_DEADLINE) == 0
    finally:
        served.kill_all()


def test_the_transport_check(tmp_path: Path, certs: Certs) -> None:
    def check(**values: Any) -> None:
        settings = Settings(home=tmp_path, **values)
        check_transport(settings, hypercorn_config(settings))

    for host in ("127.0.0.1", "::1", "localhost"):
        check(host=host)
    with pytest.raises(StartupError, match="refusing to serve plain HTTP on ::"):
        check(host="::")
    os.environ["OMNIMIND_ALLOW_PLAIN_HTTP"] = "true"  # the setting, as the daemon reads it
    try:
        check(host="0.0.0.0")
    finally:
        del os.environ["OMNIMIND_ALLOW_PLAIN_HTTP"]
    check(host="0.0.0.0", tls_certfile=certs.cert, tls_keyfile=certs.key)
    for cert, key in ((tmp_path / "missing.pem", certs.key), (certs.cert, certs.ca)):
        with pytest.raises(StartupError, match="cannot serve HTTPS with the certificate"):
            check(tls_certfile=cert, tls_keyfile=key)


@pytest.mark.slow
def test_unusable_tls_files_are_a_clear_start_up_error(tmp_path: Path, certs: Certs) -> None:
    runtime = tmp_path / "xdg"
    args = ("--certfile", str(certs.cert), "--keyfile", str(certs.ca))  # the CA: not a key
    done = finished(start(tmp_path, *args, env={"XDG_RUNTIME_DIR": str(runtime)}))
    assert done.returncode == 1, done.stderr
    assert f"cannot serve HTTPS with the certificate {certs.cert}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (runtime / "omnimind" / "daemon.json").exists()


def test_loopback_means_this_machine_only() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.2", "example.com", "localhost.example"):
        assert not is_loopback(host), host


def test_tls_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(home=tmp_path, tls_keyfile=tmp_path / "key.pem")
    both = Settings(home=tmp_path, tls_certfile="c.pem", tls_keyfile="k.pem")
    assert both.tls and not Settings(home=tmp_path).tls
