"""hypercorn's Trio connection, with the fixes ``omnimind serve`` needs.

hypercorn's trio worker (0.17, 0.18) handles one TCP connection in a ``TCPServer``. Four of
its habits hurt a keep-alive API served by quart-trio:

1. **A task per request for the keep-alive timer.** When a request arrives hypercorn
   cancels the connection's idle-timer task, and after the response it starts a new one
   (``TrioSingleTask``: a lock, a cancel and a ``nursery.start`` each time). That was about
   a tenth of the server's CPU per ``GET /daemon/status`` at 32 connections (bench D).
2. **Its after-response work is cancelled.** quart-trio cancels its request task as soon
   as hypercorn has taken the last body chunk, while hypercorn is still inside that ``send``
   re-arming the timer or closing the connection. Cancelled at the lock, the connection
   is never marked idle again: a graceful shutdown waits its whole ``graceful_timeout``
   for it, and the keep-alive timeout never closes it. Cancelled in the close, a connection
   that answered without reading the request body is left open with the client waiting.
   Over HTTP/2, a stream's last frames can be lost at the send lock.
3. **Its connection task outlives the connection.** When the socket is closed, hypercorn
   still waits for the connection's helper tasks: a WebSocket's pinger sleeps on for up
   to ``websocket_ping_interval``, and a graceful shutdown waits for it.
4. **Its writes have no timeout, and are shielded.** A client that pipelines requests and
   never reads the answers fills the socket's buffers; the write then waits for ever, and
   no cancellation reaches it: SIGTERM, a second SIGTERM, nothing but SIGKILL stopped the
   process. Here a write that makes no progress for ``SEND_TIMEOUT`` seconds aborts the
   connection. (With ``OMNIMIND_HTTP_CONNECTION_FIX=false`` hypercorn's own class has
   this hang; ``omnimind serve`` then ends such a stop with its backstop, ``os._exit``
   10 s after the grace period.)

Here the timer is one task per connection (:class:`IdleTimer`), asleep in a cancel scope
whose deadline moves: now + ``keep_alive_timeout`` while the connection is idle, never
while a request is in flight. Re-arming and stopping it only set a deadline: no task, no
lock, no checkpoint, so there is nothing quart-trio can cancel. Writes (with their wait for
the send lock) and the socket's close are shielded, and once the socket is closed the
connection's helper tasks are cancelled.

How a server gets this class, and only that server: see :func:`serve_function`. It was
written for hypercorn 0.17 and 0.18 (it overrides private methods); on another version, or
with ``OMNIMIND_HTTP_CONNECTION_FIX=false``, hypercorn serves with its own class.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import types
from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.trio
import hypercorn.trio.run
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.task_group import TaskGroup as HypercornTaskGroup
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState, TaskGroup
from hypercorn.typing import Event as WorkerEvent

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("0.17.", "0.18.")
"""The hypercorn lines :class:`Connection` was written and tested for."""
HYPERCORN_VERSION = importlib.metadata.version("hypercorn")
SEND_TIMEOUT = 5.0
"""Seconds a client may take none of an answer's chunk before its connection is aborted."""
SEND_CHUNK = 64 * 1024
"""The chunk ``SEND_TIMEOUT`` applies to: a client must read 64 KiB per 5 s (13 kB/s)."""


