"""The ``omnimind`` command's arguments. The options of ``add`` and ``edit`` derive from the
task model: one per task option field, with its type, choices and description."""

from __future__ import annotations

import argparse
import enum
import os
import typing
from typing import Any, Final

from pydantic import BaseModel

from .._version import __version__
from ..config import Settings
from ..models import (
    OPTION_FIELDS,
    TASK_FIELD_TYPES,
    Priority,
    TaskStatus,
    base_type,
    field_description,
)
from ._logs import LOG_FORMATS
from ._usage import Parser
from ._values import comma_list, finite_float, iterations, name_value, one_of

PRIORITIES: Final = tuple(p.value for p in Priority)
SHELLS: Final = ("bash", "zsh", "fish")
DEFAULT_URL: Final = (
    f"http://{Settings.model_fields['host'].default}:{Settings.model_fields['port'].default}"
)
"""Where ``omnimind serve`` listens by default."""

EXIT_STATUS: Final = (
    (0, "success"),
    (1, "the daemon answered with an error, or the command could not do what was asked"),
    (2, "usage error: an unknown command or option, a bad value, an unreadable file"),
    (3, "the daemon cannot be reached (or its certificate does not verify)"),
)
"""The client commands' exit statuses (``omnimind serve`` has its own), for the help and
the man page."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="omnimind",
        description=(
            "A local background-task daemon with a REST API. `omnimind serve` runs it; "
            "the other commands talk to a running daemon."
        ),
        epilog=(
            "Credentials: --user with --password-file, --password or a prompt, else "
            "OMNIMIND_DASHBOARD_USER and OMNIMIND_DASHBOARD_PASS, else "
            "$OMNIMIND_HOME/config/dashboard_auth.json (OMNIMIND_HOME defaults to the home of "
            "the daemon this user runs, from its runtime file, else the current directory). "
            "Exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_STATUS) + ". "
            "`omnimind help COMMAND` describes a command; `omnimind man` prints the manual."
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("OMNIMIND_URL") or None,
        help=(
            "the daemon's base URL (default: $OMNIMIND_URL, else the daemon this user runs, "
            f"from its runtime file, else {DEFAULT_URL})"
        ),
    )
    parser.add_argument(
        "--cacert",
        metavar="FILE",
        default=os.environ.get("OMNIMIND_CACERT") or None,
        help="PEM file of the CA to trust for an https:// daemon (default: $OMNIMIND_CACERT, "
        "else the system's CAs)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the server's JSON as is, for scripts"
    )
    parser.add_argument("--user", help="dashboard user name")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read --user's password from FILE (- for standard input), without its one "
        "trailing newline; with --user alone, it is asked for on a terminal",
    )
    parser.add_argument(
        "--password",
        help="dashboard password (other users see it in ps, and it stays in the shell "
        "history: prefer --password-file)",
    )

    # `--json` is also accepted after the command; SUPPRESS keeps the global one otherwise.
    output = Parser(add_help=False)
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the server's JSON"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[output])

    serve = commands.add_parser("serve", help="run the daemon and its HTTP API")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument(
        "--certfile", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)"
    )
    serve.add_argument("--keyfile", metavar="FILE", help="the certificate's PEM private key")
    serve.add_argument(
        "--allow-plain-http",
        action="store_true",
        default=None,
        help="serve plain HTTP on an address that is not loopback (refused by default)",
    )
    serve.add_argument(
        "--no-autostart",
        action="store_true",
        help="serve the API with the daemon stopped (start it with `omnimind start`)",
    )
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    serve.add_argument(
        "--log-level",
        default="INFO",
        **one_of(levels),
        help="the least severe messages logged (default INFO)",
    )
    serve.add_argument(
        "--log-format",
        default="text",
        **one_of(LOG_FORMATS),
        help="text lines for people (default) or one JSON object per line",
    )

    command("status", "show the daemon's state and load")

    tasks = command("tasks", "list tasks: status, next run, counters")
    tasks.add_argument(
        "--priority", type=str.upper, help="only these priorities, e.g. HIGH,CRITICAL"
    )
    tasks.add_argument(
        "--status", help="only these: " + ", ".join(status.value for status in TaskStatus)
    )
    tasks.add_argument("--q", metavar="TEXT", help="text in the id, name or description")
    tasks.add_argument(
        "--sort",
        metavar="FIELD",
        help="sort field; descending with a - prefix: --sort=-last_execution",
    )
    tasks.add_argument("--limit", type=int, help="at most this many tasks")
    tasks.add_argument("--offset", type=int, help="skip this many tasks")

    add = command("add", "add a task from a Python file (or - for stdin) defining execute()")
    add.add_argument("code_file", metavar="CODE_FILE", help="Python source file, or - for stdin")
    add.add_argument(
        "--id", dest="task_id", metavar="NEW_ID", required=True, help="the task's unique id"
    )
    add.add_argument("--name", help="human-readable name (default: the id)")
    add.add_argument("--description", default="", help='what it does (default: "")')
    add.add_argument(
        "--priority",
        **one_of(PRIORITIES),
        default="MEDIUM",
        help="the task's priority: CRITICAL, HIGH, MEDIUM (default) or LOW",
    )
    _task_options(add)

    edit = command("edit", "change a task: only the options given change")
    edit.add_argument("task_id", metavar="TASK_ID")
    edit.add_argument("--code-file", help="new code: a Python file, or - for stdin")
    edit.add_argument("--name", help="new name")
    edit.add_argument("--description", help="new description")
    edit.add_argument("--priority", **one_of(PRIORITIES), help="new priority")
    edit.add_argument("--once", action="store_true", help="make it a one-shot task")
    _task_options(edit)

    batch = command(
        "batch",
        "run a batch of operations from a JSON file (or - for stdin): a list of "
        '{"op": "add", "task": {...}} or {"op": "delete|pause|resume|run|cancel", '
        '"task_id": ...}',
    )
    batch.add_argument("batch_file", metavar="FILE")
    batch.add_argument(
        "--atomic",
        action="store_true",
        help='apply nothing unless every operation can be (also when the file says "atomic": '
        "true, as an export does)",
    )

    export = command(
        "export",
        "print every code task as a batch file (JSON) that `omnimind batch FILE` restores, "
        "here or on another machine; secret values are left out (their names go to stderr)",
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write it to FILE (created with mode 0600)"
    )

    for name, text in (
        ("show", "show a task's definition, counters and schedule"),
        ("run", "run a task now, whatever the load or hour"),
        ("cancel", "kill a task's running execution"),
        ("pause", "stop scheduling a task"),
        ("resume", "schedule a paused task again"),
        ("rm", "delete a task (its history stays)"),
    ):
        command(name, text).add_argument("task_id", metavar="TASK_ID")

    history = command("history", "list executions, newest first")
    history.add_argument("task_id", metavar="TASK_ID", nargs="?", help="only this task's")
    history.add_argument("--outcome", help="succeeded, failed, timed_out, cancelled, ...")
    history.add_argument("--node", help="only the runs of the daemon of this node name")
    history.add_argument("--since", metavar="TIME", help="ISO-8601 (UTC unless zoned) or epoch")
    history.add_argument("--until", metavar="TIME", help="ISO-8601 (UTC unless zoned) or epoch")
    history.add_argument("--limit", type=int, help="at most this many (default 100)")
    history.add_argument("--offset", type=int, help="skip this many")

    logs = command(
        "logs",
        "show the latest run of a task (or a given execution) with its output; "
        "-f follows executions live",
    )
    logs.add_argument(
        "ident", metavar="TASK_ID|EXECUTION_ID", nargs="?", help="default: the latest execution"
    )
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="follow live (Ctrl-C to stop): with a task (or execution) id, its output as it"
        " comes (stdout and stderr to ours; a line per run's start and end on stderr);"
        " without, a line per execution start and end",
    )

    command("start", "start the daemon's scheduler (the API keeps serving either way)")
    command("stop", "stop the daemon's scheduler, killing running executions")
    command(
        "nodes",
        "list the daemons sharing this one's database: state, runs, last heartbeat, version",
    )
    upcoming = command(
        "next",
        "preview when a cron expression fires, like systemd-analyze calendar (no daemon needed)",
    )
    upcoming.add_argument(
        "expression", metavar="EXPR", help='five cron fields or a macro: "30 2 * * *", @daily'
    )
    upcoming.add_argument(
        "--timezone",
        metavar="TZ",
        default=os.environ.get("OMNIMIND_TIMEZONE") or None,
        help="IANA time zone (default: $OMNIMIND_TIMEZONE, else the machine's)",
    )
    upcoming.add_argument(
        "--iterations",
        "-n",
        type=iterations,
        default=5,
        help="how many times to show (1-1000, default 5)",
    )

    _credentials_command(commands)
    _manners_commands(commands)
    return parser


def _manners_commands(commands: Any) -> None:
    """``help``, ``completion`` and ``man``: the command line describing itself."""
    helper = commands.add_parser(
        "help",
        help="show the help of the program or of a command (as COMMAND --help does)",
        description="Show the help of the program or of a command (as COMMAND --help does).",
    )
    helper.add_argument("topic", metavar="COMMAND", nargs="*", help="e.g. add, credentials rotate")
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script: bash, zsh or fish",
        description=(
            "Print a script completing omnimind's commands, options, choices and file names, "
            "and the task ids of the running daemon, in bash, zsh or fish. "
            'bash: eval "$(omnimind completion bash)" in ~/.bashrc; '
            "zsh: omnimind completion zsh > ~/.zfunc/_omnimind (a directory in $fpath); "
            "fish: omnimind completion fish > ~/.config/fish/completions/omnimind.fish."
        ),
    )
    completion.add_argument(
        "shell",
        metavar="SHELL",
        nargs="?",
        **one_of(SHELLS),
        help="bash, zsh or fish",
    )
    # What the scripts call for task ids: printed one per line, nothing when no daemon answers.
    completion.add_argument("--task-ids", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser(
        "man",
        help="print the manual page (roff): omnimind man | man -l -",
        description="Print omnimind's manual page, generated from its options, in roff "
        "(man(7)): read it with `omnimind man | man -l -`, or install it with "
        "`omnimind man > ~/.local/share/man/man1/omnimind.1`.",
    )


def _credentials_command(commands: Any) -> None:
    """``omnimind credentials rotate``: works on the daemon's home, not through its API."""
    credentials = commands.add_parser(
        "credentials", help="manage the daemon's credentials file (no daemon needed)"
    )
    actions = credentials.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate",
        help="write new passwords to the credentials file and print them once",
        description=(
            "Write freshly generated passwords (same user names) to "
            "HOME/config/dashboard_auth.json, atomically and with mode 0600, and print them "
            "once. A running daemon takes them up within 2 s, or at once on SIGHUP; the old "
            "passwords stop working and WebSocket clients that used them are closed."
        ),
    )
    rotate.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,  # the global --json otherwise
        help="print the new credentials as JSON",
    )
    rotate.add_argument(
        "--home", help="the daemon's home (default: $OMNIMIND_HOME, else the current directory)"
    )
    viewer = rotate.add_mutually_exclusive_group()
    viewer.add_argument(
        "--viewer",
        dest="viewer",
        action="store_const",
        const="new",
        default="keep",
        help="give the read-only viewer a new password too (adds a 'viewer' user if none); "
        "by default a viewer entry is kept as it is",
    )
    viewer.add_argument(
        "--no-viewer",
        dest="viewer",
        action="store_const",
        const="drop",
        help="remove the read-only viewer credential",
    )


