"""Live output: what a run prints, while it prints it.

Each run of code has a :class:`LiveOutput` from its start to its end. What the child
writes is kept three ways:

- so far, capped like the record's (``OMNIMIND_MAX_OUTPUT_BYTES`` per stream, head and
  tail), for ``GET /daemon/executions/{id}`` while the run goes on;
- in its log file (``_logfile.py``), up to ``OMNIMIND_MAX_LOG_BYTES``;
- as ``execution_output`` events, coalesced: at most one per stream every
  ``COALESCE_SECONDS``, each at most ``EVENT_BYTES`` (a burst beyond says how much was
  skipped), so a task printing in a tight loop cannot flood a client or the daemon.

Two tasks per run that prints (:meth:`LiveOutput.start_flushing`, in the run's own
nursery) publish the events and write the file in a worker thread. The child is held back
(its pipe fills) while more than ``UNWRITTEN_BYTES`` wait for the file, so memory stays
bounded whatever it prints.

:class:`OutputHub` finds the live output of a run in flight, serves logs (a finished run's
from its file, or from its record when it has none), and removes the log files whose
history row retention deleted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..execution import CappedBuffer
from ..models import ExecutionRecord
from ..store import Store
from ._logfile import LogFile, read_parts

log = logging.getLogger(__package__)

COALESCE_SECONDS = 0.1
EVENT_BYTES = 16 * 1024
UNWRITTEN_BYTES = 1024 * 1024
CLOSE_SECONDS = 2.0
"""Bound on the last flush of a run's output and the folding of its log file."""
SUFFIX = ".log"
STREAMS = ("stdout", "stderr")


class LiveOutput:
    """The output of one run in flight."""

    def __init__(
        self,
        record: ExecutionRecord,
        *,
        so_far_bytes: int,
        log_file: LogFile | None,
        publish: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.execution_id = record.execution_id
        self.task_id = record.task_id
        self.so_far = {name: CappedBuffer(so_far_bytes) for name in STREAMS}
        self.log_file = log_file
        self._publish = publish
        self.unwritten = bytearray()
        """Output not yet in the log file."""
        self._events: dict[str, bytearray] = {name: bytearray() for name in STREAMS}
        self._skipped = dict.fromkeys(STREAMS, 0)
        self._more = trio.Event()  # for the events
        self._unwritten_more = trio.Event()  # for the file
        self._written = trio.Event()
        self._nursery: trio.Nursery | None = None  # until the loops are started
        self.write_error: str | None = None

    async def feed(self, stream: str, data: bytes) -> None:
        """What the child wrote on ``stream`` (the executor's ``on_output``)."""
        if self._nursery is not None:
            self._start_loops()
        self.so_far[stream].feed(data)
        pending = self._events[stream]
        room = EVENT_BYTES - len(pending)
        pending += data[:room]
        self._skipped[stream] += max(0, len(data) - room)
        if self.log_file is not None and self.write_error is None:
            self.unwritten += data
            self._unwritten_more.set()
        self._more.set()
        while len(self.unwritten) > UNWRITTEN_BYTES and self.write_error is None:
            await self._written.wait()

    def text(self, stream: str) -> str:
        return self.so_far[stream].text()

    def start_flushing(self, nursery: trio.Nursery) -> None:
        """Flush in ``nursery`` (the run's; cancel it when the run ended: :meth:`close`
        flushes the rest) from the first output on: publish what came at most every
        COALESCE_SECONDS, and write it to the file as fast as the disk takes it (a child
        held back by a full buffer waits for the file, not the events). A run that prints
        nothing costs no task."""
        self._nursery = nursery

    def _start_loops(self) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._publish_loop)
            self._nursery.start_soon(self._write_loop)
            self._nursery = None

    async def _publish_loop(self) -> None:
        while True:
            await self._more.wait()
            self._more = trio.Event()
            self._publish_pending()
            await trio.sleep(COALESCE_SECONDS)

    async def _write_loop(self) -> None:
        while True:
            await self._unwritten_more.wait()
            self._unwritten_more = trio.Event()
            await self._write_pending()

    async def close(self) -> None:
        """The run ended: flush what is left and finish the file (shielded: this runs
        during cancellation too)."""
        # Bounded: a disk that hangs (a dead network mount) must not hold up the run's
        # record or a stop; the thread is abandoned then (the file's lock keeps it whole).
        self._publish_pending()
        with trio.move_on_after(CLOSE_SECONDS, shield=True):
            await self._write_pending(abandon=True)
            if self.log_file is not None:
                await trio.to_thread.run_sync(self.log_file.close, abandon_on_cancel=True)

    def _publish_pending(self) -> None:
        where = f"GET /daemon/executions/{self.execution_id}/log"
        for stream in STREAMS:
            pending, skipped = self._events[stream], self._skipped[stream]
            if not pending and not skipped:
                continue
            text = pending.decode("utf-8", "replace")
            if skipped:
                text += f"\n[... {skipped} bytes skipped: the whole output is in {where} ...]\n"
            self._events[stream], self._skipped[stream] = bytearray(), 0
            self._publish(
                "execution_output",
                {
                    "execution_id": self.execution_id,
                    "task_id": self.task_id,
                    "stream": stream,
                    "data": text,
                },
            )

    async def _write_pending(self, *, abandon: bool = False) -> None:
        """Write what waits for the file. ``abandon``: a cancel leaves a write that hangs
        to its thread (the last write only: earlier, a later write could pass it)."""
        if self.unwritten and self.log_file is not None and self.write_error is None:
            chunk, self.unwritten = bytes(self.unwritten), bytearray()
            try:
                await trio.to_thread.run_sync(self.log_file.write, chunk, abandon_on_cancel=abandon)
            except OSError as exc:  # a full disk loses the log, never the run
                self.write_error = f"cannot write {self.log_file.path}: {exc}"
                log.warning("%s; the rest of this run's log is not kept", self.write_error)
        written, self._written = self._written, trio.Event()
        written.set()


