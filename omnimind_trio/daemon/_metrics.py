"""Prometheus metrics for ``GET /metrics``, in the standard text exposition format.

Event counts (executions, HTTP requests) are prometheus-client counters and histograms
updated as things happen; gauges of live state are read from the daemon at scrape time by
a custom collector, so nothing is updated on the hot path that nobody asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..models import MEASUREMENTS, ExecutionRecord, Outcome, Priority, Surroundings, SystemMetrics


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the gauges show, read from the daemon at scrape time."""

    up: bool
    database_writable: bool
    tasks_registered: int
    executions_running: int
    tasks_pending: int
    machine: SystemMetrics
    open_priorities: frozenset[Priority]
    surroundings: Surroundings


class DaemonMetrics:
    """One registry per daemon (never the global one: embedders may run several)."""

    def __init__(
        self, live: Callable[[], LiveState], registered: Callable[[ExecutionRecord], bool]
    ) -> None:
        self._registered = registered
        self.registry = CollectorRegistry(auto_describe=True)
        self.executions = Counter(
            "omnimind_executions",
            "Finished executions by task and outcome.",
            ["task_id", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "omnimind_execution_duration_seconds",
            "Wall-clock duration of finished executions.",
            buckets=(
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                300,
                900,
                3600,
            ),
            registry=self.registry,
        )
        self.last_success: dict[str, float] = {}
        self.registry.register(_LiveCollector(live, self))

    def observe(self, record: ExecutionRecord) -> None:
        if record.duration_seconds is not None:
            self.duration.observe(record.duration_seconds)
        if not self._registered(record):
            # A run that ends after its task was deleted (the delete cancels it, and the
            # run finishes later): its series are gone and must stay gone, and a task
            # added again under its id meanwhile is another task, which it must not count.
            return
        self.executions.labels(record.task_id, record.outcome.value).inc()
        if record.outcome.is_success and record.finished_at is not None:
            self.last_success[record.task_id] = record.finished_at

    def forget(self, task_id: str) -> None:
        """Drop a deleted task's series: a daemon that runs for a year sees many tasks come
        and go, and each left a series per outcome behind."""
        self.last_success.pop(task_id, None)
        for outcome in Outcome:
            with contextlib.suppress(KeyError):
                self.executions.remove(task_id, outcome.value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, live: Callable[[], LiveState], metrics: DaemonMetrics) -> None:
        self._live = live
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        # Registering would otherwise collect once, before the daemon is whole.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        live = self._live()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("omnimind_up", "1 while the daemon runs (between start and stop).", live.up)
        yield gauge(
            "omnimind_database_writable",
            "0 while the database refuses writes (disk full, read-only, I/O error), else 1.",
            live.database_writable,
        )
        yield gauge("omnimind_tasks_registered", "Registered tasks.", live.tasks_registered)
        yield gauge("omnimind_executions_running", "Executions in flight.", live.executions_running)
        yield gauge("omnimind_tasks_pending", "Tasks due but not running.", live.tasks_pending)
        machine = live.machine
        yield gauge("omnimind_cpu_percent", "Machine CPU use, percent.", machine.cpu_percent)
        yield gauge(
            "omnimind_external_cpu_percent",
            "Machine CPU use without the daemon and its tasks, percent.",
            machine.external_cpu_percent,
        )
        yield gauge(
            "omnimind_memory_percent", "Machine memory use, percent.", machine.memory_percent
        )
        gates = GaugeMetricFamily(
            "omnimind_gate_open", "1 when a priority may start work.", labels=["priority"]
        )
        for priority in Priority:
            gates.add_metric([priority.value], float(priority in live.open_priorities))
        yield gates
        # Task conditions' measurements; a series is left out while it is unknown.
        for name, doc in MEASUREMENTS.items():
            value = getattr(live.surroundings, name).value
            if value is not None:
                yield gauge(f"omnimind_{name}", doc, float(value))
        last = GaugeMetricFamily(
            "omnimind_last_success_timestamp_seconds",
            "When each task last succeeded (epoch seconds).",
            labels=["task_id"],
        )
        for task_id, when in self._metrics.last_success.items():
            last.add_metric([task_id], when)
        yield last
