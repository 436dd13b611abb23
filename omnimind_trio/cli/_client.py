"""A small synchronous client of the daemon's REST API.

::

    with OmniMindClient("http://127.0.0.1:8000", auth=("user", "pass")) as client:
        client.add_task("backup", name="Backup", priority="HIGH", code=source)
        print(client.status()["state"])

Error handling: every method returns the server's JSON and raises

    ClientError
    ├── ApiError            the daemon answered with an error status (``status_code``,
    │                       ``detail``: the server's own sentence)
    └── DaemonUnreachable   no answer: connection refused or timed out
        └── ConnectionLost  a followed WebSocket broke or was closed abnormally
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._parser import DEFAULT_URL

DEFAULT_TIMEOUT_SECONDS: Final = 10.0


class ClientError(Exception):
    """Root of the errors of :class:`OmniMindClient` and :func:`follow_events`."""


class ApiError(ClientError):
    """The daemon answered with an error status; ``detail`` is its explanation."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status_code})")
        self.status_code = status_code
        self.detail = detail


class DaemonUnreachable(ClientError):
    """No answer from the daemon at ``url``; ``reason`` says what went wrong."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the daemon at {url}: {reason}")
        self.url = url
        self.reason = reason


class ConnectionLost(DaemonUnreachable):
    """The WebSocket to the daemon at ``url`` broke; ``reason`` says how."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.args = (f"lost the connection to the daemon at {url}: {reason}",)


Auth = tuple[str, str]
Params = Mapping[str, str | int | float | None]


