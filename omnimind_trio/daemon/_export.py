"""``GET /daemon/export``: the code tasks as a batch body that restores them (see
:mod:`omnimind_trio.models._export`), in an order a single atomic batch can apply."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..models import ExportAdd, ExportPause, TaskExportBody, task_export
from ..scheduling import TaskEntry


def export_tasks(entries: Iterable[TaskEntry]) -> TaskExportBody:
    """Every code task (in-process tasks are left out: their program registers them), each
    after the tasks it runs after, else in insertion order; a paused one is paused right
    after its add. Secret values are left out, their names listed."""
    code_tasks = [entry for entry in entries if entry.spec.code is not None]
    operations: list[ExportAdd | ExportPause] = []
    omitted: dict[str, list[str]] = {}
    for entry in after_order(code_tasks):
        spec = entry.spec
        operations.append(ExportAdd(task=task_export(spec)))
        if entry.paused:
            operations.append(ExportPause(task_id=spec.task_id))
        if spec.secrets:
            omitted[spec.task_id] = sorted(spec.secrets)
    return TaskExportBody(operations=operations, omitted_secrets=omitted)


def after_order(entries: list[TaskEntry]) -> Iterator[TaskEntry]:
    """``entries`` in insertion order, except that a task comes after the tasks of its
    ``after`` list (those among ``entries``). Depth first without recursion: a chain of
    thousands of tasks is no problem; a cycle (which the daemon refuses) cannot loop."""
    by_id = {entry.task_id: entry for entry in entries}
    placed: set[str] = set()
    for entry in entries:
        if entry.task_id in placed:
            continue
        seen = {entry.task_id}
        stack = [(entry, iter(entry.spec.after or ()))]
        while stack:
            current, upstream = stack[-1]
            for task_id in upstream:
                if task_id in by_id and task_id not in placed and task_id not in seen:
                    seen.add(task_id)
                    stack.append((by_id[task_id], iter(by_id[task_id].spec.after or ())))
                    break
            else:
                stack.pop()
                placed.add(current.task_id)
                yield current
