"""This daemon as one of a fleet sharing a database (PostgreSQL): heartbeats, taking over
the runs of daemons gone silent, and keeping its tasks in step with what the others change.

::

    open_daemon nursery
    └── fleet member                 # lives through stops, like the notifier
        ├── heartbeat                # every lease/3: its row of nodes, its claims' leases;
        │                            # while it runs tasks, takes over expired claims
        ├── notices                  # LISTEN: another daemon's change, applied within ms
        └── resync                   # every RESYNC_SECONDS, and when notices may be lost:
                                     # every task compared with the store

The claims themselves are made by the runner (``_runs``); what one is, in ``store._fleet``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from .._version import __version__
from ..exceptions import StoreUnavailable
from ..models import DaemonState
from ..scheduling import Scheduler, runs_on
from ..store import Claim, Fleet, NodeRow, Store
from ._events import EventBus
from ._registry import TaskRegistry

log = logging.getLogger(__package__)

RESYNC_SECONDS = 30.0
"""How often every task is compared with the store, notices or not."""
TAKE_OVER_AT_ONCE = 10
"""Runs taken over per heartbeat at most."""
FAREWELL_SECONDS = 1.0
"""Bound on the last heartbeat, saying ``stopped``, when the daemon exits."""


class FleetMember:
    def __init__(
        self,
        fleet: Fleet,
        *,
        lease_seconds: float,
        store: Store,
        scheduler: Scheduler,
        registry: TaskRegistry,
        events: EventBus,
        state: Callable[[], DaemonState],
        running: Callable[[], bool],
    ) -> None:
        self.fleet = fleet
        self.lease_seconds = lease_seconds
        self._store = store
        self._scheduler = scheduler
        self._registry = registry
        self._events = events
        self._state = state
        self._running = running
        self.started_at = time.time()
        self._wanted: set[str] = set()
        """Tasks to read again from the store (a notice, a lost claim)."""
        self._events_wanted: list[tuple[str, str]] = []
        """Runs another daemon started or finished: (event, execution id), to publish."""
        self._resync = False
        self._wake = trio.Event()
        self.takeovers = 0
        """Runs this daemon took over from silent daemons since it started."""

    async def run(self) -> None:
        """Runs until cancelled (the daemon's exit)."""
        try:
            released = await self.fleet.release_mine()
        except StoreUnavailable:
            released = 0
        if released:
            log.warning(
                "%d run(s) this daemon claimed before it stopped are left to the fleet to run"
                " again",
                released,
            )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats)
                nursery.start_soon(self.fleet.listen, self._notice)
                nursery.start_soon(self._apply_changes)
        finally:
            # The daemon exits: the fleet sees it stopped at once, not silent a while.
            with trio.move_on_after(FAREWELL_SECONDS, shield=True):
                with contextlib.suppress(StoreUnavailable):
                    await self.fleet.heartbeat(
                        state=DaemonState.STOPPED.value,
                        running_count=0,
                        version=__version__,
                        started_at=self.started_at,
                        holding=(),
                    )

    # -- notices and resyncs ---------------------------------------------------------

    def read_again(self, task_id: str) -> None:
        """Read ``task_id`` from the store soon (another daemon claimed its run)."""
        self._wanted.add(task_id)
        self._wake.set()

    def _notice(self, notice: dict[str, Any]) -> None:
        if notice.get("resync"):
            self._resync = True
        task_id = notice.get("task")
        if isinstance(task_id, str):
            self._wanted.add(task_id)
        execution_id, event = notice.get("execution"), notice.get("event")
        if isinstance(execution_id, str) and event in ("execution_started", "execution_finished"):
            self._events_wanted.append((str(event), execution_id))
        self._wake.set()

    async def _apply_changes(self) -> None:
        resync_at = trio.current_time() + RESYNC_SECONDS
        while True:
            with trio.move_on_at(resync_at):
                await self._wake.wait()
            self._wake = trio.Event()
            if trio.current_time() >= resync_at:  # however busy the notices keep it
                self._resync = True
                resync_at = trio.current_time() + RESYNC_SECONDS
            try:
                await self._apply_once()
            except StoreUnavailable as exc:
                log.debug("fleet sync postponed: %s", exc)
                await trio.sleep(1.0)
                self._resync = True

    async def _apply_once(self) -> None:
        wanted, self._wanted = self._wanted, set()
        events, self._events_wanted = self._events_wanted, []
        async with self._registry.changing:  # read and applied with no change of ours between
            if self._resync:
                self._resync = False
                stored = {task.spec.task_id: task for task in await self._store.load_tasks()}
                for task_id in set(self._scheduler.tasks) | set(stored):
                    self._registry.apply_stored(task_id, stored.get(task_id))
            else:
                for task_id in wanted:
                    self._registry.apply_stored(task_id, await self.fleet.load_task(task_id))
        for event, execution_id in events:
            record = await self._store.get_execution(execution_id)
            if record is not None:
                self._events.publish(event, record.summary())

    # -- heartbeats and takeovers ----------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self._beat()
            except StoreUnavailable as exc:
                log.warning("fleet heartbeat failed: %s", exc)
            await trio.sleep(self.lease_seconds / 3)

    async def _beat(self) -> None:
        # The claims of runs before the heartbeat: a run claimed meanwhile is not in ``held``.
        claimed = {
            run.claim.claim_id: run
            for entry in self._scheduler.tasks.values()
            for run in entry.runs
            if isinstance(run.claim, Claim)
        }
        waiting = [c.claim_id for c in self._scheduler.waiting_claims if isinstance(c, Claim)]
        held = await self.fleet.heartbeat(
            state=self._state().value,
            running_count=self._scheduler.running_count,
            version=__version__,
            started_at=self.started_at,
            holding=[*claimed, *waiting],
        )
        for claim_id, run in claimed.items():
            if claim_id not in held:
                # Cut off from the database longer than the lease, and another daemon took
                # the run over: its record would not be written anyway (fencing).
                run.cancel("another daemon of the fleet took this run over")
        if not self._running():
            return
        runnable = [
            entry.registration_id
            for entry in self._scheduler.tasks.values()
            if not entry.paused and runs_on(entry.spec, self._scheduler.node)
        ]
        if not runnable:
            return
        for claim in await self.fleet.take_over(runnable, TAKE_OVER_AT_ONCE):
            self._take_over(claim)

    def _take_over(self, claim: Claim) -> None:
        taken = self._scheduler.take_over(
            claim.task_id,
            execution_id=claim.execution_id,
            scheduled_at=claim.scheduled_at,
            attempt=claim.attempt,
            claim=claim,
        )
        if taken:
            self.takeovers += 1
            log.warning(
                "took over a run of %s (due %s) from a daemon that stopped renewing its claim",
                claim.task_id,
                time.strftime("%H:%M:%S", time.localtime(claim.scheduled_at)),
                extra={"task_id": claim.task_id, "execution_id": claim.execution_id},
            )

    async def nodes(self) -> list[NodeRow]:
        return await self.fleet.nodes()
