"""The store's contract: what the daemon asks of any backend (SQLite, memory, ...).

A backend is one module with a class that satisfies :class:`Store` (structurally: it
does not inherit from it) and an ``open_*`` async context manager, picked by
:func:`~omnimind_trio.store.open_store`. ``tests/test_store_contract.py`` runs the same
suite against every backend.

Rules every method follows:

- Ordering: calls from one task take effect in the order they are made; calls from
  several tasks take effect one at a time, never interleaved.
- Atomicity: each write is all or nothing, on its own (no transaction spans two calls).
  ``apply_retention`` is the exception: it may work in several steps.
- Cancellation: a call cancelled before it starts changes nothing; once a write has
  started it completes, and Trio may deliver the cancellation at the next checkpoint.
- Error handling: a write the backend refuses (disk full, read-only file system, I/O
  error, lost connection) raises :class:`~omnimind_trio.exceptions.StoreUnavailable` and
  changes nothing; so does a read that fails. A driver's own exceptions never escape.
- Copies: what goes in and what comes out are copies. Changing an object after handing
  it to the store, or one the store returned, does not change what is stored.
- Unknown ids: updates and deletes of a task that is not stored change nothing and raise
  nothing; executions may name a task that is not (or no longer) stored.
- Registrations: each stored task is one registration of its id (``registration_id``); a
  record names the registration its run belonged to. A record changes a task's counters and
  schedule only when the task stored under its ``task_id`` is that registration: a run of a
  task deleted (and perhaps added again under its id) meanwhile changes no task.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ..models import ExecutionRecord, Outcome, TaskCounters, TaskSpec
from ._fleet import Fleet
from ._records import RunProcess, StoredTask

__all__ = ["INTERRUPTED_REASON", "RunProcess", "Store", "StoredTask"]

INTERRUPTED_REASON = "the daemon ended unexpectedly while this execution ran"
"""The ``reason`` :meth:`Store.close_interrupted` gives the runs it closes."""


class Store(Protocol):
    """Task definitions, their counters and schedule, and the execution history.

    Open one with :func:`~omnimind_trio.store.open_store`; it is closed when that block
    exits. One daemon uses a store at a time, unless it has a ``fleet``.
    """

    @property
    def fleet(self) -> Fleet | None:
        """The daemons sharing this store's database (:class:`~._fleet.Fleet`), or None: a
        store of one daemon (a SQLite file, memory)."""
        ...

    # -- tasks -------------------------------------------------------------------

    async def load_tasks(self) -> list[StoredTask]:
        """Every stored task, in ``seq`` order (insertion order for equal ``seq``)."""
        ...

    async def insert_task(self, task: StoredTask) -> None:
        """Store a new task with every field of ``task``.

        Error handling: a ``task_id`` already stored raises
        :class:`~omnimind_trio.exceptions.TaskExists` and changes nothing.
        """
        ...

    async def update_task(self, spec: TaskSpec, *, next_due: float | None) -> None:
        """Replace the definition of the task ``spec.task_id`` and set its ``next_due``.
        Its counters, ``seq``, ``created_at``, ``paused`` and retry are left alone."""
        ...

    async def delete_task(self, task_id: str) -> None:
        """Forget a task. Its execution history stays."""
        ...

    async def probe_write(self) -> None:
        """A write that needs new space and leaves nothing behind (SQLite: a row of many
        pages, then deleted): raises :class:`~omnimind_trio.exceptions.StoreUnavailable`
        when a write that grows the store would, so the daemon can tell when a refusing
        store accepts writes again. A write that changes nothing is no evidence: on a full
        disk it commits where a new record is refused."""
        ...

    async def check_file(self) -> str | None:
        """Why the store's file is no longer where it was opened (``the database file ...
        was deleted``, ``... replaced by another file``) or, a server's database, why this
        daemon no longer holds it (another daemon took it); None: it is, or the backend has
        neither. Cheap (no write): the daemon calls it every few seconds. Never raises."""
        ...

    async def restore_file(self) -> str:
        """After :meth:`check_file` found a problem, put it right: write what the open
        store holds to a new file where it was, and go on with that one (a file that stands
        there now is never replaced); or take the server's database back. Returns what was
        done, for the log.

        Error handling: raises :class:`~omnimind_trio.exceptions.StoreUnavailable` when
        it cannot (the path is taken, the directory is gone or read-only; another daemon
        still holds the database); the store goes on as it was (with the deleted file,
        whose content a restart would lose).
        """
        ...

    async def set_schedule(
        self,
        task_id: str,
        *,
        next_due: float | None,
        paused: bool | None,
        retry_at: float | None = None,
        retry_attempt: int = 0,
    ) -> None:
        """Set when the task is next due, whether it is paused (None: as it is: the
        scheduler's own saves leave a pause made through another daemon alone), and its
        pending retry, so that a restart continues the schedule where it was. Nothing else
        changes."""
        ...

    # -- executions ----------------------------------------------------------------

    async def start_execution(
        self, record: ExecutionRecord, *, last_execution: float, next_due: float | None
    ) -> None:
        """Write ``record`` (a new one, or in place of the stored record with its
        ``execution_id``) and set the task's ``last_execution`` and ``next_due``, in one
        atomic write. The task is changed only if it is the record's registration."""
        ...

    async def finish_execution(self, record: ExecutionRecord, counters: TaskCounters) -> None:
        """Write ``record`` (in place of the stored one with its ``execution_id``, or as
        a new one) and set the task's counters to ``counters``, atomically. The task is
        changed only if it is the record's registration."""
        ...

    async def record_process(self, execution_id: str, process: RunProcess) -> None:
        """Record the process of the ``running`` record ``execution_id`` (nothing if there
        is no such record). Writing the record again (``start_execution``,
        ``finish_execution``) forgets it."""
        ...

    async def running_processes(self) -> dict[str, RunProcess]:
        """The processes recorded for records still ``running``, by execution id."""
        ...

    async def close_interrupted(self, now: float) -> int:
        """Close every record still ``running`` (left so by a crash): outcome
        ``interrupted``, reason :data:`INTERRUPTED_REASON`, ``finished_at = now``; each
        adds one to its task's ``execution_count`` and ``failure_count`` when the task is
        still the record's registration. Atomic. Returns
        how many records were closed. Their order in the history does not change."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The record with this id, or None."""
        ...

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
        """A page of the records that match every filter given, and how many match.

        ``task_id``: every run of the id, whatever its registration; ``registration_id``:
        one registration's runs (a task's own history); ``node``: the runs of the daemon
        of that node name (records without one never match). ``since <= scheduled_at <
        until``.
        Newest ``scheduled_at`` first; among equal ``scheduled_at``, the record last written
        by ``start_execution`` or ``finish_execution`` first. The page skips ``offset``
        records and holds at most ``limit`` (both at least 0).
        """
        ...

    async def recent_executions(
        self, registration_ids: Collection[str], per_task: int
    ) -> dict[str, list[ExecutionRecord]]:
        """The latest ``per_task`` finished records (every outcome but ``running``) of
        each registration of ``registration_ids``, by registration id, newest first as
        :meth:`list_executions` orders them; a registration without any is absent."""
        ...

    async def known_executions(self, execution_ids: Collection[str]) -> set[str]:
        """Which of ``execution_ids`` have a record (any outcome)."""
        ...

    async def apply_retention(self, *, max_per_task: int, older_than: float) -> int:
        """Delete the finished records (every outcome but ``running``) that are beyond
        the newest ``max_per_task`` finished records of their task id (all its
        registrations together, in the order of :meth:`list_executions`) or have
        ``scheduled_at < older_than``. Running records are never deleted, nor counted.
        Returns how many were deleted.

        Not atomic: it may delete in several steps, so other writes are not held up for
        long. A record written meanwhile is judged again at the next call.
        Error handling: raises :class:`~omnimind_trio.exceptions.StoreUnavailable` if it
        has something to delete while writes are refused (what it deleted stays deleted).
        """
        ...

    async def optimize(self) -> None:
        """Housekeeping after retention (SQLite: refresh statistics, fold the WAL back).
        May do nothing. May raise StoreUnavailable while writes are refused."""
        ...
