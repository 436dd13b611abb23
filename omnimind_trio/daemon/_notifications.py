"""The daemon's side of notifications: what the notifier reads from the store, and the
runs a crash interrupted, told once the daemon is back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from ..exceptions import StoreUnavailable
from ..models import ExecutionRecord, Outcome
from ..notify import HISTORY_RECORDS, History, Notifier
from ..scheduling import TaskEntry
from ..store import Store

OPEN_RUNS_READ = 1000
"""Runs left ``running`` a start looks at (far beyond the concurrency limits)."""


def history_reader(store: Store) -> History:
    """The latest records of a run's registration, for the notifier to tell whether its
    task was failing (a task deleted before it under its id is another task)."""

    async def read(record: ExecutionRecord) -> Sequence[ExecutionRecord]:
        registration_id = record.registration_id
        if registration_id is None:
            return []
        # Finished runs only, and no count of them (list_executions would count).
        recent = await store.recent_executions([registration_id], HISTORY_RECORDS)
        return recent.get(registration_id, [])

    return read


async def load_telling_interrupted(
    store: Store,
    load: Callable[[], Awaitable[None]],
    notifier: Notifier,
    tasks: Mapping[str, TaskEntry],
) -> None:
    """``load()`` the tasks (which closes the runs a crash left ``running`` as
    ``interrupted``), then notify those runs (a failure: the task did not finish), as their
    tasks' ``notify`` asks."""
    try:
        records, _ = await store.list_executions(outcome=Outcome.RUNNING, limit=OPEN_RUNS_READ)
    except StoreUnavailable:
        records = []
    await load()
    for execution_id in [record.execution_id for record in records]:
        try:
            record = await store.get_execution(execution_id)
        except StoreUnavailable:
            return
        if record is None or record.outcome is not Outcome.INTERRUPTED:
            continue
        entry = tasks.get(record.task_id)
        if entry is not None and entry.registration_id == record.registration_id:
            notifier.finished(record, entry.spec, retrying=False)
