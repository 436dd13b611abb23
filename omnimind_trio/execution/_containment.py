"""Containment: every process a run starts ends with the run.

A run's child (forked by the fork server) is its *keeper*: it becomes a child subreaper
(``PR_SET_CHILD_SUBREAPER``), forks the process that runs the task, and stays until the
run ends. A descendant that leaves the process group (``setsid``, a double fork) is then
still in the keeper's tree: when its parent dies it is re-parented to the keeper, not to
init. When the task's process ends, the keeper kills whatever is left of its tree, reaps
it, and exits with the task's exit status (:func:`keep`). When the run is cut short
(timeout, cancel, delete, the daemon stops), the daemon kills the keeper's whole tree
(:func:`kill_tree`). The keeper also watches the daemon: it holds the write end of the
run's result pipe, whose read end only the daemon has, and when the daemon dies that end
reports an error: the keeper then kills its tree and exits, so a ``kill -9`` of the daemon
(and of the fork server) leaves nothing running.

Killing a tree freezes it first: every descendant gets SIGSTOP, the tree is read again until
no new process appears (a process that was forking when the tree was read shows its child
once it is stopped), then every one gets SIGKILL. A process is named by its pid and its
start identity (:func:`process_start`: the boot id and its start time in clock ticks), so a
pid that was recycled by an unrelated process is never killed.

Where a cgroup v2 subtree is delegated to the daemon, each keeper also moves into a cgroup
of its own (:mod:`._cgroups`), and killing its tree writes ``cgroup.kill`` as well.

This file runs under the task interpreter too (imported by ``_worker.py``): standard
library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SETTLE_SECONDS = 1.0
"""How long a freeze waits for the processes it stopped to be seen stopped."""
REAP_SECONDS = 5.0
"""How long a keeper waits for the processes it killed to be reaped."""
STOPPED_STATES = frozenset("TtZXx")


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` through libc; False where it fails or does not exist."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode("ascii", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


_boot_id: str | None = None


def process_start(pid: int) -> str | None:
    """The start identity of process ``pid`` (boot id and start time in clock ticks), or
    None when it does not exist. Two processes with the same pid have different ones."""
    global _boot_id
    fields = _stat(pid)
    if fields is None or len(fields) < 20:
        return None
    if _boot_id is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as file:
                _boot_id = file.read().strip()
        except OSError:
            _boot_id = "-"
    return f"{_boot_id}/{fields[19]}"


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    return children


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (not ``root`` itself), read from ``/proc``."""
    children = _children_map()
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _wait_stopped(pids: set[int], deadline: float) -> None:
    for pid in pids:
        while time.monotonic() < deadline:
            fields = _stat(pid)
            if fields is None or fields[0] in STOPPED_STATES:
                break
            time.sleep(0.0005)


def kill_tree(root: int, start: str | None = None, *, include_root: bool = True) -> set[int]:
    """Freeze, then SIGKILL, ``root``'s whole process tree; returns the pids signalled.

    With ``start``, nothing is done unless ``root`` still has that start identity (see
    :func:`process_start`): a recycled pid is left alone. ``include_root=False`` spares
    ``root`` (a keeper killing its own tree). Blocks for at most about
    :data:`SETTLE_SECONDS` (the freeze), so the daemon calls it in a thread.
    """
    if start is not None and process_start(root) != start:
        return set()
    deadline = time.monotonic() + SETTLE_SECONDS
    frozen: set[int] = set()
    fresh = {root} if include_root else set()
    while True:
        fresh |= descendants(root) - frozen - {os.getpid()}
        if not fresh:
            break
        for pid in fresh:
            _signal(pid, signal.SIGSTOP)
        _wait_stopped(fresh, deadline)
        frozen |= fresh
        fresh = set()
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    return frozen


def keep(task_pid: int, watch_fd: int, on_kill: list[int]) -> int:
    """In the keeper, once it forked the task's process: wait for it to end (reaping the
    orphans re-parented meanwhile), kill what is left of the tree, reap it, and return the
    task's wait status.

    The keeper's tree is killed early, with status SIGKILL, when the daemon dies (``watch_fd``,
    the write end of a pipe only the daemon reads, reports an error) or when a signal
    listed in ``on_kill`` arrives (its own status is then that signal).
    """
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    received: list[int] = []
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for signum in on_kill:
        signal.signal(signum, lambda signum, _frame: received.append(signum))
    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    poller.register(watch_fd, select.POLLERR)
    status: int | None = None
    while status is None:
        status = _reap(task_pid)
        if status is not None:
            break
        if received:
            status = received[0]  # a signal number is the wait status of that death
            break
        events = dict(poller.poll())
        if events.get(watch_fd, 0) & (select.POLLERR | select.POLLHUP):
            status = signal.SIGKILL
            break
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_r, 4096):
                pass
    if _has_children():
        kill_tree(os.getpid(), include_root=False)
        deadline = time.monotonic() + REAP_SECONDS
        while _has_children() and time.monotonic() < deadline:
            _reap(None)
            time.sleep(0.001)
    return status


def _has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _reap(task_pid: int | None) -> int | None:
    """Reap every child that has ended; the wait status of ``task_pid`` if it was one."""
    found: int | None = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == task_pid:
            found = status
