"""Bounds of the inputs: written once in the models, found in the OpenAPI document and the
messages; NaN and infinity refused as "a finite number" wherever a number comes in."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from omnimind_trio import Settings
from omnimind_trio.cli._main import main
from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app
from omnimind_trio.http._openapi import openapi_document
from omnimind_trio.models import (
    OPTION_FIELDS,
    TASK_FIELD_TYPES,
    ExecutionQuery,
    TaskQuery,
    base_type,
    integer_bounds,
)

from .test_api import TASK, call, client

__all__ = ["client"]  # the fixture, re-used

DAEMON_QUERIES = (TaskQuery, ExecutionQuery)
FLOAT_FIELDS = [name for name in OPTION_FIELDS if base_type(TASK_FIELD_TYPES[name])[0] is float]


def field_bounds(model: type[Any], name: str) -> tuple[int | None, int | None]:
    """The (ge, le) a model's field declares, through ``X | None``."""
    hint = typing.get_type_hints(model, include_extras=True)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return integer_bounds(hint)


async def test_every_bounded_query_parameter_has_its_bounds_in_the_document(
    daemon: Daemon,
) -> None:
    app = create_app(daemon, Credentials("u", "p", "environment"))
    operations = app.extensions["omnimind_routes"].operations
    document = openapi_document(operations, "http://x")
    checked = []
    for op in operations:
        if op.query is None:
            continue
        described = document["paths"][op.path][op.method]["parameters"]
        schemas = {p["name"]: p["schema"] for p in described if p["in"] == "query"}
        for name in op.query.model_fields:
            low, high = field_bounds(op.query, name)
            if low is None and high is None:
                continue
            schema = schemas[name]
            assert schema["type"] == "integer", (op.path, name)
            assert (schema.get("minimum"), schema.get("maximum")) == (low, high), (op.path, name)
            # The same bounds as the daemon's own query (one definition, not two that agree).
            for query in DAEMON_QUERIES:
                if name in query.model_fields:
                    assert field_bounds(query, name) == (low, high), (query, name)
            checked.append((op.path, name))
    # limit and offset of the three list routes, at least
    assert {name for _, name in checked} >= {"limit", "offset"}
    assert len(checked) >= 6, checked


async def test_a_query_bound_is_worded_from_the_same_definition(client: Any) -> None:
    low, high = field_bounds(ExecutionQuery, "offset")
    response = await call(client, "GET", f"/daemon/executions?offset={high + 1}")
    assert response.status_code == 400
    assert await response.get_json() == {"detail": f"offset must be between {low} and {high}"}


def test_the_task_has_float_fields_to_check() -> None:
    assert {"timeout_seconds", "max_delay_hours"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_non_finite_number_is_refused_as_such_on_add_patch_and_batch(
    client: Any, name: str, token: str
) -> None:
    finite = {"detail": f"{name}: Input should be a finite number"}

    def with_token(body: Any) -> str:
        """``body`` as JSON, with ``token`` (not JSON's own, but Python's json reads it)
        where the placeholder is."""
        return json.dumps(body).replace('"<token>"', token)

    add = with_token({**TASK, name: "<token>"})
    response = await call(client, "POST", "/daemon/tasks/add", add)
    assert (response.status_code, await response.get_json()) == (400, finite)

    assert (await call(client, "POST", "/daemon/tasks/add", TASK)).status_code == 200
    patch = with_token({name: "<token>"})
    response = await call(client, "PATCH", f"/daemon/tasks/{TASK['task_id']}", patch)
    assert (response.status_code, await response.get_json()) == (400, finite)

    task = {**TASK, "task_id": "other", name: "<token>"}
    batch = with_token({"operations": [{"op": "add", "task": task}]})
    response = await call(client, "POST", "/daemon/tasks/batch", batch)
    [result] = (await response.get_json())["results"]
    assert (result["status"], result["detail"]) == (400, finite["detail"])


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_setting_is_refused_as_such(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OMNIMIND_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="Input should be a finite number"):
        Settings()


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_the_cli_refuses_a_non_finite_option_before_sending_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Any, name: str
) -> None:
    code = tmp_path / "task.py"
    code.write_text("def execute():\n    return 1\n")
    flag = "--" + name.replace("_", "-")
    # An address nothing listens on: the option must be refused before any request.
    ran = main(["--url", "http://127.0.0.1:9", "add", str(code), "--id", "x", flag, "nan"])
    assert ran == 2  # a usage error, not a traceback
    assert f"argument {flag}: must be a finite number, not 'nan'" in capsys.readouterr().err
