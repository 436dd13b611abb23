"""Who may do what: every request's credential check, in one place.

:class:`Guard` checks a request or WebSocket upgrade in this order: a client address locked
by too many failures gets 429 before any password is looked at (:mod:`._throttle`); then
the ``Authorization`` header (or, for the WebSocket, a single-use token) must carry a
credential in force (:class:`~omnimind_trio.credentials.Keyring`), else 401 and the failure
is counted and logged; a viewer credential may only call what reads
(:meth:`~._routing.Routes.reads`), else 403.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio
from quart import Response, g
from quart.wrappers import Request, Websocket

from ..credentials import Keyring, Role
from ._errors import error_response, unauthenticated
from ._metrics import RequestMetrics
from ._routing import Routes
from ._throttle import FailureThrottle

log = logging.getLogger(__package__)

READ_ONLY: Final = "this credential can only read"


@dataclass(frozen=True)
class Holder:
    """The credential a request or WebSocket was let in with."""

    role: Role
    fingerprint: bytes | None
    user: str


class WebSocketTokens:
    """Single-use, short-lived tokens for ``/daemon/ws?token=...``: a browser cannot set an
    ``Authorization`` header on a WebSocket, so it asks for a token over authenticated
    HTTP first. Tokens live in memory only, and stand for the credential that asked."""

    def __init__(self, lifetime_seconds: float = 60.0, max_outstanding: int = 100) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._max = max_outstanding
        self._tokens: dict[str, tuple[float, Holder]] = {}

    def issue(self, holder: Holder) -> str:
        now = time.monotonic()
        self._tokens = {t: entry for t, entry in self._tokens.items() if entry[0] > now}
        while len(self._tokens) >= self._max:
            self._tokens.pop(next(iter(self._tokens)))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (now + self.lifetime_seconds, holder)
        return token

    def redeem(self, token: str | None) -> Holder | None:
        """Once, the holder for whom a token that has not expired was issued."""
        if not token:
            return None
        # Constant-time comparison against every outstanding token.
        match = None
        for candidate in list(self._tokens):
            if hmac.compare_digest(candidate.encode(), token.encode()):
                match = candidate
        if match is None:
            return None
        expires, holder = self._tokens.pop(match)
        return holder if expires > time.monotonic() else None


class Guard:
    """The credential check of every request and WebSocket upgrade (see the module)."""

    def __init__(
        self,
        keyring: Keyring,
        routes: Routes,
        metrics: RequestMetrics,
        *,
        failure_limit: int,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.keyring = keyring
        self.tokens = WebSocketTokens()
        self.throttle = FailureThrottle(failure_limit, clock=clock)
        self._routes = routes
        self._metrics = metrics

    def check_request(self, request: Request) -> Response | None:
        """None to let ``request`` through; else the answer (429, 401 or 403). The holder
        let in is ``g.holder``."""
        address = client_address(request)
        refused = self._throttled(address)
        if refused is not None:
            return refused
        header = request.headers.get("Authorization")
        holder = self._by_header(header)
        if holder is None:
            return self._failed(address, presented=header is not None, channel="HTTP")
        g.holder = holder
        if holder.role is Role.VIEWER:
            rule = request.url_rule.rule if request.url_rule is not None else None
            if not self._routes.reads(request.method, rule):
                return error_response(403, READ_ONLY)
        return None

    def check_websocket(self, ws: Websocket) -> Response | None:
        """As :meth:`check_request`, for an upgrade: Basic credentials, else a token from
        ``POST /daemon/ws/token`` whose credential is still in force. Any role may read."""
        address = client_address(ws)
        refused = self._throttled(address)
        if refused is not None:
            return refused
        header, token = ws.headers.get("Authorization"), ws.args.get("token")
        holder = self._by_header(header) or self._by_token(token)
        if holder is None:
            presented = header is not None or token is not None
            return self._failed(address, presented=presented, channel="WebSocket")
        g.holder = holder
        return None

    def _by_header(self, header: str | None) -> Holder | None:
        """Who an ``Authorization`` header names, if it carries a credential in force."""
        credentials = self.keyring.current
        role = credentials.authenticate(header)
        if role is None:
            return None
        return Holder(role, credentials.fingerprint(role), credentials.user_of(role))

    def _by_token(self, token: str | None) -> Holder | None:
        """Who a WebSocket token was issued to, if it is unused, unexpired, and its
        credential is still in force (a rotation revokes the tokens it issued)."""
        holder = self.tokens.redeem(token)
        if holder is None or holder.fingerprint != self.keyring.current.fingerprint(holder.role):
            return None
        return holder

    def _throttled(self, address: str) -> Response | None:
        seconds = self.throttle.retry_after(address)
        if seconds is None:
            return None
        response = error_response(
            429,
            f"Too many failed authentication attempts from {address}: try again in {seconds} s",
        )
        response.headers["Retry-After"] = str(seconds)
        return response

    def _failed(self, address: str, *, presented: bool, channel: str) -> Response:
        """401; a request that presented credentials (or a token) counts as a failure.
        One with none guessed nothing (a browser asks first without): not counted."""
        if presented:
            self._metrics.count_auth_failure()
            log.warning("failed authentication from %s (%s)", address, channel)
            if self.throttle.record(address):
                log.warning(
                    "%s failed to authenticate %d times within %.0f s: refused (429) "
                    "until its oldest failure is that old",
                    address,
                    self.throttle.limit,
                    self.throttle.window_seconds,
                )
        return unauthenticated()


def client_address(connection: Request | Websocket) -> str:
    """The peer's address, from the ASGI scope: the server's word, not a header (quart's
    ``remote_addr`` reads a ``Remote-Addr`` header it adds, beside any the client sent)."""
    client = connection.scope.get("client")
    return str(client[0]) if client else "<local>"
