"""The memory backend: the store in this process's memory, gone when the process ends.

For tests and for embedders that want no file (``Settings(database="memory://")``, or a
``MemoryStore()`` handed to ``open_daemon(store=...)`` so that it outlives one daemon).

Every call does its whole change without a checkpoint in between, so it is atomic and
calls take effect in the order they are made, as the SQLite backend's single writer
does. Each call checkpoints as a Trio call should: it raises ``Cancelled`` only before it
has changed anything. What goes in and comes out is deep-copied, and stored objects are
never changed in place (a change stores a new object): so a returned object can be
changed freely, and ``load_tasks`` can copy a large store in steps without blocking the
event loop. :meth:`MemoryStore.refuse_writes` makes it act as a full disk would.
"""

from __future__ import annotations

import copy
import itertools
from bisect import bisect_left, insort
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from ..exceptions import StoreUnavailable, TaskExists
from ..models import ExecutionRecord, Outcome, TaskCounters, TaskSpec
from ._protocol import INTERRUPTED_REASON, RunProcess, StoredTask

T = TypeVar("T")

_Key = tuple[float, int, str]
"""Where a record sits in a history: (scheduled_at, write order, execution_id)."""

STEP = 1000
"""Objects copied (``load_tasks``) or records judged (``apply_retention``) between two
checkpoints: about a millisecond of work."""


