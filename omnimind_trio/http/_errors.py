"""Errors as HTTP answers: the one place that maps exceptions to status codes."""

from __future__ import annotations

import json
from typing import Final

from quart import Response

from ..exceptions import (
    Conflict,
    ExecutorError,
    InvalidInput,
    NotFound,
    OmniMindError,
    StoreError,
)

STATUS_FOR: Final[dict[type[OmniMindError], int]] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
    ExecutorError: 503,
    StoreError: 503,
}
REALM: Final = 'Basic realm="omnimind", charset="UTF-8"'
UNAUTHENTICATED: Final = "Not authenticated: valid HTTP Basic credentials are required"


def status_for(error: OmniMindError) -> int:
    """The HTTP status of a domain error."""
    return next((code for kind, code in STATUS_FOR.items() if isinstance(error, kind)), 500)


def error_response(status: int, detail: str) -> Response:
    """``{"detail": ...}`` with ``status``: every error the API answers."""
    return Response(json.dumps({"detail": detail}), status=status, content_type="application/json")


def unauthenticated() -> Response:
    response = error_response(401, UNAUTHENTICATED)
    response.headers["WWW-Authenticate"] = REALM
    return response