class OutputHub:
    """The live outputs of the runs in flight, and the log files of the finished ones."""

    def __init__(
        self,
        directory: Path,
        *,
        so_far_bytes: int,
        log_bytes: int,
        publish: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.directory = directory
        self._so_far_bytes = so_far_bytes
        self._log_bytes = log_bytes
        self._publish = publish
        self._live: dict[str, LiveOutput] = {}

    def path(self, execution_id: str) -> Path:
        return self.directory / f"{execution_id}{SUFFIX}"

    def open(self, record: ExecutionRecord) -> LiveOutput:
        """The live output of a run that starts (its file is created at its first byte)."""
        log_file = (
            LogFile(self.path(record.execution_id), self._log_bytes) if self._log_bytes else None
        )
        live = LiveOutput(
            record, so_far_bytes=self._so_far_bytes, log_file=log_file, publish=self._publish
        )
        self._live[record.execution_id] = live
        return live

    def forget(self, execution_id: str) -> None:
        self._live.pop(execution_id, None)

    def find(self, execution_id: str) -> LiveOutput | None:
        return self._live.get(execution_id)

    async def read(self, record: ExecutionRecord, tail_lines: int | None) -> str:
        """The run's output as text: its log file (so far, while it runs), or for a run
        without one (no output, log files off, or older than them) its record's stdout
        then stderr."""
        live = self._live.get(record.execution_id)
        parts: list[Path | bytes]
        if live is not None and live.log_file is not None:
            unwritten = bytes(live.unwritten)  # not yet in the file: taken before it is read
            parts = [*await trio.to_thread.run_sync(live.log_file.parts), unwritten]
        elif live is not None:
            parts = [live.text("stdout").encode(), live.text("stderr").encode()]
        else:
            path = self.path(record.execution_id)
            exists = await trio.to_thread.run_sync(path.exists)
            parts = [path] if exists else []
            if not exists:
                parts = [(record.stdout or "").encode(), (record.stderr or "").encode()]
        data = await trio.to_thread.run_sync(read_parts, parts, tail_lines)
        return data.decode("utf-8", "replace")

    async def prepare(self) -> None:
        """Create the directory (private) and remove segments a crash left behind."""

        def prepare() -> None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in self.directory.iterdir():
                if not path.name.endswith(SUFFIX):  # <id>.log.<n>: a crashed run's segment
                    path.unlink(missing_ok=True)

        if not self._log_bytes:
            return
        try:
            await trio.to_thread.run_sync(prepare)
        except OSError as exc:  # the runs go on, with their capped output in the history
            log.warning(
                "cannot keep log files in %s (%s): runs keep no log file", self.directory, exc
            )
            self._log_bytes = 0

    async def sweep(self, store: Store) -> int:
        """Remove the log files whose execution is no longer in the history (retention
        deleted it); returns how many went."""

        def listing() -> list[str]:
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                return []
            return [n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX)]

        ids = [i for i in await trio.to_thread.run_sync(listing) if i not in self._live]
        if not ids:
            return 0
        known = await store.known_executions(ids)
        gone = [i for i in ids if i not in known]

        def remove() -> None:
            for execution_id in gone:
                self.path(execution_id).unlink(missing_ok=True)

        await trio.to_thread.run_sync(remove)
        return len(gone)
