"""Executions: turning a started run into a recorded one.

The :class:`ExecutionRunner` is what the scheduler calls to run a task: it writes the
running record, runs the code in the fork server (or awaits an in-process function), maps
how it ended to an outcome, updates the counters, writes the final record, publishes
``execution_started`` / ``execution_finished`` and hands the final record to the notifier.
It also records runs that were skipped.
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
import uuid
from collections.abc import Callable

import trio

from ..config import Settings
from ..exceptions import StoreUnavailable
from ..execution import Executor, Job, Masker, classify
from ..models import ExecutionRecord, Outcome, Priority, TaskSpec, Trigger
from ..notify import Notifier
from ..scheduling import (
    OVERLAP_SKIPPED,
    Clock,
    InProcessFunction,
    NotClaimed,
    Running,
    Scheduler,
    TaskEntry,
    retry_follows,
)
from ..store import Claim, Fleet, Occurrence, RunProcess, Store
from ._events import EventBus
from ._metrics import DaemonMetrics
from ._output import OutputHub
from ._writes import WriteGuard

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

FINALIZE_SECONDS = 2.0
"""Bound on the shielded clean-up of one execution (writing its record)."""
WARNED_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMED_OUT, Outcome.KILLED})
"""Logged at WARNING, for ``journalctl -p warning``; a run cancelled on request, or by a
stop, is INFO: someone asked for it."""
STDERR_TAIL_CHARS = 200
"""A failed run's last line of stderr is quoted in its log line when no longer than this."""


def log_finished(record: ExecutionRecord, internal_error: BaseException | None = None) -> None:
    """One line for a finished run: WARNING when it failed, timed out or was killed (with
    the first line of its reason, and its last stderr line when short), else INFO. The rest
    of the reason (a traceback) is in the ``traceback`` field, kept by the JSON log format;
    an error of the daemon itself is an ERROR with its own traceback."""
    lines = (record.reason or "").splitlines()
    warned = record.outcome in WARNED_OUTCOMES
    extra: dict[str, object] = {
        "task_id": record.task_id,
        "execution_id": record.execution_id,
        "outcome": record.outcome.value,
        "duration_seconds": record.duration_seconds,
    }
    message = f"execution {record.execution_id} of {record.task_id}: {record.outcome.value}"
    if lines:
        extra["reason"] = lines[0]
        message += f" ({lines[0]})"
    if len(lines) > 1:
        extra["traceback"] = "\n".join(lines[1:])
    tail = _last_line(record.stderr) if warned else ""
    if tail and len(tail) <= STDERR_TAIL_CHARS:
        extra["stderr_tail"] = tail
        message += f"; stderr: {tail}"
    if internal_error is not None:
        log.error(message, exc_info=internal_error, extra=extra)
    else:
        log.log(logging.WARNING if warned else logging.INFO, message, extra=extra)


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


HANDED_OVER = "; another daemon of the fleet runs it again"
"""Added to the reason of a run of a fleet's daemon cut short by its stop."""

RECORDED_SECONDS = 5.0
"""Bound on how long a run-now answer waits for its run's start record."""


async def wait_recorded(
    scheduler: Scheduler,
    execution_id: str,
    up: Callable[[], bool],
    changed: Callable[[], trio.Event],
) -> bool:
    """Wait until the run promised as ``execution_id`` has its start record committed, so
    that an acknowledged run survives a crash (``kill -9``): True once it has. Returns at
    once (False) when the run cannot start now, and is only held in memory: the daemon is
    stopped (``up()`` false), it is queued behind a run of its task, it waits for a free
    slot, or it was dropped. Woken by the scheduler's changes (``changed()``, the daemon's
    change event) and the run's ``recorded`` event, never by polling; bounded by
    RECORDED_SECONDS."""
    with trio.move_on_after(RECORDED_SECONDS):
        while up():
            event = changed()
            run = scheduler.find_run(execution_id)
            if run is not None:
                await run.recorded.wait()
                return True
            entry = scheduler.promises.next_to_start(execution_id)
            if entry is None or scheduler.slots.full(
                critical=entry.spec.priority is Priority.CRITICAL
            ):
                return False
            await event.wait()
    return False


