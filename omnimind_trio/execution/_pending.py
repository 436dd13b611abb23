"""One request in flight with the fork server, as the daemon tracks it."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from dataclasses import dataclass, field
from typing import Any

import trio

from . import _cgroups
from ._containment import kill_tree, process_start

KEEPER_SECONDS = 2.0
"""How long a run's keeper may take to reap its killed processes and exit."""


@dataclass(eq=False)
class Pending:
    """One request to the worker, as the daemon tracks it."""

    key: str
    cgroup: str | None = None
    """The child's own cgroup (a delegated cgroup v2 subtree), or None."""
    started: trio.Event = field(default_factory=trio.Event)
    """Its ``started``, ``checked`` or ``failed`` message came, or it was lost."""
    settled: trio.Event = field(default_factory=trio.Event)
    """The worker will say nothing more of it: its last message came, or the worker died."""
    pid: int | None = None
    start: str | None = None
    """The child's start identity (``_containment.process_start``): its pid is not reused."""
    pidfd: int | None = None
    """Lets its run see the child end even if the fork server (its parent) dies first."""
    exit: dict[str, Any] | None = None
    checked: dict[str, Any] | None = None
    failure: str | None = None
    """Why no child was started."""
    lost: bool = False
    """No child was started for it, and none will be (the worker died or was stuck before):
    it may be sent again."""
    orphaned: bool = False
    """The worker died while the child ran: no exit message will come."""
    ended: bool = False
    """The child is known to have ended."""
    abandoned: bool = False
    """Its run is over: a child that starts now is killed, and forgotten when it ends."""

    def take(self, message: dict[str, Any]) -> None:
        """What the worker says of it: ``started``, ``exit``, ``checked`` or ``failed``."""
        op = message["op"]
        if op == "started":
            self.pid = message["pid"]
            self.start = process_start(message["pid"])
            if self.abandoned:
                self.kill()
            else:
                # Failing that (it has ended: its exit message is on its way; or no fd to
                # spare), the child is killed if the worker dies under it.
                with contextlib.suppress(OSError):
                    self.pidfd = os.pidfd_open(message["pid"])
            self.started.set()
        elif op == "exit":
            self.exit = message
            self.settled.set()
        elif op == "checked":
            self.checked = message
            self.started.set()
            self.settled.set()
        elif op == "failed":
            self.failure = f"the task worker could not start the execution: {message['error']}"
            self.started.set()
            self.settled.set()

    def lose(self, failure: str) -> None:
        """Mark it lost, ``failure`` saying why, and wake whoever waits for it."""
        self.lost, self.failure = True, failure
        self.started.set()
        self.settled.set()

    async def wait_ended(self) -> None:
        """Return once the child has ended: its exit message came, or, for an orphan, its
        pidfd says so (an orphan without one was killed)."""
        await self.settled.wait()
        if self.orphaned and self.pidfd is not None:
            await trio.lowlevel.wait_readable(self.pidfd)
        self.ended = True

    def kill(self, *, keeper: bool = True) -> None:
        """Kill the child's processes: its cgroup (if any) and its whole tree, the child
        (the keeper) too unless ``keeper`` is false. Blocks for a moment (the freeze): off
        the event loop, unless its run is gone."""
        if self.cgroup is not None:
            _cgroups.kill(self.cgroup)
        if self.pid is not None and self.start is not None:
            kill_tree(self.pid, self.start, include_root=keeper)
        elif self.pid is not None:  # gone when it started, or /proc unreadable: its group
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.cgroup is not None and keeper:
            _cgroups.remove(self.cgroup)

    async def end_processes(self) -> None:
        """Once its run is over. A child that ended by itself killed its own leftovers (its
        empty cgroup, if any, is removed). One still there (the run was cut short) sees
        every process below it killed, reaps them (so their usage counts) and exits with
        the task's status; if it does not within :data:`KEEPER_SECONDS`, it is killed."""
        with trio.CancelScope(shield=True):
            if not self.ended:
                await trio.to_thread.run_sync(functools.partial(self.kill, keeper=False))
                if self.pid is not None and self.start == process_start(self.pid):
                    with contextlib.suppress(OSError):
                        os.kill(self.pid, signal.SIGCONT)  # were it frozen
                with trio.move_on_after(KEEPER_SECONDS):
                    await self.wait_ended()
            if not self.ended:
                await trio.to_thread.run_sync(self.kill)
            elif self.cgroup is not None:  # empty by now: one rmdir
                await trio.to_thread.run_sync(_cgroups.remove, self.cgroup)
