"""The ``omnimind`` command line: ``serve`` runs the daemon; every other command is a
client of a running daemon's REST API.

Exit status: 0 success, 1 the API answered with an error (``omnimind: <detail> (HTTP
<code>)`` on stderr), 2 usage error, 3 the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
from pydantic import ValidationError

from .. import __version__
from ..config import Settings
from ..credentials import read_credentials_file
from ..exceptions import OmniMindError
from ._logs import LOG_FORMATS, configure_logging

# The client side (httpx, trio-websocket, the rendering) is imported by the client
# commands only: `omnimind serve` never needs it, and it was about 5 MB of the daemon's
# idle RSS (bench B2).
if TYPE_CHECKING:
    from ._client import Auth, OmniMindClient

EXIT_OK: Final = 0
EXIT_API_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3

DEFAULT_URL: Final = (
    f"http://{Settings.model_fields['host'].default}:{Settings.model_fields['port'].default}"
)
"""Where ``omnimind serve`` listens by default (``_client.DEFAULT_URL`` says the same)."""

PRIORITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


class UsageError(Exception):
    """The command line itself is wrong (exit status 2)."""


class CommandFailed(Exception):
    """The command could not do what was asked, without an HTTP error (exit status 1)."""


# -- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnimind",
        description=(
            "A local background-task daemon with a REST API. `omnimind serve` runs it; "
            "the other commands talk to a running daemon."
        ),
        epilog=(
            "Credentials: --user/--password, else OMNIMIND_DASHBOARD_USER and "
            "OMNIMIND_DASHBOARD_PASS, else $OMNIMIND_HOME/config/dashboard_auth.json "
            "(OMNIMIND_HOME defaults to the current directory). Exit status: 0 success, "
            "1 API error, 2 usage error, 3 daemon not reachable."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("OMNIMIND_URL") or DEFAULT_URL,
        help=f"the daemon's base URL (default: $OMNIMIND_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the server's JSON as is, for scripts"
    )
    parser.add_argument("--user", help="dashboard user name")
    parser.add_argument("--password", help="dashboard password")

    # `--json` is also accepted after the command; SUPPRESS keeps the global one otherwise.
    output = argparse.ArgumentParser(add_help=False)
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
        "--no-autostart",
        action="store_true",
        help="serve the API with the daemon stopped (start it with POST /daemon/start)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines for people (default) or one JSON object per line",
    )

    command("status", "show the daemon's state and load")

    tasks = command("tasks", "list tasks with their counters")
    tasks.add_argument("--priority", type=str.upper, help="only these, e.g. HIGH,CRITICAL")
    tasks.add_argument(
        "--status", help="only these: scheduled, waiting, running, frozen, paused, done"
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
    add.add_argument("--id", dest="task_id", required=True, help="the task's unique id")
    add.add_argument("--name", help="human-readable name (default: the id)")
    add.add_argument("--description", default="", help='what it does (default: "")')
    add.add_argument(
        "--priority",
        type=str.upper,
        choices=PRIORITIES,
        default="MEDIUM",
        help="CRITICAL, HIGH, MEDIUM (default) or LOW",
    )
    _task_options(add)

    edit = command("edit", "change a task: only the options given change")
    edit.add_argument("task_id", metavar="TASK_ID")
    edit.add_argument("--code-file", help="new code: a Python file, or - for stdin")
    edit.add_argument("--name", help="new name")
    edit.add_argument("--description", help="new description")
    edit.add_argument("--priority", type=str.upper, choices=PRIORITIES, help="new priority")
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
        "--atomic", action="store_true", help="apply nothing unless every operation can be"
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
        help="print a line per execution start and end as they happen (Ctrl-C to stop)",
    )

    command("start", "start the daemon's scheduler (the API keeps serving either way)")
    command("stop", "stop the daemon's scheduler, killing running executions")
    return parser


POLICY_CHOICES = {
    "on_busy": ("freeze", "continue", "cancel"),
    "overlap": ("skip", "queue", "replace", "allow"),
    "on_missed": ("once", "skip"),
}
TASK_OPTIONS = (
    "repeat_hours",
    "timeout_seconds",
    "max_memory_mb",
    "max_cpu_seconds",
    "max_retries",
    "max_delay_hours",
    *POLICY_CHOICES,
)


def _task_options(parser: argparse.ArgumentParser) -> None:
    """The options ``add`` and ``edit`` share (left out: the daemon's default applies)."""
    parser.add_argument("--repeat-hours", type=int, help="run every N hours (default: once)")
    parser.add_argument("--timeout-seconds", type=float, help="kill a run after this long")
    parser.add_argument("--max-memory-mb", type=int, help="address-space cap of a run")
    parser.add_argument("--max-cpu-seconds", type=int, help="CPU-time cap of a run")
    parser.add_argument("--max-retries", type=int, help="retry a failed run up to N times")
    parser.add_argument(
        "--max-delay-hours", type=float, help="run anyway after waiting this long for its gate"
    )
    parser.add_argument(
        "--on-busy", choices=POLICY_CHOICES["on_busy"], help="when the user comes back"
    )
    parser.add_argument(
        "--overlap", choices=POLICY_CHOICES["overlap"], help="when due while still running"
    )
    parser.add_argument(
        "--on-missed", choices=POLICY_CHOICES["on_missed"], help="runs missed while down"
    )


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in TASK_OPTIONS if getattr(args, key) is not None}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "serve":
        return _serve(args)
    from ._client import ApiError, ConnectionLost, DaemonUnreachable

    try:
        return _client_command(args)
    except BrokenPipeError:
        # The reader left (`omnimind history | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _complain(str(exc))
        return EXIT_USAGE
    except CommandFailed as exc:
        _complain(str(exc))
        return EXIT_API_ERROR
    except ApiError as exc:
        _complain(f"{exc.detail} (HTTP {exc.status_code})")
        if exc.status_code == 401:
            _complain(
                "give the daemon's credentials with --user/--password, OMNIMIND_DASHBOARD_USER"
                " and OMNIMIND_DASHBOARD_PASS, or OMNIMIND_HOME (its config/dashboard_auth.json)"
            )
        return EXIT_API_ERROR
    except ConnectionLost as exc:
        _complain(f"lost the connection to the daemon at {exc.url} ({exc.reason})")
        return EXIT_UNREACHABLE
    except DaemonUnreachable as exc:
        _complain(
            f"cannot reach the daemon at {exc.url} ({exc.reason}). "
            "Is it running? Start it with `omnimind serve`."
        )
        return EXIT_UNREACHABLE


