"""The OpenAPI document matches the routes, and schemathesis finds nothing against it."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app
from omnimind_trio.http._openapi import openapi_document
from omnimind_trio.models import TASK_FIELDS

from .test_process import PASS, USER, Served, spawn

__all__ = ["spawn"]


async def test_every_route_is_documented_and_every_documented_route_exists(daemon: Daemon) -> None:
    app = create_app(daemon, Credentials("u", "p", "environment"))
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.websocket:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    operations = app.extensions["omnimind_routes"].operations
    document = openapi_document(operations, "http://x")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    # The dashboard's page and files are routes of the app, described to the Guard, left
    # out of the API's document.
    undocumented = {(op.path, op.method) for op in operations if not op.documented}
    assert undocumented == {("/", "get"), ("/dashboard/{version}/{name}", "get")}
    assert served == documented | undocumented


async def test_the_document_is_valid_openapi_3_1_and_names_every_model_field(
    daemon: Daemon,
) -> None:
    app = create_app(daemon, Credentials("u", "p", "environment"))
    document = openapi_document(app.extensions["omnimind_routes"].operations, "http://x")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    schemas = document["components"]["schemas"]
    # Generated from the models: every task field is in the add body, the patch body and
    # the detail, without a line of the document naming it.
    for name in TASK_FIELDS:
        assert name in schemas["TaskCreate"]["properties"], name
        assert name in schemas["TaskPatch"]["properties"], name
        assert name in schemas["TaskDetail"]["properties"], name
    assert set(schemas["TaskCreate"]["required"]) == {
        "task_id", "name", "description", "priority", "code"
    }  # fmt: skip
    assert schemas["TaskPatch"].get("required", []) == []
    limit = next(
        p for p in document["paths"]["/daemon/executions"]["get"]["parameters"]
        if p["name"] == "offset"
    )  # fmt: skip
    assert limit["schema"]["maximum"] == 10**9


SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.mark.slow
@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
def test_schemathesis_finds_no_server_error_and_no_contradiction(
    spawn: Callable[..., Served], tmp_path: Path
) -> None:
    # schemathesis tries wrong credentials on every operation (its ignored_auth check):
    # with the failure throttle on, its later requests would all be 429.
    served = spawn(env={"OMNIMIND_AUTH_FAILURE_LIMIT": "0"})
    # Semantic rules (code must define execute(), a date must exist) cannot be written in
    # a schema, so "schema-valid request rejected" is not checked; every other check is.
    command: list[Any] = [
        SCHEMATHESIS, "run", f"{served.url}/openapi.json", "--auth", f"{USER}:{PASS}",
        "--max-examples", "12", "--seed", "20261126", "--exclude-checks",
        "positive_data_acceptance", "--request-timeout", "10", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
    )
    summary = result.stdout[-3000:]
    print(summary)
    assert result.returncode == 0, summary
    assert "Internal server error" not in served.stderr()


async def test_the_servers_entry_is_where_the_request_was_sent(daemon: Daemon) -> None:
    """docs/api.md: the scheme, host and port of the request (its Host header), so the
    real port and the name the daemon was called by, never a fixed 8000."""
    app = create_app(daemon, Credentials("u", "pass", "environment"))
    client = app.test_client()
    basic = "Basic " + base64.b64encode(b"u:pass").decode()
    for host in ("127.0.0.1:8000", "localhost:9123", "[::1]:41234"):
        response = await client.get("/openapi.json", headers={"Host": host, "Authorization": basic})
        assert response.status_code == 200, host
        assert (await response.get_json())["servers"] == [{"url": f"http://{host}"}]
