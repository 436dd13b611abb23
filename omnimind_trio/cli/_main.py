"""The ``omnimind`` command line: ``serve`` runs the daemon; every other command is a
client of a running daemon's REST API.

Exit status: 0 success, 1 the API answered with an error (``omnimind: <detail> (HTTP
<code>)`` on stderr), 2 usage error, 3 the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import ssl
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
from pydantic import ValidationError

from ..config import Settings
from ..exceptions import OmniMindError
from ..models import SCHEDULE_FIELDS
from ._logs import configure_logging
from ._parser import DEFAULT_URL, build_parser, given_options
from ._password import VISIBLE_WARNING, resolve_auth, terminal_prompt
from ._runtime import locate
from ._usage import UsageError, parse, print_help, settings_problems

__all__ = ["UsageError", "main", "resolve_auth"]

# The client side (httpx, trio-websocket, the rendering) is imported by the client
# commands only: `omnimind serve` never needs it, and it was about 5 MB of the daemon's
# idle RSS (bench B2).
if TYPE_CHECKING:
    from ._client import Auth, OmniMindClient

EXIT_OK: Final = 0
EXIT_API_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


class CommandFailed(Exception):
    """The command could not do what was asked, without an HTTP error (exit status 1)."""


# -- the parser ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "help":
        return print_help(parser, args.topic)
    if args.command == "man":
        from ._manpage import manpage

        sys.stdout.write(manpage(parser))
        return EXIT_OK
    if args.command == "completion":
        from ._completion import completion

        try:
            return completion(parser, args)
        except UsageError as exc:
            _complain(str(exc))
            return EXIT_USAGE
    if args.command == "serve":
        return _serve(args)
    if args.command == "next":
        from ._next import preview

        try:
            return preview(args)
        except ValueError as exc:
            _complain(str(exc))
            return EXIT_USAGE
    if args.command == "credentials":
        from ._credentials import rotate

        return rotate(args)
    from ._client import ApiError, ConnectionLost, DaemonUnreachable

    try:
        return _client_command(args)
    except BrokenPipeError:
        # The reader left (`omnimind history | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        _complain(str(exc))
        return EXIT_USAGE
    except CommandFailed as exc:
        _complain(str(exc))
        return EXIT_API_ERROR
    except ApiError as exc:
        _complain(f"{exc.detail} (HTTP {exc.status_code})")
        if exc.status_code == 401:
            _complain(
                "give the daemon's credentials with --user (and --password-file, or at the "
                "prompt), OMNIMIND_DASHBOARD_USER and OMNIMIND_DASHBOARD_PASS, or OMNIMIND_HOME "
                "(its config/dashboard_auth.json)"
            )
        return EXIT_API_ERROR
    except ConnectionLost as exc:
        _complain(f"lost the connection to the daemon at {exc.url} ({exc.reason})")
        return EXIT_UNREACHABLE
    except DaemonUnreachable as exc:
        hint = (
            "Give the CA that signed it with --cacert or OMNIMIND_CACERT."
            if exc.reason.startswith("TLS")
            else "Is it running? Start it with `omnimind serve`."
        )
        _complain(f"cannot reach the daemon at {exc.url} ({exc.reason}). {hint}")
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
    given = {
        "host": args.host,
        "port": args.port,
        "tls_certfile": args.certfile,
        "tls_keyfile": args.keyfile,
        "allow_plain_http": args.allow_plain_http,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        options = {"host": "--host", "port": "--port", "tls_certfile": "--certfile"}
        options |= {"tls_keyfile": "--keyfile", "allow_plain_http": "--allow-plain-http"}
        wrong = settings_problems(exc, {k: v for k, v in options.items() if k in overrides})
        print("omnimind: invalid settings:", *wrong, sep="\n  ", file=sys.stderr)
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
    except* Exception as group:  # a bug: its traceback goes to the log (JSON included)
        logging.getLogger(__package__).critical("the daemon crashed", exc_info=group)
        problems.append("the daemon crashed; the log above has the traceback")
    for problem in problems:
        print(f"omnimind: {problem}", file=sys.stderr)
    return 1 if problems else 0


# -- client commands -------------------------------------------------------------------------


def _client_command(args: argparse.Namespace) -> int:
    from ._client import OmniMindClient, tls_context
    from ._render import RENDER, render_message

    url, home = locate(args.url, DEFAULT_URL, os.environ)
    url = _check_url(url)
    reads_stdin = "-" in (getattr(args, "code_file", None), getattr(args, "batch_file", None))
    if args.password_file == "-" and reads_stdin:
        raise UsageError("standard input cannot hold both the password and the code or batch")
    auth = resolve_auth(
        args.user,
        args.password,
        os.environ,
        home=home,
        password_file=args.password_file,
        prompt=terminal_prompt(url),
    )
    if args.password is not None:
        print(VISIBLE_WARNING, file=sys.stderr)
    code = None
    if args.command == "add" or (args.command == "edit" and args.code_file is not None):
        code = _read_code(args.code_file)
    if args.cacert is not None:
        try:
            tls_context(args.cacert)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use the CA file {args.cacert}: {exc}") from None
    if args.command == "logs" and args.follow:
        return _follow(url, auth, args.ident, as_json=args.json, cacert=args.cacert)
    with OmniMindClient(url, auth=auth, cacert=args.cacert) as client:
        data = _call(client, args, code)
        if args.command == "export":
            return _write_export(data, args.output)
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
    if command == "nodes":
        return client.nodes()
    if command == "tasks":
        return client.list_tasks(
            priority=args.priority,
            status=args.status,
            q=args.q,
            sort=args.sort,
            limit=args.limit,
            offset=args.offset,
            with_state=not args.json,  # --json prints the API document's list, as it is
        )
    if command == "add":
        assert code is not None
        return client.add_task(
            args.task_id,
            code=code,
            priority=args.priority,
            name=args.name,
            description=args.description,
            **given_options(args),
        )
    if command == "edit":
        changes = given_options(args)
        for key in ("name", "description", "priority"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        if code is not None:
            changes["code"] = code
        if args.once or any(key in changes for key in SCHEDULE_FIELDS):
            # One way to repeat: the one given replaces the others (--once: none).
            changes = {key: None for key in SCHEDULE_FIELDS} | changes
        if not changes:
            raise UsageError("edit needs at least one option to change")
        return client.update_task(args.task_id, changes)
    if command == "batch":
        operations = json.loads(_read_code(args.batch_file))
        atomic = args.atomic
        if isinstance(operations, dict):  # a batch body (an export): its "atomic" counts
            atomic = atomic or operations.get("atomic") is True
            operations = operations.get("operations", [])
        return client.batch(operations, atomic=atomic)
    if command == "export":
        return client.export()
    if command == "history":
        filters = {
            "outcome": args.outcome,
            "node": args.node,
            "since": args.since,
            "until": args.until,
            "limit": args.limit,
            "offset": args.offset,
        }
        if args.task_id is not None:
            return task_history(client, args.task_id, filters)
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


def _write_export(data: dict[str, Any], output: str | None) -> int:
    """The export as JSON on stdout, or in ``output`` (created 0600: it holds code and
    env values); the secrets left out are named on stderr."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:
            raise CommandFailed(f"cannot write {output}: {exc.strerror or exc}") from None
    tasks = sum(1 for op in data["operations"] if op["op"] == "add")
    where = "" if output is None or output == "-" else f" to {output}"
    _complain(f"exported {tasks} task(s){where}")
    omitted = data.get("omitted_secrets") or {}
    if omitted:
        named = "; ".join(f"{task}: {', '.join(names)}" for task, names in omitted.items())
        _complain(f"secret values are not exported; set them again after restoring ({named})")
    return EXIT_OK


