"""The HTTP node: hypercorn's trio worker serving the API app.

:func:`serve_http` is a startable (it reports the bound URLs through ``task_status``);
:func:`hypercorn_config` turns :class:`~omnimind_trio.config.Settings` into hypercorn's
configuration.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework

from ..config import Settings
from ..credentials import Credentials, Keyring, load_credentials
from ..daemon import Daemon
from ..exceptions import StartupError
from . import _connection
from ._app import create_app

SERVER_LOGGER = "omnimind_trio.http.server"
"""hypercorn's error log, in our namespace: its errors (an ASGI error, a lifespan failure)
at WARNING and above."""


def server_logger() -> logging.Logger:
    """hypercorn's error log, levelled WARNING unless someone set its level: its only INFO
    line is "Running on http://... (CTRL + C to quit)", which ``serving on`` already says."""
    logger = logging.getLogger(SERVER_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return logger


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    # No access log: a line per request is what /metrics counts, and hypercorn builds the
    # line's fields for every request even when the logger would drop it.
    config.accesslog = None
    config.errorlog = server_logger()
    config.graceful_timeout = settings.stop_grace_seconds * 2 / 3
    # A backstop for a client that stops sending mid-request; idle keep-alive
    # connections are closed after keep_alive_timeout (5 s) by connection.IdleTimer.
    config.read_timeout = 30
    config.websocket_ping_interval = 20
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        # HTTPS and WSS; hypercorn offers HTTP/2 and HTTP/1.1 by ALPN.
        config.certfile = str(settings.tls_certfile)
        config.keyfile = str(settings.tls_keyfile)
        # A client that connects and never completes the handshake is closed as soon as an
        # idle keep-alive connection would be, not after hypercorn's default of 60 s.
        config.ssl_handshake_timeout = config.keep_alive_timeout
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def check_transport(settings: Settings, config: HypercornConfig) -> None:
    """Refuse, before binding, what must not be served: plain HTTP beyond loopback unless
    asked for (``allow_plain_http``), and a certificate or key that cannot be loaded.
    Reads the certificate files: call it in a worker thread."""
    if config.ssl_enabled:
        try:
            config.create_ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"cannot serve HTTPS with the certificate {config.certfile} and the key "
                f"{config.keyfile}: {exc}"
            ) from None
        return
    if not is_loopback(settings.host) and not settings.allow_plain_http:
        raise StartupError(
            f"refusing to serve plain HTTP on {settings.host}, which is not a loopback "
            "address: passwords would cross the network in clear text. Serve HTTPS "
            "(--certfile and --keyfile, or OMNIMIND_TLS_CERTFILE and OMNIMIND_TLS_KEYFILE), "
            "or, on a network you trust, allow plain HTTP (--allow-plain-http, or "
            "OMNIMIND_ALLOW_PLAIN_HTTP=true)"
        )


def check_bind(settings: Settings, config: HypercornConfig) -> None:
    """Refuse, before anything is created, an address that cannot be served: bind each
    address hypercorn will bind (as it does, with SO_REUSEADDR), and close it. hypercorn
    binds again a moment later; a program that takes the port in between gets the same
    words from :func:`describe_bind_error`, and the start undoes what it made."""
    binds = [*config.bind, *config.insecure_bind] if config.ssl_enabled else config.bind
    for bind in binds:
        host, _, port = bind.replace("[", "").replace("]", "").rpartition(":")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, int(port)))
            except OSError as exc:
                raise StartupError(describe_bind_error(settings.host, settings.port, exc)) from None


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    """What a failure to bind ``host``:``port`` means, in words, and what to do."""
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot serve on {host}:{port}: the host name {host} does not resolve "
            f"({exc.strerror}); give an address with --host or OMNIMIND_HOST"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (by another omnimind or another "
            "program); choose another with --port or OMNIMIND_PORT"
        )
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return (
            f"port {port} on {host} needs privileges (ports below 1024 do); choose a port "
            "from 1024 up with --port or OMNIMIND_PORT"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot serve on {host}:{port}: {host} is not an address of this machine; "
            "choose another with --host or OMNIMIND_HOST"
        )
    return f"cannot serve on {host}:{port}: {exc.strerror or exc}"


async def serve_http(
    app: ASGIFramework,
    config: HypercornConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    connection_fix: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn's trio worker until ``shutdown_trigger`` returns.

    With ``connection_fix`` (``Settings.http_connection_fix``), and on a hypercorn it was
    written for, this server's connections are :class:`~._connection.Connection` s (the
    keep-alive and shutdown fixes); other hypercorn servers in the process are untouched.
    """
    serve = _connection.serve_function(enabled=connection_fix)
    await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)


async def serve_api(
    daemon: Daemon,
    credentials: Credentials | Keyring | None = None,
    *,
    config: HypercornConfig | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] = trio.sleep_forever,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``daemon``'s HTTP API (the routes of ``omnimind serve``) until
    ``shutdown_trigger`` returns, then finish the requests in flight. A startable: ``urls =
    await nursery.start(serve_api, daemon, credentials)`` returns once the socket is bound,
    with the URLs it serves. ``credentials`` default to the daemon's settings (the
    environment, else ``config/dashboard_auth.json``, generated on first use); give a
    :class:`~omnimind_trio.credentials.Keyring` to replace them while it serves; ``config``
    (hypercorn's) defaults to the daemon's settings (host, port, TLS); with it, plain HTTP
    beyond loopback and an unusable certificate are refused (``StartupError``) before
    binding.

    Cancellation: cancelling it closes every connection at once; for a graceful end, make
    ``shutdown_trigger`` return.
    """
    if credentials is None:
        credentials = await trio.to_thread.run_sync(load_credentials, daemon.settings)
    if config is None:
        config = hypercorn_config(daemon.settings)
        await trio.to_thread.run_sync(check_transport, daemon.settings, config)
    await serve_http(
        create_app(daemon, credentials),
        config,
        shutdown_trigger=shutdown_trigger,
        connection_fix=daemon.settings.http_connection_fix,
        task_status=task_status,
    )
