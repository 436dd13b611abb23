"""``POST /daemon/tasks/batch``: many task operations in one request.

Every operation gets its own result: ``index``, an HTTP status code as ``status``, and
either ``result`` (what the single endpoint would answer) or ``detail`` (its error).
With ``"atomic": true`` the whole batch is checked first (validation, ids, running state)
and nothing is applied unless every operation passes; the ones that would have passed
then answer 424. An operation can still fail once the check has passed (the database
refuses the write: 503); the operations after it then answer 424 and are not applied, and
the ones before it stay applied: there is no rollback across operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..daemon import Daemon, task_action
from ..exceptions import Conflict, InvalidInput, OmniMindError, TaskExists, TaskNotFound
from ..models import Overlap, TaskSpec, parse_task_spec

MAX_OPERATIONS = 1000
TASK_OPS = ("delete", "pause", "resume", "run", "cancel")


async def run_batch(
    daemon: Daemon, body: Any, status_for: Callable[[OmniMindError], int]
) -> dict[str, Any]:
    """Run a batch request; raises InvalidInput only when the envelope itself is wrong."""
    atomic, operations = _envelope(body)
    parsed: list[tuple[str, str, TaskSpec | None] | OmniMindError] = []
    for operation in operations:
        try:
            parsed.append(_parse(daemon, operation))
        except OmniMindError as exc:
            parsed.append(exc)

    if atomic:
        problems = await _precheck(daemon, parsed)
        if any(problem is not None for problem in problems):
            results = []
            for index, problem in enumerate(problems):
                if problem is None:
                    detail = "Not applied: another operation of this atomic batch failed"
                    results.append({"index": index, "status": 424, "detail": detail})
                else:
                    results.append(_failure(index, problem, status_for))
            return {"results": results, "applied": 0}

    results = []
    applied = 0
    failed = False
    for index, item in enumerate(parsed):
        if atomic and failed:
            # The precheck passed, yet an operation failed when applied (the database
            # refused a write, or the state changed meanwhile): apply nothing more. The
            # operations before it stay applied.
            detail = "Not applied: another operation of this atomic batch failed"
            results.append({"index": index, "status": 424, "detail": detail})
            continue
        if isinstance(item, OmniMindError):
            results.append(_failure(index, item, status_for))
            continue
        try:
            body = await _apply(daemon, *item)
        except OmniMindError as exc:
            results.append(_failure(index, exc, status_for))
            failed = True
        else:
            results.append({"index": index, "status": 200, "result": body})
            applied += 1
    return {"results": results, "applied": applied}


def _envelope(body: Any) -> tuple[bool, list[Any]]:
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    unknown = sorted(set(body) - {"atomic", "operations"})
    if unknown:
        raise InvalidInput(f"Unknown field: {unknown[0]}")
    atomic = body.get("atomic", False)
    if not isinstance(atomic, bool):
        raise InvalidInput("atomic must be true or false")
    operations = body.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidInput("operations must be a non-empty list")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidInput(f"operations must hold at most {MAX_OPERATIONS} items")
    return atomic, operations


def _parse(daemon: Daemon, operation: Any) -> tuple[str, str, TaskSpec | None]:
    if not isinstance(operation, dict):
        raise InvalidInput("Each operation must be a JSON object")
    op = operation.get("op")
    if op == "add":
        if set(operation) - {"op", "task"}:
            raise InvalidInput("An add operation holds only 'op' and 'task'")
        task = operation.get("task")
        if not isinstance(task, dict):
            raise InvalidInput("An add operation needs 'task': the task as a JSON object")
        spec = parse_task_spec(task, max_code_bytes=daemon.settings.max_code_bytes)
        return "add", spec.task_id, spec
    if op in TASK_OPS:
        if set(operation) - {"op", "task_id"}:
            raise InvalidInput(f"A {op} operation holds only 'op' and 'task_id'")
        task_id = operation.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise InvalidInput(f"A {op} operation needs a task_id")
        return op, task_id, None
    raise InvalidInput(f"Invalid op: {op} (one of: add, {', '.join(TASK_OPS)})")


async def _precheck(
    daemon: Daemon, parsed: list[tuple[str, str, TaskSpec | None] | OmniMindError]
) -> list[OmniMindError | None]:
    """What would fail, operation by operation, if the batch ran in order now."""
    existing = set(daemon.scheduler.tasks)
    running = {t for t, e in daemon.scheduler.tasks.items() if e.running is not None}
    in_process = {t for t, e in daemon.scheduler.tasks.items() if e.function is not None}
    problems: list[OmniMindError | None] = []
    for item in parsed:
        if isinstance(item, OmniMindError):
            problems.append(item)
            continue
        op, task_id, spec = item
        problem: OmniMindError | None = None
        if op == "add":
            assert spec is not None and spec.code is not None
            try:
                await daemon.check_code(spec.code)
            except OmniMindError as exc:
                problem = exc
            else:
                problem = TaskExists(task_id) if task_id in existing else None
            existing.add(task_id)
        elif task_id not in existing:
            problem = TaskNotFound(task_id)
        elif op == "delete" and task_id in in_process:
            problem = Conflict(
                f"Task {task_id} is registered by the program running the daemon and comes "
                "back at every start: pause it instead"
            )
        elif op == "delete":
            existing.discard(task_id)
            running.discard(task_id)
        elif (
            op == "run"
            and task_id in running
            and daemon.scheduler.tasks[task_id].spec.overlap is not Overlap.ALLOW
        ):
            problem = Conflict(f"Task is already running: {task_id}")
        elif op == "cancel" and task_id not in running:
            problem = Conflict(f"Task is not running: {task_id}")
        problems.append(problem)
    return problems


async def _apply(daemon: Daemon, op: str, task_id: str, spec: TaskSpec | None) -> dict[str, Any]:
    if op == "add":
        assert spec is not None
        entry = await daemon.add_task(spec)
        return task_action("task_added", entry, "added successfully")
    if op == "delete":
        return task_action("task_deleted", await daemon.delete_task(task_id), "deleted")
    if op == "pause":
        return task_action("paused", await daemon.pause_task(task_id), "paused")
    if op == "resume":
        return task_action("resumed", await daemon.resume_task(task_id), "resumed")
    if op == "run":
        return task_action("run_requested", daemon.run_task_now(task_id), "will run now")
    return task_action("cancel_requested", daemon.cancel_task(task_id), "is being cancelled")


def _failure(
    index: int, error: OmniMindError, status_for: Callable[[OmniMindError], int]
) -> dict[str, Any]:
    return {"index": index, "status": status_for(error), "detail": error.detail}
