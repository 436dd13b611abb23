"""One execution in flight: its identity, its cancel scope, and how to freeze it.

The execution runs inside :attr:`Running.scope`. Whatever ends it early (a cancel request,
``overlap=replace``, ``on_busy=cancel``, the task's deletion) calls :meth:`Running.cancel`
with the reason its record gives; the timeout is the scope's deadline. A stop of the daemon
is not one of these: it cancels the supervisor's scope around every execution.

Freezing stops the whole process group (SIGSTOP) and suspends the timeout; thawing sends
SIGCONT and gives the timeout back what was left of it, so frozen time never counts.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import uuid
from dataclasses import dataclass, field

import trio

from ..models import Trigger


class NotClaimed(Exception):
    """Raised by a runner: another daemon of the fleet claimed this occurrence first, so this
    daemon does not run it (nothing was recorded; the task's schedule is the winner's)."""


@dataclass(eq=False)
class Running:
    """An execution in flight."""

    trigger: Trigger
    scheduled_at: float
    started_at: float
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    """The runner runs the execution inside it; cancelled by :meth:`cancel`, its deadline
    is the timeout (see :meth:`start_timeout`)."""
    cancel_reason: str | None = None
    """Why it was cancelled, once :meth:`cancel` was called (None: not cancelled)."""
    pid: int | None = None
    attempt: int = 0
    gated: bool = False
    """Admitted through a gate that can close: ``on_busy`` applies to it."""
    conditional: bool = False
    """Admitted under its task's ``conditions`` (not a run-now or a forced run): ``on_busy``
    applies when one stops holding."""
    critical_slot: bool = False
    holds_slot: bool = False
    """It holds its slot (:class:`~._slots.Slots`): from its start until it ends or is
    frozen."""
    """Holds a CRITICAL slot (decided at start: a PATCH of the priority must not move it)."""
    pauses: list[tuple[float, float | None]] = field(default_factory=list)
    freeze_reason: str | None = None
    """Why it was last frozen: its gate closed, or a condition stopped holding."""
    claim: object | None = None
    """A fleet's claim on this run, when the store is shared (opaque to the scheduler)."""
    recorded: trio.Event = field(default_factory=trio.Event)
    """Set once the runner's write of its start record (outcome ``running``) is over:
    committed, or refused or cancelled. A run-now answer waits for it (durability)."""
    _timed: bool = False
    _remaining: float | None = None
    """While frozen: what is left of the timeout."""

    @property
    def frozen(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def cancel(self, reason: str) -> None:
        """End the execution; the first reason given is the one its record keeps. It may be
        called before the scope is entered: the execution then ends as soon as it starts."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.scope.cancel()

    def start_timeout(self, seconds: float) -> None:
        """Give the execution ``seconds`` from now, frozen time not counted."""
        self._timed = True
        if self.frozen:
            self._remaining = seconds
        else:
            self.scope.deadline = trio.current_time() + seconds

    def attach(self, pid: int) -> None:
        """The process has started: a freeze requested before it existed applies now."""
        self.pid = pid
        if self.frozen:
            self._signal(signal.SIGSTOP)

    def freeze(self, now: float, reason: str) -> bool:
        if self.frozen:
            return False
        self.pauses.append((now, None))
        self.freeze_reason = reason
        if self._timed:
            self._remaining = max(0.0, self.scope.deadline - trio.current_time())
            self.scope.deadline = math.inf
        self._signal(signal.SIGSTOP)
        return True

    def thaw(self, now: float) -> bool:
        if not self.frozen:
            return False
        self.pauses[-1] = (self.pauses[-1][0], now)
        if self._remaining is not None:
            self.scope.deadline = trio.current_time() + self._remaining
            self._remaining = None
        self._signal(signal.SIGCONT)
        return True

    def _signal(self, signum: int) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
