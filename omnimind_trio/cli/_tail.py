"""``omnimind logs -f TASK``: a task's output as it comes, like ``tail -f``.

The WebSocket's ``execution_output`` events are written as they arrive: stdout data to
stdout, stderr data to stderr; each execution's start and end are one line on stderr (the
``logs -f`` format), so ``omnimind logs -f backup > backup.out`` keeps the output alone.
A run already in flight when the follower connects (or reconnects) is caught up from its
output so far (``GET /daemon/executions/{id}``: each stream's first and last
``OMNIMIND_MAX_OUTPUT_BYTES``); events that arrived while that was read and that it
already holds are not written twice.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ._client import ApiError, OmniMindClient
from ._render import format_event

CATCH_UP_CHARS = 64 * 1024
"""How far back the end of the caught-up log is searched for an event's data."""


class OutputFollower:
    """Handles each WebSocket message of a follow of task (or execution) ``ident``."""

    def __init__(
        self,
        client: OmniMindClient,
        ident: str,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.client = client
        self.ident = ident
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._caught_up: dict[str, str] = {}
        """The end of each stream printed at a (re)connect, until the events pass it."""

    def __call__(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "status":  # a (re)connect: print what the run in flight printed so far
            self._catch_up()
            return
        data = message.get("data")
        if not isinstance(data, dict) or self.ident not in (
            data.get("task_id"),
            data.get("execution_id"),
        ):
            return
        if kind == "execution_output":
            stream, text = str(data.get("stream")), str(data.get("data", ""))
            if text and text in self._caught_up.get(stream, ""):
                return
            self._caught_up.pop(stream, None)
            self._write(self.err if stream == "stderr" else self.out, text)
        elif (line := format_event(message, self.ident)) is not None:
            self._write(self.err, line + "\n")

    def _catch_up(self) -> None:
        execution_id = self._running_execution()
        self._caught_up = {}
        if execution_id is None:
            return
        record = self.client.get_execution(execution_id)
        self._write(self.err, f"(execution {execution_id} of {self.ident}, running)\n")
        for stream, target in (("stdout", self.out), ("stderr", self.err)):
            text = str(record.get(stream) or "")
            self._write(target, text)
            self._caught_up[stream] = text[-CATCH_UP_CHARS:]

    def _running_execution(self) -> str | None:
        try:
            task = self.client.get_task(self.ident)
        except ApiError as exc:
            if exc.status_code != 404:
                raise
        else:
            running = task.get("running_execution_id")
            return running if isinstance(running, str) else None
        record = self.client.get_execution(self.ident)  # not a task: an execution id
        return self.ident if record.get("outcome") == "running" else None

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        stream.write(text)
        stream.flush()
