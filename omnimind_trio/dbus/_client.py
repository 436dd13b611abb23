"""One persistent connection to one bus, for short method calls and property reads.

A plain ``jeepney.io.trio.DBusConnection``, no router: a call sends its message with a
serial of our own, then receives until the reply that names that serial (signals and
stale replies of calls that timed out are dropped), so no background task is needed. A
lock makes concurrent calls take turns on the connection.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from ._address import session_bus_address, system_bus_address

TIMEOUT_SECONDS: Final = 1.0
"""Bound on one call, connecting included."""
RECONNECT_SECONDS: Final = 10.0
"""After connecting failed, calls fail at once (with the same message) this long."""

_ERROR = "org.freedesktop.DBus.Error."
_NOT_THERE: Final = {_ERROR + "ServiceUnknown", _ERROR + "NameHasNoOwner"}
_NO_SUCH: Final = {
    _ERROR + name
    for name in ("UnknownMethod", "UnknownObject", "UnknownInterface", "UnknownProperty")
}
_NO_ANSWER: Final = {_ERROR + "NoReply", _ERROR + "Timeout", _ERROR + "TimedOut"}


class BusError(Exception):
    """A call that did not get its answer: no bus, a connection refused or lost, no answer
    in time, or an error reply. The message says which, in words.

    ``name`` is the D-Bus error name of an error reply
    (``org.freedesktop.DBus.Error.ServiceUnknown``...), None for the other failures."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


def _load_jeepney_and_locate(locate: Callable[[], str | None]) -> str | None:
    import jeepney
    import jeepney.auth
    import jeepney.bus
    import jeepney.bus_messages
    import jeepney.io.trio
    import jeepney.low_level  # noqa: F401

    return locate()


