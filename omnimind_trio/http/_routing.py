"""Routes that describe themselves: each is registered on the Quart app and recorded as an
:class:`Operation`, from which the OpenAPI document is generated.

A route states its response model, its body and query models and the errors it can
answer; the document cannot drift from what is served. It also states whether it only reads
(GET does; a POST may say so): what a viewer credential may call. A route that is not part
of the API (the dashboard's page and files) says ``documented=False``: the Guard covers it
like any other, and the document leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from quart_trio import QuartTrio

View = Callable[..., Awaitable[Any]]

_PARAMETER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the OpenAPI document describes it."""

    method: str
    path: str
    """In OpenAPI form: ``/daemon/tasks/{task_id}``."""
    summary: str
    response: type[BaseModel] | None
    """The JSON answer's model; None for a body that is not JSON (``content_type``)."""
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    content_type: str = "application/json"
    response_description: str = "OK"
    reads: bool = True
    """Whether a read-only (viewer) credential may call it: it changes nothing."""
    documented: bool = True
    """Whether the OpenAPI document describes it (not the dashboard's page and files)."""

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"\{([a-z_]+)\}", self.path)


class Routes:
    """Registers routes on ``app`` and keeps their descriptions (:attr:`operations`)."""

    def __init__(self, app: QuartTrio) -> None:
        self.app = app
        self.operations: list[Operation] = []
        self._reading: set[tuple[str, str]] = set()

    def route(
        self,
        method: str,
        rule: str,
        summary: str,
        *,
        response: type[BaseModel] | None,
        errors: tuple[int, ...] = (),
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        content_type: str = "application/json",
        reads: bool | None = None,
        documented: bool = True,
    ) -> Callable[[View], View]:
        """Serve ``method rule`` with the decorated view, and describe it. ``reads``: it
        changes nothing (default: true for GET only). ``documented``: the OpenAPI document
        lists it."""
        reading = method == "GET" if reads is None else reads

        def register(view: View) -> View:
            self.app.add_url_rule(rule, view_func=view, methods=[method])
            if reading:
                self._reading.add((method, rule))
            self.operations.append(
                Operation(
                    method=method.lower(),
                    path=_PARAMETER.sub(r"{\1}", rule),
                    summary=summary,
                    response=response,
                    errors=errors,
                    body=body,
                    query=query,
                    content_type=content_type,
                    reads=reading,
                    documented=documented,
                )
            )
            return view

        return register

    def reads(self, method: str, rule: str | None) -> bool:
        """Whether ``method`` on the route ``rule`` (None: no route matched) only reads.
        HEAD and OPTIONS (which werkzeug adds to routes) read, as a GET to nowhere does."""
        if method in ("HEAD", "OPTIONS"):
            return True
        if rule is None:
            return method == "GET"
        return (method, rule) in self._reading
