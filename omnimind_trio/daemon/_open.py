"""``open_daemon``: the composition root of the daemon's tree."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import trio

from ..config import Settings
from ..exceptions import StartupError
from ..execution import open_executor
from ..scheduling import Clock, MetricsSource, PsutilSource, SystemClock
from ..sensors import Sensors, SystemSensors
from ..store import Store, check_store, is_url, open_store
from ._builtin import register_builtins
from ._daemon import Daemon

EXIT_STOP_SECONDS = 4.0
"""Bound on the shielded stop when the ``open_daemon`` block exits."""
EXIT_NOTIFY_SECONDS = 2.0
"""Then, bound on sending the notifications still queued or in flight."""
_daemons = itertools.count(1)


def _cgroup_key(settings: Settings, store: Store | None) -> str | None:
    """What names this daemon's run cgroups: its database file, which one daemon holds at a
    time (so a restart finds what a crash left); else this daemon alone."""
    if not settings.task_cgroups:
        return None
    if store is None and not is_url(settings.database_location):
        return str(settings.database_path)
    return f"{settings.database_location}#{os.getpid()}.{next(_daemons)}"


def check_database(settings: Settings) -> None:
    """Raise StartupError when another daemon holds ``settings``' database, creating
    nothing: a start can refuse before it writes a file (``omnimind serve``)."""
    check_store(settings.database_location, node=settings.node_name)


@asynccontextmanager
async def open_daemon(
    settings: Settings | None = None,
    *,
    autostart: bool = True,
    clock: Clock | None = None,
    metrics_source: MetricsSource | None = None,
    sensors: Sensors | None = None,
    store: Store | None = None,
) -> AsyncIterator[Daemon]:
    """Open the store and the task worker, load the tasks, and (unless ``autostart`` is
    False) start the daemon. On exit the daemon is stopped and every child process killed;
    notifications still queued get EXIT_NOTIFY_SECONDS to go out.

    ::

        open_daemon(settings)           # store and executor opened first (they outlive stops)
        └── nursery
            ├── notifier                # webhooks, desktop notifications; lives on
            │                           # through stops (sends what is left at exit)
            └── supervisor              # start() opens it, stop() cancels it
                ├── load monitor
                ├── condition monitor   # presence, power, network (the sensors)
                └── scheduler           # one cancel scope per execution

    ``sensors``: what measures presence, power and network for tasks' conditions
    (default: :class:`~omnimind_trio.sensors.SystemSensors` configured by ``settings``).

    ``store``: an open store to use instead of opening ``settings.database`` (its caller
    closes it).

    Error handling: a database that cannot be opened or a task interpreter that cannot be
    started raise here (:class:`StartupError`, :class:`ExecutorError`), before anything runs.
    """
    settings = settings or Settings()
    if not await trio.to_thread.run_sync(settings.workspace.is_dir):
        raise StartupError(f"the workspace {settings.workspace} is not a directory")
    clock = clock or SystemClock()
    async with (
        (
            nullcontext(store)
            if store is not None
            else open_store(
                settings.database_location,
                node=settings.node_name,
                lease_seconds=settings.lease_seconds,
            )
        ) as store,
        open_executor(settings.task_python, cgroup_key=_cgroup_key(settings, store)) as executor,
    ):
        source = metrics_source or PsutilSource(executor.running_pids)
        # The sensors connect to the D-Bus buses lazily; closed at exit when they are ours.
        own = None
        if sensors is None:
            sensors = own = SystemSensors.from_settings(settings)
        try:
            async with trio.open_nursery() as nursery:
                daemon = Daemon(
                    settings,
                    store=store,
                    executor=executor,
                    clock=clock,
                    metrics_source=source,
                    sensors=sensors,
                    nursery=nursery,
                )
                await daemon.load()
                await register_builtins(
                    daemon.register, store=store, settings=settings, retain=daemon.apply_retention
                )
                if autostart:
                    await daemon.start()
                else:
                    daemon.set_stopped()
                try:
                    yield daemon
                finally:
                    with trio.move_on_after(EXIT_STOP_SECONDS, shield=True):
                        daemon.stop()
                        await daemon.wait_stopped()
                    with trio.move_on_after(EXIT_NOTIFY_SECONDS, shield=True):
                        await daemon.close_notifications()
                    nursery.cancel_scope.cancel()
        finally:
            if own is not None:
                with trio.CancelScope(shield=True):
                    await own.aclose()
