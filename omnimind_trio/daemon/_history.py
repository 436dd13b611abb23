"""The facade's reads of the execution history: a part of :class:`~._daemon.Daemon`."""

from __future__ import annotations

import trio

from ..exceptions import ExecutionNotFound
from ..models import ExecutionList, ExecutionQuery, ExecutionRecord, ExecutionSummary, Outcome
from ..scheduling import Scheduler
from ..store import Store
from ._output import OutputHub


class ExecutionReads:
    """Execution records and their output (mixed into :class:`~._daemon.Daemon`)."""

    _store: Store
    _scheduler: Scheduler
    _changed: trio.Event
    _output: OutputHub

    async def list_executions(self, query: ExecutionQuery | None = None) -> ExecutionList:
        """Execution records, newest first, filtered and paged."""
        query = query or ExecutionQuery()
        # The query's fields are the store's filters, by name (the store's own bounds are
        # wider: its callers may ask for more than a page of the API).
        records, total = await self._store.list_executions(**query.model_dump())
        return ExecutionList(executions=list[ExecutionSummary](records), total=total)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """One execution record (a running one with its pauses and output so far). Raises
        ExecutionNotFound."""
        record = await self._store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        if record.outcome is not Outcome.RUNNING:
            return record
        run = self._scheduler.find_run(execution_id)
        if run is not None:  # the stored row is rewritten only at the end
            record.pauses = list(run.pauses)
        output = self._output.find(execution_id)
        if output is not None:
            record.stdout, record.stderr = output.text("stdout"), output.text("stderr")
        return record

    async def execution_log(self, execution_id: str, tail_lines: int | None = None) -> str:
        """The run's whole output (both streams as they came; so far, while it runs), or
        its last ``tail_lines`` lines. Raises ExecutionNotFound."""
        record = await self._store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        return await self._output.read(record, tail_lines)

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
                return record
            if record is None and not self._is_promised(execution_id):
                raise ExecutionNotFound(execution_id)
            await changed.wait()

    def _is_promised(self, execution_id: str) -> bool:
        return (
            execution_id in self._scheduler.promises
            or self._scheduler.find_run(execution_id) is not None
        )
