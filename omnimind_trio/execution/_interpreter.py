"""A task's own interpreter (its ``python``), checked when it is named: before any run.

It must be an executable file that runs, reports Python 3.8 or later, and runs the task
worker (``_worker.py --check``), which then parses the task's code with that
interpreter's grammar. Each step runs as a child process with a time limit; nothing here
blocks the event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from typing import Final

import trio

from ._spawn import WORKER, task_environment

MIN_VERSION: Final = (3, 8)
"""The oldest Python the task worker runs on (``ast`` positional-only arguments, 3.8)."""
CHECK_SECONDS: Final = 10.0
"""How long each step may take: an interpreter that hangs is refused, not waited for."""
_PROBE: Final = "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"
"""Python 2 runs it too, so that it can be named."""
_VERSION: Final = re.compile(r"^(\d+)\.(\d+)$")


async def interpreter_problem(python: str, code: str) -> str | None:
    """Why ``python`` cannot run ``code`` as a task, as the one sentence the API answers
    (``python: ...``, or the code's own problem as that interpreter parses it); None if
    it can."""
    problem = await trio.to_thread.run_sync(_file_problem, python)
    if problem is not None:
        return problem
    ran = await _run(python, ["-c", _PROBE], b"")
    if isinstance(ran, str):
        return ran
    match = _VERSION.match(ran.decode("ascii", "replace").strip())
    if match is None:
        return f"python: {python} is not a Python interpreter (it does not report a version)"
    version = (int(match[1]), int(match[2]))
    if version < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        return f"python: {python} is Python {version[0]}.{version[1]}; {wanted}+ is needed"
    ran = await _run(python, [str(WORKER), "--check"], code.encode("utf-8", "surrogatepass"))
    if isinstance(ran, str):
        return ran
    try:
        problem = json.loads(ran)["problem"]
    except (ValueError, KeyError, TypeError):
        return f"python: {python} cannot run the task worker (it answered {ran[:80]!r})"
    return None if problem is None else str(problem)


def _file_problem(python: str) -> str | None:
    if not os.path.exists(python):
        return f"python: {python} does not exist"
    if not os.path.isfile(python):
        return f"python: {python} is not a file"
    if not os.access(python, os.X_OK):
        return f"python: {python} is not executable"
    return None


async def _kill_group(process: trio.Process) -> None:
    """On the timeout: the interpreter and whatever it started (its own session), not
    only the interpreter, which is all trio would kill."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _run(python: str, args: list[str], stdin: bytes) -> bytes | str:
    """What ``python args`` printed, or why it failed (a sentence)."""
    with trio.move_on_after(CHECK_SECONDS):
        try:
            done = await trio.run_process(
                [python, *args],
                stdin=stdin,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=task_environment(),
                start_new_session=True,
                deliver_cancel=_kill_group,
            )
        except OSError as exc:
            return f"python: {python} cannot be run ({exc.strerror or exc})"
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            last = f": {lines[-1].strip()[:200]}" if lines else ""
            step = "the version check" if args[0] == "-c" else "the task worker"
            return f"python: {python} failed {step} (exit status {done.returncode}){last}"
        return bytes(done.stdout)
    return f"python: {python} did not answer within {CHECK_SECONDS:g} s"
