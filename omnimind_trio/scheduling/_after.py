"""``after``: tasks that run once the tasks they name have succeeded.

The scheduler keeps the links read backwards (an upstream task to the tasks that wait for
it), so a success finds its followers without a scan; each follower keeps, in
``TaskEntry.upstream_done``, the upstream tasks that have succeeded since it last started.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._entry import TaskEntry


class Followers:
    """Which tasks wait for which. ``tasks`` is the scheduler's registry (for the order
    in which followers are answered: insertion order)."""

    def __init__(self, tasks: Mapping[str, TaskEntry]) -> None:
        self._tasks = tasks
        self._waiting: dict[str, set[str]] = {}

    def of(self, task_id: str) -> list[str]:
        """The registered tasks whose ``after`` names ``task_id``, in insertion order."""
        waiting = self._waiting.get(task_id)
        if not waiting:
            return []
        found = [self._tasks[other] for other in waiting if other in self._tasks]
        return [entry.task_id for entry in sorted(found, key=lambda entry: entry.seq)]

    def link(self, entry: TaskEntry) -> None:
        for upstream in entry.spec.after or ():
            self._waiting.setdefault(upstream, set()).add(entry.task_id)

    def unlink(self, entry: TaskEntry) -> None:
        """Forget ``entry``'s links (call it before its definition changes)."""
        for upstream in entry.spec.after or ():
            waiting = self._waiting.get(upstream)
            if waiting is not None:
                waiting.discard(entry.task_id)
                if not waiting:
                    del self._waiting[upstream]


def is_ready(entry: TaskEntry) -> bool:
    """Whether an ``after`` task should join its ready queue now: every upstream task has
    succeeded since it last started, and it is not paused, running or queued already."""
    after = entry.spec.after
    return not (
        after is None
        or entry.paused
        or entry.runs
        or entry.ready_since is not None
        or not entry.upstream_done.issuperset(after)
    )
