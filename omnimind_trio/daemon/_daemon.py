"""The daemon facade: what the HTTP API, the CLI's server and embedding programs call.

It composes the nodes of the tree (the supervisor with the load monitor and the scheduler,
the execution runner, the store) and answers with the models of :mod:`omnimind_trio.models`.
Nothing outside this package reaches past it into the scheduler, the gates or the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio

from ..config import Settings
from ..execution import Executor
from ..models import (
    DaemonState,
    Event,
    ExecutionRecord,
    Priority,
    Status,
    StatusMetrics,
    SystemMetrics,
    TaskDetail,
    TaskSpec,
    TaskSummary,
)
from ..notify import Notifier
from ..scheduling import (
    Clock,
    ConditionMonitor,
    ConditionState,
    GateSet,
    InProcessFunction,
    LoadMonitor,
    MetricsSource,
    Running,
    Scheduler,
    TaskEntry,
    calendar,
    check_run_now,
)
from ..sensors import Sensors
from ..store import Store
from ._builtin import apply_retention
from ._events import EventBus, publish_run_event
from ._fleet import FleetMember
from ._history import ExecutionReads
from ._metrics import DaemonMetrics, LiveState
from ._nodes import NodeReads
from ._notifications import history_reader, load_telling_interrupted
from ._output import OutputHub
from ._reads import TaskReads
from ._registry import TaskRegistry
from ._runs import ExecutionRunner, wait_recorded
from ._supervisor import Supervisor
from ._views import task_summary
from ._writes import WriteGuard

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


class Daemon(TaskReads, ExecutionReads, NodeReads):
    """A running (or stopped) daemon. Create it with :func:`~omnimind_trio.open_daemon`.

    Reads answer with models (:class:`~omnimind_trio.models.TaskDetail`...); changes are
    saved before memory changes, so one the database refuses (:class:`StoreError`) changes
    nothing. Errors are :class:`~omnimind_trio.OmniMindError` subclasses.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        executor: Executor,
        clock: Clock,
        metrics_source: MetricsSource,
        sensors: Sensors,
        nursery: trio.Nursery,
    ) -> None:
        self.settings = settings
        self._store = store
        self._executor = executor
        self._clock = clock
        self.started_at = clock.now()
        self._changed = trio.Event()
        self._notifier = Notifier(defaults=settings.notify_defaults, history=history_reader(store))
        nursery.start_soon(self._notifier.run, name="notifier")  # lives on through stops
        self._writes = WriteGuard(on_change=lambda: self._supervisor.check_state())
        self._gates = GateSet.create(
            idle_cpu_percent=settings.idle_cpu_percent,
            low_activity_cpu_percent=settings.low_activity_cpu_percent,
            window=settings.window,
            open_seconds=settings.gate_open_seconds,
            close_seconds=settings.gate_close_seconds,
        )
        self._monitor = LoadMonitor(
            metrics_source, settings.sample_seconds, lambda m: self._supervisor.on_sample(m)
        )
        self._conditions = ConditionState.create(
            away_seconds=settings.away_seconds,
            open_seconds=settings.gate_open_seconds,
            close_seconds=settings.gate_close_seconds,
        )
        self._condition_monitor = ConditionMonitor(
            sensors.sample,
            settings.condition_sample_seconds,
            lambda sample: self._supervisor.on_conditions(sample),
        )
        self._events = EventBus(lambda: self._supervisor.state, settings.ws_buffer_messages)
        self._output = OutputHub(
            settings.logs_dir,
            so_far_bytes=settings.max_output_bytes,
            log_bytes=settings.max_log_bytes,
            publish=self._events.publish,
        )
        self._prom = DaemonMetrics(self._live_state, self._is_registered)
        self._runner = ExecutionRunner(
            settings,
            store=store,
            executor=executor,
            clock=clock,
            events=self._events,
            prom=self._prom,
            writes=self._writes,
            output=self._output,
            notifier=self._notifier,
            on_finished=lambda record: self._notify_change(),
            on_not_claimed=self._read_again,
        )
        self._scheduler = Scheduler(
            clock=clock,
            gates=self._gates,
            conditions=self._conditions,
            runner=self._runner.run,
            node=settings.node_name,
            max_concurrent=settings.max_concurrent,
            max_concurrent_critical=settings.max_concurrent_critical,
            on_change=lambda: self._supervisor.check_state(),
            recorder=self._runner.record_skip,
            persist=lambda entry: self._tasks.persist_schedule(entry),
            notify=self._on_run_event,
            missed_grace_seconds=settings.missed_grace_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            timezone=calendar.zone(settings.timezone),
        )
        self._supervisor = Supervisor(
            scheduler=self._scheduler,
            gates=self._gates,
            monitor=self._monitor,
            conditions=self._conditions,
            condition_monitor=self._condition_monitor,
            writes=self._writes,
            events=self._events,
            clock=clock,
            store=store,
            nursery=nursery,
            on_change=self._notify_change,
            retention=self.apply_retention,
        )
        self._tasks = TaskRegistry(
            settings,
            store=store,
            executor=executor,
            clock=clock,
            scheduler=self._scheduler,
            writes=self._writes,
            events=self._events,
            on_removed=self._forget,
        )
        self._nursery = nursery
        self._fleet = (
            None
            if store.fleet is None
            else FleetMember(
                store.fleet,
                lease_seconds=settings.lease_seconds,
                store=store,
                scheduler=self._scheduler,
                registry=self._tasks,
                events=self._events,
                state=lambda: self.state,
                running=lambda: self.running,
            )
        )
        """This daemon as one of the fleet sharing its database (None: it runs alone)."""

    # -- state -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the daemon runs tasks (between start and stop)."""
        return self._supervisor.running

    @property
    def state(self) -> DaemonState:
        return self._supervisor.state

    @property
    def error(self) -> str | None:
        """Why the state is ``error``, while it is."""
        return self._supervisor.error

    @property
    def metrics(self) -> SystemMetrics:
        """The latest load sample."""
        return self._monitor.latest

    def status(self) -> Status:
        """The ``GET /daemon/status`` body."""
        metrics = self._monitor.latest
        return Status(
            state=self.state,
            running=self.running,
            tasks_registered=len(self._scheduler.tasks),
            tasks_pending=self._scheduler.pending_count,
            metrics=StatusMetrics(
                cpu_percent=metrics.cpu_percent,
                memory_percent=metrics.memory_percent,
                is_idle=self._gates.idle.is_open,
                is_sleep_time=self._gates.in_sleep_window,
            ),
            cloud_enabled=self._fleet is not None,
            workspace=str(self.settings.workspace),
        )

    @property
    def executions_running(self) -> int:
        return self._scheduler.running_count

    def scheduler_pass(self) -> int | None:
        """Wake the scheduler and answer how many passes its loop has made: a watchdog
        sees it alive when the count moves. None while the daemon is stopped."""
        self._scheduler.wake()
        return self._scheduler.passes if self.running else None

    def prometheus(self) -> bytes:
        """The metrics in Prometheus's text exposition format."""
        return self._prom.render()

    def _read_again(self, task_id: str) -> None:
        """Another daemon of the fleet claimed a run of this task: its schedule is theirs."""
        if self._fleet is not None:
            self._fleet.read_again(task_id)

    def _forget(self, task_id: str) -> None:
        """A task was deleted: drop its metrics series and its last verdict."""
        self._prom.forget(task_id)
        self._notifier.forget(task_id)

    def _is_registered(self, record: ExecutionRecord) -> bool:
        """Whether ``record``'s registration is the task registered under its id now."""
        entry = self._scheduler.tasks.get(record.task_id)
        return entry is not None and entry.registration_id == record.registration_id

    def _live_state(self) -> LiveState:
        return LiveState(
            up=self.running,
            database_writable=self._writes.problem is None,
            tasks_registered=len(self._scheduler.tasks),
            executions_running=self._scheduler.running_count,
            tasks_pending=self._scheduler.pending_count,
            machine=self._monitor.latest,
            open_priorities=self._gates.open_priorities(),
            surroundings=self._conditions.readings,
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> bool:
        """Start running tasks; False if the daemon was already running."""
        return await self._supervisor.start()

    def stop(self) -> bool:
        """Begin stopping: every execution in flight is killed and recorded as cancelled.
        Returns at once (False if the daemon was not running); :meth:`wait_stopped` waits."""
        return self._supervisor.stop()

    async def wait_stopped(self) -> None:
        """Wait until the daemon has stopped and every execution's record is written."""
        await self._supervisor.wait_stopped()

    # -- events ------------------------------------------------------------------------

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[Event]]:
        """Live events, as the WebSocket sends them. The channel ends when the subscriber
        falls more than ``ws_buffer_messages`` behind, or when :meth:`close_events` is
        called (the process is shutting down)."""
        with self._events.subscribe() as events:
            yield events

    def close_events(self) -> None:
        """End every subscription: the process is shutting down."""
        self._events.close()

    @property
    def events_closed(self) -> bool:
        return self._events.closed

    async def wait_changed(self) -> None:
        """Return at the next change of the state, the tasks or the runs in flight."""
        await self._changed.wait()

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- tasks: changing ---------------------------------------------------------------

    async def add_task(self, spec: TaskSpec, *, paused: bool = False) -> TaskSummary:
        """Register a code task; it is first due now (``paused``: it is added paused).
        Raises TaskExists, InvalidInput (the code does not parse or defines no
        ``execute()``, its ``python`` is not a Python 3.8+ that runs), StoreError."""
        return self._changed_task(await self._tasks.add(spec, paused=paused))

    async def check_code(self, code: str, python: str | None = None) -> None:
        """Raise InvalidInput unless ``code`` parses and defines ``execute()``, as the task
        interpreter sees it (which may be a newer Python than the daemon's), or as
        ``python`` does, a task's own interpreter, which must be a Python 3.8+ that runs."""
        await self._tasks.check_code(code, python)

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
    ) -> TaskSummary:
        """Register an in-process async task: ``await function()`` is one run, and what it
        returns is the run's result.

        Its counters and history persist under ``task_id`` across restarts, like any task's,
        and so does a change made to it over the API: register it again at each start (the
        stored definition wins over these arguments). Raises TaskExists if the id is taken.
        """
        entry = await self._tasks.register(
            task_id,
            function,
            name=name,
            description=description,
            priority=priority,
            repeat_hours=repeat_hours,
            timeout_seconds=timeout_seconds,
        )
        return self._changed_task(entry)

    async def update_task(self, task_id: str, changes: Mapping[str, Any]) -> TaskDetail:
        """Change a task's definition: ``changes`` (JSON values, as a PATCH body) are laid
        over it and the result validated like an add; ``None`` clears an optional field.
        Raises TaskNotFound, InvalidInput, StoreError."""
        await self._tasks.update(task_id, changes)
        self._notify_change()
        return self.get_task(task_id)

    async def delete_task(self, task_id: str) -> TaskSummary:
        """Unregister a task (its history stays); a running execution is cancelled.
        Raises TaskNotFound, StoreError, or Conflict for an in-process task: its program
        registers it again at every start, so deleting it would not last (pause it)."""
        return self._changed_task(await self._tasks.delete(task_id))

    async def pause_task(self, task_id: str) -> TaskSummary:
        """Stop scheduling a task (a run in flight goes on). Raises TaskNotFound,
        StoreError."""
        return self._changed_task(await self._tasks.pause(task_id))

    async def resume_task(self, task_id: str) -> TaskSummary:
        """Schedule a paused task again. Raises TaskNotFound, StoreError."""
        return self._changed_task(await self._tasks.resume(task_id))

    def run_task_now(self, task_id: str) -> str:
        """Queue a run that skips the gates; returns the id its execution will have.
        Every request that returns runs once: one made while another is pending or
        running is queued (overlap ``queue``), runs beside it (``allow``), replaces the
        running one (``replace``), or is refused. Raises TaskNotFound, or Conflict for a
        refused request (it says whether the task runs or already has a run requested)."""
        return self._scheduler.run_now(task_id)

    async def request_run(self, task_id: str) -> str:
        """:meth:`run_task_now`, returning once the run's start record is committed if it
        starts at once (what the HTTP API answers: see :func:`._runs.wait_recorded`)."""
        execution_id = self.run_task_now(task_id)
        await wait_recorded(self._scheduler, execution_id, lambda: self.running, self._change)
        return execution_id

    def _change(self) -> trio.Event:
        return self._changed

    def check_run_now(self, task_id: str) -> None:
        """Raise what :meth:`run_task_now` would raise now, without requesting a run."""
        check_run_now(self._scheduler.get(task_id), self._scheduler.node)

    def cancel_task(self, task_id: str) -> TaskSummary:
        """Kill the task's running executions. Raises TaskNotFound, or Conflict when it
        is not running."""
        return task_summary(self._scheduler.cancel(task_id))

    def _changed_task(self, entry: TaskEntry) -> TaskSummary:
        self._notify_change()
        return task_summary(entry)

    async def apply_retention(self) -> int:
        """Delete the history beyond the retention settings (``OMNIMIND_HISTORY_*``) and
        the log files of the runs deleted; returns how many runs went."""
        return await apply_retention(self._store, self.settings, self._clock, self._output)

    # -- start-up ----------------------------------------------------------------------

    async def load(self) -> None:
        """Load the stored tasks (see :func:`~._open.open_daemon`); notify runs a crash ended."""
        tasks = self._scheduler.tasks
        await load_telling_interrupted(self._store, self._tasks.load, self._notifier, tasks)
        await self._output.prepare()
        if self._fleet is not None:  # once the tasks are loaded: it keeps them in step
            self._nursery.start_soon(self._fleet.run, name="fleet member")

    async def close_notifications(self) -> None:
        """Send what is queued and in flight, then stop notifying (bound it: see _open)."""
        await self._notifier.aclose()

    def set_stopped(self) -> None:
        """Opened without starting: the state is ``stopped``."""
        self._supervisor.set_phase(DaemonState.STOPPED)

    # -- what the scheduler tells ------------------------------------------------------

    def _on_run_event(self, kind: str, entry: TaskEntry, run: Running | None) -> None:
        """A task became due and waits (``task_waiting``: why, and until when), or an
        execution was frozen or thawed because its gate closed or reopened."""
        if run is not None:
            publish_run_event(self._events, kind, entry.task_id, run)
        elif self._events.subscriber_count:
            waiting = self._waiting(entry)
            data = waiting.json_body() if waiting is not None else {}
            self._events.publish(kind, {"task_id": entry.task_id, **data})
