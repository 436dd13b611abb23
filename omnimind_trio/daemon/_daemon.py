"""The daemon: the supervisor node of the nursery tree and the embedding API.

::

    open_daemon(settings)               # store and executor opened first (they outlive stops)
    └── root nursery
        └── supervisor                  # start() opens it, stop() cancels it
            ├── load monitor            # samples the machine, updates the gates
            └── scheduler               # one cancel scope per execution

``async with open_daemon(settings) as daemon:`` gives a running daemon (unless
``autostart=False``) and stops it, killing every execution in flight, on exit.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..config import Settings
from ..exceptions import (
    Conflict,
    ExecutionNotFound,
    InvalidInput,
    OmniMindError,
    StartupError,
    StoreError,
    TaskExists,
)
from ..execution import Executor, describe_code_problem, open_executor
from ..models import (
    DaemonState,
    ExecutionRecord,
    Outcome,
    Priority,
    SystemMetrics,
    TaskCounters,
    TaskSpec,
    iso_utc,
)
from ..scheduling import (
    Clock,
    GateSet,
    InProcessFunction,
    LoadMonitor,
    MetricsSource,
    PsutilSource,
    Running,
    Scheduler,
    SystemClock,
    TaskEntry,
)
from ..store import Store, StoredTask, open_store
from ._builtin import register_builtins
from ._events import EventBus
from ._metrics import DaemonMetrics
from ._runs import ExecutionRunner
from ._views import task_summary, waiting
from ._writes import WriteGuard

log = logging.getLogger(__name__)

SUSPEND_GAP_SECONDS = 30.0
"""A wall-clock jump beyond the monotonic clock this large means suspend or a clock change."""
EXIT_STOP_SECONDS = 4.0
"""Bound on the shielded stop when the ``open_daemon`` block exits."""


class Daemon:
    """A running (or stopped) daemon. Create it with :func:`open_daemon`."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        executor: Executor,
        clock: Clock,
        metrics_source: MetricsSource,
        nursery: trio.Nursery,
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.clock = clock
        self._nursery = nursery
        self.writes = WriteGuard(on_change=self._check_state)
        self.gates = GateSet.create(
            idle_cpu_percent=settings.idle_cpu_percent,
            low_activity_cpu_percent=settings.low_activity_cpu_percent,
            window=settings.window,
            open_seconds=settings.gate_open_seconds,
            close_seconds=settings.gate_close_seconds,
        )
        self.monitor = LoadMonitor(metrics_source, settings.sample_seconds, self._on_sample)
        self.scheduler = Scheduler(
            clock=clock,
            gates=self.gates,
            runner=lambda entry, run: self.executions.run(entry, run),
            max_concurrent=settings.max_concurrent,
            max_concurrent_critical=settings.max_concurrent_critical,
            on_change=self._check_state,
            recorder=lambda *args: self.executions.record_skip(*args),
            persist=self._persist_schedule,
            notify=self._on_run_event,
            missed_grace_seconds=settings.missed_grace_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        )
        self._last_sample_clocks: tuple[float, float] | None = None
        self.events = EventBus(lambda: self.state.value, settings.ws_buffer_messages)

        self._state = DaemonState.INITIALIZING
        self._published_state = DaemonState.INITIALIZING
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._stopped.set()
        self._seq = 0
        self._lifecycle = trio.Lock()
        self._stored_functions: dict[str, StoredTask] = {}
        self.prom = DaemonMetrics(self)
        self.executions = ExecutionRunner(
            settings,
            store=store,
            executor=executor,
            clock=clock,
            events=self.events,
            prom=self.prom,
            writes=self.writes,
        )

    # -- state -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the supervisor is up (between start and stop)."""
        return self._scope is not None

    @property
    def state(self) -> DaemonState:
        if self._state is not DaemonState.IDLE:
            return self._state
        if self.writes.problem is not None:
            return DaemonState.ERROR  # running, but nothing can be saved
        if self.scheduler.running_count:
            return DaemonState.WORKING
        if self.gates.in_sleep_window:
            return DaemonState.SLEEPING
        return DaemonState.IDLE

    @property
    def metrics(self) -> SystemMetrics:
        return self.monitor.latest

    def status(self) -> dict[str, Any]:
        """The ``GET /daemon/status`` body."""
        metrics = self.monitor.latest
        return {
            "state": self.state.value,
            "running": self.running,
            "tasks_registered": len(self.scheduler.tasks),
            "tasks_pending": self.scheduler.pending_count,
            "metrics": {
                "cpu_percent": metrics.cpu_percent,
                "memory_percent": metrics.memory_percent,
                "is_idle": self.gates.idle.is_open,
                "is_sleep_time": self.gates.in_sleep_window,
            },
            "cloud_enabled": False,
            "workspace": str(self.settings.workspace),
        }

    @property
    def error(self) -> str | None:
        """Why the state is ``error``, while it is (in ``state_changed`` events and the log;
        the status body keeps the API reference's shape)."""
        if self.writes.problem is not None:
            return f"the database refuses writes ({self.writes.problem})"
        if self._state is DaemonState.ERROR:
            return "the scheduler failed; see the log"
        return None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> bool:
        """Start the supervisor; False if it was already running."""
        async with self._lifecycle:
            if self.running:
                return False
            self._set_state(DaemonState.INITIALIZING)
            await self._nursery.start(self._supervise)
            return True

    async def stop(self) -> bool:
        """Stop the supervisor, killing every execution in flight (recorded as cancelled).
        Returns once every record is written; False if it was not running."""
        async with self._lifecycle:
            if self._scope is None:
                return False
            self._set_state(DaemonState.SHUTTING_DOWN)
            self._scope.cancel()
            await self._stopped.wait()
            return True

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.monitor.run)
                    await nursery.start(self.scheduler.run)
                    nursery.start_soon(self.writes.recover, self.store.probe_write)
                    self._set_state(DaemonState.IDLE)
                    log.info("daemon started with %d tasks", len(self.scheduler.tasks))
                    task_status.started()
        except Exception:
            self._set_state(DaemonState.ERROR)
            log.exception("the daemon supervisor failed")
            raise
        finally:
            self._scope = None
            if self._state is not DaemonState.ERROR:
                self._set_state(DaemonState.STOPPED)
            self._stopped.set()
            log.info("daemon stopped")

    def _on_sample(self, metrics: SystemMetrics) -> None:
        mono, wall = trio.current_time(), self.clock.now()
        changed = self.gates.update(metrics.external_cpu_percent, mono, wall)
        if changed:
            self.scheduler.wake()
        if self._last_sample_clocks is not None:
            # The monotonic clock stands still while the machine sleeps; the wall clock
            # does not. A gap means suspend (or a clock change): runs may have been missed.
            gap = (wall - self._last_sample_clocks[1]) - (mono - self._last_sample_clocks[0])
            if abs(gap) > SUSPEND_GAP_SECONDS:
                log.warning("the wall clock jumped %.0f s (machine asleep?)", gap)
                self.scheduler.wake()
        self._last_sample_clocks = (mono, wall)
        self._check_state()
        if self.events.subscriber_count and changed:
            self.events.publish(
                "gates_changed",
                {
                    "open_priorities": sorted(p.name for p in self.gates.open_priorities()),
                    "external_cpu_percent": metrics.external_cpu_percent,
                    "is_idle": self.gates.idle.is_open,
                    "is_low_activity": self.gates.low_activity.is_open,
                    "is_sleep_time": self.gates.in_sleep_window,
                },
            )
        if self.events.subscriber_count:
            self.events.publish(
                "metrics",
                {
                    **self.status()["metrics"],
                    "external_cpu_percent": metrics.external_cpu_percent,
                    "open_priorities": sorted(p.name for p in self.gates.open_priorities()),
                },
            )

    def _set_state(self, state: DaemonState) -> None:
        self._state = state
        self._check_state()

    def _check_state(self) -> None:
        """Publish ``state_changed`` when the state differs from the last one published."""
        state = self.state
        if state is not self._published_state:
            previous, self._published_state = self._published_state, state
            self.events.publish(
                "state_changed", {"state": state.value, "previous": previous, "reason": self.error}
            )

    # -- tasks -------------------------------------------------------------------

    async def add_task(self, spec: TaskSpec) -> TaskEntry:
        """Register a code task; it is first due now. Raises TaskExists, InvalidInput."""
        if spec.code is None:
            raise InvalidInput("a task added this way needs code")
        await self.check_code(spec.code)
        if spec.task_id in self.scheduler.tasks:
            raise TaskExists(spec.task_id)
        return await self._insert(spec, None)

    async def check_code(self, code: str) -> None:
        """Raise InvalidInput unless ``code`` parses and defines ``execute()``, as the task
        interpreter sees it (which may be a newer Python than the daemon's)."""
        if self.settings.task_python == sys.executable:
            # Parsing up to max_code_bytes of code is CPU work: keep it off the event loop.
            problem = await trio.to_thread.run_sync(describe_code_problem, code)
        else:
            problem = await self.executor.check_code(code)
        if problem is not None:
            raise InvalidInput(problem)

    async def register(
        self,
        task_id: str,
        function: InProcessFunction,
        *,
        name: str,
        description: str = "",
        priority: Priority = Priority.MEDIUM,
        repeat_hours: int | None = None,
        timeout_seconds: float | None = None,
    ) -> TaskEntry:
        """Register an in-process async task (``await function()`` is one run).

        Its counters and history persist under ``task_id`` across restarts, like any task's;
        register it again at each start. Raises TaskExists if the id is taken in this run.
        """
        spec = TaskSpec(
            task_id=task_id,
            name=name,
            description=description,
            priority=priority,
            code=None,
            repeat_hours=repeat_hours,
            timeout_seconds=timeout_seconds,
        )
        if task_id in self.scheduler.tasks:
            raise TaskExists(task_id)
        stored = self._stored_functions.pop(task_id, None)
        if stored is not None:
            # The stored definition wins: a user's PATCH (priority, repeat...) outlives a
            # restart; the arguments here only define the task the first time.
            entry = self._entry(stored, function)
            self.scheduler.add(entry)
            self.events.publish("task_added", task_summary(entry))
            return entry
        return await self._insert(spec, function)

    async def _insert(self, spec: TaskSpec, function: InProcessFunction | None) -> TaskEntry:
        self._seq += 1
        now = self.clock.now()
        stored = StoredTask(spec, TaskCounters(), self._seq, False, now, now)
        try:
            await self._write(self.store.insert_task(stored))
        except sqlite3.IntegrityError:
            raise TaskExists(spec.task_id) from None
        entry = self._entry(stored, function)
        self.scheduler.add(entry)
        log.info(
            "task %s added (%s)",
            spec.task_id,
            spec.priority.name,
            extra={"task_id": spec.task_id, "priority": spec.priority.name},
        )
        self.events.publish("task_added", task_summary(entry))
        return entry

    async def delete_task(self, task_id: str) -> TaskEntry:
        """Unregister a task (its history stays); a running execution is cancelled.
        Raises Conflict for an in-process task: its program registers it again at every
        start, so deleting it would not last (pause it instead)."""
        entry = self.scheduler.get(task_id)
        if entry.function is not None:
            raise Conflict(
                f"Task {task_id} is registered by the program running the daemon and comes "
                "back at every start: pause it instead"
            )
        await self._write(self.store.delete_task(task_id))
        self.scheduler.remove(task_id)
        self.prom.forget(task_id)
        log.info("task %s deleted", task_id, extra={"task_id": task_id})
        self.events.publish("task_removed", {"task_id": task_id})
        return entry

    async def update_task(self, task_id: str, spec: TaskSpec) -> TaskEntry:
        """Replace a task's definition (validated by the caller)."""
        entry = self.scheduler.get(task_id)
        if spec.code is not None and spec.code != entry.spec.code:
            await self.check_code(spec.code)
        return await self._change(
            self.store.update_task(spec, next_due=entry.next_due),
            lambda: self.scheduler.update(task_id, spec),
        )

    async def pause_task(self, task_id: str) -> TaskEntry:
        entry = self.scheduler.get(task_id)
        return await self._change(
            self._save_schedule(entry, paused=True), lambda: self.scheduler.pause(task_id)
        )

    async def resume_task(self, task_id: str) -> TaskEntry:
        entry = self.scheduler.get(task_id)
        return await self._change(
            self._save_schedule(entry, paused=False), lambda: self.scheduler.resume(task_id)
        )

    async def _change(self, write: Awaitable[None], apply: Callable[[], TaskEntry]) -> TaskEntry:
        """A change of a task asked for by a caller: saved first, then made in memory, so
        that a write the database refuses changes nothing (StoreError). Until it is saved
        the scheduler goes on with the old definition. What the change then does to the
        schedule (a new next_due, a queue left) is saved after it, and after whatever the
        scheduler saved meanwhile, so the store ends as memory is. Shielded: a client that
        goes away half-way (quart-trio cancels the request) cannot split the two."""
        with trio.CancelScope(shield=True):
            await self._write(write)
            entry = apply()
            await self._persist_schedule(entry)
        self.events.publish("task_updated", task_summary(entry))
        return entry

    async def _save_schedule(self, entry: TaskEntry, *, paused: bool | None = None) -> None:
        await self.store.set_schedule(
            entry.task_id,
            next_due=entry.next_due,
            paused=entry.paused if paused is None else paused,
            retry_at=entry.retry_at,
            retry_attempt=entry.retry_attempt,
        )

    async def _persist_schedule(self, entry: TaskEntry) -> None:
        await self.writes.write(self._save_schedule(entry), f"the schedule of {entry.task_id}")

    async def _write(self, write: Awaitable[None]) -> None:
        """Save an add, change or delete asked for by a caller, before memory changes.
        Shielded (see ``_change``); a write the database refuses (disk full, read-only,
        I/O error) is a StoreError (HTTP 503) and nothing changes."""
        with trio.CancelScope(shield=True):
            if not await self.writes.write(write, "a change of the tasks"):
                raise StoreError(self.writes.problem or "unknown error")

    def run_task_now(self, task_id: str) -> TaskEntry:
        """Queue a run that skips the gates. Raises Conflict while the task runs."""
        return self.scheduler.run_now(task_id)

    def cancel_task(self, task_id: str) -> TaskEntry:
        """Kill the task's running execution. Raises Conflict when it is not running."""
        return self.scheduler.cancel(task_id)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        live = self.scheduler.find_run(execution_id)
        if live is not None and record.outcome is Outcome.RUNNING:
            record.pauses = list(live.pauses)  # the stored row is rewritten only at the end
        return record

    def _entry(self, stored: StoredTask, function: InProcessFunction | None) -> TaskEntry:
        return TaskEntry(
            spec=stored.spec,
            counters=stored.counters,
            seq=stored.seq,
            created_at=stored.created_at,
            next_due=stored.next_due,
            paused=stored.paused,
            function=function,
            retry_at=stored.retry_at,
            retry_attempt=stored.retry_attempt,
        )

    async def _load(self) -> None:
        """Load stored tasks; close runs a crash left open as interrupted."""
        try:
            closed = await self.store.close_interrupted(self.clock.now())
        except sqlite3.OperationalError as exc:
            # The database refuses writes (disk full...): start anyway, in state error.
            # The rows stay ``running`` and are closed at a later start.
            self.writes.failed(exc, "closing interrupted runs")
            closed = 0
        if closed:
            log.warning("%d execution(s) were interrupted by an unclean stop", closed)
        code_tasks = []
        for stored in await self.store.load_tasks():
            self._seq = max(self._seq, stored.seq)
            if stored.spec.code is None:
                self._stored_functions[stored.spec.task_id] = stored
            else:
                code_tasks.append(self._entry(stored, None))
        self.scheduler.load(code_tasks)

    # -- executions --------------------------------------------------------------

    def _on_run_event(self, kind: str, entry: TaskEntry, run: Running | None) -> None:
        """A task became due and waits (``task_waiting``: why, and until when), or an
        execution was frozen or thawed because its gate closed or reopened."""
        if run is None:
            if self.events.subscriber_count:
                self.events.publish(
                    kind, {"task_id": entry.task_id, **(waiting(self, entry) or {})}
                )
            return
        data = {
            "execution_id": run.execution_id,
            "task_id": entry.task_id,
            "pauses": [
                {"frozen_at": iso_utc(a, millis=True), "thawed_at": iso_utc(b, millis=True)}
                for a, b in run.pauses
            ],
        }
        self.events.publish(kind, data)
        verb = "frozen: the machine is busy" if kind == "execution_frozen" else "thawed"
        log.info(
            "execution %s of %s %s",
            run.execution_id,
            entry.task_id,
            verb,
            extra={"task_id": entry.task_id, "execution_id": run.execution_id},
        )