class IdleTimer:
    """Closes a keep-alive connection that stayed idle for ``timeout`` seconds, or at once
    when the worker terminates (graceful shutdown) while it is idle.

    It has hypercorn's ``SingleTask`` interface, which ``TCPServer`` calls: ``restart``
    when the connection becomes idle, ``stop`` when a request arrives.
    """

    def __init__(
        self,
        timeout: float,
        terminated: WorkerEvent,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self._timeout = timeout
        self._terminated = terminated
        self._close = close
        self._deadline = math.inf  # when to close the connection; never while it is busy
        self._scope = trio.CancelScope()  # the timer task sleeps in it, until _deadline
        self._idle = False
        self._running = False

    async def restart(self, task_group: TaskGroup, action: object = None) -> None:
        """The connection is idle from now on. (``action`` is hypercorn's own timer
        coroutine, ``TCPServer._idle_timeout``; this class does its work instead.)"""
        self._idle = True
        now = trio.current_time()
        self._set_deadline(now if self._terminated.is_set() else now + self._timeout)
        if not self._running:
            self._running = True
            task_group.spawn(self._run)

    async def stop(self) -> None:
        """A request is in flight: the connection is not idle until ``restart``."""
        self._idle = False
        self._set_deadline(math.inf)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        self._scope.deadline = deadline

    def _due(self) -> bool:
        return self._idle and (self._terminated.is_set() or trio.current_time() >= self._deadline)

    async def _run(self) -> None:
        while True:
            with self._scope:
                await self._terminated.wait()
                if not self._idle:
                    # Shutting down with a request in flight: close once it is answered.
                    await trio.sleep_forever()
            if self._due():
                break
            # The deadline passed in the very tick a request arrived (trio may run the
            # reader first): that request is being served. A cancelled scope stays
            # cancelled, so wait in a new one.
            self._scope = trio.CancelScope(deadline=self._deadline)
        # Idle for too long, or idle while the worker terminates. (When the connection
        # ends first, its task group cancels this task and nothing below runs.)
        with trio.CancelScope(shield=True):
            await self._close()


class Connection(TCPServer):
    """hypercorn's ``TCPServer`` with :class:`IdleTimer`, a shielded close, and an end."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SSLStream[trio.SocketStream],
    ) -> None:
        super().__init__(app, config, context, state, stream)
        self.idle_task = IdleTimer(  # type: ignore[assignment]
            config.keep_alive_timeout,
            context.terminated,
            lambda: self._bounded(self._initiate_server_close),
        )

    async def _send(self, data: bytes) -> None:
        """Write ``data``; a client that takes none of a chunk of it for ``SEND_TIMEOUT``
        seconds is cut off (the stream aborted, BrokenResourceError raised).

        hypercorn has no write timeout, and its writes are shielded: a client that sends
        requests and never reads the answers held its connection, and every stop of the
        process, for ever. The bound is per chunk, so a slow client still gets a large
        answer as long as it keeps reading.
        """
        view = memoryview(data)
        for start in range(0, len(view), SEND_CHUNK):
            with trio.move_on_after(SEND_TIMEOUT) as scope:
                await self.stream.send_all(view[start : start + SEND_CHUNK])
            if scope.cancelled_caught:
                await trio.aclose_forcefully(self.stream)
                raise trio.BrokenResourceError(
                    f"the client took no data for {SEND_TIMEOUT:g} s: connection aborted"
                )

    async def _bounded(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close`` shielded, but for ``SEND_TIMEOUT`` seconds at most: a TLS close
        writes its close_notify to the client. After that, abort the stream."""
        with trio.move_on_after(SEND_TIMEOUT, shield=True) as scope:
            await close()
        if scope.cancelled_caught:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            # The connection is over (closed by either side, or read_timeout): its task
            # group has nothing left to do. Left alone, hypercorn's ``run`` would wait for
            # it: for the IdleTimer task until shutdown if it was stopped (a leak per
            # WebSocket), and for a WebSocket's pinger up to ``websocket_ping_interval``,
            # which held a graceful shutdown for its whole ``graceful_timeout``.
            assert self._task_group._nursery is not None
            self._task_group._nursery.cancel_scope.cancel()

    async def protocol_send(self, event: Event) -> None:
        # These sends may come from inside quart-trio's request task after it has been
        # cancelled (see the module's docstring).
        if isinstance(event, RawData):
            # hypercorn's own handling of RawData, with the wait for the send lock
            # shielded as well as the write: HTTP/2's last frames of a stream (and its
            # GOAWAY at shutdown) would be lost at the lock. The write is bounded (see
            # _send): a shielded write to a client that reads nothing would never end,
            # and no stop could end the process. Telling the protocol that the peer is
            # gone stays cancellable: it hands a disconnect to the app, and that can wait
            # for ever on a WebSocket app that reads nothing.
            try:
                with trio.CancelScope(shield=True):
                    async with self.send_lock:
                        await self._send(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
        elif isinstance(event, Closed):
            # hypercorn's own handling of Closed, with the socket's close shielded: a
            # close cancelled half-way leaves the client waiting on an open connection.
            # Telling the protocol (which hands a disconnect to the app) stays cancellable.
            await self._bounded(self._close)
            await self.protocol.handle(Closed())
        else:
            await super().protocol_send(event)


Serve = Callable[..., Awaitable[None]]
"""``hypercorn.trio.serve``'s signature: ``(app, config, *, shutdown_trigger, task_status)``."""


def serve_function(*, enabled: bool = True) -> Serve:
    """``hypercorn.trio.serve`` itself, or a copy of it whose connections are
    :class:`Connection` s (the default, on a hypercorn this class was written for).

    Not ``enabled``, hypercorn serves with its own class. On a hypercorn other than 0.17 or
    0.18, or one whose worker is not built as this expects, it does too, after one
    WARNING: the class overrides hypercorn's private methods, and on a version it was not
    written for it could break connections in ways no test of ours has seen.
    """
    if not enabled:
        return hypercorn.trio.serve
    problem = unsupported_because()
    if problem is not None:
        log.warning(
            "%s: serving HTTP with hypercorn's own connection class, without omnimind's"
            " keep-alive and shutdown fixes (idle keep-alive connections may hold a"
            " graceful stop up to its deadline). Set OMNIMIND_HTTP_CONNECTION_FIX=false"
            " to choose this without the warning.",
            problem,
        )
        return hypercorn.trio.serve
    # hypercorn's worker has no hook for its connection class: ``worker_serve`` reads the
    # global name ``TCPServer`` of its module when it starts serving. Rebinding that name
    # would change every hypercorn server in the process, an embedder's included.
    # Instead, run hypercorn's own code for ``serve`` and ``worker_serve`` with private
    # globals, copies of their modules' in which only ``worker_serve`` and ``TCPServer``
    # differ: only servers started through this function see ``Connection``, and no
    # attribute of hypercorn changes. (A context variable read by a stand-in class would
    # still have to be installed in hypercorn's module, for every server; this copies two
    # functions per server started.)
    worker_serve = _with_globals(hypercorn.trio.run.worker_serve, TCPServer=Connection)
    return _with_globals(hypercorn.trio.serve, worker_serve=worker_serve)


def unsupported_because(version: str | None = None) -> str | None:
    """Why :class:`Connection` cannot be used with the installed hypercorn (at ``version``,
    default the installed one), or None when it can."""
    version = HYPERCORN_VERSION if version is None else version
    if not version.startswith(SUPPORTED_VERSIONS):
        supported = " and ".join(f"{v}x" for v in SUPPORTED_VERSIONS)
        return (
            f"hypercorn {version} is not a version omnimind's connection class was"
            f" written for ({supported})"
        )
    if "TCPServer" not in hypercorn.trio.run.worker_serve.__code__.co_names:
        return f"hypercorn {version}'s trio worker no longer builds its connections by name"
    if "worker_serve" not in hypercorn.trio.serve.__code__.co_names:
        return f"hypercorn {version}'s trio serve() no longer calls worker_serve"
    missing = [
        name
        for name in ("_read_data", "protocol_send", "_close", "_initiate_server_close")
        if not callable(getattr(TCPServer, name, None))
    ]
    if missing or not hasattr(HypercornTaskGroup(), "_nursery"):
        return f"hypercorn {version}'s connection class is not built as omnimind's expects"
    return None


def _with_globals(function: Callable[..., Any], **names: Any) -> Callable[..., Any]:
    """A copy of ``function`` (same code, defaults, closure) that sees ``names`` in place of
    its module's globals of those names."""
    copy = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy
