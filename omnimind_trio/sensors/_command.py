"""The person's idle time from a command that prints it in milliseconds (``xprintidle``).

Run without a shell, in a session of its own, by ``subprocess`` in a worker thread: the
event loop never waits on it, and it costs the daemon less than ``trio.run_process``
(0.7 against 1.2 ms of CPU a sample here, bench section O: trio's version adds a nursery,
two pipe readers and a process watcher on the loop to the same thread hop). On timeout
the whole session is killed (a script's children too).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from typing import Final

import trio

from ._source import SourceFailed

OUTPUT_LIMIT: Final = 200
"""Characters of the command's output or error quoted in a detail."""


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv``; on timeout kill its session and raise TimeoutExpired. Raises OSError
    when it cannot start."""
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            # The pipes close as the session dies (unless a child left it: then give up
            # on its output rather than wait for it).
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=1.0)
            process.kill()
            raise
        return subprocess.CompletedProcess(argv, process.wait(), out, err)


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
            # Abandoned on cancel: the thread ends by itself within the timeout, killing
            # the command if need be.
            done = await trio.to_thread.run_sync(
                _run, self._argv, self.timeout_seconds, abandon_on_cancel=True
            )
        except subprocess.TimeoutExpired:
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