def occurrence_of(trigger: Trigger, scheduled_at: float, execution_id: str) -> Occurrence:
    """What makes a run one occurrence of its task, the same on every daemon of a fleet:
    its due time (a schedule's, a catch-up's, a retry's: all stored), else (a run-now
    request, a run after its upstream tasks) its own id, which only one daemon has."""
    if trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP):
        return Occurrence("due", at=scheduled_at)
    if trigger is Trigger.RETRY:
        return Occurrence("retry", at=scheduled_at)
    return Occurrence("request", request=execution_id)


class ExecutionRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        executor: Executor,
        clock: Clock,
        events: EventBus,
        prom: DaemonMetrics,
        writes: WriteGuard,
        output: OutputHub,
        notifier: Notifier | None = None,
        on_finished: Callable[[ExecutionRecord], None] = lambda record: None,
        on_not_claimed: Callable[[str], None] = lambda task_id: None,
    ) -> None:
        self.settings = settings
        self.fleet: Fleet | None = store.fleet
        self._on_not_claimed = on_not_claimed
        self.output = output
        self._on_finished = on_finished
        self._notifier = notifier
        self.store = store
        self.writes = writes
        self.executor = executor
        self.clock = clock
        self.events = events
        self.prom = prom

    async def run(self, entry: TaskEntry, running: Running) -> Outcome:
        """One execution, from its running record to its final one, run inside
        ``running.scope`` (cancelled with a reason, or timed out by its deadline).

        Cancellation: a cancel from outside that scope (the daemon stops) propagates after
        the record says ``cancelled`` ("the daemon was stopped")."""
        spec = entry.spec
        record = ExecutionRecord(
            execution_id=running.execution_id,
            task_id=spec.task_id,
            # The registration it started under: a delete and re-add of the id while it
            # runs makes another entry, so its record and counters stay this one's.
            registration_id=entry.registration_id,
            registered_at=entry.created_at,
            node=self.settings.node_name,
            trigger=running.trigger,
            outcome=Outcome.RUNNING,
            scheduled_at=running.scheduled_at,
            started_at=running.started_at,
            attempt=running.attempt,
        )
        limit = spec.timeout_seconds or self.settings.timeout_seconds
        handover = False
        if self.fleet is not None:
            try:
                running.claim = await self._claim(self.fleet, entry, running, record)
            finally:
                running.recorded.set()
        self.events.publish("execution_started", record.summary())
        try:
            # Refused (disk full...)? The task runs all the same; its record may be lost.
            try:
                if self.fleet is None:
                    await self.writes.write(
                        self.store.start_execution(
                            record, last_execution=running.started_at, next_due=entry.next_due
                        ),
                        f"the start of execution {record.execution_id}",
                    )
            finally:
                running.recorded.set()  # a run-now answer may go (see wait_recorded)
            if entry.function is not None:
                await self._run_function(entry.function, record, running, limit)
            else:
                await self._run_code(spec, record, running, limit)
        finally:
            internal_error = None
            if record.outcome is Outcome.RUNNING:
                # Cancelled may arrive bare or inside an exception group from a nursery
                # below, so ask Trio whether we are being cancelled instead of matching it.
                if trio.current_effective_deadline() == -math.inf:
                    record.outcome = Outcome.CANCELLED
                    record.reason = running.cancel_reason or "the daemon was stopped"
                    if running.cancel_reason is None and isinstance(running.claim, Claim):
                        handover = True  # a fleet's: another daemon runs it again
                        record.reason += HANDED_OVER
                else:
                    internal_error = sys.exc_info()[1]
                    record.outcome = Outcome.FAILED
                    record.reason = f"internal error of the daemon: {internal_error!r}"
            record.finished_at = self.clock.now()
            record.pauses = list(running.pauses)
            self._count(entry, record)
            claim = running.claim if isinstance(running.claim, Claim) else None
            retrying = retry_follows(entry, running, record.outcome)
            await self._finish(record, entry, retrying, claim, handover=handover)
            self.output.forget(record.execution_id)  # the record holds its output now
            log_finished(record, internal_error)
        return record.outcome

    async def record_skip(
        self, entry: TaskEntry, due: float, trigger: Trigger, reason: str
    ) -> None:
        """A run that did not happen (overlap or missed): in the history, with why."""
        now = self.clock.now()
        record = ExecutionRecord(
            execution_id=uuid.uuid4().hex,
            task_id=entry.task_id,
            registration_id=entry.registration_id,
            registered_at=entry.created_at,
            node=self.settings.node_name,
            trigger=trigger,
            outcome=Outcome.SKIPPED,
            scheduled_at=due,
            finished_at=now,
            reason=reason,
        )
        self.prom.observe(record)
        if self.fleet is not None and reason != OVERLAP_SKIPPED:
            # A missed run is the fleet's: recorded once, and then run by none.
            try:
                won = await self.fleet.claim_skip(record, occurrence_of(trigger, due, ""))
            except StoreUnavailable as exc:
                self.writes.failed(exc, f"the skip of a run of {entry.task_id}")
                return
            if not won:
                return  # another daemon of the fleet recorded or ran it
            self._announce(record, entry, False)
        else:
            # Skipped because this daemon's own run still runs: another daemon of a fleet
            # may run it (no claim); the record says this one did not.
            await self._finish(record, entry, False)
        log.info(
            "run of %s skipped: %s",
            entry.task_id,
            reason,
            extra={"task_id": entry.task_id, "execution_id": record.execution_id},
        )

    async def _claim(
        self, fleet: Fleet, entry: TaskEntry, running: Running, record: ExecutionRecord
    ) -> Claim | None:
        """Claim the run for this daemon, writing its start record: raises NotClaimed when
        another daemon of the fleet claimed it first. A run taken over is claimed already:
        its start is written while the claim is still ours. While the database cannot be
        reached, a due run is not run (no run without a claim: another daemon may run it),
        but a run-now request is (None: no claim), as on SQLite: only this daemon has it."""
        run = occurrence_of(running.trigger, running.scheduled_at, record.execution_id)
        try:
            if isinstance(running.claim, Claim):
                if await fleet.start_claimed(record, running.claim):
                    return running.claim
            else:
                claim = await fleet.claim(
                    record, run, last_execution=running.started_at, next_due=entry.next_due
                )
                if claim is not None:
                    return claim
        except StoreUnavailable as exc:
            self.writes.failed(exc, f"the claim of a run of {entry.task_id}")
            if run.kind == "request" and not isinstance(running.claim, Claim):
                return None
        self._on_not_claimed(entry.task_id)
        raise NotClaimed(entry.task_id)

    async def _finish(
        self,
        record: ExecutionRecord,
        entry: TaskEntry,
        retrying: bool,
        claim: Claim | None = None,
        *,
        handover: bool = False,
    ) -> None:
        """Write the final record with the task's counters (shielded and bounded: this runs
        during cancellation too), then announce it: an event, and a notification unless
        ``retrying`` (a retry of this failed run follows). In a fleet, only while the run's
        ``claim`` is still this daemon's (fencing)."""
        fenced = False
        with trio.move_on_after(FINALIZE_SECONDS, shield=True) as finalizing:
            if self.fleet is not None:
                try:
                    fenced = not await self.fleet.finish(record, claim, release=handover)
                except StoreUnavailable as exc:
                    self.writes.failed(exc, f"the record of execution {record.execution_id}")
            else:
                await self.writes.write(
                    self.store.finish_execution(record, entry.counters),
                    f"the record of execution {record.execution_id} of {entry.task_id}",
                )
        if fenced:
            log.warning(
                "execution %s of %s (%s) is not recorded: another daemon of the fleet took"
                " its run over",
                record.execution_id,
                entry.task_id,
                record.outcome.value,
                extra={"task_id": entry.task_id, "execution_id": record.execution_id},
            )
            return
        if finalizing.cancelled_caught:
            # Lost, not refused (the database is slow, or busy with other writes): the row
            # still says running until the next start closes it as interrupted.
            log.error(
                "the record of execution %s of %s (%s) was not written within %g s",
                record.execution_id,
                entry.task_id,
                record.outcome.value,
                FINALIZE_SECONDS,
                extra={"task_id": entry.task_id, "execution_id": record.execution_id},
            )
        self._announce(record, entry, retrying)

    def _announce(self, record: ExecutionRecord, entry: TaskEntry, retrying: bool) -> None:
        self.events.publish("execution_finished", record.summary())
        if self._notifier is not None:
            # From the final record: what it says is what the user is told (secrets masked).
            self._notifier.finished(record, entry.spec, retrying=retrying)
        self._on_finished(record)

    async def _run_code(
        self, spec: TaskSpec, record: ExecutionRecord, running: Running, limit: float
    ) -> None:
        assert spec.code is not None
        secrets = spec.secrets or {}
        job = Job(
            code=spec.code,
            filename=f"<task {spec.task_id}>",
            cwd=str(self.settings.workspace),
            # Over the daemon's environment (without its credentials); OMNIMIND_* names
            # are refused in env and secrets, so the daemon's own always win.
            env={
                **(spec.env or {}),
                **secrets,
                "OMNIMIND_WORKSPACE": str(self.settings.workspace),
            },
            python=spec.python,
            secrets=tuple(secrets.values()),
            max_memory_mb=spec.max_memory_mb or self.settings.max_memory_mb or None,
            max_cpu_seconds=spec.max_cpu_seconds or self.settings.max_cpu_seconds or None,
            max_output_bytes=self.settings.max_output_bytes,
            max_result_bytes=self.settings.max_result_bytes,
            timeout_seconds=limit,
            nice=0 if spec.priority is Priority.CRITICAL else self.settings.task_nice,
        )

        async def record_process(pid: int, start: str | None) -> None:
            # So that the next start can kill what a crash of the daemon left of this run.
            await self.writes.write(
                self.store.record_process(record.execution_id, RunProcess(pid, start)),
                f"the process of execution {record.execution_id}",
            )

        running.start_timeout(limit)
        live = self.output.open(record)
        try:
            async with trio.open_nursery() as flushing:
                live.start_flushing(flushing)
                result = await self.executor.run(
                    job,
                    scope=running.scope,
                    on_started=running.attach,
                    on_process=record_process,
                    on_output=live.feed,
                )
                flushing.cancel_scope.cancel()
        finally:
            await live.close()
        record.outcome, record.reason, record.result = classify(result, job)
        if result.ended_by != "exit" and running.cancel_reason is not None:
            # The scope was cancelled on purpose (whatever its deadline said meanwhile).
            record.outcome, record.reason = Outcome.CANCELLED, running.cancel_reason
        masker = Masker(job.secrets)
        if masker:  # the output was masked as it came (executor): the rest of the record
            record.result = masker.json(record.result)
            record.reason = None if record.reason is None else masker.text(record.reason)
        record.stdout, record.stderr = result.stdout, result.stderr
        record.cpu_seconds, record.max_rss_mb = result.cpu_seconds, result.max_rss_mb

    async def _run_function(
        self,
        function: InProcessFunction,
        record: ExecutionRecord,
        running: Running,
        limit: float,
    ) -> None:
        running.start_timeout(limit)
        with running.scope:
            try:
                record.result = await function()
                record.outcome = Outcome.SUCCEEDED
            except Exception as exc:
                record.outcome = Outcome.FAILED
                # As a code task's: the exception first, then its traceback.
                record.reason = "".join(
                    traceback.format_exception_only(exc) + traceback.format_exception(exc)
                ).rstrip()
        if not running.scope.cancelled_caught:
            return
        # A cancel() gives a reason; only the deadline cancels the scope without one.
        if running.cancel_reason is not None:
            record.outcome, record.reason = Outcome.CANCELLED, running.cancel_reason
        else:
            record.outcome, record.reason = Outcome.TIMED_OUT, f"timed out after {limit:g} s"

    def _count(self, entry: TaskEntry, record: ExecutionRecord) -> None:
        counters = entry.counters
        if record.outcome.counts_as_run:
            counters.execution_count += 1
            if record.outcome.is_success:
                counters.success_count += 1
            else:
                counters.failure_count += 1
        self.prom.observe(record)
