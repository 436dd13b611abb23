"""A task's ``machines``: the daemons (by node name) it may run on.

A daemon whose node name a task's ``machines`` leaves out never starts a run of it: its
scheduler does not make the task ready (not on schedule, nor as a catch-up, a retry, a run
after its upstream tasks, or one forced by ``max_delay_hours``), records no skipped run of
it and leaves its due time alone (another daemon on the same database keeps it); a run-now
request is refused.
"""

from __future__ import annotations

from ..exceptions import Conflict
from ..models import TaskSpec


def runs_on(spec: TaskSpec, node: str) -> bool:
    """Whether the daemon named ``node`` may run the task (``machines`` null: any may)."""
    return spec.machines is None or node in spec.machines


def names(machines: tuple[str, ...]) -> str:
    """``desktop``, ``desktop or server``, ``desktop, server or nas``."""
    if len(machines) == 1:
        return machines[0]
    return ", ".join(machines[:-1]) + " or " + machines[-1]


def elsewhere(spec: TaskSpec, node: str) -> str:
    """Why the task does not run here, in words: ``runs only on desktop (this daemon is
    laptop)``."""
    return f"runs only on {names(spec.machines or ())} (this daemon is {node})"


def refused(spec: TaskSpec, node: str) -> Conflict:
    """The refusal of a run-now request on a daemon the task may not run on."""
    return Conflict(
        f"Task {spec.task_id} runs only on {names(spec.machines or ())}, "
        f"and this daemon is {node}: nothing was started"
    )
