"""Execution: running task code in isolated child processes.

The fork server (``_worker.py``, standard library only, runs under the task interpreter),
the daemon's client for it (which also starts a worker for one run under a task's own
interpreter, checked by ``_interpreter.py``), the masking of secrets in output, and the
classification of how a child ended. Imports: models, exceptions.
"""

from ._containment import kill_tree, process_start
from ._forkserver import Executor
from ._interpreter import MIN_VERSION, interpreter_problem
from ._job import Job, RunResult
from ._masking import MASK, Masker
from ._open import open_executor
from ._outcome import classify
from ._output import CappedBuffer
from ._worker import describe_code_problem

__all__ = [
    "MASK",
    "MIN_VERSION",
    "CappedBuffer",
    "Executor",
    "Job",
    "Masker",
    "RunResult",
    "classify",
    "describe_code_problem",
    "interpreter_problem",
    "kill_tree",
    "open_executor",
    "process_start",
]
