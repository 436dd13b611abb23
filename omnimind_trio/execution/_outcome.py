"""How an execution ended: from what its child did to an outcome and a reason."""

from __future__ import annotations

import os
import signal
from typing import Any

from ..models import Outcome
from ._job import Job, RunResult


def classify(result: RunResult, job: Job) -> tuple[Outcome, str | None, Any]:
    """Map a :class:`RunResult` to (outcome, reason, result value)."""
    if result.ended_by == "cancel":
        return Outcome.CANCELLED, "cancelled by request", None
    if result.ended_by == "timeout":
        return Outcome.TIMED_OUT, f"timed out after {job.timeout_seconds:g} s", None
    if result.error is not None:
        return Outcome.FAILED, result.error, None
    if result.report_error is not None:
        return Outcome.FAILED, result.report_error, None
    report = result.report
    if report is not None and report.get("ok"):
        return Outcome.SUCCEEDED, None, report.get("result")
    if report is not None:
        reason = str(report.get("error"))
        if report.get("exception") == "MemoryError" and job.max_memory_mb:
            reason += f" (memory limit of {job.max_memory_mb} MB)"
        if report.get("traceback"):
            reason += "\n" + str(report["traceback"]).rstrip()
        return Outcome.FAILED, reason, None
    if result.worker_died:
        return (
            Outcome.FAILED,
            "the task worker process died during the execution, and the task process ended"
            " without a result",
            None,
        )
    status = result.wait_status
    if status is not None and os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        # The kernel sends SIGXCPU at the soft CPU limit and SIGKILL at the hard one.
        cpu = result.cpu_seconds or 0.0
        if job.max_cpu_seconds and (
            signum == signal.SIGXCPU
            or (signum == signal.SIGKILL and cpu >= job.max_cpu_seconds * 0.95)
        ):
            return Outcome.KILLED, f"CPU time limit of {job.max_cpu_seconds} s exceeded", None
        return Outcome.KILLED, f"killed by signal {signum} ({_signal_name(signum)})", None
    code = os.WEXITSTATUS(status) if status is not None else None
    return Outcome.FAILED, f"the process exited with status {code} before execute() returned", None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown signal"
