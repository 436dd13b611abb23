"""Reading a request's JSON body."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from quart import Response, g, request
from werkzeug.exceptions import UnsupportedMediaType

from ..exceptions import InvalidInput


async def json_body() -> Any:
    """The request's JSON. Raises InvalidInput (400), or 415 unless it is JSON."""
    # A JSON Content-Type is also what keeps a plain HTML form of another site out: a
    # browser sends it only after a CORS preflight, which this API never grants.
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    data = await request.get_data(cache=False)
    g.body_read = True
    if not data:
        raise InvalidInput("Request body is empty: a JSON object is required")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}") from None


async def json_object() -> dict[str, Any]:
    """The request's JSON, which must be an object."""
    body = await json_body()
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    return body


def has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")


def respond(body: BaseModel) -> Response:
    """A model as the JSON answer (``json_text`` where the model defines it)."""
    text = body.json_text() if hasattr(body, "json_text") else body.model_dump_json()
    return Response(text, content_type="application/json")
