"""The registered tasks, kept in the scheduler and the store in step.

A change asked for by a caller (add, change, delete, pause, resume) is saved first and
made in memory after, so a write the database refuses changes nothing (``StoreError``,
HTTP 503) and memory and disk agree. The schedule the scheduler moves by itself (next due
times, retries) is saved through the :class:`~._writes.WriteGuard`, which keeps the daemon
running while the database refuses writes.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..config import Settings
from ..exceptions import Conflict, InvalidInput, StoreError, StoreUnavailable, TaskExists
from ..execution import Executor, describe_code_problem, interpreter_problem, kill_tree
from ..models import (
    Outcome,
    Priority,
    TaskCounters,
    TaskSpec,
    new_registration_id,
    parse_task_patch,
)
from ..scheduling import Clock, InProcessFunction, Scheduler, TaskEntry, calendar
from ..store import Store, StoredTask
from ._events import EventBus
from ._views import task_event
from ._writes import WriteGuard

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


class TaskRegistry:
    """Adds, changes and removes tasks in the scheduler and the store."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        executor: Executor,
        clock: Clock,
        scheduler: Scheduler,
        writes: WriteGuard,
        events: EventBus,
        on_removed: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._executor = executor
        self._clock = clock
        self._scheduler = scheduler
        self._writes = writes
        self._events = events
        self._on_removed = on_removed
        self._seq = 0
        self.changing = trio.Lock()
        """Held while a change asked for here is saved and made in memory, and while the
        fleet's sync applies what other daemons stored: neither sees the other half-made."""
        self._stored_functions: dict[str, StoredTask] = {}
        """In-process tasks found in the store, until their program registers them."""

    async def load(self) -> None:
        """Load stored tasks; kill what is left of the runs a crash left open (their
        recorded processes, with every descendant) and close them as interrupted."""
        try:
            left = await self._store.running_processes()
        except StoreUnavailable:
            left = {}
        killed = 0
        for process in left.values():
            if process.process_id is not None:
                pids = await trio.to_thread.run_sync(
                    kill_tree, process.process_id, process.process_start
                )
                killed += bool(pids)
        if killed:
            log.warning("killed the processes of %d run(s) an unclean stop left running", killed)
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
        for entry in code_tasks:
            if entry.spec.after is not None:
                await self._restore_upstream(entry)

    async def _restore_upstream(self, entry: TaskEntry) -> None:
        """Which of an ``after`` task's upstream tasks have succeeded since it last started,
        read from the history (so a restart neither loses nor repeats a due run). Only the
        runs of the upstream task's current registration count: those of a task deleted
        before it under its id are another task's."""
        since = entry.counters.last_execution or entry.created_at
        done = set()
        for upstream in entry.spec.after or ():
            registration_id = self._registration_of(upstream)
            if registration_id is None:
                continue  # not registered: nothing of it has succeeded
            try:
                # Newest by due time; the one that finished last may be a little further
                # down (overlapping runs, a catch-up of an old due time).
                page, _ = await self._store.list_executions(
                    task_id=upstream,
                    registration_id=registration_id,
                    outcome=Outcome.SUCCEEDED,
                    limit=20,
                )
            except StoreUnavailable:
                return
            if any(r.finished_at is not None and r.finished_at > since for r in page):
                done.add(upstream)
        self._scheduler.mark_upstream_done(entry, done)

    def _registration_of(self, task_id: str) -> str | None:
        """The current registration of ``task_id`` (a stored in-process task's too, before
        its program registers it again), or None."""
        entry = self._scheduler.tasks.get(task_id)
        if entry is not None:
            return entry.registration_id
        stored = self._stored_functions.get(task_id)
        return None if stored is None else stored.registration_id

    async def check_code(self, code: str, python: str | None = None) -> None:
        """Raise InvalidInput unless ``code`` parses and defines ``execute()``, as the task
        interpreter sees it (which may be a newer Python than the daemon's), or the task's
        own ``python``, which must also be a Python 3.8+ that runs."""
        if python is not None and python != self._settings.task_python:
            problem = await interpreter_problem(python, code)
        elif self._settings.task_python == sys.executable:
            # Parsing up to max_code_bytes of code is CPU work: keep it off the event loop.
            problem = await trio.to_thread.run_sync(describe_code_problem, code)
        else:
            problem = await self._executor.check_code(code)
        if problem is not None:
            raise InvalidInput(problem)

    async def add(self, spec: TaskSpec, *, paused: bool = False) -> TaskEntry:
        """Register a code task; it is first due now (``paused``: added paused, so that
        it cannot start before it is)."""
        if spec.code is None:
            raise InvalidInput("a task added this way needs code")
        await self.check_code(spec.code, spec.python)
        if spec.task_id in self._scheduler.tasks:
            raise TaskExists(spec.task_id)
        self.check_after(spec)
        return await self._insert(spec, None, paused=paused)

    def check_after(self, spec: TaskSpec) -> None:
        """Raise InvalidInput unless every task ``spec`` runs after exists and following
        them never leads back to ``spec``."""
        tasks = self._scheduler.tasks
        unknown = unknown_upstream(spec, tasks.__contains__)
        if unknown is not None:
            raise unknown

        def after_of(task_id: str) -> tuple[str, ...]:
            # An upstream that is not registered (an in-process task its program has not
            # registered again since a restart) leads nowhere.
            known = tasks.get(task_id)
            return () if known is None else known.spec.after or ()

        cycle = _cycle(spec, after_of)
        if cycle:
            raise InvalidInput("after: a cycle: " + " -> ".join(cycle))

    async def register(
        self,
        task_id: str,
        function: InProcessFunction,
        *,
        name: str,
        description: str,
        priority: Priority,
        repeat_hours: int | None,
        timeout_seconds: float | None,
    ) -> TaskEntry:
        """Register an in-process task (see :meth:`Daemon.register`)."""
        if task_id in self._scheduler.tasks:
            raise TaskExists(task_id)
        stored = self._stored_functions.pop(task_id, None)
        if stored is not None:
            # The stored definition wins: a user's PATCH (priority, repeat...) outlives a
            # restart; the arguments here only define the task the first time.
            entry = _entry(stored, function)
            self._scheduler.add(entry)
            if entry.spec.after is not None:
                await self._restore_upstream(entry)
            self._events.publish("task_added", task_event(entry))
            return entry
        spec = TaskSpec(
            task_id=task_id,
            name=name,
            description=description,
            priority=priority,
            code=None,
            repeat_hours=repeat_hours,
            timeout_seconds=timeout_seconds,
        )
        try:
            return await self._insert(spec, function)
        except TaskExists:
            # Another daemon of the fleet, started at the same time, stored it first.
            fleet = self._store.fleet
            stored = None if fleet is None else await fleet.load_task(task_id)
            if stored is None or stored.spec.code is not None:
                raise
            entry = _entry(stored, function)
            self._scheduler.add(entry)
            return entry

    async def _insert(
        self, spec: TaskSpec, function: InProcessFunction | None, *, paused: bool = False
    ) -> TaskEntry:
        self._seq += 1
        now = self._clock.now()
        first = calendar.first_due(spec, now, self._scheduler.timezone)
        stored = StoredTask(
            spec,
            TaskCounters(),
            seq=self._seq,
            paused=paused,
            created_at=now,
            next_due=first,
            registration_id=new_registration_id(),  # a new task, even under a known id
        )
        entry = _entry(stored, function)
        async with self.changing:
            await self._write(self._store.insert_task(stored))  # raises TaskExists
            self._scheduler.add(entry)
        log.info(
            "task %s added (%s)",
            spec.task_id,
            spec.priority,
            extra={"task_id": spec.task_id, "priority": spec.priority.value},
        )
        self._events.publish("task_added", task_event(entry))
        return entry

    async def update(self, task_id: str, changes: Mapping[str, Any]) -> TaskEntry:
        """Lay ``changes`` over a task's definition, validated like an add."""
        entry = self._scheduler.get(task_id)
        spec = parse_task_patch(
            dict(changes), entry.spec, max_code_bytes=self._settings.max_code_bytes
        )
        if spec.code is not None and (
            spec.code != entry.spec.code or spec.python != entry.spec.python
        ):
            await self.check_code(spec.code, spec.python)
        if spec.after != entry.spec.after:
            self.check_after(spec)
        return await self._change(
            self._store.update_task(spec, next_due=entry.next_due),
            lambda: self._scheduler.update(task_id, spec),
        )

    async def delete(self, task_id: str) -> TaskEntry:
        """Unregister a task (its history stays); a running execution is cancelled."""
        entry = self._scheduler.get(task_id)
        if entry.function is not None:
            raise Conflict(
                f"Task {task_id} is registered by the program running the daemon and comes "
                "back at every start: pause it instead"
            )
        waiting = self._scheduler.dependents(task_id)
        if waiting:
            raise waited_on(task_id, waiting)
        async with self.changing:
            await self._write(self._store.delete_task(task_id))
            self._scheduler.remove(task_id)  # (TaskNotFound: another daemon deleted it)
        self._on_removed(task_id)
        log.info("task %s deleted", task_id, extra={"task_id": task_id})
        self._events.publish(
            "task_removed", {"task_id": task_id, "registration_id": entry.registration_id}
        )
        return entry

    def apply_stored(self, task_id: str, stored: StoredTask | None) -> None:
        """Make the task ``task_id`` what another daemon of the fleet stored (``stored``;
        None: it deleted it): added, replaced by a new registration, removed, or its
        definition, pause, schedule and counters updated; each change announced as the
        daemon's own are."""
        entry = self._scheduler.tasks.get(task_id)
        if (
            stored is not None
            and stored.spec.code is None
            and (entry is None or not entry.function)
        ):
            self._stored_functions[task_id] = stored  # in-process: its program registers it
            return
        if (
            entry is not None
            and entry.function is None
            and (stored is None or stored.registration_id != entry.registration_id)
        ):
            self._scheduler.remove(task_id)
            self._on_removed(task_id)
            self._events.publish(
                "task_removed", {"task_id": task_id, "registration_id": entry.registration_id}
            )
            entry = None
        if stored is None:
            return
        if entry is None:
            self._seq = max(self._seq, stored.seq)
            entry = _entry(stored, None)
            self._scheduler.add(entry)
            self._events.publish("task_added", task_event(entry))
            return
        changed = (stored.spec, stored.paused, stored.counters) != (
            entry.spec,
            entry.paused,
            entry.counters,
        )
        if stored.spec != entry.spec:
            self._scheduler.update(task_id, stored.spec)
        if stored.paused and not entry.paused:
            self._scheduler.pause(task_id)
        elif entry.paused and not stored.paused:
            self._scheduler.resume(task_id)
        if not entry.runs:  # (a run in flight here moves it on itself, maybe unsaved yet)
            self._scheduler.reschedule(
                entry,
                next_due=stored.next_due,
                retry_at=stored.retry_at,
                attempt=stored.retry_attempt,
            )
        entry.counters = stored.counters
        if changed:
            self._events.publish("task_updated", task_event(entry))

    async def pause(self, task_id: str) -> TaskEntry:
        entry = self._scheduler.get(task_id)
        return await self._change(
            self._save_schedule(entry, paused=True), lambda: self._scheduler.pause(task_id)
        )

    async def resume(self, task_id: str) -> TaskEntry:
        entry = self._scheduler.get(task_id)
        return await self._change(
            self._save_schedule(entry, paused=False), lambda: self._scheduler.resume(task_id)
        )

    async def persist_schedule(self, entry: TaskEntry) -> None:
        """Save a task's schedule (next due, pending retry, paused), so a restart keeps it;
        a refused write is logged and the daemon goes on."""
        await self._writes.write(self._save_schedule(entry), f"the schedule of {entry.task_id}")

    async def _change(self, write: Awaitable[None], apply: Callable[[], TaskEntry]) -> TaskEntry:
        """A change of a task asked for by a caller: saved first, then made in memory, so
        that a write the database refuses changes nothing (StoreError). Until it is saved
        the scheduler goes on with the old definition. What the change then does to the
        schedule (a new next_due, a queue left) is saved after it, and after whatever the
        scheduler saved meanwhile, so the store ends as memory is. Shielded: a client that
        goes away half-way (quart-trio cancels the request) cannot split the two."""
        with trio.CancelScope(shield=True):
            async with self.changing:
                await self._write(write)
                entry = apply()
                await self.persist_schedule(entry)
        self._events.publish("task_updated", task_event(entry))
        return entry

    async def _save_schedule(self, entry: TaskEntry, *, paused: bool | None = None) -> None:
        """(``paused`` None: the pause stays as stored: see ``Store.set_schedule``.)"""
        await self._store.set_schedule(
            entry.task_id,
            next_due=entry.next_due,
            paused=paused,
            retry_at=entry.retry_at,
            retry_attempt=entry.retry_attempt,
        )

    async def _write(self, write: Awaitable[None]) -> None:
        """Save an add, change or delete asked for by a caller, before memory changes.
        Shielded (see ``_change``); a write the database refuses (disk full, read-only,
        I/O error) is a StoreError (HTTP 503) and nothing changes."""
        with trio.CancelScope(shield=True):
            if not await self._writes.write(write, "a change of the tasks"):
                raise StoreError(self._writes.problem or "unknown error")


