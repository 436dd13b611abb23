"""The HTTP API: the Quart app over the daemon facade, and the hypercorn server that
serves it. Routes describe themselves (:mod:`._routing`); the OpenAPI document is generated
from them. Imports: the daemon facade, models, exceptions, config, credentials.
"""

from ._app import create_app
from ._server import (
    check_bind,
    check_transport,
    describe_bind_error,
    hypercorn_config,
    serve_api,
    serve_http,
)

__all__ = [
    "check_bind",
    "check_transport",
    "create_app",
    "describe_bind_error",
    "hypercorn_config",
    "serve_api",
    "serve_http",
]
