"""``POST /daemon/tasks/batch``: many task operations in one request.

Every operation gets its own result: ``index``, an HTTP status code as ``status``, and
either ``result`` (what the single endpoint would answer) or ``detail`` (its error).
With ``"atomic": true`` the whole batch is checked first (validation, ids, running state)
and nothing is applied unless every operation passes; the ones that would have passed
then answer 424. An operation can still fail once the check has passed (the database
refuses the write: 503); the operations after it then answer 424 and are not applied, and
the ones before it stay applied: there is no rollback across operations.

An add directly followed by a pause of the task it adds (as an export of a paused task is)
adds the task paused, so that it cannot start in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..daemon import Daemon, unknown_upstream, waited_on
from ..exceptions import Conflict, InvalidInput, OmniMindError, TaskExists, TaskNotFound
from ..models import ActionResult, Overlap, Response, TaskSpec, TaskStatus, parse_task_spec
from ._body import json_body
from ._errors import status_for
from ._routing import Routes
from ._tasks import action, run_requested

MAX_OPERATIONS = 1000
TASK_OPS = ("delete", "pause", "resume", "run", "cancel")


def add_batch_route(routes: Routes, daemon: Daemon) -> None:
    @routes.route(
        "POST",
        "/daemon/tasks/batch",
        "Many task operations in one request",
        response=BatchResponse,
        body=BatchRequest,
        errors=(400, 413, 415),
    )
    async def batch() -> dict[str, Any]:
        return await run_batch(daemon, await json_body())


async def run_batch(daemon: Daemon, body: Any) -> dict[str, Any]:
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
                    results.append(_failure(index, problem))
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
            results.append(_failure(index, item))
            continue
        try:
            body = await _apply(daemon, *item, paused=_paused_next(parsed, index))
        except OmniMindError as exc:
            results.append(_failure(index, exc))
            failed = True
        else:
            results.append({"index": index, "status": 200, "result": body.json_body()})
            applied += 1
    return {"results": results, "applied": applied}


class BatchRequest(BaseModel):
    """The body of ``POST /daemon/tasks/batch``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    atomic: bool = Field(default=False, description="Apply nothing unless every operation can be")
    # Items are checked one by one, each answering on its own (a bad one is a 400 among
    # the results, not a refused batch): any JSON value is a valid item here.
    operations: list[Any] = Field(
        min_length=1,
        max_length=MAX_OPERATIONS,
        description='{"op": "add", "task": {...}} or {"op": "delete|pause|resume|run|cancel", '
        '"task_id": ...}',
    )
    omitted_secrets: dict[str, list[str]] | None = Field(
        default=None,
        description="What an export (GET /daemon/export) left out; ignored, so that an "
        "export is a batch body as it is",
    )


class BatchResult(BaseModel):
    """One operation's answer: ``result`` when it was applied, else ``detail``."""

    index: int
    status: int = Field(description="The HTTP status the single endpoint would answer")
    result: ActionResult | None = None
    detail: str | None = None


class BatchResponse(Response):
    results: list[BatchResult]
    applied: int


def _envelope(body: Any) -> tuple[bool, list[Any]]:
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    try:
        request = BatchRequest.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An unknown field first: {"ops": [...]} is a misspelling, not missing operations.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        field = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            raise InvalidInput(f"Unknown field: {field}") from None
        if field == "atomic":
            raise InvalidInput("atomic must be true or false") from None
        if field == "omitted_secrets":
            raise InvalidInput(
                "omitted_secrets must map task ids to lists of secret names (as an export"
                " writes it)"
            ) from None
        if error["type"] == "too_long":
            raise InvalidInput(f"operations must hold at most {MAX_OPERATIONS} items") from None
        if len(error["loc"]) > 1:  # an operation that is not an object: answered on its own
            return bool(body.get("atomic", False)), body["operations"]
        raise InvalidInput("operations must be a non-empty list") from None
    return request.atomic, request.operations


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
    seen = _Seen()
    problems: list[OmniMindError | None] = []
    for item in parsed:
        if isinstance(item, OmniMindError):
            problems.append(item)
            continue
        op, task_id, spec = item
        problems.append(await _problem(daemon, op, task_id, spec, seen))
    return problems


