"""HTTP request counts for ``GET /metrics`` (the daemon's own metrics come from the facade)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods counted under their own name; any other is counted as ``other``: the method
comes from the client, and a label per made-up method would grow the series without bound."""


class RequestMetrics:
    """``omnimind_http_requests_total`` by method, route and status, and
    ``omnimind_auth_failures_total``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "omnimind_http_requests",
            "HTTP requests by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], Any] = {}
        self._auth_failures = Counter(
            "omnimind_auth_failures",
            "Failed authentication attempts: wrong credentials, or an unknown WebSocket token.",
            registry=self.registry,
        )

    def count(self, method: str, route: str, status: int) -> None:
        """Count one request (children cached: ``labels()`` is slow on a hot path)."""
        if method not in METHODS:
            method = "other"
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(method, route, str(status))
        child.inc()

    def count_auth_failure(self) -> None:
        self._auth_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format ``generate_latest`` writes (0.0.4)."""
