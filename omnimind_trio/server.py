"""``omnimind serve``: the daemon behind its HTTP API, as one process.

::

    trio.run(serve)
    └── root nursery
        ├── signal watcher     # 1st SIGTERM/SIGINT: graceful, with a deadline; 2nd: now
        ├── HTTP (hypercorn)   # stays up while the daemon is stopped
        └── open_daemon(...)   # the daemon's own tree
"""

from __future__ import annotations

import logging
import signal

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from .api import create_app
from .auth import Credentials, load_credentials
from .config import Settings
from .daemon import open_daemon

log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = settings.stop_grace_seconds * 2 / 3
    # A backstop for idle keep-alive connections (the real fix is ShieldedSend below).
    config.read_timeout = 30
    config.websocket_ping_interval = 20
    return config


class ShieldedSend:
    """Run hypercorn's ``send`` shielded from quart-trio's cancellation.

    Why: quart-trio cancels its request task as soon as the response is sent, while
    hypercorn is still inside ``send`` doing its after-response work (re-arming the
    keep-alive idle timer, recycling the connection). Cancelled there, the connection is
    never marked idle: a graceful shutdown then waits the whole ``graceful_timeout`` for
    it, and an unread request body can leave the next request on it hanging. hypercorn
    already shields the socket write itself; this shields the rest. HTTP only: a
    WebSocket's sends must stay cancellable.
    """

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def shielded(message: ASGISendEvent) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await self.app(scope, receive, shielded)


def announce(credentials: Credentials) -> None:
    if credentials.source == "generated":
        print(
            "OmniMind generated dashboard credentials (stored in "
            f"{credentials.path}, mode 0600):\n"
            f"  user: {credentials.user}\n  pass: {credentials.password}",
            flush=True,
        )


async def serve(
    settings: Settings,
    *,
    autostart: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run daemon and API until SIGTERM or SIGINT; returns after a clean stop."""
    credentials = load_credentials(settings)
    announce(credentials)
    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with (
            open_daemon(settings, autostart=False) as daemon,
            trio.open_nursery() as nursery,
        ):

            async def watch_signals() -> None:
                async for signum in signals:
                    if shutdown.is_set():
                        log.info("second signal: stopping now")
                        nursery.cancel_scope.cancel()
                        return
                    log.info("%s received: stopping", signal.Signals(signum).name)
                    daemon.events.close()  # WebSocket clients get a clean 1001 "going away"
                    shutdown.set()
                    # Backstop: whatever still runs after the grace period is cancelled.
                    nursery.cancel_scope.deadline = (
                        trio.current_time() + settings.stop_grace_seconds
                    )
                    nursery.start_soon(daemon.stop)

            async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await hypercorn_serve(
                    ShieldedSend(create_app(daemon, credentials)),
                    hypercorn_config(settings),
                    shutdown_trigger=shutdown.wait,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # served its last request: we are done

            nursery.start_soon(watch_signals)
            # Bind first: a daemon that cannot serve its API must not start running tasks.
            urls = await nursery.start(http)
            log.info("serving on %s", ", ".join(urls))
            if autostart:
                await daemon.start()
            task_status.started(urls)
    log.info("stopped")
