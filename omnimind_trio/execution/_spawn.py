"""Starting the fork server (``_worker.py``): its process, its socket, its environment."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import trio

WORKER = Path(__file__).with_name("_worker.py")

SECRET_VARIABLES = (
    "OMNIMIND_DASHBOARD_USER",
    "OMNIMIND_DASHBOARD_PASS",
    "OMNIMIND_VIEWER_USER",
    "OMNIMIND_VIEWER_PASS",
)


def task_environment() -> dict[str, str]:
    """The daemon's environment without the credentials (admin and viewer): tasks never
    see them."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}


async def start_worker(
    python: str, env: dict[str, str] | None = None, *, cold: bool = False
) -> tuple[trio.Process, socket.socket]:
    """A new fork server under ``python``, and our end of its socket. Its environment is
    :func:`task_environment` with ``env`` over it (a cold start sees a task's own
    variables from its interpreter's start: ``PYTHONPATH``...). ``cold``: it is for one
    run, and preloads nothing.

    Error handling: raises OSError when it cannot be started (no file descriptor or memory
    to spare, ``python`` gone); nothing is left open then.
    """
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = await trio.lowlevel.open_process(
            [python, str(WORKER), str(child.fileno()), *(["--cold"] if cold else [])],
            pass_fds=(child.fileno(),),
            env={**task_environment(), **(env or {})},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, parent