@asynccontextmanager
async def open_daemon(
    settings: Settings | None = None,
    *,
    autostart: bool = True,
    clock: Clock | None = None,
    metrics_source: MetricsSource | None = None,
) -> AsyncIterator[Daemon]:
    """Open the store and the task worker, load the tasks, and (unless ``autostart`` is
    False) start the daemon. On exit the daemon is stopped and every child process killed.

    Error handling: a database that cannot be opened or a task interpreter that cannot be
    started raise here, before anything runs.
    """
    settings = settings or Settings()
    if not await trio.to_thread.run_sync(settings.workspace.is_dir):
        raise StartupError(f"the workspace {settings.workspace} is not a directory")
    async with (
        open_store(settings.database_path) as store,
        open_executor(settings.task_python) as executor,
    ):
        source = metrics_source or PsutilSource(executor.running_pids)
        async with trio.open_nursery() as nursery:
            daemon = Daemon(
                settings,
                store=store,
                executor=executor,
                clock=clock or SystemClock(),
                metrics_source=source,
                nursery=nursery,
            )
            await daemon._load()
            await register_builtins(daemon)
            if autostart:
                await daemon.start()
            else:
                daemon._set_state(DaemonState.STOPPED)
            try:
                yield daemon
            finally:
                with trio.move_on_after(EXIT_STOP_SECONDS, shield=True):
                    await daemon.stop()
                nursery.cancel_scope.cancel()


__all__ = ["Daemon", "OmniMindError", "open_daemon"]
