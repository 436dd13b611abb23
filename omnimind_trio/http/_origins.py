"""Who may call the API from a browser: the ``Host`` check, the ``Origin`` check and CORS.

Browsers are the one kind of client that can be made to call the daemon by someone else (a
web page), so three rules apply to them, all before credentials are checked
(:func:`install_origin_checks` registers them ahead of authentication):

- **Host** (DNS rebinding). A page on ``http://evil.example:8000`` whose name its owner
  re-points at 127.0.0.1 reaches the daemon as a page of the same origin, with
  ``Host: evil.example:8000``. Only the names the daemon serves are answered: ``localhost``,
  ``127.0.0.1``, ``[::1]``, the bound host (``OMNIMIND_HOST``), the address the connection
  arrived on, and ``OMNIMIND_ALLOWED_HOSTS``; any other gets 421 Misdirected Request (RFC
  9110: a target the server is not configured for). Any port is accepted: the attacker
  controls the name, not the port the browser connects to, and the bound port may be 0.
  A request without ``Host`` (HTTP/1.0) comes from no browser and passes.
- **Origin** (CSRF). A request that changes state, or opens the WebSocket, carrying an
  ``Origin`` that is neither the daemon's own (a served name on the port the request came
  to) nor listed in ``OMNIMIND_ALLOWED_ORIGINS`` gets 403.
- **CORS**. Pages on an allowed origin may read the answers. A preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``, which the Fetch standard sends without credentials)
  answers 204 before authentication; every answer to an allowed origin, errors included,
  carries ``Access-Control-Allow-Origin`` (the origin itself), and every answer carries
  ``Vary: Origin``. ``Access-Control-Allow-Credentials`` is never sent: pages send the
  ``Authorization`` header themselves (the API document's ``fetch`` example), which needs
  only ``Access-Control-Allow-Headers``; allowing credentials would let any script of an
  allowed origin ride a password the user typed into the browser's own login dialog
  without knowing it (``credentials: "include"``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from quart import Response, request, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers

from ..config import Settings
from ._errors import error_response

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS: Final = frozenset({"", "0.0.0.0", "::"})
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: a foreign ``Origin`` may send them (and reads nothing back)."""
PREFLIGHT_MAX_AGE_SECONDS: Final = 600
ALLOWED_HEADERS: Final = "Authorization, Content-Type"
EXPOSED_HEADERS: Final = "Allow, Retry-After, WWW-Authenticate"
"""Answer headers a page may read beyond the CORS-safelisted ones."""
DEFAULT_PORTS: Final = {"http": "80", "ws": "80", "https": "443", "wss": "443"}

_HOST: Final = re.compile(
    r"(?P<name>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?", re.ASCII | re.IGNORECASE
)
_ORIGIN: Final = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#]+)", re.ASCII | re.IGNORECASE)


def canonical_name(name: str) -> str:
    """A host name or address as compared here: lower case, IPv6 without brackets and in
    its short form."""
    bare = name.lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def split_host(value: str) -> tuple[str, str | None] | None:
    """``Host`` header (``name[:port]``) -> (:func:`canonical_name`, port or None); None
    when it is not a host."""
    match = _HOST.fullmatch(value)
    if match is None:
        return None
    return canonical_name(match["name"]), match["port"]


