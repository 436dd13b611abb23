"""The OpenAPI 3.1 document served at ``GET /openapi.json``, generated from the routes.

Every path comes from a registered :class:`~._routing.Operation`; every schema from the
pydantic model the route names (responses in serialization mode, bodies and query
parameters in validation mode). Nothing here describes a field: a new field of a model
appears in the document by itself. Imported on the first request for the document only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .._version import __version__
from ..models import TASK_ID_PATTERN, ErrorBody
from ._routing import Operation

JSON: Final = "application/json"
ERROR_WORDS: Final = {
    400: "Invalid input; nothing was changed",
    401: "Missing or invalid credentials",
    403: "Refused: a browser request from another origin, or a read-only credential",
    404: "Unknown id",
    409: "Conflicts with the current state",
    413: "Body over the size limit",
    415: "The body is not application/json",
    421: "The Host header names a host the daemon does not serve (see OMNIMIND_ALLOWED_HOSTS)",
    429: "Too many failed authentication attempts from this address (see Retry-After)",
    503: "The database refused the write, or the task worker is unreachable; nothing was changed",
}
PATH_PARAMETERS: Final = {
    "task_id": {"type": "string", "pattern": TASK_ID_PATTERN},
    "execution_id": {"type": "string"},
}
DESCRIPTION: Final = (
    "Local background-task daemon. WebSocket live updates at /daemon/ws (see docs/api.md). "
    "Any request that changes state, and the WebSocket, is refused with 403 when a browser "
    "sends it from another origin (see OMNIMIND_ALLOWED_ORIGINS). A viewer credential "
    "(OMNIMIND_VIEWER_USER) may only read: GET, /metrics, the WebSocket and its token; "
    "anything else answers 403. An address with too many failed authentication attempts "
    "gets 429 with Retry-After."
)
Mode = Literal["validation", "serialization"]


def openapi_document(operations: Sequence[Operation], server_url: str) -> dict[str, Any]:
    """The document for ``operations`` (those ``documented``), naming ``server_url`` as
    the server."""
    operations = [op for op in operations if op.documented]
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorBody, "serialization")]
    for op in operations:
        if op.response is not None:
            wanted.append((op.response, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    keys, schemas = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, keys)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OmniMind Daemon API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": server_url}],
        "security": [{"basic": []}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": schemas.get("$defs", {}),
        },
        "paths": paths,
    }


def _operation(op: Operation, keys: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if op.response is None:  # a body that no model describes: a text, or a JSON object
        body = {"type": "object"} if op.content_type == JSON else {"type": "string"}
        ok: dict[str, Any] = {
            "description": op.response_description,
            "content": {op.content_type: {"schema": body}},
        }
    else:
        ok = {
            "description": op.response_description,
            "content": {JSON: {"schema": keys[(op.response, "serialization")]}},
        }
    error = {"content": {JSON: {"schema": keys[(ErrorBody, "serialization")]}}}
    # 403: a viewer may only read; 421: a Host the daemon does not serve.
    refusals = (401, 421, 429) if op.reads else (401, 403, 421, 429)
    codes = sorted({*refusals, *op.errors, *((404,) if op.path_parameters else ())})
    described: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "responses": {
            "200": ok,
            **{str(code): {"description": ERROR_WORDS[code], **error} for code in codes},
        },
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in op.path_parameters
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": keys[(op.body, "validation")]}},
        }
    return described


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _inline(_non_null(prop), schema.get("$defs", {}))
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {
                k: v
                for k, v in prop.items()
                if k not in ("title", "description") and not (k == "default" and v is None)
            },
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        if prop.get("type") == "array":  # priority=HIGH,LOW
            parameter["style"], parameter["explode"] = "form", False
        parameters.append(parameter)
    return parameters


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent, never null: drop pydantic's ``null`` alternative."""
    options = [o for o in prop.get("anyOf", ()) if o.get("type") != "null"]
    if len(options) != 1:
        return prop
    merged = {k: v for k, v in prop.items() if k != "anyOf"}
    return {**options[0], **merged}


def _inline(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref``s to the model's own definitions (enums) with their content."""
    if "$ref" in prop:
        target = definitions[prop["$ref"].rsplit("/", 1)[1]]
        prop = {**{k: v for k, v in target.items() if k != "title"}, **prop}
        del prop["$ref"]
    if "items" in prop:
        prop = {**prop, "items": _inline(prop["items"], definitions)}
    return prop


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace("/", "_").replace(".", "_")
    return f"{op.method}_{words}"
