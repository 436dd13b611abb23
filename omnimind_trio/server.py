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
    # Idle keep-alive connections must not hold a graceful shutdown open: with quart-trio
    # the keep-alive timer is not re-armed after a request (see docs/architecture.md), so
    # a read timeout is what closes an idle connection.
    config.read_timeout = 30
    config.websocket_ping_interval = 20
    return config


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
                    shutdown.set()
                    # Backstop: whatever still runs after the grace period is cancelled.
                    nursery.cancel_scope.deadline = (
                        trio.current_time() + settings.stop_grace_seconds
                    )
                    nursery.start_soon(daemon.stop)

            async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await hypercorn_serve(
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
            task_status.started(urls)
    log.info("stopped")
