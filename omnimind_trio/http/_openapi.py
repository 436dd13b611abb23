"""The OpenAPI 3.0 document served at ``GET /openapi.json``.

Request bodies come from the pydantic model that validates them (:class:`TaskCreate`), so
the document cannot drift from the validation; responses are described here, next to
nothing else, and checked against the live server by the schemathesis test.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import __version__
from ..models import DaemonState, OnBusy, OnMissed, Outcome, Overlap, Priority, TaskCreate, Trigger
from ._queries import MAX_LIMIT, TASK_SORT_KEYS, TASK_STATUSES

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _object(
    properties: dict[str, Any], *, required: list[str] | None = None, closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:  # the server rejects unknown fields
        schema["additionalProperties"] = False
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
MOMENT = {
    "type": "string",
    "pattern": r"^(\d{1,12}(\.\d+)?|\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
    r"(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?)$",
}


def _csv_of(options: list[str]) -> dict[str, Any]:
    one = "|".join(options)
    return {"type": "string", "pattern": f"^({one})(,({one}))*$"}


def _schemas() -> dict[str, Any]:
    task_summary = {
        "task_id": STRING,
        "name": STRING,
        "description": STRING,
        "priority": {"type": "string", "enum": list(Priority.__members__)},
        "execution_count": INTEGER,
        "success_count": INTEGER,
        "failure_count": INTEGER,
        "last_execution": _nullable(TIME),
        "repeat_interval": _nullable(STRING),
    }
    execution = {
        "execution_id": STRING,
        "task_id": STRING,
        "trigger": {"type": "string", "enum": [t.value for t in Trigger]},
        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
        "reason": _nullable(STRING),
        "result": {"nullable": True, "description": "What execute() returned (any JSON)."},
        "scheduled_at": TIME,
        "started_at": _nullable(TIME),
        "finished_at": _nullable(TIME),
        "duration_seconds": _nullable(NUMBER),
        "cpu_seconds": _nullable(NUMBER),
        "max_rss_mb": _nullable(NUMBER),
        "attempt": INTEGER,
        "pauses": {
            "type": "array",
            "items": _object({"frozen_at": TIME, "thawed_at": _nullable(TIME)}),
        },
        "frozen_seconds": NUMBER,
    }
    add = TaskCreate.model_json_schema(ref_template="#/$defs/{model}")
    add["properties"]["priority"] = {"type": "string", "enum": list(Priority.__members__)}
    definitions = add.pop("$defs", {})
    for name, prop in add["properties"].items():  # inline the enums pydantic refers to
        if "$ref" in prop:
            target = definitions[prop.pop("$ref").rsplit("/", 1)[1]]
            add["properties"][name] = {
                **prop,
                "type": "string",
                "enum": target["enum"],
                "description": target.get("description", ""),
            }
    for name, prop in add["properties"].items():
        if "anyOf" in prop:  # pydantic's "X or null" in OpenAPI 3.0 terms
            options = [o for o in prop.pop("anyOf") if o.get("type") != "null"]
            add["properties"][name] = prop = {**prop, **options[0], "nullable": True}
        if "exclusiveMinimum" in prop:  # a number in JSON Schema 2020, a flag in OpenAPI 3.0
            prop["minimum"], prop["exclusiveMinimum"] = prop["exclusiveMinimum"], True
    patch = {**add, "required": [], "title": "TaskPatch"}
    return {
        "Error": _object({"detail": STRING}),
        "Status": _object(
            {
                "state": {"type": "string", "enum": [s.value for s in DaemonState]},
                "running": BOOLEAN,
                "tasks_registered": INTEGER,
                "tasks_pending": INTEGER,
                "metrics": _object(
                    {
                        "cpu_percent": NUMBER,
                        "memory_percent": NUMBER,
                        "is_idle": BOOLEAN,
                        "is_sleep_time": BOOLEAN,
                    }
                ),
                "cloud_enabled": BOOLEAN,
                "workspace": STRING,
            }
        ),
        "TaskSummary": _object(task_summary),
        "TaskList": _object(
            {"tasks": {"type": "array", "items": _ref("TaskSummary")}, "total_tasks": INTEGER}
        ),
        "TaskDetail": _object(
            {
                **task_summary,
                "status": {"type": "string", "enum": list(TASK_STATUSES)},
                "kind": {"type": "string", "enum": ["code", "in_process"]},
                "code": _nullable(STRING),
                "repeat_hours": _nullable(INTEGER),
                "timeout_seconds": NUMBER,
                "max_memory_mb": _nullable(INTEGER),
                "max_cpu_seconds": _nullable(INTEGER),
                "paused": BOOLEAN,
                "created_at": TIME,
                "next_execution": _nullable(TIME),
                "waiting_since": _nullable(TIME),
                "waiting_reason": _nullable(STRING),
                "running_execution_id": _nullable(STRING),
                "on_busy": {"type": "string", "enum": [p.value for p in OnBusy]},
                "overlap": {"type": "string", "enum": [p.value for p in Overlap]},
                "on_missed": {"type": "string", "enum": [p.value for p in OnMissed]},
                "max_retries": INTEGER,
                "max_delay_hours": _nullable(NUMBER),
                "retry_attempt": INTEGER,
                "waiting": {
                    "type": "object",
                    "nullable": True,
                    "description": "Why the task does not run now and when it should: "
                    "reason (paused, done, scheduled, backoff, gate, slot, catch_up, "
                    "starting, stopped), detail, and the measurements behind it.",
                    "properties": {"reason": STRING, "detail": STRING},
                    "required": ["reason", "detail"],
                },
            }
        ),
        "TaskCreate": add,
        "TaskPatch": patch,
        "TaskAction": _object({"status": STRING, "task_id": STRING, "message": STRING}),
        "TaskUpdated": _object(
            {"status": STRING, "task_id": STRING, "message": STRING, "task": _ref("TaskDetail")}
        ),
        "DaemonAction": _object(
            {
                "status": {
                    "type": "string",
                    "enum": ["started", "already_running", "stopped", "not_running"],
                },
                "message": STRING,
            }
        ),
        "ExecutionSummary": _object(execution),
        "Execution": _object({**execution, "stdout": STRING, "stderr": STRING}),
        "ExecutionList": _object(
            {"executions": {"type": "array", "items": _ref("ExecutionSummary")}, "total": INTEGER}
        ),
        "AddOperation": _object(
            {"op": {"type": "string", "enum": ["add"]}, "task": _ref("TaskCreate")}, closed=True
        ),
        "TaskOperation": _object(
            {
                "op": {"type": "string", "enum": ["delete", "pause", "resume", "run", "cancel"]},
                "task_id": {"type": "string", "minLength": 1},
            },
            closed=True,
        ),
        "BatchRequest": _object(
            {
                "atomic": {"type": "boolean", "default": False},
                "operations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    # Any item is accepted and answered in its own result (400 if it is not
                    # an AddOperation or a TaskOperation), so the schema does not narrow it.
                    "items": {
                        "description": "An AddOperation or a TaskOperation; anything else "
                        "gets a 400 in its own result."
                    },
                },
            },
            required=["operations"],
            closed=True,
        ),
        "BatchResponse": _object(
            {
                "results": {
                    "type": "array",
                    "items": _object(
                        {
                            "index": INTEGER,
                            "status": INTEGER,
                            "result": _ref("TaskAction"),
                            "detail": STRING,
                        },
                        required=["index", "status"],
                    ),
                },
                "applied": INTEGER,
            }
        ),
        "WebSocketToken": _object({"token": STRING, "expires_in": NUMBER}),
    }


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Invalid input; nothing was changed",
        401: "Missing or invalid credentials",
        404: "Unknown id",
        409: "Conflicts with the current state",
        413: "Body over the size limit",
        415: "The body is not application/json",
        503: "The database refused the write, or the task worker is unreachable; "
        "nothing was changed",
    }
    return {str(code): _json_response(words[code], "Error") for code in (401, *codes)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": STRING}
PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size."),
    _query("offset", {"type": "integer", "minimum": 0}, "Items to skip."),
]
EXECUTION_FILTERS = [
    _query("outcome", {"type": "string", "enum": [o.value for o in Outcome]}, "Outcome."),
    _query("since", MOMENT, "Scheduled at or after (ISO-8601, UTC if no zone, or epoch seconds)."),
    _query("until", MOMENT, "Scheduled before (ISO-8601, UTC if no zone, or epoch seconds)."),
    *PAGE,
]


def _action(summary: str, *errors: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [TASK_ID],
            "responses": {"200": _json_response("Done", "TaskAction"), **_errors(404, *errors)},
        }
    }


def _paths() -> dict[str, Any]:
    body = {"required": True, "content": {JSON: {"schema": _ref("TaskCreate")}}}
    return {
        "/daemon/status": {
            "get": {
                "summary": "State of the daemon and system metrics",
                "responses": {"200": _json_response("Status", "Status"), **_errors()},
            }
        },
        "/daemon/tasks": {
            "get": {
                "summary": "List tasks (filter, sort, page)",
                "parameters": [
                    _query(
                        "priority",
                        _csv_of(list(Priority.__members__)),
                        "Comma-separated priorities.",
                    ),
                    _query(
                        "status",
                        _csv_of(list(TASK_STATUSES)),
                        "Comma-separated: " + ", ".join(TASK_STATUSES),
                    ),
                    _query("q", STRING, "Text in id, name or description (any case)."),
                    _query(
                        "sort",
                        {
                            "type": "string",
                            "enum": [*TASK_SORT_KEYS, *(f"-{k}" for k in TASK_SORT_KEYS)],
                        },
                        "Field to sort by; '-' first for descending.",
                    ),
                    *PAGE,
                ],
                "responses": {"200": _json_response("Tasks", "TaskList"), **_errors(400)},
            }
        },
        "/daemon/tasks/add": {
            "post": {
                "summary": "Add a task",
                "requestBody": body,
                "responses": {
                    "200": _json_response("Added", "TaskAction"),
                    **_errors(400, 409, 413, 415, 503),
                },
            }
        },
        "/daemon/tasks/batch": {
            "post": {
                "summary": "Many operations at once",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("BatchRequest")}},
                },
                "responses": {
                    "200": _json_response("One result per operation", "BatchResponse"),
                    **_errors(400, 413, 415),
                },
            }
        },
        "/daemon/tasks/{task_id}": {
            "get": {
                "summary": "One task, with its schedule and why it waits",
                "parameters": [TASK_ID],
                "responses": {"200": _json_response("Task", "TaskDetail"), **_errors(404)},
            },
            "patch": {
                "summary": "Change a task",
                "parameters": [TASK_ID],
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("TaskPatch")}}},
                "responses": {
                    "200": _json_response("Updated", "TaskUpdated"),
                    **_errors(400, 404, 413, 415, 503),
                },
            },
            "delete": {
                "summary": "Delete a task (its history stays); 409 for an in-process task",
                "parameters": [TASK_ID],
                "responses": {
                    "200": _json_response("Deleted", "TaskAction"),
                    **_errors(404, 409, 503),
                },
            },
        },
        "/daemon/tasks/{task_id}/run": _action("Run now, whatever the gate", 409),
        "/daemon/tasks/{task_id}/cancel": _action("Kill the running execution", 409),
        "/daemon/tasks/{task_id}/pause": _action("Pause", 503),
        "/daemon/tasks/{task_id}/resume": _action("Resume", 503),
        "/daemon/tasks/{task_id}/executions": {
            "get": {
                "summary": "A task's executions, newest first",
                "parameters": [TASK_ID, *EXECUTION_FILTERS],
                "responses": {
                    "200": _json_response("Executions", "ExecutionList"),
                    **_errors(400, 404),
                },
            }
        },
        "/daemon/executions": {
            "get": {
                "summary": "All executions, newest first",
                "parameters": [_query("task_id", STRING, "Task."), *EXECUTION_FILTERS],
                "responses": {"200": _json_response("Executions", "ExecutionList"), **_errors(400)},
            }
        },
        "/daemon/executions/{execution_id}": {
            "get": {
                "summary": "One execution with its output",
                "parameters": [
                    {"name": "execution_id", "in": "path", "required": True, "schema": STRING}
                ],
                "responses": {"200": _json_response("Execution", "Execution"), **_errors(404)},
            }
        },
        "/daemon/start": {
            "post": {
                "summary": "Start the daemon",
                "responses": {"200": _json_response("Started", "DaemonAction"), **_errors()},
            }
        },
        "/daemon/stop": {
            "post": {
                "summary": "Stop the daemon (kills running executions)",
                "responses": {"200": _json_response("Stopped", "DaemonAction"), **_errors()},
            }
        },
        "/daemon/ws/token": {
            "post": {
                "summary": "A single-use token for /daemon/ws?token= (browsers)",
                "responses": {"200": _json_response("Token", "WebSocketToken"), **_errors()},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": STRING}},
                    },
                    **_errors(),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(),
                },
            }
        },
    }


@cache
def openapi_document(server_url: str = "http://127.0.0.1:8000") -> dict[str, Any]:
    """The document, naming ``server_url`` as the server (cached per URL)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "OmniMind Daemon API",
            "version": __version__,
            "description": "Local background-task daemon. WebSocket live updates at "
            "/daemon/ws (see docs/api.md). Any request that changes state, and the "
            "WebSocket, is refused with 403 when a browser sends it from another origin "
            "(see OMNIMIND_ALLOWED_ORIGINS).",
        },
        "servers": [{"url": server_url}],
        "security": [{"basic": []}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": _schemas(),
        },
        "paths": _paths(),
    }
