"""The exception tree, drawn once::

    OmniMindError
    ├── InvalidInput        bad request data (HTTP 400); ``detail`` says what is wrong
    ├── NotFound            unknown task or execution id (HTTP 404)
    │   ├── TaskNotFound
    │   └── ExecutionNotFound
    ├── Conflict            the request clashes with current state (HTTP 409)
    │   └── TaskExists
    ├── ExecutorError       the task worker could not run an execution (a daemon fault)
    ├── StoreError          the database could not be written; the change was not made
    │   └── StoreUnavailable    a store backend refused a write or a read (disk full, ...)
    └── StartupError        the daemon cannot start: bad workspace, database in use, ...

Every exception carries ``detail``: the one sentence a user sees in the API's ``detail``.
"""

from __future__ import annotations


class OmniMindError(Exception):
    """Root of every error this package raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(OmniMindError):
    """The request's data is invalid; nothing was changed."""


class NotFound(OmniMindError):
    """An id names nothing that exists."""


class TaskNotFound(NotFound):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task not found: {task_id}")
        self.task_id = task_id


class ExecutionNotFound(NotFound):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"Execution not found: {execution_id}")
        self.execution_id = execution_id


class Conflict(OmniMindError):
    """The request is valid but clashes with the current state."""


class TaskExists(Conflict):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task already exists: {task_id}")
        self.task_id = task_id


class ExecutorError(OmniMindError):
    """The task worker failed (not the task): it died, or could not be started."""


class StoreError(OmniMindError):
    """The database refused a write (disk full, read-only, I/O error); nothing changed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The database could not be written ({reason}): nothing was changed")
        self.reason = reason
        """Why, in the backend's words (``database or disk is full``)."""


class StoreUnavailable(StoreError):
    """Raised by a store backend, in place of its driver's own errors, when it cannot do
    what it was asked: a write it refuses (disk full, read-only file system, I/O error) or
    a read that fails. A write that raises it changed nothing. The daemon catches it
    without knowing the backend; one that reaches the API is an HTTP 503."""

    def __init__(self, reason: str) -> None:
        OmniMindError.__init__(self, f"The database is unavailable ({reason})")
        self.reason = reason


class StartupError(OmniMindError):
    """The daemon cannot start as configured (nothing was run)."""