def task_history(client: OmniMindClient, task_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    """The runs of the task registered as ``task_id`` now (a re-added id's start afresh),
    else, for an id no task has now, the runs of the tasks deleted under it."""
    from ._client import ApiError

    try:
        return client.task_executions(task_id, **filters)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    found = client.list_executions(task_id=task_id, **filters)
    if not found["executions"] and not found.get("total"):
        raise ApiError(404, f"No task or execution history with id {task_id!r}")
    return found


def latest_execution(client: OmniMindClient, ident: str | None) -> dict[str, Any]:
    """The full record (with stdout and stderr) of the latest execution of task ``ident``
    (of its current registration: a re-added id's runs start afresh), or of the execution
    ``ident``, or of the latest execution of a deleted task ``ident``, or of the latest
    execution of any task."""
    from ._client import ApiError

    def latest(page: dict[str, Any]) -> dict[str, Any] | None:
        runs = page["executions"]
        return client.get_execution(runs[0]["execution_id"]) if runs else None

    if ident is None:
        found = latest(client.list_executions(limit=1))
        if found is None:
            raise CommandFailed("no task has run yet")
        return found
    try:
        found = latest(client.task_executions(ident, limit=1))
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    else:
        if found is None:
            raise CommandFailed(f"task {ident!r} has not run yet")
        return found
    try:
        return client.get_execution(ident)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    found = latest(client.list_executions(task_id=ident, limit=1))  # a deleted task's runs
    if found is None:
        raise ApiError(404, f"No task or execution with id {ident!r}")
    return found


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


def _follow(
    url: str, auth: Auth | None, ident: str | None, *, as_json: bool, cacert: str | None
) -> int:
    from ._client import OmniMindClient
    from ._follow import follow_events
    from ._render import format_event, is_wanted_event

    def handle(message: dict[str, Any]) -> None:
        if as_json:
            if is_wanted_event(message, ident):
                print(json.dumps(message, ensure_ascii=False), flush=True)
            return
        line = format_event(message, ident)
        if line is not None:
            print(line, flush=True)

    handler: Callable[[dict[str, Any]], None] = handle
    client = OmniMindClient(url, auth=auth, cacert=cacert)
    if ident is not None and not as_json:  # a task's (or a run's) output as it comes
        from ._tail import OutputFollower

        handler = OutputFollower(client, ident)

    def reconnected(reason: str) -> None:
        _complain(f"reconnecting ({reason}): some events may be missing")

    try:
        follow = partial(follow_events, cacert=cacert, on_reconnect=reconnected)
        with client:
            trio.run(follow, url, auth, handler)
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseExceptionGroup as group:
        # Ctrl-C may surface inside a group from the WebSocket's nursery.
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        return EXIT_OK
    return EXIT_OK