class OmniMindClient:
    """One method per endpoint of the API; each returns the decoded JSON answer.

    Raises :class:`ApiError` for an error status, :class:`DaemonUnreachable` when no
    answer comes (a certificate that does not verify included). Use it as a context
    manager (or call :meth:`close`) to release the connection pool.

    An ``https://`` daemon's certificate is verified against ``cacert`` (a PEM file of the
    CAs to trust, like ``curl --cacert``), else the system's CAs; the constructor raises
    ``OSError`` or ``ssl.SSLError`` when ``cacert`` cannot be read.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        auth: Auth | None = None,
        cacert: str | os.PathLike[str] | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            verify=tls_context(cacert),
            timeout=timeout_seconds,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __enter__(self) -> OmniMindClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- daemon ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /daemon/status``."""
        return self._json("GET", "/daemon/status")

    def nodes(self) -> dict[str, Any]:
        """``GET /daemon/nodes``: the daemons sharing the database."""
        return self._json("GET", "/daemon/nodes")

    def start(self) -> dict[str, Any]:
        """``POST /daemon/start``: ``status`` is ``started`` or ``already_running``."""
        return self._json("POST", "/daemon/start")

    def stop(self) -> dict[str, Any]:
        """``POST /daemon/stop``: ``status`` is ``stopped`` or ``not_running``."""
        return self._json("POST", "/daemon/stop")

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text exposition."""
        return self._request("GET", "/metrics").text

    def openapi(self) -> dict[str, Any]:
        """``GET /openapi.json``: the API's OpenAPI document."""
        return self._json("GET", "/openapi.json")

    def ws_token(self) -> dict[str, Any]:
        """``POST /daemon/ws/token``: a single-use token for ``/daemon/ws?token=...``
        (for clients that cannot set headers on the upgrade, like browsers)."""
        return self._json("POST", "/daemon/ws/token")

    # -- tasks -------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        priority: str | None = None,
        status: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        with_state: bool = False,
    ) -> dict[str, Any]:
        """``GET /daemon/tasks``; ``priority`` and ``status`` may be comma-separated lists,
        ``sort`` a field name with ``-`` in front for descending order. ``with_state``:
        the same tasks with their status, next run and why they wait (the dashboard's
        ``GET /daemon/dashboard/tasks``, which takes the same parameters)."""
        params = {
            "priority": priority,
            "status": status,
            "q": q,
            "sort": sort,
            "limit": limit,
            "offset": offset,
        }
        path = "/daemon/dashboard/tasks" if with_state else "/daemon/tasks"
        return self._json("GET", path, params=params)

    def add_task(
        self,
        task_id: str,
        *,
        code: str,
        priority: str,
        name: str | None = None,
        description: str = "",
        repeat_hours: int | None = None,
        timeout_seconds: float | None = None,
        max_memory_mb: int | None = None,
        max_cpu_seconds: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """``POST /daemon/tasks/add``; ``name`` defaults to ``task_id``. Options left at
        None are not sent (the daemon's defaults apply); ``fields`` are sent as given."""
        body: dict[str, Any] = {
            "task_id": task_id,
            "name": name if name is not None else task_id,
            "description": description,
            "priority": priority,
            "code": code,
        }
        optional = {
            "repeat_hours": repeat_hours,
            "timeout_seconds": timeout_seconds,
            "max_memory_mb": max_memory_mb,
            "max_cpu_seconds": max_cpu_seconds,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body.update(fields)
        return self._json("POST", "/daemon/tasks/add", json_body=body)

    def get_task(self, task_id: str) -> dict[str, Any]:
        """``GET /daemon/tasks/{task_id}``: definition, counters, schedule and state."""
        return self._json("GET", _task_path(task_id))

    def update_task(self, task_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /daemon/tasks/{task_id}``; a None value clears an optional field."""
        return self._json("PATCH", _task_path(task_id), json_body=dict(changes))

    def delete_task(self, task_id: str) -> dict[str, Any]:
        """``DELETE /daemon/tasks/{task_id}`` (its execution history stays)."""
        return self._json("DELETE", _task_path(task_id))

    def run_task(self, task_id: str) -> dict[str, Any]:
        """``POST /daemon/tasks/{task_id}/run``: run now, whatever the load or hour."""
        return self._json("POST", _task_path(task_id, "run"))

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        """``POST /daemon/tasks/{task_id}/cancel``: kill its running execution."""
        return self._json("POST", _task_path(task_id, "cancel"))

    def pause_task(self, task_id: str) -> dict[str, Any]:
        """``POST /daemon/tasks/{task_id}/pause``."""
        return self._json("POST", _task_path(task_id, "pause"))

    def resume_task(self, task_id: str) -> dict[str, Any]:
        """``POST /daemon/tasks/{task_id}/resume``."""
        return self._json("POST", _task_path(task_id, "resume"))

    def batch(
        self, operations: Sequence[Mapping[str, Any]], *, atomic: bool = False
    ) -> dict[str, Any]:
        """``POST /daemon/tasks/batch``: ``{"op": "add", "task": {...}}`` or ``{"op":
        "delete" | "pause" | "resume" | "run" | "cancel", "task_id": ...}`` each."""
        body = {"atomic": atomic, "operations": [dict(op) for op in operations]}
        return self._json("POST", "/daemon/tasks/batch", json_body=body)

    def export(self) -> dict[str, Any]:
        """``GET /daemon/export``: every code task as a batch body (secret values left
        out, named in ``omitted_secrets``)."""
        return self._json("GET", "/daemon/export")

    # -- executions --------------------------------------------------------------

    def list_executions(
        self,
        *,
        task_id: str | None = None,
        outcome: str | None = None,
        node: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """``GET /daemon/executions``, newest first; ``since``/``until`` are ISO-8601 or
        epoch seconds. ``task_id`` also finds the history of a deleted task."""
        params = {
            "task_id": task_id,
            "outcome": outcome,
            "node": node,
            "since": since,
            "until": until,
            "limit": limit,
            "offset": offset,
        }
        return self._json("GET", "/daemon/executions", params=params)

    def task_executions(
        self,
        task_id: str,
        *,
        outcome: str | None = None,
        node: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """``GET /daemon/tasks/{task_id}/executions`` (404 for an unknown task)."""
        params = {
            "outcome": outcome,
            "node": node,
            "since": since,
            "until": until,
            "limit": limit,
            "offset": offset,
        }
        return self._json("GET", _task_path(task_id, "executions"), params=params)

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """``GET /daemon/executions/{execution_id}``: the record with stdout and stderr."""
        return self._json("GET", f"/daemon/executions/{quote(execution_id, safe='')}")

    def execution_log(self, execution_id: str, tail: int | None = None) -> str:
        """``GET /daemon/executions/{execution_id}/log``: the whole output as text (so far,
        while the run goes on), or its last ``tail`` lines."""
        path = f"/daemon/executions/{quote(execution_id, safe='')}/log"
        return self._request("GET", path, params={"tail": tail}).text

    # -- plumbing ----------------------------------------------------------------

    def _json(
        self, method: str, path: str, *, params: Params | None = None, json_body: Any = None
    ) -> dict[str, Any]:
        response = self._request(method, path, params=params, json_body=json_body)
        try:
            data = response.json()
        except ValueError:
            raise ApiError(response.status_code, "the daemon answered with invalid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(response.status_code, "the daemon answered with a non-object")
        return data

    def _request(
        self, method: str, path: str, *, params: Params | None = None, json_body: Any = None
    ) -> httpx.Response:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=query, json=json_body)
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.base_url, _describe_transport_error(exc)) from exc
        if response.is_error:
            raise ApiError(
                response.status_code, detail_of(response.content, response.reason_phrase)
            )
        return response


# -- helpers -------------------------------------------------------------------------------


def tls_context(cacert: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A context verifying servers against ``cacert`` only (a PEM file of CAs), else
    against the system's CAs. Raises ``OSError`` or ``ssl.SSLError`` if ``cacert`` cannot
    be read or holds no certificate."""
    return ssl.create_default_context(cafile=os.fspath(cacert) if cacert is not None else None)


def _task_path(task_id: str, action: str | None = None) -> str:
    path = f"/daemon/tasks/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path


def detail_of(body: bytes, fallback: str) -> str:
    """The ``detail`` of an error body, else the body's text, else ``fallback``."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else fallback
    detail = data.get("detail") if isinstance(data, dict) else None
    return detail if isinstance(detail, str) else fallback


def _describe_transport_error(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            return describe_os_error(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: its certificate does not verify: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return exc.strerror or str(exc) or type(exc).__name__
