"""The person's idle time from a command that prints it in milliseconds (``xprintidle``).

Run without a shell, in a session of its own (see :mod:`._spawn`); on timeout the whole
session is killed (a script's children too).
"""

from __future__ import annotations

import shlex
from typing import Final

import trio

from ._source import SourceFailed
from ._spawn import find_program, run_briefly

OUTPUT_LIMIT: Final = 200
"""Characters of the command's output or error quoted in a detail."""


def _quote(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return repr(text[:OUTPUT_LIMIT] + ("..." if len(text) > OUTPUT_LIMIT else ""))


class CommandIdle:
    """``OMNIMIND_USER_IDLE_COMMAND``: split like a shell would (no shell runs), its
    standard output an integer count of milliseconds (a trailing newline allowed)."""

    name = "command"

    def __init__(self, command: str | None, *, timeout_seconds: float = 1.0) -> None:
        self.command = command
        self.timeout_seconds = timeout_seconds
        self._argv: list[str] = []
        self._path: str | None = None
        self._problem: str | None = None
        if command is None or not command.strip():
            self._problem = "not configured (OMNIMIND_USER_IDLE_COMMAND)"
        else:
            try:
                self._argv = shlex.split(command)
            except ValueError as exc:
                self._problem = f"cannot split {command!r}: {exc}"
            if not self._argv and self._problem is None:
                self._problem = "not configured (OMNIMIND_USER_IDLE_COMMAND)"

    async def idle_seconds(self) -> float:
        if self._problem is not None:
            raise SourceFailed(self._problem)
        program = self._argv[0]
        if self._path is None:  # (stats on PATH: in a thread, once found)
            self._path = await trio.to_thread.run_sync(find_program, program)
            if self._path is None:
                raise SourceFailed(f"{program}: no such program on PATH")
        try:
            done = await run_briefly([self._path, *self._argv[1:]], self.timeout_seconds)
        except trio.TooSlowError:
            raise SourceFailed(
                f"{program} did not answer within {self.timeout_seconds:g} s (killed)"
            ) from None
        except FileNotFoundError:
            self._path = None  # gone since: looked for again next time
            raise SourceFailed(f"{program}: no such program") from None
        except OSError as exc:
            raise SourceFailed(f"{program}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            end = (
                f"exit status {done.returncode}"
                if done.returncode > 0
                else (f"killed by signal {-done.returncode}")
            )
            said = f": {_quote(done.stderr)}" if done.stderr.strip() else ""
            raise SourceFailed(f"{program}: {end}{said}")
        text = done.stdout.decode(errors="replace").strip()
        if not text.isascii() or not text.isdigit():
            raise SourceFailed(f"{program} printed {_quote(done.stdout)}, not milliseconds")
        return int(text) / 1000