def _task_options(parser: argparse.ArgumentParser) -> None:
    """The options ``add`` and ``edit`` share, one per task option field (left out: the
    daemon's default applies): ``--repeat-hours``, ``--on-busy``, ``--cron``, ``--after
    a,b``, ``--env NAME=VALUE`` (repeated), ``--notify-on failure,recovery``..."""
    for name in OPTION_FIELDS:
        hint = TASK_FIELD_TYPES[name]
        base, _ = base_type(hint)
        if isinstance(base, type) and issubclass(base, BaseModel):
            # A nested record (notify): one option per field of it, --notify-webhook...
            for sub, info in base.model_fields.items():
                _add_option(parser, f"{name}__{sub}", info.annotation, info.description or sub)
            continue
        _add_option(parser, name, hint, field_description(name))


def _add_option(parser: argparse.ArgumentParser, dest: str, hint: Any, help_text: str) -> None:
    base, _ = base_type(hint)
    flag = "--" + dest.replace("__", "-").replace("_", "-")
    origin = typing.get_origin(base)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        values = [m.value for m in base]
        parser.add_argument(flag, dest=dest, **one_of(values), help=help_text)
    elif base is bool:  # --no-... too: an edit can turn a condition or desktop off
        parser.add_argument(
            flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
        )
    elif base is float:
        parser.add_argument(flag, dest=dest, type=finite_float, help=help_text)
    elif base is int:
        parser.add_argument(flag, dest=dest, type=int, help=help_text)
    elif origin is dict:
        parser.add_argument(
            flag,
            dest=dest,
            action="append",
            type=name_value,
            metavar="NAME=VALUE",
            help=help_text + " (repeat the option for more)",
        )
    elif origin is tuple:
        parser.add_argument(
            flag,
            dest=dest,
            action="extend",
            type=comma_list,
            metavar="A,B",
            help=help_text + " (comma-separated)",
        )
    else:
        metavar = dest.rpartition("__")[2].upper()
        parser.add_argument(flag, dest=dest, metavar=metavar, help=help_text)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task options given on the command line, as the API's JSON fields."""
    given: dict[str, Any] = {}
    for key, value in vars(args).items():
        if value is None:
            continue
        field, _, sub = key.partition("__")
        if field not in OPTION_FIELDS:
            continue
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            value = dict(value)  # NAME=VALUE pairs
        if sub:
            given.setdefault(field, {})[sub] = value
        else:
            given[field] = value
    return given
