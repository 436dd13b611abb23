"""What the dashboard reads beyond the API document's routes: task rows and the machine."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model
from pydantic.json_schema import SkipJsonSchema

from ._enums import DaemonState, Outcome
from ._system import MEASUREMENTS, Reading
from ._time import Instant, Measure
from ._views import Response, TaskDetail


class RecentRun(Response):
    """One finished run, as a task row's sparkline shows it."""

    execution_id: str
    outcome: Outcome
    started_at: Instant | None
    duration_seconds: Measure | None


class TaskRow(TaskDetail):
    """``GET /daemon/dashboard/tasks``: a task's detail without its code, with its latest
    finished runs."""

    code: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    recent: list[RecentRun] = Field(description="The latest finished runs, oldest first")
    last_outcome: Outcome | None
    last_duration_seconds: Measure | None


class TaskRows(Response):
    tasks: list[TaskRow]
    total_tasks: int = Field(description="Tasks matching the filters (before paging)")

    def json_text(self) -> str:
        return self.model_dump_json(exclude_unset=True)  # each task's ``waiting``

    def json_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class LoadGate(Response):
    open: bool
    threshold_percent: float = Field(description="Open while the others' CPU is below this")


class SleepWindowGate(Response):
    open: bool
    window: str = Field(description="HH:MM-HH:MM in the daemon's time zone")


class Gates(Response):
    idle: LoadGate
    low_activity: LoadGate
    sleep_window: SleepWindowGate


class CpuSample(Response):
    time: Instant
    cpu_percent: Measure = Field(description="The whole machine")
    external_cpu_percent: Measure = Field(description="All but the daemon and its tasks")


ConditionsNow: type[Response] = create_model(  # type: ignore[call-overload]
    "ConditionsNow",
    __base__=Response,
    __doc__="What tasks' ``conditions`` are judged by now: each measurement with its source "
    "(a null ``value``: unknown, and ``detail`` says why; an unknown one counts as holding).",
    **{name: (Reading, Field(description=doc)) for name, doc in MEASUREMENTS.items()},
    away_seconds=(float, Field(description="The person is away after this long idle")),
    holding=(list[str], Field(description="The conditions that hold now")),
)


class Machine(Response):
    """``GET /daemon/machine``: the gates, the conditions, the daemon's state and the CPU
    lately."""

    state: DaemonState
    running: bool
    open_priorities: list[str]
    gates: Gates
    conditions: ConditionsNow  # type: ignore[valid-type]
    cpu_history: list[CpuSample] = Field(description="The last 10 minutes, oldest first")
