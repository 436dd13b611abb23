"""Running task code in isolated child processes, through the fork server (``_worker.py``).

:func:`~._open.open_executor` starts the fork server and keeps it running (it is restarted
if it dies); :meth:`Executor.run` runs one execution and returns a :class:`RunResult`. How an
execution ended is classified by :func:`classify`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import struct
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..exceptions import ExecutorError
from ._job import Job, RunResult
from ._masking import Masker
from ._output import CappedBuffer, capped_into, close_all, pump
from ._pending import Pending
from ._spawn import start_worker

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

HEADER = struct.Struct(">I")
SEND_SECONDS = 5.0
"""How long a request frame may take to reach the worker before it is deemed stuck."""
DRAIN_SECONDS = 0.5
"""After the process ends, how long to wait for its pipes to reach EOF."""
MAX_RESTART_DELAY = 5.0
SUBMIT_ATTEMPTS = 3
"""How many workers may die before starting a run's child until the run fails: the request
itself may be what kills them."""


class Executor:
    """The daemon's side of the fork server. Create it with :func:`~._open.open_executor`."""

    def __init__(
        self, python: str, cgroups: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.python = python
        self.cgroups = cgroups
        """Where each run gets a cgroup of its own (a delegated cgroup v2 subtree), or None."""
        self.env = env
        """A cold start's: the variables of its worker's environment beyond the daemon's
        (None: the fork server's)."""
        self._cold: set[Executor] = set()
        """The one-run workers of runs under another interpreter (``Job.python``)."""
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._pending: dict[str, Pending] = {}
        self._sock: trio.socket.SocketType | None = None
        self._ready = trio.Event()
        self._gone = trio.Event()
        """Set once the current worker's death has been dealt with."""
        self._send_lock = trio.Lock()
        self._closing = False
        self.worker_pid: int | None = None
        self._on_ready: Callable[[], None] | None = None
        self._start_failure: str | None = None  # why the worker cannot be restarted
        self.worker_python: str | None = None
        self.restarts = 0

    def running_pids(self) -> list[int]:
        """Process ids of executions in flight (for the load monitor)."""
        pids = [p.pid for p in self._pending.values() if p.pid is not None and not p.abandoned]
        for cold in self._cold:
            pids += cold.running_pids()
        return pids

    async def check_code(self, code: str) -> str | None:
        """Check ``code`` with the task interpreter: None, or why it cannot be a task.

        Raises ExecutorError when the worker died or was stuck before it answered.
        """
        pending = await self._submit({"op": "check", "code": code}, [])
        try:
            await pending.started.wait()
        finally:
            self._pending.pop(pending.key, None)
        if pending.failure is not None:
            raise ExecutorError(pending.failure)
        assert pending.checked is not None
        problem = pending.checked["problem"]
        return None if problem is None else str(problem)

    async def run(
        self,
        job: Job,
        *,
        scope: trio.CancelScope | None = None,
        on_started: Callable[[int], None] | None = None,
        on_process: Callable[[int, str | None], Awaitable[None]] | None = None,
        on_output: Callable[[str, bytes], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Run ``job`` in a fresh child process and wait for it to end.

        The run happens inside ``scope``, by default a new one whose deadline is
        ``job.timeout_seconds`` from now; a caller that gives its own may cancel it or move
        its deadline while the run goes on. When the scope's deadline passes
        (``ended_by="timeout"``) or it is cancelled (``"cancel"``), the child is killed
        with every process it started (``_containment.py``); waiting for the worker and for
        the child to start counts too. Once the child started, ``on_started(pid)`` is
        called and ``on_process(pid, start)`` awaited (``start``: its identity, to record).
        Output is awaited into ``on_output("stdout" | "stderr", data)`` as it comes (a slow
        one holds the child back once its pipe is full); the result keeps a capped copy.
        Both have ``job.secrets`` masked (``_masking.py``).

        A job with its own ``python`` runs in a worker started for it under that
        interpreter (a cold start, counted in the run's time), stopped when the run ends;
        everything else is the same.

        Error handling: every way a run can end is a :class:`RunResult`, never an
        exception. A worker that dies before it started the child is replaced and the
        request sent again (the child had run nothing); a child whose worker dies under it
        is watched to its end (``worker_died``); when no child could be started at all,
        ``error`` says why.

        Cancellation: when this call is cancelled from outside ``scope`` (the daemon
        stops), the child is killed with its processes and ``trio.Cancelled`` propagates.
        """
        result = RunResult()
        if scope is None:
            scope = trio.CancelScope(deadline=trio.current_time() + job.timeout_seconds)
        pipes: list[tuple[int, int]] = []
        try:
            for _ in range(3):
                pipes.append(os.pipe2(os.O_CLOEXEC))
        except OSError as exc:  # out of file descriptors: give back the ones we took
            close_all([fd for pair in pipes for fd in pair])
            result.error = f"cannot create the pipes of an execution: {exc}"
            return result
        out, err = CappedBuffer(job.max_output_bytes), CappedBuffer(job.max_output_bytes)
        masker = Masker(job.secrets)
        masks = (masker.stream(), masker.stream()) if masker else (None, None)
        cold = job.python is not None and job.python != self.python
        worker: Executor | None = None if cold else self
        worker_scope = trio.CancelScope()  # a cold worker's
        readers = [trio.lowlevel.FdStream(r) for r, _ in pipes]
        writers = [w for _, w in pipes]
        request = job.request(self.cgroups and f"{self.cgroups}/run-{next(self._runs)}")
        pending: Pending | None = None
        res_buffer = bytearray()
        try:
            async with trio.open_nursery() as pumps:
                pumps.start_soon(pump, readers[0], out.feed, on_output, "stdout", masks[0])
                pumps.start_soon(pump, readers[1], err.feed, on_output, "stderr", masks[1])
                pumps.start_soon(pump, readers[2], capped_into(res_buffer, job.max_result_bytes))
                try:
                    with scope:
                        if cold:
                            worker = await self._start_cold(job, pumps, worker_scope, result)
                        for _ in range(SUBMIT_ATTEMPTS):
                            if worker is None:  # the cold start failed: result.error
                                break
                            pending = await worker._submit(request, writers)
                            await pending.started.wait()
                            if not pending.lost:
                                break
                        # From now on only the child (and its descendants) hold the write
                        # ends: the pipes reach EOF when they are done.
                        writers = close_all(writers)
                        if pending is not None and pending.pid is not None:
                            result.pid = pending.pid
                            if on_started is not None:
                                on_started(pending.pid)
                            if on_process is not None:
                                await on_process(pending.pid, pending.start)
                            await pending.wait_ended()
                finally:
                    ended = pending is not None and pending.ended  # by itself
                    if pending is not None and pending.pid is not None:
                        await pending.end_processes()
                if scope.cancelled_caught and not ended:
                    result.ended_by = (
                        "timeout" if trio.current_time() >= scope.deadline else "cancel"
                    )
                elif pending is not None and pending.failure is not None:
                    result.error = pending.failure
                    if pending.lost:
                        result.error = (
                            f"the execution could not be started in {SUBMIT_ATTEMPTS} attempts:"
                            f" {pending.failure}"
                        )
                if pending is not None and pending.pid is not None:
                    with trio.move_on_after(DRAIN_SECONDS):  # for its exit status and usage
                        await pending.wait_ended()
                if cold and worker is not None:
                    worker._closing = True
                worker_scope.cancel()
                # A descendant that escaped the group may hold the pipes open: bounded wait.
                pumps.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS
        finally:
            close_all(writers)
            if cold and worker is not None:
                self._cold.discard(worker)
            if pending is not None and worker is not None:
                if pending.settled.is_set():
                    worker._pending.pop(pending.key, None)
                else:
                    pending.abandoned = True
                if pending.pidfd is not None:
                    os.close(pending.pidfd)
                    pending.pidfd = None
            for stream in readers:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
        result.stdout, result.stderr = out.text(), err.text()
        if pending is None or pending.pid is None:
            return result
        if pending.exit is not None:
            result.wait_status = pending.exit["status"]
            result.cpu_seconds = pending.exit["cpu_seconds"]
            result.max_rss_mb = pending.exit["max_rss_kb"] / 1024.0
        result.worker_died = pending.orphaned
        result.read_report(bytes(res_buffer), job.max_result_bytes)
        return result

    async def _start_cold(
        self, job: Job, nursery: trio.Nursery, scope: trio.CancelScope, result: RunResult
    ) -> Executor | None:
        """A worker under ``job.python`` for one run, serving in ``nursery`` until
        ``scope`` is cancelled; None (``result.error`` says why) when it cannot start."""
        assert job.python is not None
        worker = Executor(job.python, self.cgroups, dict(job.env))

        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await worker._serve(task_status=task_status)

        try:
            await nursery.start(serve)
        except ExecutorError as exc:  # it started, and died before it was ready
            result.error = exc.detail
            return None
        except OSError as exc:
            result.error = f"the interpreter {job.python} could not be started: {exc}"
            return None
        self._cold.add(worker)  # its runs are ours for the load monitor
        return worker

    async def _submit(self, request: dict[str, Any], fds: list[int]) -> Pending:
        """Send ``request`` to the worker once one is ready.

        A worker that is dead or stuck did not get the request whole: it is replaced, and
        the pending comes back ``lost`` (its ``failure`` says why) once it is gone, so that
        the request may be sent again to the next one.
        """
        await self._ready.wait()
        pending = Pending(f"{next(self._ids)}", cgroup=request.get("cgroup"))
        self._pending[pending.key] = pending
        body = json.dumps({**request, "id": pending.key}).encode()
        frame = HEADER.pack(len(body)) + body
        failure: str | None = None
        try:
            async with self._send_lock:
                sock, gone = self._sock, self._gone
                if sock is None:
                    failure = self._start_failure or "the task worker is not running"
                else:
                    ancillary = (
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array("i", fds))] if fds else []
                    )
                    # Half a frame would corrupt the protocol for every later request: once
                    # started, a frame is sent whole (shielded), or the worker is replaced.
                    with trio.move_on_after(SEND_SECONDS, shield=True) as sending:
                        try:
                            sent = await sock.sendmsg([frame], ancillary)
                            view = memoryview(frame)[sent:]
                            while view:
                                view = view[await sock.send(view) :]
                        except OSError as exc:
                            failure = f"the task worker is not reachable: {exc}"
                    if sending.cancelled_caught:
                        failure = "the task worker is not responding"
                    if failure is not None and self._sock is sock:  # not a newer one
                        self._restart_worker()
            if failure is not None:
                self._pending.pop(pending.key, None)
                if sock is not None:
                    await gone.wait()
                pending.lose(failure)
        except BaseException:
            self._pending.pop(pending.key, None)
            raise
        return pending

    async def _serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep one fork server running; restart it with backoff when it dies."""
        delay = 0.1
        first = True
        while True:
            try:
                process, parent = await start_worker(
                    self.python, self.env, cold=self.env is not None
                )
            except OSError as exc:  # no fd or memory to spare, the interpreter upgraded...
                if first:  # (OMNIMIND_TASK_PYTHON names no program, or one not executable)
                    raise ExecutorError(
                        f"the task interpreter {self.python} cannot be started:"
                        f" {exc.strerror or exc}"
                    ) from None
                failure = f"the task worker cannot be restarted: {exc}"
                if self._start_failure is None:  # once per outage
                    log.error("%s; trying again, every %g s at most", failure, MAX_RESTART_DELAY)
                self._start_failure = failure
                self.worker_pid = None  # reaped: its pid may be another process's now
                self._ready.set()  # meanwhile, runs fail at once, saying why (_submit)
                await trio.sleep(delay)
                self._ready, delay = trio.Event(), min(delay * 2, MAX_RESTART_DELAY)
                continue
            if self._start_failure is not None:
                log.warning("the task worker could be restarted again")
            self._start_failure = None
            self.worker_pid = process.pid
            self._sock = trio.socket.from_stdlib_socket(parent)
            # Executions are sent only once the worker says it is ready (imports done):
            # the first run after a (re)start then costs a fork, not an interpreter start.
            self._on_ready = task_status.started if first else None
            started_at = trio.current_time()
            try:
                await self._read_replies(self._sock)
            finally:
                self._ready = trio.Event()
                sock, self._sock = self._sock, None
                sock.close()
                self._worker_gone()
                gone, self._gone = self._gone, trio.Event()
                gone.set()
                with trio.CancelScope(shield=True):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            if self._closing:
                return
            if first and self._on_ready is not None:  # it never became ready
                raise ExecutorError(
                    f"the task interpreter {self.python} could not start the task worker"
                    f" (exit status {process.returncode})"
                )
            first = False
            log.error(
                "task worker exited with status %s; restarting",
                process.returncode,
                extra={"exit_status": process.returncode},
            )
            self.restarts += 1
            delay = (
                0.1 if trio.current_time() - started_at > 10 else min(delay * 2, MAX_RESTART_DELAY)
            )
            await trio.sleep(delay)

    async def _read_replies(self, sock: trio.socket.SocketType) -> None:
        """Dispatch the worker's messages until it closes the socket or dies."""
        buffer = bytearray()
        while True:
            try:
                chunk = await sock.recv(65536)
            except ConnectionResetError:
                # It died with requests unread. What it sent before comes first: nothing
                # it said is lost.
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= HEADER.size:
                (size,) = HEADER.unpack_from(buffer)
                if len(buffer) < HEADER.size + size:
                    break
                message = json.loads(buffer[HEADER.size : HEADER.size + size])
                del buffer[: HEADER.size + size]
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["op"] == "ready":
            self.worker_python = message.get("python")
            self._ready.set()
            if self._on_ready is not None:
                self._on_ready()
                self._on_ready = None
            return
        pending = self._pending.get(message["id"])
        if pending is None:
            return
        pending.take(message)
        if message["op"] == "exit" and pending.abandoned:
            self._pending.pop(message["id"], None)

    def _restart_worker(self) -> None:
        """Kill the fork server; ``_serve`` starts a new one (runs in flight go on)."""
        if self.worker_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker_pid, signal.SIGKILL)

    def _worker_gone(self) -> None:
        """The fork server died (or we are closing).

        A request it had not started a child for is lost: its run sends it again (the
        child, if there was one, ran nothing; see ``_worker.py``). A child it had started
        goes on running, watched by its run through its pidfd, unless we are closing, its
        run is over or it has no pidfd: then it is killed.
        """
        for pending in self._pending.values():
            if pending.settled.is_set():
                continue
            if pending.pid is None:
                pending.lose("the task worker process died")
                continue
            pending.orphaned = True
            if self._closing or pending.abandoned or pending.pidfd is None:
                pending.kill()
            pending.settled.set()
        self._pending = {
            key: p for key, p in self._pending.items() if p.orphaned and not p.abandoned
        }