def _complain(message: str) -> None:
    print(f"omnimind: {message}", file=sys.stderr)


# -- serve -----------------------------------------------------------------------------------


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"omnimind: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from ._serve import serve

    problems: list[str] = []
    try:
        trio.run(lambda: serve(settings, autostart=not args.no_autostart))
    # Startup failures arrive bare or inside the nurseries' exception groups.
    except* OSError as group:  # e.g. the port is taken
        where = f"{settings.host}:{settings.port}"
        problems += [f"cannot serve on {where}: {exc}" for exc in _leaves(group)]
    except* (OmniMindError, RuntimeError) as group:  # e.g. another daemon owns the database
        problems += [getattr(exc, "detail", None) or str(exc) for exc in _leaves(group)]
    for problem in problems:
        print(f"omnimind: {problem}", file=sys.stderr)
    return 1 if problems else 0


# -- client commands -------------------------------------------------------------------------


def _client_command(args: argparse.Namespace) -> int:
    from ._client import OmniMindClient
    from ._render import RENDER, render_message

    url = _check_url(args.url)
    auth = resolve_auth(args.user, args.password, os.environ)
    code = None
    if args.command == "add" or (args.command == "edit" and args.code_file is not None):
        code = _read_code(args.code_file)
    if args.command == "logs" and args.follow:
        return _follow(url, auth, args.ident, as_json=args.json)
    with OmniMindClient(url, auth=auth) as client:
        data = _call(client, args, code)
        if args.json:
            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            RENDER.get(args.command, render_message)(data)
    if args.command == "batch" and data["applied"] < len(data["results"]):
        return EXIT_API_ERROR  # scripts must notice a batch that did not fully apply
    return EXIT_OK


