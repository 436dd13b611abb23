"""``omnimind completion bash|zsh|fish``: print a completion script generated from the parser.

Task ids come from the running daemon: the scripts call ``omnimind completion --task-ids``,
which prints them one per line, or nothing when no daemon answers within
:data:`TASK_IDS_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Final

from ._parser import DEFAULT_URL
from ._password import resolve_auth
from ._runtime import locate
from ._spec import commands
from ._usage import UsageError

TASK_IDS_TIMEOUT_SECONDS: Final = 1.0
"""A completion that waits longer than this feels broken: then it offers no ids."""


def completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``omnimind completion SHELL`` prints the script; ``--task-ids`` the daemon's ids."""
    if args.task_ids:
        for task_id in task_ids(args, os.environ):
            print(task_id)
        return 0
    if args.shell is None:
        raise UsageError("completion needs a SHELL: bash, zsh or fish")
    from ._bash import bash_script
    from ._fish import fish_script
    from ._zsh import zsh_script

    write = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell]
    sys.stdout.write(write(commands(parser)))
    return 0


def task_ids(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The ids of the tasks of the daemon ``args`` (``--url``, ``--cacert``) or the runtime
    file name, with the credentials of the environment or its file; none when anything
    fails: a completion has nowhere to report it."""
    from ._client import ClientError, OmniMindClient

    try:
        url, home = locate(args.url, DEFAULT_URL, environ)
        auth = resolve_auth(None, None, environ, home=home)
        with OmniMindClient(
            url, auth=auth, cacert=args.cacert, timeout_seconds=TASK_IDS_TIMEOUT_SECONDS
        ) as client:
            tasks = client.list_tasks(sort="task_id")["tasks"]
        return [str(task["task_id"]) for task in tasks]
    except (ClientError, UsageError, OSError, ValueError, KeyError, TypeError):
        return []