class BusClient:
    """Calls on one bus over one connection, made at the first call (jeepney is imported
    then, in a worker thread: its import does not run on the event loop).

    Error handling: every failure raises :class:`BusError`. The connection is dropped on
    any failure but an error reply (the bus answered: the connection is sound), so the
    next call connects again; after connecting failed, calls fail at once for
    ``reconnect_seconds``.
    """

    def __init__(
        self,
        address: str | Callable[[], str | None] | None,
        *,
        bus: str = "session bus",
        missing: str = "no address",
        timeout_seconds: float = TIMEOUT_SECONDS,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        """``address``: the bus's address, or a function finding it at each connection
        (it may stat files: it runs in a worker thread). ``bus`` names the bus in
        messages; ``missing`` says why there is none when the address is None."""
        self._locate = address if callable(address) else lambda: address
        self.bus = bus
        self._missing = missing
        self.timeout_seconds = timeout_seconds
        self.reconnect_seconds = reconnect_seconds
        self._connection: Any = None
        self._lock = trio.Lock()
        self._serials = itertools.count(1)
        self._retry_at: float | None = None
        self._failure = ""
        self.connections = 0
        """How many connections were made (each after the previous one was dropped)."""

    @classmethod
    def session(cls, environ: Mapping[str, str] = os.environ, **options: float) -> BusClient:
        """A client of the session bus ``environ`` names (see :func:`session_bus_address`)."""
        return cls(
            lambda: session_bus_address(environ),
            bus="session bus",
            missing="DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus",
            **options,
        )

    @classmethod
    def system(cls, environ: Mapping[str, str] = os.environ, **options: float) -> BusClient:
        """A client of the system bus (see :func:`system_bus_address`)."""
        return cls(
            lambda: system_bus_address(environ),
            bus="system bus",
            missing="DBUS_SYSTEM_BUS_ADDRESS is not set and there is no"
            " /run/dbus/system_bus_socket",
            **options,
        )

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        method: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
    ) -> tuple[Any, ...]:
        """Call ``method`` and return the reply's body. Raises :class:`BusError`."""

        def message() -> Any:
            from jeepney import DBusAddress, new_method_call

            target = DBusAddress(path, bus_name=destination, interface=interface)
            return new_method_call(target, method, signature, body)

        return await self._request(destination, f"{interface}.{method} at {path}", message)

    async def get_property(self, destination: str, path: str, interface: str, name: str) -> Any:
        """A property's value (``org.freedesktop.DBus.Properties.Get``, the variant
        unwrapped). Raises :class:`BusError`."""

        def message() -> Any:
            from jeepney import DBusAddress, new_method_call

            target = DBusAddress(
                path, bus_name=destination, interface="org.freedesktop.DBus.Properties"
            )
            return new_method_call(target, "Get", "ss", (interface, name))

        what = f"property {interface}.{name} at {path}"
        body = await self._request(destination, what, message)
        try:
            (_signature, value), *_ = body
        except (TypeError, ValueError):
            raise BusError(f"{destination} answered {what} with {body!r}") from None
        return value

    async def aclose(self) -> None:
        """Close the connection (a later call makes a new one)."""
        self._drop()

    async def _request(
        self, destination: str, what: str, build: Callable[[], Any]
    ) -> tuple[Any, ...]:
        connecting = False
        try:
            with trio.fail_after(self.timeout_seconds):
                async with self._lock:
                    if self._connection is None:
                        connecting = True
                        self._connection = await self._connect()
                        connecting = False
                    reply = await self._exchange(self._connection, build())
        except BusError:
            raise
        except trio.TooSlowError:
            self._drop()
            if connecting:
                raise self._connect_failed(
                    f"the {self.bus} did not answer within {self.timeout_seconds:g} s"
                ) from None
            raise BusError(
                f"{destination} did not answer {what} within {self.timeout_seconds:g} s"
            ) from None
        except Exception as exc:  # the connection broke or closed, a message we cannot parse
            self._drop()
            if connecting:
                raise self._connect_failed(f"cannot connect to the {self.bus}: {exc}") from exc
            raise BusError(f"the connection to the {self.bus} failed: {_describe(exc)}") from exc
        return self._unwrap(reply, destination, what)

    async def _connect(self) -> Any:
        now = trio.current_time()
        if self._retry_at is not None and now < self._retry_at:
            raise BusError(self._failure)
        address = await trio.to_thread.run_sync(_load_jeepney_and_locate, self._locate)
        from jeepney.auth import BEGIN, Authenticator
        from jeepney.bus import get_connectable_addresses
        from jeepney.bus_messages import message_bus
        from jeepney.io.trio import DBusConnection

        if address is None:
            raise self._connect_failed(f"no {self.bus} ({self._missing})")
        try:
            path = next(get_connectable_addresses(address))
        except (RuntimeError, ValueError, StopIteration):
            raise self._connect_failed(
                f"no {self.bus} at {address!r} (only unix: addresses are supported)"
            ) from None
        shown = path.replace("\0", "@")
        try:
            stream = await trio.open_unix_socket(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise self._connect_failed(f"no {self.bus} at {shown} ({reason})") from None
        try:
            await stream.send_all(b"\0")  # Linux: the bus reads our uid with SO_PEERCRED
            authenticator = Authenticator(enable_fds=False, inc_null_byte=False)
            for line in authenticator:
                await stream.send_all(line)
                received = await stream.receive_some()
                if not received:
                    raise trio.EndOfChannel("the bus closed the connection")
                authenticator.feed(received)
            await stream.send_all(BEGIN)
            connection = DBusConnection(stream.socket)
            hello = await self._exchange(connection, message_bus.Hello())
            connection.unique_name = hello.body[0]
        except BaseException as exc:
            stream.socket.close()
            if isinstance(exc, Exception):  # (Cancelled, at the call's deadline, goes up)
                raise self._connect_failed(
                    f"the {self.bus} at {shown} refused us: {_describe(exc)}"
                ) from exc
            raise
        self._retry_at = None
        self.connections += 1
        return connection

    def _connect_failed(self, message: str) -> BusError:
        self._failure = message
        self._retry_at = trio.current_time() + self.reconnect_seconds
        return BusError(message)

    async def _exchange(self, connection: Any, message: Any) -> Any:
        from jeepney.low_level import HeaderFields, MessageType

        serial = next(self._serials)
        await connection.send(message, serial=serial)
        while True:
            reply = await connection.receive()
            header = reply.header
            if (
                header.message_type in (MessageType.method_return, MessageType.error)
                and header.fields.get(HeaderFields.reply_serial) == serial
            ):
                return reply

    def _unwrap(self, reply: Any, destination: str, what: str) -> tuple[Any, ...]:
        from jeepney.low_level import HeaderFields, MessageType

        if reply.header.message_type is not MessageType.error:
            return tuple(reply.body)
        name = reply.header.fields.get(HeaderFields.error_name, "")
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        if name in _NOT_THERE:
            message = f"{destination} is not on the {self.bus}"
        elif name in _NO_SUCH or (name == _ERROR + "InvalidArgs" and what.startswith("prop")):
            message = f"{destination} has no {what}"
        elif name in _NO_ANSWER:
            message = f"{destination} did not answer {what}"
        elif name == _ERROR + "AccessDenied":
            message = f"the {self.bus} denies access to {what} of {destination}"
        else:
            message = f"{destination} answered {what} with {name}" + (f": {text}" if text else "")
        raise BusError(message, name=name)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.socket.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, trio.EndOfChannel):
        return "the bus closed the connection"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