def _call(client: OmniMindClient, args: argparse.Namespace, code: str | None) -> dict[str, Any]:
    command = args.command
    if command == "status":
        return client.status()
    if command == "tasks":
        return client.list_tasks(
            priority=args.priority,
            status=args.status,
            q=args.q,
            sort=args.sort,
            limit=args.limit,
            offset=args.offset,
        )
    if command == "add":
        assert code is not None
        return client.add_task(
            args.task_id,
            code=code,
            priority=args.priority,
            name=args.name,
            description=args.description,
            **_given_options(args),
        )
    if command == "edit":
        changes = _given_options(args)
        for key in ("name", "description", "priority"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        if code is not None:
            changes["code"] = code
        if args.once:
            changes["repeat_hours"] = None
        if not changes:
            raise UsageError("edit needs at least one option to change")
        return client.update_task(args.task_id, changes)
    if command == "batch":
        operations = json.loads(_read_code(args.batch_file))
        if isinstance(operations, dict):
            operations = operations.get("operations", [])
        return client.batch(operations, atomic=args.atomic)
    if command == "history":
        filters = {
            "outcome": args.outcome,
            "since": args.since,
            "until": args.until,
            "limit": args.limit,
            "offset": args.offset,
        }
        if args.task_id is not None:
            return client.task_executions(args.task_id, **filters)
        return client.list_executions(**filters)
    if command == "logs":
        return latest_execution(client, args.ident)
    if command == "start":
        return client.start()
    if command == "stop":
        return client.stop()
    action: Callable[[str], dict[str, Any]] = {
        "show": client.get_task,
        "run": client.run_task,
        "cancel": client.cancel_task,
        "pause": client.pause_task,
        "resume": client.resume_task,
        "rm": client.delete_task,
    }[command]
    return action(args.task_id)


def latest_execution(client: OmniMindClient, ident: str | None) -> dict[str, Any]:
    """The full record (with stdout and stderr) of the latest execution of task ``ident``,
    or of the execution ``ident``, or of the latest execution of any task."""
    from ._client import ApiError

    page = client.list_executions(task_id=ident, limit=1)
    if page["executions"]:
        return client.get_execution(page["executions"][0]["execution_id"])
    if ident is None:
        raise CommandFailed("no task has run yet")
    try:
        return client.get_execution(ident)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    try:
        client.get_task(ident)
    except ApiError as exc:
        if exc.status_code == 404:
            raise ApiError(404, f"No task or execution with id {ident!r}") from None
        raise
    raise CommandFailed(f"task {ident!r} has not run yet")


def resolve_auth(user: str | None, password: str | None, environ: Mapping[str, str]) -> Auth | None:
    """``--user``/``--password``, else the daemon's environment variables, else its
    credentials file under ``OMNIMIND_HOME`` (default: the current directory); else None."""
    if user is not None or password is not None:
        if user is None or password is None:
            raise UsageError("--user and --password go together")
        return user, password
    env_user = environ.get("OMNIMIND_DASHBOARD_USER")
    env_pass = environ.get("OMNIMIND_DASHBOARD_PASS")
    if env_user and env_pass:
        return env_user, env_pass
    home = Path(environ.get("OMNIMIND_HOME") or Path.cwd())
    try:
        stored = read_credentials_file(home / "config" / "dashboard_auth.json")
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    return None if stored is None else (stored.user, stored.password)


def _check_url(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise UsageError(f"--url must be an http:// or https:// URL, not {url!r}")
    return url.rstrip("/")


def _read_code(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {source}: {exc}") from None


# -- logs -f ---------------------------------------------------------------------------------


def _follow(url: str, auth: Auth | None, ident: str | None, *, as_json: bool) -> int:
    from ._client import follow_events
    from ._render import format_event, is_wanted_event

    def handle(message: dict[str, Any]) -> None:
        if as_json:
            if is_wanted_event(message, ident):
                print(json.dumps(message, ensure_ascii=False), flush=True)
            return
        line = format_event(message, ident)
        if line is not None:
            print(line, flush=True)

    def reconnected(reason: str) -> None:
        _complain(f"reconnecting ({reason}): some events may be missing")

    try:
        trio.run(partial(follow_events, on_reconnect=reconnected), url, auth, handle)
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseExceptionGroup as group:
        # Ctrl-C may surface inside a group from the WebSocket's nursery.
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        return EXIT_OK
    return EXIT_OK
