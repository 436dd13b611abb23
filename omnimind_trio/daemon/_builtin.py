"""The built-in task, registered through the same API embedders use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..config import Settings
from ..models import Priority
from ..scheduling import Clock
from ..store import Store
from ._output import OutputHub

DATABASE_OPTIMIZATION = "database_optimization"


class Register(Protocol):
    """:meth:`Daemon.register <omnimind_trio.Daemon.register>`'s signature."""

    def __call__(
        self,
        task_id: str,
        function: Callable[[], Awaitable[Any]],
        *,
        name: str,
        description: str = ...,
        priority: Priority = ...,
        repeat_hours: int | None = ...,
    ) -> Awaitable[Any]: ...


CLAIMS_KEPT_SECONDS = 86400.0
"""How long a fleet's finished claims are kept (on PostgreSQL)."""


async def apply_retention(store: Store, settings: Settings, clock: Clock, output: OutputHub) -> int:
    """Delete the history beyond the retention settings, and the log files of the runs
    deleted; returns how many runs went."""
    deleted = await store.apply_retention(
        max_per_task=settings.history_max_per_task,
        older_than=clock.now() - settings.history_max_days * 86400,
    )
    await output.sweep(store)
    if store.fleet is not None:
        # A finished claim only keeps its occurrence from running twice: a day is plenty.
        await store.fleet.forget_claims(CLAIMS_KEPT_SECONDS)
    return deleted


async def register_builtins(
    register: Register,
    *,
    store: Store,
    settings: Settings,
    retain: Callable[[], Awaitable[int]],
) -> None:
    """Register ``database_optimization`` (MEDIUM, every 6 hours). (The retention does not
    depend on it: the supervisor applies it every hour, whether this task is paused,
    patched or never runs; see ``Supervisor``.)"""

    async def optimize() -> dict[str, Any]:
        deleted = await retain()
        await store.optimize()
        return {"status": "completed", "deleted_executions": deleted}

    await register(
        DATABASE_OPTIMIZATION,
        optimize,
        name="Database Optimization",
        description=(
            f"Apply the history retention (at most {settings.history_max_per_task} runs per"
            f" task, none older than {settings.history_max_days:g} days) and optimize the"
            " database"
        ),
        priority=Priority.MEDIUM,
        repeat_hours=6,
    )
