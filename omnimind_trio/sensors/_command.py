"""The person's idle time from a command that prints it in milliseconds (``xprintidle``).

Run with ``trio.run_process`` (the process starts in a worker thread, its output is read
on the loop without blocking it), in a session of its own, without a shell; on timeout
the whole session is killed (a script's children too).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from typing import Final

import trio

from ._source import SourceFailed

OUTPUT_LIMIT: Final = 200
"""Characters of the command's output or error quoted in a detail."""


async def _kill_session(process: trio.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


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
        try:
            with trio.fail_after(self.timeout_seconds):
                done = await trio.run_process(
                    self._argv,
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    start_new_session=True,
                    deliver_cancel=_kill_session,
                )
        except trio.TooSlowError:
            raise SourceFailed(
                f"{program} did not answer within {self.timeout_seconds:g} s (killed)"
            ) from None
        except FileNotFoundError:
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
