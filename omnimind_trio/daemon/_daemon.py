"""The daemon facade: what the HTTP API, the CLI's server and embedding programs call.

It composes the nodes of the tree (the supervisor with the load monitor and the scheduler,
the execution runner, the store) and answers with the models of :mod:`omnimind_trio.models`.
Nothing outside this package reaches past it into the scheduler, the gates or the store.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio

from ..config import Settings
from ..exceptions import (
    Conflict,
    ExecutionNotFound,
    InvalidInput,
    StoreError,
    StoreUnavailable,
    TaskExists,
)
from ..execution import Executor, describe_code_problem
from ..models import (
    DaemonState,
    Event,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionSummary,
    Outcome,
    Priority,
    Status,
    StatusMetrics,
    SystemMetrics,
    TaskCounters,
    TaskDetail,
    TaskList,
    TaskQuery,
    TaskSpec,
    TaskSummary,
    Waiting,
    iso_utc,
    parse_task_patch,
)
from ..scheduling import (
    Clock,
    GateSet,
    InProcessFunction,
    LoadMonitor,
    MetricsSource,
    Running,
    Scheduler,
    TaskEntry,
)
from ..store import Store, StoredTask
from ._events import EventBus
from ._listing import select
from ._metrics import DaemonMetrics, LiveState
from ._runs import ExecutionRunner
from ._supervisor import Supervisor
from ._views import STOPPED, task_detail, task_summary
from ._writes import WriteGuard

log = logging.getLogger(__name__)


class Daemon:
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
        nursery: trio.Nursery,
    ) -> None:
        self.settings = settings
        self._store = store
        self._executor = executor
        self._clock = clock
        self._changed = trio.Event()
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
        self._events = EventBus(lambda: self._supervisor.state, settings.ws_buffer_messages)
        self._prom = DaemonMetrics(self._live_state)
        self._runner = ExecutionRunner(
            settings,
            store=store,
            executor=executor,
            clock=clock,
            events=self._events,
            prom=self._prom,
            writes=self._writes,
            on_finished=lambda record: self._notify_change(),
        )
        self._scheduler = Scheduler(
            clock=clock,
            gates=self._gates,
            runner=self._runner.run,
            max_concurrent=settings.max_concurrent,
            max_concurrent_critical=settings.max_concurrent_critical,
            on_change=lambda: self._supervisor.check_state(),
            recorder=self._runner.record_skip,
            persist=self._persist_schedule,
            notify=self._on_run_event,
            missed_grace_seconds=settings.missed_grace_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        )
        self._supervisor = Supervisor(
            scheduler=self._scheduler,
            gates=self._gates,
            monitor=self._monitor,
            writes=self._writes,
            events=self._events,
            clock=clock,
            probe=store.probe_write,
            nursery=nursery,
            on_change=self._notify_change,
        )
        self._seq = 0
        self._stored_functions: dict[str, StoredTask] = {}
        self._requested: dict[str, str] = {}
        """Execution ids promised by run_task_now, not started yet: id -> task id."""

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
            cloud_enabled=False,
            workspace=str(self.settings.workspace),
        )

    def prometheus(self) -> bytes:
        """The metrics in Prometheus's text exposition format."""
        return self._prom.render()

    def _live_state(self) -> LiveState:
        return LiveState(
            up=self.running,
            database_writable=self._writes.problem is None,
            tasks_registered=len(self._scheduler.tasks),
            executions_running=self._scheduler.running_count,
            tasks_pending=self._scheduler.pending_count,
            machine=self._monitor.latest,
            open_priorities=self._gates.open_priorities(),
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

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- tasks: reading ----------------------------------------------------------------

    def list_tasks(self, query: TaskQuery | None = None) -> TaskList:
        """Tasks in insertion order (or ``query.sort``'s), filtered and paged."""
        tasks = self._scheduler.tasks
        page, total = select(query or TaskQuery(), tasks.values(), len(tasks))
        return TaskList(tasks=[task_summary(entry) for entry in page], total_tasks=total)

    def get_task(self, task_id: str) -> TaskDetail:
        """One task in full. Raises TaskNotFound."""
        entry = self._scheduler.get(task_id)
        due = not self.running or entry.ready_since is not None
        return task_detail(entry, self.settings, self._waiting(entry), due=due)

    def _waiting(self, entry: TaskEntry) -> Waiting | None:
        if not self.running:
            return STOPPED
        explained = self._scheduler.explain(entry)
        return None if explained is None else Waiting(**explained)

    # -- tasks: changing ---------------------------------------------------------------

    async def add_task(self, spec: TaskSpec) -> TaskSummary:
        """Register a code task; it is first due now. Raises TaskExists, InvalidInput,
        StoreError."""
        if spec.code is None:
            raise InvalidInput("a task added this way needs code")
        await self.check_code(spec.code)
        if spec.task_id in self._scheduler.tasks:
            raise TaskExists(spec.task_id)
        return task_summary(await self._insert(spec, None))

    async def check_code(self, code: str) -> None:
        """Raise InvalidInput unless ``code`` parses and defines ``execute()``, as the task
        interpreter sees it (which may be a newer Python than the daemon's)."""
        if self.settings.task_python == sys.executable:
            # Parsing up to max_code_bytes of code is CPU work: keep it off the event loop.
            problem = await trio.to_thread.run_sync(describe_code_problem, code)
        else:
            problem = await self._executor.check_code(code)
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
    ) -> TaskSummary:
        """Register an in-process async task (``await function()`` is one run).

        Its counters and history persist under ``task_id`` across restarts, like any task's;
        register it again at each start. Raises TaskExists if the id is taken in this run.
        """
        if task_id in self._scheduler.tasks:
            raise TaskExists(task_id)
        stored = self._stored_functions.pop(task_id, None)
        if stored is not None:
            # The stored definition wins: a user's PATCH (priority, repeat...) outlives a
            # restart; the arguments here only define the task the first time.
            entry = _entry(stored, function)
            self._scheduler.add(entry)
            self._events.publish("task_added", task_summary(entry).json_body())
            return task_summary(entry)
        spec = TaskSpec(
            task_id=task_id,
            name=name,
            description=description,
            priority=priority,
            code=None,
            repeat_hours=repeat_hours,
            timeout_seconds=timeout_seconds,
        )
        return task_summary(await self._insert(spec, function))

    async def _insert(self, spec: TaskSpec, function: InProcessFunction | None) -> TaskEntry:
        self._seq += 1
        now = self._clock.now()
        stored = StoredTask(spec, TaskCounters(), self._seq, False, now, now)
        await self._write(self._store.insert_task(stored))  # raises TaskExists
        entry = _entry(stored, function)
        self._scheduler.add(entry)
        log.info(
            "task %s added (%s)",
            spec.task_id,
            spec.priority,
            extra={"task_id": spec.task_id, "priority": spec.priority.value},
        )
        self._events.publish("task_added", task_summary(entry).json_body())
        return entry

    async def update_task(self, task_id: str, changes: Mapping[str, Any]) -> TaskDetail:
        """Change a task's definition: ``changes`` (JSON values, as a PATCH body) are laid
        over it and the result validated like an add. Raises TaskNotFound, InvalidInput,
        StoreError."""
        entry = self._scheduler.get(task_id)
        spec = parse_task_patch(
            dict(changes), entry.spec, max_code_bytes=self.settings.max_code_bytes
        )
        if spec.code is not None and spec.code != entry.spec.code:
            await self.check_code(spec.code)
        await self._change(
            self._store.update_task(spec, next_due=entry.next_due),
            lambda: self._scheduler.update(task_id, spec),
        )
        return self.get_task(task_id)

    async def delete_task(self, task_id: str) -> TaskSummary:
        """Unregister a task (its history stays); a running execution is cancelled.
        Raises Conflict for an in-process task: its program registers it again at every
        start, so deleting it would not last (pause it instead)."""
        entry = self._scheduler.get(task_id)
        if entry.function is not None:
            raise Conflict(
                f"Task {task_id} is registered by the program running the daemon and comes "
                "back at every start: pause it instead"
            )
        await self._write(self._store.delete_task(task_id))
        self._scheduler.remove(task_id)
        self._prom.forget(task_id)
        log.info("task %s deleted", task_id, extra={"task_id": task_id})
        self._events.publish("task_removed", {"task_id": task_id})
        self._notify_change()
        return task_summary(entry)

    async def pause_task(self, task_id: str) -> TaskSummary:
        """Stop scheduling a task (a run in flight goes on). Raises TaskNotFound."""
        entry = self._scheduler.get(task_id)
        await self._change(
            self._save_schedule(entry, paused=True), lambda: self._scheduler.pause(task_id)
        )
        return task_summary(entry)

    async def resume_task(self, task_id: str) -> TaskSummary:
        """Schedule a paused task again. Raises TaskNotFound."""
        entry = self._scheduler.get(task_id)
        await self._change(
            self._save_schedule(entry, paused=False), lambda: self._scheduler.resume(task_id)
        )
        return task_summary(entry)

    def run_task_now(self, task_id: str) -> str:
        """Queue a run that skips the gates; returns the id its execution will have (a
        request while one is pending joins it). Raises TaskNotFound, or Conflict while the
        task runs (unless its overlap policy is ``allow``)."""
        execution_id = self._scheduler.run_now(task_id)
        self._requested[execution_id] = task_id
        return execution_id

    def cancel_task(self, task_id: str) -> TaskSummary:
        """Kill the task's running executions. Raises TaskNotFound, or Conflict when it
        is not running."""
        return task_summary(self._scheduler.cancel(task_id))

    async def _change(self, write: Awaitable[None], apply: Callable[[], TaskEntry]) -> None:
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
        self._events.publish("task_updated", task_summary(entry).json_body())
        self._notify_change()

    async def _save_schedule(self, entry: TaskEntry, *, paused: bool | None = None) -> None:
        await self._store.set_schedule(
            entry.task_id,
            next_due=entry.next_due,
            paused=entry.paused if paused is None else paused,
            retry_at=entry.retry_at,
            retry_attempt=entry.retry_attempt,
        )

    async def _persist_schedule(self, entry: TaskEntry) -> None:
        await self._writes.write(self._save_schedule(entry), f"the schedule of {entry.task_id}")

    async def _write(self, write: Awaitable[None]) -> None:
        """Save an add, change or delete asked for by a caller, before memory changes.
        Shielded (see ``_change``); a write the database refuses (disk full, read-only,
        I/O error) is a StoreError (HTTP 503) and nothing changes."""
        with trio.CancelScope(shield=True):
            if not await self._writes.write(write, "a change of the tasks"):
                raise StoreError(self._writes.problem or "unknown error")

    # -- executions --------------------------------------------------------------------

    async def list_executions(self, query: ExecutionQuery | None = None) -> ExecutionList:
        """Execution records, newest first, filtered and paged."""
        query = query or ExecutionQuery()
        records, total = await self._store.list_executions(
            task_id=query.task_id,
            outcome=query.outcome,
            since=query.since,
            until=query.until,
            limit=query.limit,
            offset=query.offset,
        )
        summaries: list[ExecutionSummary] = list(records)
        return ExecutionList(executions=summaries, total=total)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """One execution record (a running one with its pauses so far). Raises
        ExecutionNotFound."""
        record = await self._store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        live = self._scheduler.find_run(execution_id)
        if live is not None and record.outcome is Outcome.RUNNING:
            record.pauses = list(live.pauses)  # the stored row is rewritten only at the end
        return record

    async def wait_execution(self, execution_id: str) -> ExecutionRecord:
        """Wait for an execution (one running, or one promised by :meth:`run_task_now`)
        to end; returns its final record. Raises ExecutionNotFound for an id that names
        no execution, or a promised run that was dropped (its task paused or deleted
        before it started).

        Cancellation: bound the wait with ``trio.fail_after``; a long task takes long."""
        while True:
            changed = self._changed
            record = await self._store.get_execution(execution_id)
            if record is not None and record.outcome is not Outcome.RUNNING:
                self._requested.pop(execution_id, None)
                return record
            if record is None and not self._is_promised(execution_id):
                self._requested.pop(execution_id, None)
                raise ExecutionNotFound(execution_id)
            await changed.wait()

    def _is_promised(self, execution_id: str) -> bool:
        task_id = self._requested.get(execution_id)
        entry = self._scheduler.tasks.get(task_id) if task_id is not None else None
        return (
            entry is not None
            and entry.requested_id == execution_id
            and entry.ready_since is not None
        ) or self._scheduler.find_run(execution_id) is not None

    # -- start-up ----------------------------------------------------------------------

    async def load(self) -> None:
        """Load stored tasks; close runs a crash left open as interrupted."""
        try:
            closed = await self._store.close_interrupted(self._clock.now())
        except StoreUnavailable as exc:
            # The database refuses writes (disk full...): start anyway, in state error.
            # The rows stay ``running`` and are closed at a later start.
            self._writes.failed(exc, "closing interrupted runs")
            closed = 0
        if closed:
            log.warning("%d execution(s) were interrupted by an unclean stop", closed)
        code_tasks = []
        for stored in await self._store.load_tasks():
            self._seq = max(self._seq, stored.seq)
            if stored.spec.code is None:
                self._stored_functions[stored.spec.task_id] = stored
            else:
                code_tasks.append(_entry(stored, None))
        self._scheduler.load(code_tasks)

    def set_stopped(self) -> None:
        """Opened without starting: the state is ``stopped``."""
        self._supervisor.set_phase(DaemonState.STOPPED)

    # -- what the scheduler tells ------------------------------------------------------

    def _on_run_event(self, kind: str, entry: TaskEntry, run: Running | None) -> None:
        """A task became due and waits (``task_waiting``: why, and until when), or an
        execution was frozen or thawed because its gate closed or reopened."""
        if run is None:
            if self._events.subscriber_count:
                waiting = self._waiting(entry)
                data = waiting.json_body() if waiting is not None else {}
                self._events.publish(kind, {"task_id": entry.task_id, **data})
            return
        self._events.publish(
            kind,
            {
                "execution_id": run.execution_id,
                "task_id": entry.task_id,
                "pauses": [
                    {"frozen_at": iso_utc(a, millis=True), "thawed_at": iso_utc(b, millis=True)}
                    for a, b in run.pauses
                ],
            },
        )
        verb = "frozen: the machine is busy" if kind == "execution_frozen" else "thawed"
        log.info(
            "execution %s of %s %s",
            run.execution_id,
            entry.task_id,
            verb,
            extra={"task_id": entry.task_id, "execution_id": run.execution_id},
        )


def _entry(stored: StoredTask, function: InProcessFunction | None) -> TaskEntry:
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
