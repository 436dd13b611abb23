"""Single-use tokens that let a browser open the WebSocket (it cannot send a header)."""

from __future__ import annotations

import hmac
import secrets
import time


class WebSocketTokens:
    """Single-use, short-lived tokens for ``/daemon/ws?token=...``: a browser cannot set an
    ``Authorization`` header on a WebSocket, so it asks for a token over authenticated
    HTTP first. Tokens live in memory only."""

    def __init__(self, lifetime_seconds: float = 60.0, max_outstanding: int = 100) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._max = max_outstanding
        self._tokens: dict[str, float] = {}

    def issue(self) -> str:
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        while len(self._tokens) >= self._max:
            self._tokens.pop(next(iter(self._tokens)))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + self.lifetime_seconds
        return token

    def redeem(self, token: str | None) -> bool:
        """True once for a token that was issued and has not expired."""
        if not token:
            return False
        # Constant-time comparison against every outstanding token.
        match = None
        for candidate in list(self._tokens):
            if hmac.compare_digest(candidate.encode(), token.encode()):
                match = candidate
        if match is None:
            return False
        return self._tokens.pop(match) > time.monotonic()
