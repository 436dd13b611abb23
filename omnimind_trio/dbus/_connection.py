"""One connection to a bus: a non-blocking Unix socket, jeepney's authentication and
message parser, and Trio's readiness waits.

jeepney's ``DBusConnection`` was the first choice; its ``send`` and ``receive`` take two
locks and go three times through Trio's scheduler per call, half the CPU a call cost
(about 160 of 330 us here). A sensor asks a few times a second for ever, so the socket is
used directly: a small message is written at once, and the reply waited for with
``wait_readable``. No background task either way: the caller reads its own reply.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import trio


class Connection:
    """A bus connection for one task at a time (the caller holds a lock).

    Error handling: OSError and ``trio.EndOfChannel`` (the bus closed the connection).
    A send or receive interrupted (a timeout) leaves the stream mid-message: the caller
    closes the connection then."""

    def __init__(self, sock: socket.socket) -> None:
        from jeepney.low_level import Parser

        self.socket = sock
        self.parser = Parser()
        self.unique_name: str | None = None

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.socket.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.socket)
                continue
            view = view[sent:]

    async def receive(self) -> Any:
        """The next message (a jeepney ``Message``)."""
        while (message := self.parser.get_next_message()) is None:
            await self._read()
        return message

    async def _read(self) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self.socket)
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise trio.EndOfChannel("the bus closed the connection")
            self.parser.add_data(data)
            return data

    async def authenticate(self) -> None:
        """The SASL exchange (EXTERNAL: the bus reads our uid from the socket)."""
        from jeepney.auth import BEGIN, Authenticator

        await self.send(b"\0")
        authenticator = Authenticator(enable_fds=False, inc_null_byte=False)
        for line in authenticator:
            await self.send(line)
            while True:  # the bus's answer is a line; read it whole
                await trio.lowlevel.wait_readable(self.socket)
                try:
                    data = self.socket.recv(4096)
                except BlockingIOError:
                    continue
                if not data:
                    raise trio.EndOfChannel("the bus closed the connection")
                authenticator.feed(data)
                if data.endswith(b"\r\n"):
                    break
        await self.send(BEGIN)

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()


async def connect_unix(path: str) -> Connection:
    """A connected, not yet authenticated, connection to ``path`` (a leading NUL: an
    abstract socket). Raises OSError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:  # the bus's backlog is full: wait for it
            await trio.lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
        await trio.lowlevel.checkpoint()
    except BaseException:
        sock.close()
        raise
    return Connection(sock)


class Serialised:
    """A method call serialised once; each send writes its serial into a copy (the
    header's bytes 8-12, in the message's byte order)."""

    __slots__ = ("_data", "_format")

    def __init__(self, message: Any) -> None:
        data = message if isinstance(message, bytes) else message.serialise(serial=1)
        self._data = bytearray(data)
        self._format = "<I" if data[:1] == b"l" else ">I"

    def serialise(self, serial: int) -> bytes:
        struct.pack_into(self._format, self._data, 8, serial)
        return bytes(self._data)
