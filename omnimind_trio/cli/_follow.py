"""Following the daemon's WebSocket: events as they happen, reconnecting when dropped.

One Trio task reads the socket; the CLI's ``logs --follow`` runs it under ``trio.run``.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import Callable
from typing import Any, Final

import httpx
import trio
import trio_websocket

from ._client import (
    ApiError,
    Auth,
    ConnectionLost,
    DaemonUnreachable,
    describe_os_error,
    detail_of,
    tls_context,
)

WS_CONNECT_SECONDS: Final = 10.0
WS_RECONNECT_SECONDS: Final = 0.5
# Close codes of a connection that ended on purpose (RFC 6455: normal, going away).
_CLEAN_CLOSE_CODES: Final = frozenset({1000, 1001})
_TRY_AGAIN_LATER: Final = 1013


def ws_url(base_url: str) -> str:
    """``http://host:port`` -> ``ws://host:port/daemon/ws`` (``https`` -> ``wss``)."""
    url = httpx.URL(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    return str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + "/daemon/ws"))


async def follow_events(
    base_url: str,
    auth: Auth | None,
    handle: Callable[[dict[str, Any]], None],
    *,
    cacert: str | os.PathLike[str] | None = None,
    on_reconnect: Callable[[str], None] | None = None,
) -> None:
    """Connect to ``/daemon/ws`` and call ``handle`` with every message, in order.

    The first message is ``{"type": "status", ...}``; then events ``{"type", "state",
    "time", "data"}``. Returns when the daemon closes the connection normally. When the
    daemon drops us for falling behind (close code 1013, "try again later") it
    reconnects, after calling ``on_reconnect`` with the reason: events in between are lost,
    and the new connection starts with a fresh status message. An ``https://`` daemon is
    followed over ``wss://``, its certificate verified against ``cacert`` (a PEM file of
    CAs), else the system's CAs.

    Error handling: :class:`ApiError` when the daemon refuses the upgrade (401, 404...),
    :class:`DaemonUnreachable` when it cannot be reached or the connection breaks.

    Cancellation: cancel the surrounding scope to stop following; the connection is
    closed with a short, bounded handshake.
    """
    ssl_context = tls_context(cacert) if httpx.URL(base_url).scheme == "https" else None
    headers = []
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        headers.append((b"authorization", f"Basic {token}".encode("ascii")))
    while True:
        close = await _follow_once(base_url, headers, handle, ssl_context)
        if close is None or close.code in _CLEAN_CLOSE_CODES:
            return
        if close.code != _TRY_AGAIN_LATER:
            why = close.reason or close.name
            raise ConnectionLost(base_url, f"closed with code {close.code}: {why}")
        if on_reconnect is not None:
            on_reconnect(close.reason or "the daemon asked to reconnect")
        await trio.sleep(WS_RECONNECT_SECONDS)


async def _follow_once(
    base_url: str,
    headers: list[tuple[bytes, bytes]],
    handle: Callable[[dict[str, Any]], None],
    ssl_context: ssl.SSLContext | None,
) -> trio_websocket.CloseReason | None:
    """One connection's messages to ``handle``; returns how the daemon closed it."""
    url = httpx.URL(ws_url(base_url))
    port = url.port or (443 if ssl_context is not None else 80)
    try:
        with trio.fail_after(WS_CONNECT_SECONDS):
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
            if ssl_context is not None:
                stream = await trio.open_ssl_over_tcp_stream(
                    url.host, port, ssl_context=ssl_context, https_compatible=True
                )
                # The handshake now, to report a certificate that does not verify as such.
                try:
                    await stream.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            else:
                stream = await trio.open_tcp_stream(url.host, port)
    except trio.TooSlowError:
        raise DaemonUnreachable(base_url, "timed out connecting") from None
    except OSError as exc:
        raise DaemonUnreachable(base_url, describe_os_error(exc)) from None
    except trio.BrokenResourceError as exc:  # the TLS handshake failed
        raise DaemonUnreachable(base_url, _tls_reason(exc)) from None
    host = url.host if port in (80, 443) else f"{url.host}:{port}"
    # We own the socket, not trio-websocket: it leaves it open after a close initiated by
    # the server or a rejected handshake (a ResourceWarning at garbage collection).
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(WS_CONNECT_SECONDS):
                    connection = await trio_websocket.wrap_client_stream(
                        nursery, stream, host, url.raw_path.decode("ascii"), extra_headers=headers
                    )
                close = await _receive(connection, handle)
                nursery.cancel_scope.cancel()  # the reader task: nothing more to read
        except* trio_websocket.ConnectionRejected as group:
            rejected = group.exceptions[0]
            assert isinstance(rejected, trio_websocket.ConnectionRejected)
            reason = httpx.codes.get_reason_phrase(rejected.status_code) or "rejected"
            raise ApiError(rejected.status_code, detail_of(rejected.body or b"", reason)) from None
        except* trio.TooSlowError:
            raise DaemonUnreachable(base_url, "timed out opening the WebSocket") from None
        except* (OSError, trio.BrokenResourceError) as group:
            raise ConnectionLost(base_url, str(group.exceptions[0])) from None
    return close


async def _receive(
    connection: trio_websocket.WebSocketConnection, handle: Callable[[dict[str, Any]], None]
) -> trio_websocket.CloseReason | None:
    try:
        while True:
            message = await connection.get_message()
            try:
                data = json.loads(message)
            except ValueError:
                continue  # not ours to interpret: the protocol sends JSON objects only
            if isinstance(data, dict):
                handle(data)
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason


# -- helpers -------------------------------------------------------------------------------


def _tls_reason(exc: BaseException) -> str:
    cause = exc.__cause__
    return describe_os_error(cause) if isinstance(cause, OSError) else str(cause or exc)
