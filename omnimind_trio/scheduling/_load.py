"""The load monitor: one sampler that measures the machine and feeds the gates.

A :class:`MetricsSource` takes one sample; :class:`LoadMonitor` calls it on a fixed time grid
(``sleep_until``, so it does not drift) and publishes the latest
:class:`~.models.SystemMetrics`. Only this task calls psutil; requests read the last sample.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol

import psutil
import trio

from ..models import SystemMetrics
from ._clock import on_a_grid

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


class MetricsSource(Protocol):
    """Something that can measure the machine. ``sample`` must be fast (no interval)."""

    def sample(self) -> SystemMetrics: ...


class PsutilSource:
    """Real measurements. CPU used by the daemon process and by the process tree of each of
    ``own_pids()`` (the task processes) since the previous sample is subtracted to give
    ``external_cpu_percent``.

    A task's tree counts its live descendants and, through the kernel's children times,
    the ones that already exited: a build that runs a compiler per file is the task's own
    load, however short-lived each compiler. The trees come from one pass over the process
    table per sample (none while no task runs), whatever the number of tasks.
    """

    def __init__(self, own_pids: Callable[[], Iterable[int]] = list) -> None:
        self._own_pids = own_pids
        self._me = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        self._last_wall: float | None = None
        self._last_cpu: dict[int, float] = {}
        psutil.cpu_percent(interval=None)  # prime: the first call has nothing to compare

    def own_pids(self) -> list[int]:
        """The task processes now (call it in the event loop: the executor's state is not
        thread-safe)."""
        return list(self._own_pids())

    def sample(self) -> SystemMetrics:
        return self.measure(self.own_pids())

    def measure(self, own_pids: list[int]) -> SystemMetrics:
        """A sample, given the task processes: reads /proc only, so a worker thread may
        call it (one call at a time)."""
        cpu = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory().percent
        now = time.monotonic()
        seen = self.own_cpu_seconds(own_pids)
        # Per tree, and never negative: a tree that shrinks (a descendant left it, or the
        # task ended) must not hide the CPU of the others.
        own_seconds = sum(max(0.0, t - self._last_cpu.get(pid, 0.0)) for pid, t in seen.items())
        own = 0.0
        if self._last_wall is not None and now > self._last_wall:
            own = 100.0 * own_seconds / ((now - self._last_wall) * self._cpus)
        self._last_wall, self._last_cpu = now, seen
        external = min(100.0, max(0.0, cpu - own))
        return SystemMetrics(
            cpu_percent=cpu, memory_percent=memory, external_cpu_percent=round(external, 1)
        )

    def own_cpu_seconds(self, pids: list[int] | None = None) -> dict[int, float]:
        """CPU seconds used so far: by the daemon process, and by the tree of each of
        ``pids`` (default: the task processes)."""
        if pids is None:
            pids = self.own_pids()
        seen: dict[int, float] = {}
        with contextlib.suppress(psutil.Error):
            times = self._me.cpu_times()
            seen[self._me.pid] = times.user + times.system
        if not pids:
            return seen
        children: dict[int, list[int]] = defaultdict(list)
        for child, parent in _ppid_map().items():
            children[parent].append(child)
        for pid in pids:
            total, todo, found = 0.0, [pid], False
            while todo:
                member = todo.pop()
                try:
                    t = psutil.Process(member).cpu_times()
                except psutil.Error:
                    continue  # gone since the scan, or not ours to read
                found = True
                total += t.user + t.system + t.children_user + t.children_system
                todo.extend(children.get(member, ()))
            if found:
                seen[pid] = total
        return seen


def _ppid_map() -> dict[int, int]:
    """Every process's parent, from one pass over the process table. psutil's own
    ``children(recursive=True)`` makes that pass once per call, that is once per task: 34 ms
    per sample with 32 tasks on this machine, in the event loop. Its private helper gives
    the table once; the public ``process_iter`` is the fallback (about 4x slower)."""
    ppid_map = getattr(psutil, "_ppid_map", None)
    if ppid_map is not None:
        with contextlib.suppress(psutil.Error):  # /proc mounted hidepid, a sandbox...
            return dict(ppid_map())
    return {
        p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"]) if p.info["ppid"] is not None
    }


class FakeSource:
    """A settable source for tests and embedding without psutil readings. Set ``error`` to
    an exception to make every sample raise it (a machine that cannot be measured)."""

    def __init__(self, cpu_percent: float = 0.0, memory_percent: float = 10.0) -> None:
        self.cpu_percent = cpu_percent
        self.memory_percent = memory_percent
        self.error: Exception | None = None

    def sample(self) -> SystemMetrics:
        if self.error is not None:
            raise self.error
        return SystemMetrics(self.cpu_percent, self.memory_percent, self.cpu_percent)


STALE_AFTER_FAILURES = 10
"""Failed samples in a row after which the last good one is too old to judge the load by."""


class LoadMonitor:
    """Samples ``source`` every ``interval`` seconds and calls ``on_sample`` with each.

    A failed sample keeps the previous one. After ``STALE_AFTER_FAILURES`` failures in a
    row, :attr:`problem` says why: the load is unknown (the supervisor then treats the
    machine as busy and reports the ``error`` state), until a sample succeeds again.
    """

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
        self.failures = 0
        """Failed samples in a row."""
        self.problem: str | None = None
        """Why the load is unknown, while it is (``STALE_AFTER_FAILURES`` failures in a row)."""

    async def sample_now(self) -> SystemMetrics:
        try:
            self.latest = await self._sample()
        except Exception as exc:  # a broken reading must not stop the daemon
            self._failed(exc)
        else:
            if self.failures:
                log.warning("load sampling works again, after %d failed samples", self.failures)
            self.failures, self.problem = 0, None
        self._on_sample(self.latest)
        return self.latest

    def _failed(self, exc: Exception) -> None:
        # Logged once per outage (with its traceback), not once a second for ever.
        self.failures += 1
        if self.failures == 1:
            log.error(
                "load sample failed; keeping the previous one (logged once until sampling"
                " works again)",
                exc_info=exc,
            )
        if self.failures == STALE_AFTER_FAILURES:
            self.problem = f"cannot sample the machine's load: {exc!r}"
            log.error(
                "%s; %d samples failed in a row: the machine counts as busy (HIGH and"
                " MEDIUM wait) until sampling works again",
                self.problem,
                self.failures,
            )

    async def _sample(self) -> SystemMetrics:
        source = self.source
        if not isinstance(source, PsutilSource):
            return source.sample()
        pids = source.own_pids()
        if not pids:
            # No task runs: three small /proc files (stat, meminfo, our own stat). Measured
            # per sample on the 2-core VM of the benchmarks, busy (load average 2), with
            # 70-80 processes: median 0.3-0.5 ms, p95 0.5-0.7 ms, once a second. That is
            # shorter than one API request, and no more than a round trip to a worker
            # thread costs the loop on the same VM (0.4 ms). It stays in the loop.
            return source.measure(pids)
        # Tasks run: their trees take one pass over the whole process table
        # (/proc/*/stat). Same VM: with 8 task processes, median 4-5 ms (p95 6-10 ms);
        # with 32, median 8-12 ms (p95 10-17 ms), once a second: every request in flight
        # would wait it out. A worker thread reads /proc instead.
        return await trio.to_thread.run_sync(source.measure, pids)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now, report started, then sample on a fixed grid for ever."""
        await on_a_grid(self.interval, self.sample_now, task_status)
