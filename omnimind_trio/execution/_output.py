"""Capturing a child's output: bounded, whatever the child writes."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio

from ._masking import StreamMasker


class CappedBuffer:
    """Keeps the first and last ``limit // 2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self._half = max(1, limit // 2)
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._half:
                del self._tail[: len(self._tail) - self._half]

    def text(self) -> str:
        tail = self._tail[-self._half :]
        omitted = self.total - len(self._head) - len(tail)
        if omitted <= 0:
            return (self._head + tail).decode("utf-8", "replace")
        return (
            self._head.decode("utf-8", "replace")
            + f"\n[... {omitted} bytes truncated ...]\n"
            + tail.decode("utf-8", "replace")
        )


async def pump(
    stream: trio.lowlevel.FdStream,
    sink: Callable[[bytes], None],
    forward: Callable[[str, bytes], Awaitable[None]] | None = None,
    name: str = "",
    masking: StreamMasker | None = None,
) -> None:
    """Read ``stream`` to its end into ``sink``, and into ``forward(name, data)`` if given,
    through ``masking`` if given (what it holds back goes to ``sink`` even when the pump
    is cancelled, and to ``forward`` at the end of the stream)."""
    rest = b""
    try:
        while data := await stream.receive_some(65536):
            if masking is not None:
                data = masking.feed(data)
            if data:
                sink(data)
                if forward is not None:
                    await forward(name, data)
    except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
        pass
    finally:
        if masking is not None:
            rest = masking.flush()
            sink(rest)
    if rest and forward is not None:
        await forward(name, rest)


def capped_into(buffer: bytearray, limit: int) -> Callable[[bytes], None]:
    def feed(data: bytes) -> None:
        if len(buffer) <= limit:
            buffer.extend(data[: limit + 1 - len(buffer)])

    return feed


def close_all(fds: list[int]) -> list[int]:
    """Close ``fds`` (once: returns the empty list to keep)."""
    for fd in fds:
        os.close(fd)
    return []
