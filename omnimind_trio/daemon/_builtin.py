"""The built-in task, registered through the same API embedders use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import Priority

if TYPE_CHECKING:
    from ._daemon import Daemon

DATABASE_OPTIMIZATION = "database_optimization"


async def register_builtins(daemon: Daemon) -> None:
    """Register ``database_optimization`` (MEDIUM, every 6 hours)."""
    settings = daemon.settings

    async def optimize() -> dict[str, Any]:
        deleted = await daemon.store.apply_retention(
            max_per_task=settings.history_max_per_task,
            older_than=daemon.clock.now() - settings.history_max_days * 86400,
        )
        await daemon.store.optimize()
        return {"status": "completed", "deleted_executions": deleted}

    await daemon.register(
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
