"""One execution's inputs (:class:`Job`) and what its child did (:class:`RunResult`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """One execution's inputs."""

    code: str
    filename: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    max_memory_mb: int | None = None
    max_cpu_seconds: int | None = None
    nice: int = 0
    """Added to the task process's niceness: the user's own programs come first."""
    max_output_bytes: int = 64 * 1024
    max_result_bytes: int = 1024 * 1024
    timeout_seconds: float = 3600.0
    python: str | None = None
    """Another interpreter for this run (a cold start of its own), or None: the fork
    server's."""
    secrets: tuple[str, ...] = ()
    """Values replaced by ``***`` in the output (see ``_masking.py``)."""

    def request(self, cgroup: str | None) -> dict[str, Any]:
        """The worker's ``run`` request (``_worker.py``), without its id."""
        return {
            "op": "run",
            "code": self.code,
            "filename": self.filename,
            "cwd": self.cwd,
            "env": self.env,
            "max_memory_mb": self.max_memory_mb,
            "max_cpu_seconds": self.max_cpu_seconds,
            "nice": self.nice,
            "cgroup": cgroup,
        }


@dataclass
class RunResult:
    """What the child did. ``ended_by`` is ``"exit"``, ``"timeout"`` or ``"cancel"``."""

    ended_by: str = "exit"
    pid: int | None = None
    wait_status: int | None = None
    report: dict[str, Any] | None = None
    report_error: str | None = None
    stdout: str = ""
    stderr: str = ""
    cpu_seconds: float | None = None
    max_rss_mb: float | None = None
    worker_died: bool = False
    error: str | None = None
    """Why no child ran (no pipes, the fork failed, the workers kept dying): a failed run."""

    def read_report(self, data: bytes, limit: int) -> None:
        """Take what the child reported on its result pipe (at most ``limit`` bytes)."""
        if len(data) > limit:
            self.report_error = f"the result is larger than {limit} bytes"
        elif data:
            try:
                self.report = json.loads(data)
            except ValueError:
                self.report_error = "the result could not be read"
