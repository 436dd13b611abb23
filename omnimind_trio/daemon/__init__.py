"""The daemon: the supervisor node of the nursery tree and the facade everything else
calls (the HTTP API, the CLI's server, embedders). It composes scheduling, execution and
the store.
"""

from ._daemon import Daemon, open_daemon
from ._metrics import CONTENT_TYPE
from ._views import execution_summary, task_action, task_detail, task_summary

__all__ = [
    "CONTENT_TYPE",
    "Daemon",
    "execution_summary",
    "open_daemon",
    "task_action",
    "task_detail",
    "task_summary",
]
