"""``omnimind serve``: the daemon behind its HTTP API, as one process.

::

    trio.run(serve)
    └── root nursery
        ├── signal watcher     # 1st SIGTERM/SIGINT: graceful, with a deadline; 2nd: now;
        │                      # 3rd, or still running 10 s after the deadline: os._exit
        ├── credentials        # reloaded on SIGHUP, and when their file changes
        ├── HTTP (hypercorn)   # stays up while the daemon is stopped
        └── open_daemon(...)   # the daemon's own tree
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn

import trio

from ..config import Settings
from ..credentials import (
    Credentials,
    Keyring,
    load_credentials,
    reload_credentials,
    watch_credentials_file,
)
from ..daemon import check_database, open_daemon
from ..exceptions import StartupError
from ..http import (
    check_bind,
    check_transport,
    describe_bind_error,
    hypercorn_config,
    serve_api,
)
from ._footprint import undone_unless_started
from ._runtime import announced
from ._systemd import Systemd

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

STOP_BACKSTOP_SECONDS = 10.0
"""How long after the stop's grace period a process that has still not stopped (something
ignores cancellation) exits at once, without cleaning up."""


def exit_now(why: str) -> NoReturn:
    """End the process at once: a stop that cannot finish must not need a SIGKILL."""
    log.critical("%s: exiting without a clean stop", why)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(1)


@contextlib.contextmanager
def stop_backstop() -> Iterator[Callable[[float], None]]:
    """``arm(seconds)``: exit in ``seconds`` unless the block is left first. A thread: it
    fires even if the event loop is stuck."""
    timers: list[threading.Timer] = []

    def arm(seconds: float) -> None:
        why = f"still running {STOP_BACKSTOP_SECONDS:g} s after the stop's grace period"
        timers.append(threading.Timer(seconds, exit_now, (why,)))
        timers[-1].daemon = True
        timers[-1].start()

    try:
        yield arm
    finally:
        for timer in timers:
            timer.cancel()


@contextlib.contextmanager
def start_up_without_collections() -> Iterator[None]:
    """No garbage collection during start-up, then none of what start-up made, ever.

    Almost everything made while starting (modules, the app, the registered tasks) lives
    as long as the process. Collecting while it grows is wasted work: with 100k stored
    tasks the collections took 0.8 s of a 2.5 s start-up (bench C100k-start). Once started,
    ``end_of_start_up`` freezes it all out of the collector's sight: otherwise every full
    collection walks it, a pause of about 30 ms with an empty store, more with many tasks,
    that every request in flight waits out (bench D4, the API's p99). The collector is
    back on when start-up ends, however it ends.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def end_of_start_up() -> None:
    # No gc.collect() first: with 100k tasks it would hold the loop for a long pause, for
    # the little cyclic garbage a start-up leaves.
    gc.freeze()
    gc.enable()


def _bind_failure(settings: Settings, group: BaseExceptionGroup[OSError]) -> str:
    """The words for the first bind error in ``group`` (hypercorn raises it in a group)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, OSError)
    return describe_bind_error(settings.host, settings.port, leaf)


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
    """Run daemon and API until SIGTERM or SIGINT; returns after a clean stop.

    A start that fails (the address cannot be served, another daemon holds the database,
    a setting found wrong on the way) raises, and leaves the directories as it found them:
    what it created is removed (``_footprint``); the generated credentials are printed only
    once start-up has succeeded."""
    with (
        start_up_without_collections(),
        trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals,
        trio.open_signal_receiver(signal.SIGHUP) as hangups,  # from here, HUP cannot kill us
        contextlib.ExitStack() as on_exit,
        stop_backstop() as arm_backstop,
        undone_unless_started(settings) as footprint,
    ):
        # Refused before anything is created (credentials, database): plain HTTP beyond
        # loopback, a certificate that cannot be loaded, a database another daemon holds
        # (said before its port, which it holds too when it is the same), an address that
        # cannot be bound. They read files and bind: in a worker thread.
        config = hypercorn_config(settings)
        await trio.to_thread.run_sync(check_transport, settings, config)
        await trio.to_thread.run_sync(check_database, settings)
        await trio.to_thread.run_sync(check_bind, settings, config)
        # Reads (or creates) a file: in a worker thread, not the event loop.
        credentials = await trio.to_thread.run_sync(load_credentials, settings)
        footprint.generated(credentials)
        # Read (and removed from the environment) before the fork server inherits it.
        systemd = Systemd.from_environment(os.environ)  # None without $NOTIFY_SOCKET
        keyring = Keyring(credentials)
        shutdown = trio.Event()
        async with (
            open_daemon(settings, autostart=False) as daemon,
            trio.open_nursery() as nursery,
        ):

            async def watch_signals() -> None:
                async for signum in signals:
                    if nursery.cancel_scope.cancel_called:
                        exit_now(f"{signal.Signals(signum).name} received while stopping now")
                    if shutdown.is_set():
                        log.info("second signal: stopping now")
                        nursery.cancel_scope.cancel()
                        continue
                    log.info("%s received: stopping", signal.Signals(signum).name)
                    if systemd is not None:
                        systemd.stopping()
                    daemon.close_events()  # WebSocket clients get a clean 1001 "going away"
                    shutdown.set()
                    # Backstop: whatever still runs after the grace period is cancelled,
                    # and a process still there well after that exits.
                    nursery.cancel_scope.deadline = (
                        trio.current_time() + settings.stop_grace_seconds
                    )
                    arm_backstop(settings.stop_grace_seconds + STOP_BACKSTOP_SECONDS)
                    daemon.stop()  # leaving open_daemon waits for it

            async def watch_hangups() -> None:
                async for _ in hangups:
                    await reload_credentials(keyring, settings, "SIGHUP")

            async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await serve_api(
                    daemon,
                    keyring,
                    config=config,
                    shutdown_trigger=shutdown.wait,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # served its last request: we are done

            # A system task: the nursery's cancel (a second signal, the deadline) must not
            # end it, or a third signal would go unheard. It waits for ever once we return.
            trio.lowlevel.spawn_system_task(watch_signals)
            if systemd is not None:
                nursery.start_soon(systemd.run, daemon)
            nursery.start_soon(watch_hangups)
            await nursery.start(watch_credentials_file, keyring, settings)
            # Bind first: a daemon that cannot serve its API must not start running tasks.
            try:
                urls = await nursery.start(http)
            except* OSError as group:  # taken since check_bind: a race, said as it is
                raise StartupError(_bind_failure(settings, group)) from None
            log.info("serving on %s", ", ".join(urls))
            # Where the CLI finds us from any directory; removed when we exit.
            on_exit.enter_context(announced(urls, settings.home))
            if autostart:
                await daemon.start()
            end_of_start_up()
            footprint.started = True
            announce(credentials)
            if systemd is not None:
                systemd.ready(daemon)
            task_status.started(urls)
    log.info("stopped")