def unknown_upstream(spec: TaskSpec, exists: Callable[[str], bool]) -> InvalidInput | None:
    """The refusal of an ``after`` naming a task that does not exist (``exists``: whether
    one does; a batch counts the tasks it adds before)."""
    unknown = [task_id for task_id in spec.after or () if not exists(task_id)]
    return InvalidInput(f"after: unknown task {unknown[0]!r}") if unknown else None


def waited_on(task_id: str, waiting: list[str]) -> Conflict:
    """The refusal to delete a task that others run ``after``."""
    return Conflict(
        f"Task {task_id} is in the after list of {', '.join(waiting)}: change or delete those first"
    )


def _cycle(spec: TaskSpec, after_of: Callable[[str], tuple[str, ...]]) -> list[str]:
    """A path of ``after`` links from ``spec`` back to itself (its ids), or []. Breadth
    first, without recursion: a chain of thousands of tasks is no problem."""
    start = spec.task_id
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        task_id = queue.popleft()
        for upstream in spec.after or () if task_id == start else after_of(task_id):
            if upstream == start:
                path = [start, task_id]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if upstream not in parent:
                parent[upstream] = task_id
                queue.append(upstream)
    return []


def _entry(stored: StoredTask, function: InProcessFunction | None) -> TaskEntry:
    return TaskEntry(
        spec=stored.spec,
        counters=stored.counters,
        seq=stored.seq,
        created_at=stored.created_at,
        next_due=stored.next_due,
        registration_id=stored.registration_id,
        paused=stored.paused,
        function=function,
        retry_at=stored.retry_at,
        retry_attempt=stored.retry_attempt,
    )
