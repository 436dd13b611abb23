"""omnimind-trio: a local background-task daemon on Trio.

The front door: everything an embedding program needs. Embedding::

    async with open_daemon(Settings(home=path)) as daemon:
        await daemon.register("my_task", my_async_function, name="My task")
        execution_id = daemon.run_task_now("my_task")
        record = await daemon.wait_execution(execution_id)

and, to serve the HTTP API in the same program's nursery::

        urls = await nursery.start(serve_api, daemon)

See docs/embedding.md. Everything not listed in ``__all__`` is internal.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import Settings
from .credentials import Credentials, load_credentials
from .daemon import Daemon, open_daemon
from .exceptions import (
    Conflict,
    ExecutionNotFound,
    ExecutorError,
    InvalidInput,
    NotFound,
    OmniMindError,
    StartupError,
    StoreError,
    StoreUnavailable,
    TaskExists,
    TaskNotFound,
)
from .models import (
    DaemonState,
    Event,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionSummary,
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    Status,
    SystemMetrics,
    TaskDetail,
    TaskList,
    TaskQuery,
    TaskSortKey,
    TaskSpec,
    TaskStatus,
    TaskSummary,
    Trigger,
)
from .scheduling import FakeSource, MetricsSource, PsutilSource
from .sensors import FakeSensors, Sensors, SystemSensors
from .store import MemoryStore, Store

if TYPE_CHECKING:
    from .http import serve_api


def __getattr__(name: str) -> Any:
    # The HTTP node (quart, hypercorn) is imported only by a program that serves the API.
    if name == "serve_api":
        from .http import serve_api

        return serve_api
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Conflict",
    "Credentials",
    "Daemon",
    "DaemonState",
    "Event",
    "ExecutionList",
    "ExecutionNotFound",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionSummary",
    "ExecutorError",
    "FakeSensors",
    "FakeSource",
    "InvalidInput",
    "MemoryStore",
    "MetricsSource",
    "NotFound",
    "OmniMindError",
    "OnBusy",
    "OnMissed",
    "Outcome",
    "Overlap",
    "Priority",
    "PsutilSource",
    "Sensors",
    "Settings",
    "StartupError",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SystemMetrics",
    "SystemSensors",
    "TaskDetail",
    "TaskExists",
    "TaskList",
    "TaskNotFound",
    "TaskQuery",
    "TaskSortKey",
    "TaskSpec",
    "TaskStatus",
    "TaskSummary",
    "Trigger",
    "__version__",
    "load_credentials",
    "open_daemon",
    "serve_api",
]
