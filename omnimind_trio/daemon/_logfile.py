"""One execution's output on disk: ``<home>/logs/<execution_id>.log``.

Both streams go to one file in the order they came, as a terminal shows them. The file
keeps at most ``limit`` bytes (``OMNIMIND_MAX_LOG_BYTES``): the first half, then the latest
output. The latest output is written to tail segments of a quarter of the limit each, of
which the two newest are kept; when the run ends they are appended to the file after a line
saying how much was left out. So a run printing for days writes at most ``limit`` bytes at
any time, and the file is never rewritten.

Everything here is blocking file work: the daemon calls it in a worker thread. A lock keeps
a reader (``GET /daemon/executions/{id}/log`` while the run goes on) and the writer apart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BLOCK = 65536


def omitted_line(count: int) -> bytes:
    return f"\n[... {count} bytes omitted ...]\n".encode()


class LogFile:
    """The log file of one running execution (see the module's docstring)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self._head_room = limit - limit // 2
        self._segment_bytes = max(1, limit // 4)
        self._lock = threading.Lock()
        self._head: BinaryIO | None = None
        self._segments: list[Path] = []  # oldest first; at most two
        self._current: BinaryIO | None = None
        self._current_size = 0
        self._serial = 0
        self.total = 0
        """Bytes written, including those left out."""
        self.dropped = 0
        """Bytes left out (the segments deleted)."""

    def write(self, data: bytes) -> None:
        with self._lock:
            self.total += len(data)
            if self._head_room:
                if self._head is None:
                    self._head = _create(self.path)
                take = data[: self._head_room]
                self._head.write(take)
                self._head.flush()
                self._head_room -= len(take)
                data = data[len(take) :]
            while data:
                if self._current is None or self._current_size >= self._segment_bytes:
                    self._next_segment()
                assert self._current is not None
                take = data[: self._segment_bytes - self._current_size]
                self._current.write(take)
                self._current.flush()
                self._current_size += len(take)
                data = data[len(take) :]

    def _next_segment(self) -> None:
        if self._current is not None:
            self._current.close()
        if len(self._segments) == 2:
            oldest = self._segments.pop(0)
            self.dropped += oldest.stat().st_size
            oldest.unlink()
        self._serial += 1
        segment = self.path.with_name(f"{self.path.name}.{self._serial}")
        self._segments.append(segment)
        self._current, self._current_size = _create(segment), 0

    def parts(self) -> list[Path | bytes]:
        """What a reader sees now: the head, then (once output was left out) the line
        saying how much, and the segments."""
        with self._lock:
            if self._head is None:
                return []
            if self._head.closed:  # finished: the file holds it all
                return [self.path]
            parts: list[Path | bytes] = [self.path]
            if self.dropped:
                parts.append(omitted_line(self.dropped))
            parts.extend(self._segments)
            return parts

    def close(self) -> None:
        """The run ended: append what the segments hold to the file, then remove them."""
        with self._lock:
            if self._current is not None:
                self._current.close()
                self._current = None
            if self._head is None:
                return
            try:
                if self.dropped:
                    self._head.write(omitted_line(self.dropped))
                for segment in self._segments:
                    with segment.open("rb") as source:
                        while block := source.read(BLOCK):
                            self._head.write(block)
            finally:
                self._head.close()
                for segment in self._segments:
                    segment.unlink(missing_ok=True)
                self._segments = []


def _create(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb")


def read_parts(parts: list[Path | bytes], tail_lines: int | None = None) -> bytes:
    """The text of ``parts`` (files and literal bytes, in order), or its last
    ``tail_lines`` lines, read from the end so a 10 MB log costs what the lines cost."""
    if tail_lines is None:
        return b"".join(_whole(part) for part in parts)
    if tail_lines <= 0:
        return b""
    found: list[bytes] = []
    newlines = 0
    for part in reversed(parts):
        for block in _backwards(part):
            found.append(block)
            newlines += block.count(b"\n")
            if newlines > tail_lines:  # one more: the last line may end the text
                break
        if newlines > tail_lines:
            break
    text = b"".join(reversed(found))
    lines = text.splitlines(keepends=True)
    return b"".join(lines[-tail_lines:])


def _whole(part: Path | bytes) -> bytes:
    if isinstance(part, bytes):
        return part
    try:
        return part.read_bytes()
    except FileNotFoundError:  # a segment removed as the run ended: read again
        return b""


def _backwards(part: Path | bytes) -> Iterator[bytes]:
    """The blocks of ``part`` from its end to its start, each read when it is asked for."""
    if isinstance(part, bytes):
        yield part
        return
    try:
        with part.open("rb") as file:
            position = file.seek(0, os.SEEK_END)
            while position > 0:
                step = min(BLOCK, position)
                position -= step
                file.seek(position)
                yield file.read(step)
    except FileNotFoundError:  # a segment removed as the run ended
        return