@dataclass
class _Seen:
    """What the operations before this one did: tasks ``added`` (with their ``after``),
    ``deleted``, and run ``requested``."""

    added: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    requested: set[str] = field(default_factory=set)


async def _problem(
    daemon: Daemon,
    op: str,
    task_id: str,
    spec: TaskSpec | None,
    seen: _Seen,
) -> OmniMindError | None:
    """What would go wrong with one operation, after the ones before it."""
    added, deleted, requested = seen.added, seen.deleted, seen.requested

    def exists(other: str) -> bool:
        if other in added:
            return True
        return other not in deleted and daemon.has_task(other)  # no detail built: cheap

    try:
        task = None if task_id in deleted or task_id in added else daemon.get_task(task_id)
    except TaskNotFound:
        task = None
    if op == "add":
        assert spec is not None and spec.code is not None
        try:
            await daemon.check_code(spec.code, spec.python)
        except OmniMindError as exc:
            return exc
        if exists(task_id):
            return TaskExists(task_id)
        unknown = unknown_upstream(spec, exists)  # may follow a task added before it
        if unknown is not None:
            return unknown
        added[task_id] = spec.after or ()
        deleted.discard(task_id)
        return None
    if not exists(task_id):
        return TaskNotFound(task_id)
    running = task is not None and task.status in (TaskStatus.RUNNING, TaskStatus.FROZEN)
    if op == "delete":
        if task is not None and task.kind == "in_process":
            return Conflict(
                f"Task {task_id} is registered by the program running the daemon and comes "
                "back at every start: pause it instead"
            )
        waiting = [other for other in daemon.waiting_on(task_id) if other not in deleted]
        waiting += [other for other, after in added.items() if task_id in after]
        if waiting:
            return waited_on(task_id, waiting)
        deleted.add(task_id)
        added.pop(task_id, None)
    elif op == "run" and task is not None:
        try:
            daemon.check_run_now(task_id)
        except OmniMindError as exc:
            return exc
        if task_id in requested and task.overlap in (Overlap.SKIP, Overlap.REPLACE):
            return Conflict(f"Task already has a run requested: {task_id} (earlier in the batch)")
        requested.add(task_id)
    elif op == "cancel" and not running:
        return Conflict(f"Task is not running: {task_id}")
    return None


def _paused_next(
    parsed: list[tuple[str, str, TaskSpec | None] | OmniMindError], index: int
) -> bool:
    """Whether the operation after an add pauses the task it adds (as an export of a paused
    task does): the add then adds it paused, so it cannot start in between."""
    item = parsed[index]
    following = parsed[index + 1] if index + 1 < len(parsed) else None
    return (
        not isinstance(item, OmniMindError)
        and item[0] == "add"
        and not isinstance(following, OmniMindError | None)
        and following[:2] == ("pause", item[1])
    )


async def _apply(
    daemon: Daemon, op: str, task_id: str, spec: TaskSpec | None, *, paused: bool = False
) -> ActionResult:
    if op == "add":
        assert spec is not None
        added = await daemon.add_task(spec, paused=paused)
        return action("task_added", added, "added successfully")
    if op == "delete":
        return action("task_deleted", await daemon.delete_task(task_id), "deleted")
    if op == "pause":
        return action("paused", await daemon.pause_task(task_id), "paused")
    if op == "resume":
        return action("resumed", await daemon.resume_task(task_id), "resumed")
    if op == "run":
        return await run_requested(daemon, task_id)
    return action("cancel_requested", daemon.cancel_task(task_id), "is being cancelled")


def _failure(index: int, error: OmniMindError) -> dict[str, Any]:
    return {"index": index, "status": status_for(error), "detail": error.detail}
