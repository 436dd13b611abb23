"""The load monitor: one sampler that measures the machine and feeds the gates.

A :class:`MetricsSource` takes one sample; :class:`LoadMonitor` calls it on a fixed time grid
(``sleep_until``, so it does not drift) and publishes the latest
:class:`~.models.SystemMetrics`. Only this task calls psutil; requests read the last sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import psutil
import trio

from .models import SystemMetrics

log = logging.getLogger(__name__)


class MetricsSource(Protocol):
    """Something that can measure the machine. ``sample`` must be fast (no interval)."""

    def sample(self) -> SystemMetrics: ...


class PsutilSource:
    """Real measurements. CPU used by the daemon process and by ``own_pids()`` (the task
    processes) since the previous sample is subtracted to give ``external_cpu_percent``."""

    def __init__(self, own_pids: Callable[[], Iterable[int]] = list) -> None:
        self._own_pids = own_pids
        self._cpus = psutil.cpu_count() or 1
        self._last_wall: float | None = None
        self._last_cpu: dict[int, float] = {}
        psutil.cpu_percent(interval=None)  # prime: the first call has nothing to compare

    def sample(self) -> SystemMetrics:
        cpu = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory().percent
        now = time.monotonic()
        own_seconds = 0.0
        seen: dict[int, float] = {}
        for process in self._own_processes():
            try:
                times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total = times.user + times.system
            seen[process.pid] = total
            own_seconds += total - self._last_cpu.get(process.pid, 0.0)
        own = 0.0
        if self._last_wall is not None and now > self._last_wall:
            own = 100.0 * own_seconds / ((now - self._last_wall) * self._cpus)
        self._last_wall, self._last_cpu = now, seen
        external = min(100.0, max(0.0, cpu - own))
        return SystemMetrics(
            cpu_percent=cpu, memory_percent=memory, external_cpu_percent=round(external, 1)
        )

    def _own_processes(self) -> list[psutil.Process]:
        """The daemon, and each task process with its descendants (a task's own
        subprocesses are its load too)."""
        processes = [psutil.Process()]
        for pid in self._own_pids():
            try:
                task = psutil.Process(pid)
                processes += [task, *task.children(recursive=True)]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return processes


class FakeSource:
    """A settable source for tests and embedding without psutil readings."""

    def __init__(self, cpu_percent: float = 0.0, memory_percent: float = 10.0) -> None:
        self.cpu_percent = cpu_percent
        self.memory_percent = memory_percent

    def sample(self) -> SystemMetrics:
        return SystemMetrics(self.cpu_percent, self.memory_percent, self.cpu_percent)


class LoadMonitor:
    """Samples ``source`` every ``interval`` seconds and calls ``on_sample`` with each."""

    def __init__(
        self,
        source: MetricsSource,
        interval: float,
        on_sample: Callable[[SystemMetrics], None],
    ) -> None:
        self.source = source
        self.interval = interval
        self._on_sample = on_sample
        self.latest = SystemMetrics(0.0, 0.0, 0.0)

    def sample_now(self) -> SystemMetrics:
        try:
            self.latest = self.source.sample()
        except Exception:  # a broken reading must not stop the daemon
            log.exception("load sample failed; keeping the previous one")
        self._on_sample(self.latest)
        return self.latest

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now, report started, then sample on a fixed grid for ever."""
        self.sample_now()
        task_status.started()
        next_tick = trio.current_time()
        while True:
            next_tick += self.interval
            now = trio.current_time()
            if next_tick < now:  # we fell behind (machine suspended?): realign, no burst
                next_tick = now + self.interval
            await trio.sleep_until(next_tick)
            self.sample_now()
