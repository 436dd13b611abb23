"""What went wrong with a call, in words: :class:`BusError` and how replies and
failures become its message."""

from __future__ import annotations

from typing import Final

import trio

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


def error_reply(name: str, text: str, *, destination: str, what: str, bus: str) -> BusError:
    """The error reply ``name`` (with its message ``text``) to a call of ``what`` on
    ``destination``, in words: ``org.gnome.Mutter.IdleMonitor is not on the session bus``."""
    if name in _NOT_THERE:
        message = f"{destination} is not on the {bus}"
    elif name in _NO_SUCH or (name == _ERROR + "InvalidArgs" and what.startswith("prop")):
        message = f"{destination} has no {what}"
    elif name in _NO_ANSWER:
        message = f"{destination} did not answer {what}"
    elif name == _ERROR + "AccessDenied":
        message = f"the {bus} denies access to {what} of {destination}"
    else:
        message = f"{destination} answered {what} with {name}" + (f": {text}" if text else "")
    return BusError(message, name=name)


def describe(exc: BaseException) -> str:
    """A failure of the connection itself, in words."""
    if isinstance(exc, trio.EndOfChannel):
        return "the bus closed the connection"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