class BrowserPolicy:
    """The served names and the allowed origins, from the settings."""

    def __init__(self, settings: Settings) -> None:
        names = {name for name in settings.allowed_hosts.split(",") if name}
        self.any_host = "*" in names
        self.names = frozenset(LOOPBACK_NAMES | {canonical_name(n) for n in names - {"*"}})
        if settings.host not in WILDCARD_BINDS:
            self.names |= {canonical_name(settings.host)}
        self.origins = frozenset(o for o in settings.allowed_origins.split(",") if o)

    def misdirected(
        self, host: str | None, server: tuple[str, int | None] | None
    ) -> Response | None:
        """421 when ``host`` (the ``Host`` header) names a host the daemon does not serve.
        ``server`` is the local address the connection arrived on."""
        if not host or self.any_host:
            return None
        parsed = split_host(host)
        if parsed is not None and (
            parsed[0] in self.names
            or (server is not None and parsed[0] == canonical_name(server[0]))
        ):
            return None
        return error_response(
            421,
            f"Host header {host} is not served here: call the daemon as localhost, 127.0.0.1 "
            "or its bound address, or add the name to OMNIMIND_ALLOWED_HOSTS",
        )

    def is_own(self, origin: str, host: str | None, scheme: str) -> bool:
        """Whether ``origin`` is the daemon itself: a served name on the port the request
        came to (``host``, the ``Host`` header, already checked by :meth:`misdirected`)."""
        match = _ORIGIN.fullmatch(origin)
        ours = split_host(host) if host else None
        theirs = split_host(match["host"]) if match is not None else None
        if match is None or ours is None or theirs is None or theirs[0] not in self.names:
            return False
        their_port = theirs[1] or DEFAULT_PORTS[match["scheme"].lower()]
        return their_port == (ours[1] or DEFAULT_PORTS.get(scheme, "80"))

    def allows(self, origin: str, host: str | None, scheme: str) -> bool:
        """Whether a page on ``origin`` may call the API."""
        return origin in self.origins or self.is_own(origin, host, scheme)

    def foreign(self, headers: Headers, scheme: str) -> Response | None:
        """403 when ``headers`` carry an ``Origin`` that may not call the API."""
        origin = headers.get("Origin")
        if origin is None or self.allows(origin, headers.get("Host"), scheme):
            return None
        return error_response(
            403,
            f"Cross-origin request refused: {origin} is not allowed (OMNIMIND_ALLOWED_ORIGINS)",
        )

    def preflight(self, headers: Headers, methods: list[str]) -> Response:
        """The 204 answer to an allowed origin's preflight."""
        response = Response("", status=204)
        response.headers["Access-Control-Allow-Origin"] = headers["Origin"]
        response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        if headers.get("Access-Control-Request-Private-Network") == "true":
            # Chromium's Private Network Access: a page on a public origin calling the
            # daemon on loopback. The operator allowed this origin by name.
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response


def api_methods(app: QuartTrio) -> list[str]:
    """The methods the API's routes answer (for ``Access-Control-Allow-Methods``)."""
    methods = {m for rule in app.url_map.iter_rules() for m in rule.methods or ()}
    return sorted(methods - {"HEAD", "OPTIONS"})


def install_origin_checks(app: QuartTrio, settings: Settings) -> None:
    """Apply the Host, Origin and CORS rules to ``app``. Call it before registering the
    authentication hooks: Quart runs ``before_request`` functions in registration order,
    and these must answer (421, 403, the preflight) before credentials are asked for."""
    policy = BrowserPolicy(settings)

    @app.before_request
    async def check_browser() -> Response | None:
        refused = policy.misdirected(request.headers.get("Host"), request.server)
        if refused is not None:
            return refused
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if policy.allows(origin, request.headers.get("Host"), request.scheme):
                return policy.preflight(request.headers, api_methods(app))
            return policy.foreign(request.headers, request.scheme)
        if request.method not in READ_METHODS:
            return policy.foreign(request.headers, request.scheme)
        return None

    @app.before_websocket
    async def check_browser_websocket() -> Response | None:
        refused = policy.misdirected(websocket.headers.get("Host"), websocket.server)
        if refused is not None:
            return refused
        return policy.foreign(websocket.headers, websocket.scheme)

    @app.after_request
    async def allow_origin(response: Response) -> Response:
        # Every answer depends on Origin (403 or not, CORS headers or not): caches must know.
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin is not None and policy.allows(
            origin, request.headers.get("Host"), request.scheme
        ):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
