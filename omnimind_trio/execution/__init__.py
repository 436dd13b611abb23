"""Execution: running task code in isolated child processes.

The fork server (``_worker.py``, standard library only, runs under the task interpreter),
the daemon's client for it, and the classification of how a child ended. Imports: models,
exceptions.
"""

from ._containment import kill_tree, process_start
from ._forkserver import Executor, open_executor
from ._job import Job, RunResult
from ._outcome import classify
from ._output import CappedBuffer
from ._worker import describe_code_problem

__all__ = [
    "CappedBuffer",
    "Executor",
    "Job",
    "RunResult",
    "classify",
    "describe_code_problem",
    "kill_tree",
    "open_executor",
    "process_start",
]
