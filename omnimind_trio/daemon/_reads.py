"""The facade's reads of the tasks: lists, details, the export and the dashboard's tables
(a part of :class:`~._daemon.Daemon`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..models import (
    DaemonState,
    Machine,
    TaskDetail,
    TaskExportBody,
    TaskList,
    TaskQuery,
    TaskRows,
    Waiting,
)
from ..scheduling import GateSet, Scheduler, TaskEntry, calendar
from ..store import Store
from ._dashboard import RECENT_RUNS, machine_view, task_row
from ._export import export_tasks
from ._listing import select
from ._supervisor import Supervisor
from ._views import STOPPED, task_detail, task_summary


class TaskReads:
    """What the tasks are and where they stand (mixed into :class:`~._daemon.Daemon`)."""

    settings: Settings
    _scheduler: Scheduler
    _store: Store
    _gates: GateSet
    _supervisor: Supervisor

    if TYPE_CHECKING:  # the Daemon's own properties

        @property
        def running(self) -> bool: ...

        @property
        def state(self) -> DaemonState: ...

    def list_tasks(self, query: TaskQuery | None = None) -> TaskList:
        """Tasks in insertion order (or ``query.sort``'s), filtered and paged."""
        tasks = self._scheduler.tasks
        page, total = select(query or TaskQuery(), tasks.values(), len(tasks))
        return TaskList(tasks=[task_summary(entry) for entry in page], total_tasks=total)

    def get_task(self, task_id: str) -> TaskDetail:
        """One task in full. Raises TaskNotFound."""
        entry = self._scheduler.get(task_id)
        due = not self.running or entry.ready_since is not None
        upcoming = (
            []
            if entry.paused
            else calendar.upcoming(entry.spec, entry.next_due, self._scheduler.timezone)
        )
        return task_detail(
            entry,
            self.settings,
            self._waiting(entry),
            due=due,
            upcoming=upcoming,
            followed_by=self._scheduler.dependents(task_id),
            conditions_status=self._scheduler.conditions.status(entry.spec.conditions),
        )

    def export_tasks(self) -> TaskExportBody:
        """Every code task as a batch body that adds it again (``GET /daemon/export``):
        secret values left out, a task after the tasks it runs after."""
        return export_tasks(self._scheduler.tasks.values())

    def _waiting(self, entry: TaskEntry) -> Waiting | None:
        if not self.running:
            return STOPPED
        explained = self._scheduler.explain(entry)
        return None if explained is None else Waiting(**explained)

    def waiting_on(self, task_id: str) -> list[str]:
        """The tasks whose ``after`` names ``task_id`` (deleting it is refused while any)."""
        return self._scheduler.dependents(task_id)

    def has_task(self, task_id: str) -> bool:
        return task_id in self._scheduler.tasks

    # -- the dashboard's reads ---------------------------------------------------------

    async def task_rows(self, query: TaskQuery | None = None) -> TaskRows:
        """The dashboard's task table: the tasks :meth:`list_tasks` selects, each with its
        state and its latest finished runs."""
        tasks = self._scheduler.tasks
        page, total = select(query or TaskQuery(), tasks.values(), len(tasks))
        # The runs of each task's registration: not those of a task deleted before it.
        registrations = [e.registration_id for e in page]
        recent = await self._store.recent_executions(registrations, RECENT_RUNS)
        rows = [task_row(self.get_task(e.task_id), recent.get(e.registration_id, [])) for e in page]
        return TaskRows(tasks=rows, total_tasks=total)

    def machine(self) -> Machine:
        """The gates, the daemon's state and the CPU over the last minutes."""
        return machine_view(
            self.state,
            self.running,
            self._gates,
            self._scheduler.conditions,
            self._supervisor.samples,
        )
