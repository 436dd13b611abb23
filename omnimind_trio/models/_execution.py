"""One run of a task, from admission to its end: the execution record.

The record is what the store keeps (one column per field), what the API answers (its JSON
dump: instants as ISO-8601, ``duration_seconds`` and ``frozen_seconds`` computed), and what
``execution_started``/``execution_finished`` events carry (without the output).

A run belongs to one *registration* of its task: each add of a task id is a new one
(:data:`RegistrationId`), so a task deleted and added again under the same id starts with an
empty history and counters, and the earlier registration's runs stay readable, saying whose
they were (``registration_id``, ``registered_at``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from ._enums import Outcome, Trigger
from ._time import Instant, Measure, PreciseInstant

RegistrationId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The registration: 32 hex digits, new at each add of a task id (a task "
        "deleted and added again under its id is a new registration, with its own history "
        "and counters)",
    ),
]
"""One registration of a task id: the task detail's ``registration_id``, and every record
of a run of that registration."""


def new_registration_id() -> str:
    """A new registration's id (random: unique across restarts and databases)."""
    return uuid.uuid4().hex


class Pause(BaseModel):
    """A time the execution was frozen because the machine became busy."""

    frozen_at: PreciseInstant
    thawed_at: PreciseInstant | None


def _pauses_json(pauses: list[tuple[float, float | None]]) -> list[Pause]:
    return [Pause(frozen_at=frozen, thawed_at=thawed) for frozen, thawed in pauses]


Pauses = Annotated[
    list[tuple[float, float | None]],
    PlainSerializer(_pauses_json, return_type=list[Pause], when_used="json"),
]
"""(frozen, thawed) epoch pairs; ``[{"frozen_at", "thawed_at"}]`` in JSON."""


class ExecutionSummary(BaseModel):
    """One run of a task (or one that was skipped, with why), without its output: as lists
    and events show it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    execution_id: str
    task_id: str
    registration_id: RegistrationId | None = Field(
        description="The registration of the task this run belonged to: the task detail's "
        "registration_id while it stands (a task deleted and added again under its id is a "
        "new registration). null: a run recorded before registrations were kept (database "
        "schema version 4) of a registration already gone then: which one is not known"
    )
    registered_at: Instant | None = Field(
        description="When that registration was made (its task's created_at); null when "
        "registration_id is"
    )
    node: str | None = Field(
        default=None,
        description="The node name (OMNIMIND_NODE_NAME) of the daemon that ran the run, or "
        "skipped it; null for a record written before nodes were kept (database schema "
        "version 5)",
    )
    trigger: Trigger
    outcome: Outcome
    reason: str | None = None
    result: Any = Field(default=None, description="What execute() returned (any JSON)")
    scheduled_at: PreciseInstant
    started_at: PreciseInstant | None = None
    finished_at: PreciseInstant | None = None
    cpu_seconds: Measure | None = None
    max_rss_mb: Measure | None = None
    attempt: int = Field(default=0, description="0 for a first run; n for the n-th retry")
    pauses: Pauses = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> Measure | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def frozen_seconds(self) -> Measure:
        end = self.finished_at
        return sum(
            (thawed if thawed is not None else (end or frozen)) - frozen
            for frozen, thawed in self.pauses
        )

    @model_serializer(mode="wrap")
    def _in_reading_order(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # What a run did, then when, then how long: the output after the result, the
        # duration after the times it is computed from. (No return annotation: with one,
        # pydantic would describe the JSON as that type instead of the model's fields.)
        data = handler(self)
        return {key: data[key] for key in READING_ORDER if key in data}


class ExecutionRecord(ExecutionSummary):
    """One run of a task, with what it printed (each stream capped, head and tail kept)."""

    stdout: str = ""
    stderr: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as the API answers it."""
        return self.model_dump(mode="json")

    def summary(self) -> dict[str, Any]:
        """The record as lists and events show it: without the captured output."""
        return self.model_dump(mode="json", exclude=OUTPUT_FIELDS)


OUTPUT_FIELDS: Final = {"stdout", "stderr"}


def _reading_order() -> tuple[str, ...]:
    order = [name for name in ExecutionSummary.model_fields]
    order[order.index("result") + 1 : order.index("result") + 1] = ["stdout", "stderr"]
    order.insert(order.index("finished_at") + 1, "duration_seconds")
    return (*order, "frozen_seconds")


READING_ORDER: Final = _reading_order()
EXECUTION_FIELDS: Final = tuple(ExecutionRecord.model_fields)
"""The stored fields of a record (the computed ones are not stored)."""
