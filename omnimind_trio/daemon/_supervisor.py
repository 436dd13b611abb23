"""The supervisor node: starting and stopping the daemon's work, and its state.

::

    supervisor                  # start() opens its scope, stop() cancels it
    ├── load monitor            # samples the machine; each sample updates the gates
    ├── condition monitor       # presence, power, network: tasks' conditions
    ├── scheduler               # one cancel scope per execution
    ├── database watch          # every 10 s: is the file still there? (re-created if
    │                           # deleted); while writes are refused, a probe
    └── history retention       # every hour, whatever becomes of database_optimization

The state (``initializing``, ``idle``, ``working``, ``sleeping``, ``shutting_down``,
``stopped``, ``error``) is derived from the lifecycle, the scheduler, the gates and the
write guard; every change of it is published as a ``state_changed`` event.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable

import trio

from ..models import MEASUREMENTS, DaemonState, Surroundings, SystemMetrics
from ..scheduling import (
    Clock,
    ConditionMonitor,
    ConditionState,
    GateSet,
    LoadMonitor,
    Scheduler,
)
from ..store import Store
from ._events import EventBus
from ._writes import WriteGuard

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

RETENTION_SECONDS = 3600.0
"""How often the supervisor applies the history retention. The built-in task
``database_optimization`` applies it too, but it can be paused or patched, or wait for its
gate for ever: the history must not grow without limit then."""

SUSPEND_GAP_SECONDS = 30.0
"""A wall-clock jump beyond the monotonic clock this large means suspend or a clock change."""
SAMPLES_KEPT_SECONDS = 600.0
"""How far back ``samples`` reaches."""


class Supervisor:
    """Runs the load monitor, the scheduler and the database watch between start and stop."""

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        gates: GateSet,
        monitor: LoadMonitor,
        conditions: ConditionState,
        condition_monitor: ConditionMonitor,
        writes: WriteGuard,
        events: EventBus,
        clock: Clock,
        store: Store,
        nursery: trio.Nursery,
        on_change: Callable[[], None] = lambda: None,
        retention: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._retention = retention
        self._scheduler = scheduler
        self._gates = gates
        self._monitor = monitor
        self._conditions = conditions
        self._condition_monitor = condition_monitor
        self._writes = writes
        self._events = events
        self._clock = clock
        self._store = store
        self._nursery = nursery
        self._on_change = on_change
        self._phase = DaemonState.INITIALIZING
        self._published = DaemonState.INITIALIZING
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._stopped.set()
        self._lifecycle = trio.Lock()
        self._last_sample_clocks: tuple[float, float] | None = None
        self.samples: deque[tuple[float, SystemMetrics]] = deque(
            maxlen=max(1, math.ceil(SAMPLES_KEPT_SECONDS / monitor.interval))
        )
        """The load samples of the last SAMPLES_KEPT_SECONDS, oldest first, with their
        wall-clock time (the dashboard's CPU chart)."""

    @property
    def running(self) -> bool:
        """Whether the supervisor is up (between start and stop)."""
        return self._scope is not None

    @property
    def state(self) -> DaemonState:
        if self._phase is not DaemonState.IDLE:
            return self._phase
        if self._writes.problem is not None or self._writes.file_problem is not None:
            return DaemonState.ERROR  # running, but what is saved may be lost
        if self._monitor.problem is not None:
            return DaemonState.ERROR  # running, blind to the machine's load
        if self._scheduler.running_count:
            return DaemonState.WORKING
        if self._gates.in_sleep_window:
            return DaemonState.SLEEPING
        return DaemonState.IDLE

    @property
    def error(self) -> str | None:
        """Why the state is ``error``, while it is."""
        if self._writes.file_problem is not None:
            return self._writes.file_problem
        if self._writes.problem is not None:
            return f"the database refuses writes ({self._writes.problem})"
        if self._monitor.problem is not None and self.running:
            return self._monitor.problem
        if self._phase is DaemonState.ERROR:
            return "the scheduler failed; see the log"
        return None

    def set_phase(self, phase: DaemonState) -> None:
        self._phase = phase
        self.check_state()

    def check_state(self) -> None:
        """Publish ``state_changed`` when the state differs from the last one published."""
        state = self.state
        if state is not self._published:
            previous, self._published = self._published, state
            self._events.publish(
                "state_changed", {"state": state, "previous": previous, "reason": self.error}
            )
        self._on_change()

    async def start(self) -> bool:
        """Start the supervisor and return once it runs; False if it was already running.
        A stop under way is waited for first."""
        async with self._lifecycle:
            if self._scope is not None and not self._scope.cancel_called:
                return False
            await self._stopped.wait()
            self.set_phase(DaemonState.INITIALIZING)
            # Set before the supervisor runs, so that a stop() during the start cancels it.
            self._scope, self._stopped = trio.CancelScope(), trio.Event()
            # The supervisor outlives this call (POST /daemon/start returns while it runs),
            # so it lives in the nursery open_daemon gave us.
            await self._nursery.start(self._supervise, self._scope)
            return True

    def stop(self) -> bool:
        """Ask the supervisor to stop: every execution in flight is killed and recorded as
        cancelled ("the daemon was stopped"). Returns at once, False if the daemon was not
        running or is already stopping; :meth:`wait_stopped` waits for the end."""
        if self._scope is None or self._scope.cancel_called:
            return False
        self.set_phase(DaemonState.SHUTTING_DOWN)
        self._scope.cancel()
        return True

    async def wait_stopped(self) -> None:
        """Return once the supervisor is down and every execution's record is written (at
        once when it is not running)."""
        await self._stopped.wait()

    async def _supervise(
        self, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        started = False
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self._monitor.run)
                    await nursery.start(self._condition_monitor.run)
                    await nursery.start(self._scheduler.run)
                    nursery.start_soon(self._writes.watch, self._store)
                    if self._retention is not None:
                        nursery.start_soon(self._retain, self._retention)
                    if not scope.cancel_called:  # else a stop() came during the start
                        self.set_phase(DaemonState.IDLE)
                    log.info("daemon started with %d tasks", len(self._scheduler.tasks))
                    task_status.started()
                    started = True
        except Exception:
            self.set_phase(DaemonState.ERROR)
            log.exception("the daemon supervisor failed")
            raise
        finally:
            self._scope = None
            if self._phase is not DaemonState.ERROR:
                self.set_phase(DaemonState.STOPPED)
            self._stopped.set()
            log.info("daemon stopped")
        if not started:  # stopped before it was up: the start is over all the same
            task_status.started()

    async def _retain(self, retention: Callable[[], Awaitable[object]]) -> None:
        async def apply() -> None:
            await retention()

        while True:
            await trio.sleep(RETENTION_SECONDS)
            # A refused write is the write guard's outage (logged once, state error).
            await self._writes.write(apply(), "the history retention")

    def on_sample(self, metrics: SystemMetrics) -> None:
        """A new load sample: update the gates, notice a suspend, publish what changed."""
        mono, wall = trio.current_time(), self._clock.now()
        self.samples.append((wall, metrics))
        # A load that cannot be measured counts as a busy machine: the last good sample may
        # be long gone, and heavy work must not start on a machine we cannot see.
        cpu = 100.0 if self._monitor.problem is not None else metrics.external_cpu_percent
        changed = self._gates.update(cpu, mono, wall)
        if changed:
            self._scheduler.wake()
        if self._last_sample_clocks is not None:
            # The monotonic clock stands still while the machine sleeps; the wall clock
            # does not. A gap means suspend (or a clock change): runs may have been missed.
            last_mono, last_wall = self._last_sample_clocks
            gap = (wall - last_wall) - (mono - last_mono)
            if abs(gap) > SUSPEND_GAP_SECONDS:
                log.warning("the wall clock jumped %.0f s (machine asleep?)", gap)
                self._scheduler.wake()
        self._last_sample_clocks = (mono, wall)
        self.check_state()
        if not self._events.subscriber_count:
            return
        gates = self._gates
        if changed:
            self._publish_gates()
        self._events.publish(
            "metrics",
            {
                "cpu_percent": metrics.cpu_percent,
                "memory_percent": metrics.memory_percent,
                "is_idle": gates.idle.is_open,
                "is_sleep_time": gates.in_sleep_window,
                "external_cpu_percent": metrics.external_cpu_percent,
                "open_priorities": sorted(p.value for p in gates.open_priorities()),
                **self._measurements(),
            },
        )

    def on_conditions(self, sample: Surroundings) -> None:
        """A new sample of presence, power and network: judge the conditions again; when
        one starts or stops holding, the scheduler freezes or thaws at once."""
        if self._conditions.update(sample, trio.current_time()):
            self._scheduler.wake()
            if self._events.subscriber_count:
                self._publish_gates()

    def _measurements(self) -> dict[str, object]:
        readings = self._conditions.readings
        return {name: getattr(readings, name).value for name in MEASUREMENTS}

    def _publish_gates(self) -> None:
        gates, conditions = self._gates, self._conditions
        self._events.publish(
            "gates_changed",
            {
                "open_priorities": sorted(p.value for p in gates.open_priorities()),
                "external_cpu_percent": self._monitor.latest.external_cpu_percent,
                "is_idle": gates.idle.is_open,
                "is_low_activity": gates.low_activity.is_open,
                "is_sleep_time": gates.in_sleep_window,
                **self._measurements(),
                "conditions_holding": conditions.holding(),
            },
        )