class MemoryStore:
    """The memory store (see :class:`~omnimind_trio.store.Store` for the contract). It
    needs no opening: create it, or use :func:`open_memory_store`."""

    fleet: None = None
    """A store of one daemon: no fleet."""

    def __init__(self) -> None:
        self._tasks: dict[str, StoredTask] = {}
        self._records: dict[str, tuple[_Key, ExecutionRecord]] = {}
        self._history: list[_Key] = []
        """Every record's key, sorted: oldest first."""
        self._task_history: dict[str, list[_Key]] = {}
        """The same, per task id."""
        self._registration_history: dict[str, list[_Key]] = {}
        """The same, per registration (records that name one)."""
        self._write_order = itertools.count()
        self._processes: dict[str, RunProcess] = {}
        self._refusal: str | None = None

    def refuse_writes(self, reason: str | None) -> None:
        """From now on every write raises ``StoreUnavailable(reason)`` and changes nothing,
        as a full disk or a read-only file system would; reads still work. None accepts
        writes again. For tests of what a program does when its store fails."""
        self._refusal = reason

    async def _read(self, read: Callable[[], T]) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        result = read()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result

    async def _write(self, change: Callable[[], T]) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_writable()
        result = change()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result

    def _check_writable(self) -> None:
        if self._refusal is not None:
            raise StoreUnavailable(self._refusal)

    # -- tasks -------------------------------------------------------------------

    async def load_tasks(self) -> list[StoredTask]:
        """Every stored task, in ``seq`` order (insertion order for equal ``seq``)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        # A snapshot of the stored objects, which are never changed in place: copying
        # them in steps gives the same answer as copying them at once.
        snapshot = sorted(self._tasks.values(), key=lambda task: task.seq)
        copies: list[StoredTask] = []
        for start in range(0, len(snapshot), STEP):
            copies += copy.deepcopy(snapshot[start : start + STEP])
            await trio.lowlevel.checkpoint()
        if not snapshot:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return copies

    async def insert_task(self, task: StoredTask) -> None:
        """Store a new task; an existing ``task_id`` raises TaskExists."""

        def insert() -> None:
            if task.spec.task_id in self._tasks:
                raise TaskExists(task.spec.task_id)
            self._tasks[task.spec.task_id] = copy.deepcopy(task)

        await self._write(insert)

    async def update_task(self, spec: TaskSpec, *, next_due: float | None) -> None:
        """Store a task's new definition (its counters are left alone)."""

        def update(task: StoredTask) -> None:
            task.spec = copy.deepcopy(spec)
            task.next_due = next_due

        await self._write(lambda: self._change_task(spec.task_id, update))

    async def delete_task(self, task_id: str) -> None:
        """Forget a task; its history stays."""
        await self._write(lambda: self._tasks.pop(task_id, None))

    async def probe_write(self) -> None:
        """A write that changes nothing: fails while writes are refused."""
        await self._write(lambda: None)

    async def check_file(self) -> str | None:
        """No file, nothing to lose: None."""
        await trio.lowlevel.checkpoint()
        return None

    async def restore_file(self) -> str:
        await trio.lowlevel.checkpoint()
        return "nothing to restore"

    async def set_schedule(
        self,
        task_id: str,
        *,
        next_due: float | None,
        paused: bool | None,
        retry_at: float | None = None,
        retry_attempt: int = 0,
    ) -> None:
        """Store when the task is next due, whether it is paused, and its retry."""

        def schedule(task: StoredTask) -> None:
            task.next_due, task.paused = next_due, task.paused if paused is None else paused
            task.retry_at, task.retry_attempt = retry_at, retry_attempt

        await self._write(lambda: self._change_task(task_id, schedule))

    def _change_task(self, task_id: str, change: Callable[[StoredTask], None]) -> None:
        """Store a changed copy of the task (nothing for an unknown id)."""
        stored = self._tasks.get(task_id)
        if stored is None:
            return
        task = copy.copy(stored)
        task.counters = copy.copy(stored.counters)
        change(task)
        self._tasks[task_id] = task

    # -- executions ----------------------------------------------------------------

    async def start_execution(
        self, record: ExecutionRecord, *, last_execution: float, next_due: float | None
    ) -> None:
        """Write a running record and the task's new schedule, atomically."""

        def schedule(task: StoredTask) -> None:
            task.counters.last_execution = last_execution
            task.next_due = next_due

        def start() -> None:
            self._put(record)
            if self._is_stored(record.task_id, record.registration_id):
                self._change_task(record.task_id, schedule)

        await self._write(start)

    async def finish_execution(self, record: ExecutionRecord, counters: TaskCounters) -> None:
        """Write an execution's final record and the task's counters, atomically."""

        def count(task: StoredTask) -> None:
            task.counters = copy.copy(counters)

        def finish() -> None:
            self._put(record)
            if self._is_stored(record.task_id, record.registration_id):
                self._change_task(record.task_id, count)

        await self._write(finish)

    def _is_stored(self, task_id: str, registration_id: str | None) -> bool:
        """Whether the task stored under ``task_id`` is that registration (a run's record
        changes its task only then)."""
        stored = self._tasks.get(task_id)
        return stored is not None and stored.registration_id == registration_id

    def _put(self, record: ExecutionRecord) -> None:
        """Insert or replace a record; it becomes the last written."""
        old = self._records.get(record.execution_id)
        self._processes.pop(record.execution_id, None)
        if old is not None:
            self._unindex(old[0], old[1])
        key = (record.scheduled_at, next(self._write_order), record.execution_id)
        self._records[record.execution_id] = (key, copy.deepcopy(record))
        insort(self._history, key)
        insort(self._task_history.setdefault(record.task_id, []), key)
        if record.registration_id is not None:
            insort(self._registration_history.setdefault(record.registration_id, []), key)

    def _unindex(self, key: _Key, record: ExecutionRecord) -> None:
        del self._history[bisect_left(self._history, key)]
        for index, name in (
            (self._task_history, record.task_id),
            (self._registration_history, record.registration_id),
        ):
            if name is None:
                continue
            keys = index[name]
            del keys[bisect_left(keys, key)]
            if not keys:
                del index[name]

    async def record_process(self, execution_id: str, process: RunProcess) -> None:
        def record() -> None:
            found = self._records.get(execution_id)
            if found is not None and found[1].outcome is Outcome.RUNNING:
                self._processes[execution_id] = process  # frozen: no copy needed

        await self._write(record)

    async def running_processes(self) -> dict[str, RunProcess]:
        def read() -> dict[str, RunProcess]:
            return {
                execution_id: process
                for execution_id, process in self._processes.items()
                if self._records[execution_id][1].outcome is Outcome.RUNNING
            }

        return await self._read(read)

    async def close_interrupted(self, now: float) -> int:
        """Close runs left ``running`` as ``interrupted``; returns how many."""

        def close() -> int:
            open_runs = [
                (key, record)
                for key, record in self._records.values()
                if record.outcome is Outcome.RUNNING
            ]
            per_registration: dict[tuple[str, str | None], int] = {}
            for key, record in open_runs:
                closed = copy.copy(record)
                closed.outcome, closed.reason = Outcome.INTERRUPTED, INTERRUPTED_REASON
                closed.finished_at = now
                self._records[record.execution_id] = (key, closed)  # same place in history
                self._processes.pop(record.execution_id, None)
                whose = (record.task_id, record.registration_id)
                per_registration[whose] = per_registration.get(whose, 0) + 1
            for (task_id, registration_id), count in per_registration.items():

                def add(task: StoredTask, count: int = count) -> None:
                    task.counters.execution_count += count
                    task.counters.failure_count += count

                if self._is_stored(task_id, registration_id):
                    self._change_task(task_id, add)
            return len(open_runs)

        return await self._write(close)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        def get() -> ExecutionRecord | None:
            found = self._records.get(execution_id)
            return None if found is None else copy.deepcopy(found[1])

        return await self._read(get)

    async def list_executions(
        self,
        *,
        task_id: str | None = None,
        registration_id: str | None = None,
        outcome: Outcome | None = None,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ExecutionRecord], int]:
        """Newest first; returns the page and the number of matching records."""

        def query() -> tuple[list[ExecutionRecord], int]:
            keys = self._keys(task_id, registration_id)
            low = 0 if since is None else bisect_left(keys, since, key=_scheduled_at)
            high = len(keys) if until is None else bisect_left(keys, until, key=_scheduled_at)
            if high <= low:
                return [], 0
            if outcome is None and node is None:
                page_keys = keys[max(low, high - offset - limit) : max(low, high - offset)]
                page_keys.reverse()
                return [copy.deepcopy(self._records[k[2]][1]) for k in page_keys], high - low
            page: list[ExecutionRecord] = []
            total = 0
            for index in range(high - 1, low - 1, -1):
                record = self._records[keys[index][2]][1]
                if (outcome is None or record.outcome is outcome) and (
                    node is None or record.node == node
                ):
                    if offset <= total < offset + limit:
                        page.append(copy.deepcopy(record))
                    total += 1
            return page, total

        return await self._read(query)

    def _keys(self, task_id: str | None, registration_id: str | None) -> list[_Key]:
        """The history the filters select, oldest first (a registration's records all
        name its task)."""
        if registration_id is None:
            return self._history if task_id is None else self._task_history.get(task_id, [])
        keys = self._registration_history.get(registration_id, [])
        if keys and task_id is not None and self._records[keys[0][2]][1].task_id != task_id:
            return []
        return keys

    async def recent_executions(
        self, registration_ids: Collection[str], per_task: int
    ) -> dict[str, list[ExecutionRecord]]:
        def query() -> dict[str, list[ExecutionRecord]]:
            found: dict[str, list[ExecutionRecord]] = {}
            for registration_id in registration_ids:
                page: list[ExecutionRecord] = []
                for key in reversed(self._registration_history.get(registration_id, [])):
                    if len(page) == per_task:
                        break
                    record = self._records[key[2]][1]
                    if record.outcome is not Outcome.RUNNING:
                        page.append(copy.deepcopy(record))
                if page:
                    found[registration_id] = page
            return found

        return await self._read(query)

    async def known_executions(self, execution_ids: Collection[str]) -> set[str]:
        return await self._read(lambda: {i for i in execution_ids if i in self._records})

    async def apply_retention(self, *, max_per_task: int, older_than: float) -> int:
        """Delete finished records beyond the per-task count or older than
        ``older_than``, one task at a time, with a checkpoint every STEP records."""
        await trio.lowlevel.checkpoint_if_cancelled()
        deleted = judged = 0
        for task_id in list(self._task_history):
            keys = self._task_history.get(task_id, [])
            doomed: list[_Key] = []
            finished = 0
            for key in reversed(keys):
                if self._records[key[2]][1].outcome is Outcome.RUNNING:
                    continue
                finished += 1
                if finished > max_per_task or key[0] < older_than:
                    doomed.append(key)
            if doomed:
                self._check_writable()
                for key in doomed:
                    self._unindex(key, self._records.pop(key[2])[1])
                deleted += len(doomed)
            judged += len(keys)
            if judged >= STEP:
                judged = 0
                await trio.lowlevel.checkpoint()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return deleted

    async def optimize(self) -> None:
        """Nothing to do: every write keeps the histories sorted, and deleted records
        are freed at once."""
        await self._read(lambda: None)


def _scheduled_at(key: _Key) -> float:
    return key[0]


@asynccontextmanager
async def open_memory_store() -> AsyncIterator[MemoryStore]:
    """A new, empty memory store; what it holds is dropped when the block exits."""
    await trio.lowlevel.checkpoint()
    yield MemoryStore()
