"""omnimind-trio: a local background-task daemon on Trio.

Embedding::

    async with open_daemon(Settings(home=path)) as daemon:
        await daemon.register("my_task", my_async_function, name="My task")
"""

from .config import Settings
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
    ExecutionRecord,
    Outcome,
    Priority,
    SystemMetrics,
    TaskSpec,
    Trigger,
)
from .scheduling import FakeSource, MetricsSource, PsutilSource

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "Daemon",
    "DaemonState",
    "ExecutionNotFound",
    "ExecutionRecord",
    "ExecutorError",
    "FakeSource",
    "InvalidInput",
    "MetricsSource",
    "NotFound",
    "OmniMindError",
    "Outcome",
    "Priority",
    "PsutilSource",
    "Settings",
    "StartupError",
    "StoreError",
    "StoreUnavailable",
    "SystemMetrics",
    "TaskExists",
    "TaskNotFound",
    "TaskSpec",
    "Trigger",
    "__version__",
    "open_daemon",
]
