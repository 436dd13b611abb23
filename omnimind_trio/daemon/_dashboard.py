"""The dashboard's reads beyond the API document's: task rows and the machine."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import (
    MEASUREMENTS,
    ConditionsNow,
    CpuSample,
    DaemonState,
    ExecutionRecord,
    Gates,
    LoadGate,
    Machine,
    RecentRun,
    SleepWindowGate,
    SystemMetrics,
    TaskDetail,
    TaskRow,
)
from ..scheduling import ConditionState, GateSet

RECENT_RUNS = 20
"""Runs in a task row's sparkline."""


def task_row(detail: TaskDetail, recent: list[ExecutionRecord]) -> TaskRow:
    """A row of the task table: ``detail`` without its code, with ``recent`` (newest
    first, as the store gives them) oldest first."""
    runs = [
        RecentRun(
            execution_id=record.execution_id,
            outcome=record.outcome,
            started_at=record.started_at,
            duration_seconds=record.duration_seconds,
        )
        for record in reversed(recent)
    ]
    last = runs[-1] if runs else None
    fields = {name: getattr(detail, name) for name in detail.model_fields_set}
    return TaskRow(
        **fields,
        recent=runs,
        last_outcome=last.outcome if last is not None else None,
        last_duration_seconds=last.duration_seconds if last is not None else None,
    )


def machine_view(
    state: DaemonState,
    running: bool,
    gates: GateSet,
    conditions: ConditionState,
    samples: Iterable[tuple[float, SystemMetrics]],
) -> Machine:
    readings = conditions.readings
    return Machine(
        state=state,
        running=running,
        open_priorities=sorted(p.value for p in gates.open_priorities()),
        gates=Gates(
            idle=LoadGate(open=gates.idle.is_open, threshold_percent=gates.idle_cpu_percent),
            low_activity=LoadGate(
                open=gates.low_activity.is_open,
                threshold_percent=gates.low_activity_cpu_percent,
            ),
            sleep_window=SleepWindowGate(open=gates.in_sleep_window, window=str(gates.window)),
        ),
        conditions=ConditionsNow(
            **{name: getattr(readings, name) for name in MEASUREMENTS},
            **{"away_seconds": conditions.away_seconds, "holding": conditions.holding()},
        ),
        cpu_history=[
            CpuSample(
                time=at,
                cpu_percent=metrics.cpu_percent,
                external_cpu_percent=metrics.external_cpu_percent,
            )
            for at, metrics in samples
        ],
    )
