"""The REST API: the Quart app over the :class:`~omnimind_trio.Daemon` facade.

Every route requires HTTP Basic credentials (:mod:`._auth` checks them), after the browser
rules of :mod:`._origins` (Host, Origin, CORS preflight). Errors are JSON ``{"detail": ...}``;
the one place that maps exceptions to status codes is :mod:`._errors`. Route handlers are
thin: parse a model, call the daemon, dump a model.
"""

from __future__ import annotations

import logging

from quart import Response, g, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from ..credentials import Credentials, Keyring
from ..daemon import Daemon
from ..exceptions import OmniMindError
from ._auth import Guard
from ._batch import add_batch_route
from ._body import has_body
from ._dashboard import add_dashboard_routes
from ._errors import error_response, status_for
from ._executions import add_execution_routes
from ._metrics import RequestMetrics
from ._origins import install_origin_checks
from ._routing import Routes
from ._service import add_service_routes
from ._tasks import add_task_routes

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


def create_app(daemon: Daemon, credentials: Credentials | Keyring) -> QuartTrio:
    """The ASGI app serving ``daemon``, behind ``credentials`` (a :class:`Keyring` to
    replace them while it serves)."""
    app = QuartTrio("omnimind_trio")
    app.url_map.converters["task_id"] = TaskIdConverter
    app.config["MAX_CONTENT_LENGTH"] = daemon.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    requests = RequestMetrics()
    routes = Routes(app)
    keyring = credentials if isinstance(credentials, Keyring) else Keyring(credentials)
    guard = Guard(keyring, routes, requests, failure_limit=daemon.settings.auth_failure_limit)
    add_service_routes(routes, daemon, guard, requests)
    add_task_routes(routes, daemon)
    add_batch_route(routes, daemon)
    add_execution_routes(routes, daemon)
    add_dashboard_routes(routes)
    app.extensions["omnimind_routes"] = routes

    install_origin_checks(app, daemon.settings)  # first: before credentials are asked for

    @app.before_request
    async def authenticate() -> Response | None:
        return guard.check_request(request)

    @app.before_websocket
    async def authenticate_websocket() -> Response | None:
        return guard.check_websocket(websocket)

    @app.after_request
    async def finish(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        requests.count(request.method, rule, response.status_code)
        if has_body() and not g.get("body_read", False):
            # We answered without reading the body (401, 404, 405, 413...). Nobody will
            # read it now, and hypercorn would wait for it to be consumed before the next
            # request on this keep-alive connection: that client would hang. Close instead.
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(OmniMindError)
    async def domain_error(error: OmniMindError) -> Response:
        return error_response(status_for(error), error.detail)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 413:
            detail = f"Request body is larger than {daemon.settings.max_body_bytes} bytes"
        elif status == 404:
            detail = f"Not found: {request.path}"
        elif status == 415:
            detail = "Content-Type must be application/json"
        elif status == 405:
            detail = f"Method {request.method} is not allowed on {request.path}"
        else:
            detail = error.description or error.name
        response = error_response(status, detail)
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    async def internal_error(error: Exception) -> Response:
        log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
        return error_response(500, "Internal server error")

    return app


class TaskIdConverter(BaseConverter):
    """A task id in a path; never ``add`` or ``batch``, so ``/daemon/tasks/add`` answers
    only to its own route (and a 405 lists the right methods)."""

    regex = r"(?!(?:add|batch)/?$)[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
