"""``omnimind serve``: the daemon behind its HTTP API, as one process.

::

    trio.run(serve)
    └── root nursery
        ├── signal watcher     # 1st SIGTERM/SIGINT: graceful, with a deadline; 2nd: now
        ├── HTTP (hypercorn)   # stays up while the daemon is stopped
        └── open_daemon(...)   # the daemon's own tree
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

from . import connection
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
    # A backstop for a client that stops sending mid-request; idle keep-alive
    # connections are closed after keep_alive_timeout (5 s) by connection.IdleTimer.
    config.read_timeout = 30
    config.websocket_ping_interval = 20
    return config


async def serve_http(
    app: ASGIFramework,
    config: HypercornConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn's trio worker and this package's connection class
    (see :mod:`omnimind_trio.connection`) until ``shutdown_trigger`` returns."""
    connection.install()
    await hypercorn_serve(
        app,
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


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
                await serve_http(
                    create_app(daemon, credentials),
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
            # Everything loaded so far (modules, the app, the registered tasks) lives as long
            # as the process: move it out of the garbage collector's sight. Without this every
            # full collection walks it all, a pause of about 30 ms with an empty store (longer
            # with many tasks) that every request in flight waits out: the API's p99 (bench D).
            # Collect first, so that no garbage is frozen.
            gc.collect()
            gc.freeze()
            task_status.started(urls)
    log.info("stopped")
