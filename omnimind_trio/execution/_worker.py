"""The fork server: runs task code, one fresh forked child per execution.

This file runs under the task interpreter (``OMNIMIND_TASK_PYTHON``, or a task's own
``python``), which may be another Python than the daemon's, so it uses the standard library
only and imports nothing from the package; its syntax and library calls (and those of
``_containment.py`` and ``_cgroups.py``) are Python 3.8's, the oldest a task may name. It
is single-threaded (fork and threads do not mix) and preloads ``asyncio``, so a child
starts in a few milliseconds and shares no state with earlier runs. A worker started for
one run (``argv[2]`` is ``--cold``: a task's own interpreter) skips the preload: a task
that is not async never pays for it.

Protocol, over the Unix stream socket whose fd is ``argv[1]``: frames of a 4-byte
big-endian length and a JSON object, both ways.

- daemon -> worker ``{"op": "run", "id", "code", "filename", "cwd", "env", "nice",
  "max_memory_mb", "max_cpu_seconds"}``, with three fds attached by SCM_RIGHTS: the write
  ends of the stdout, stderr and result pipes.
- daemon -> worker ``{"op": "check", "id", "code"}``: parse only (see
  :func:`describe_code_problem`). The same without a socket: ``python _worker.py --check``
  reads the code on stdin and writes ``{"problem"}`` on stdout.
- worker -> daemon ``{"op": "ready", "id": "", "python"}`` once, when it can fork;
  ``{"op": "started", "id", "pid"}``, then ``{"op": "exit", "id",
  "status", "cpu_seconds", "max_rss_kb"}`` when the child is reaped;
  ``{"op": "checked", "id", "problem"}``; ``{"op": "failed", "id", "error"}`` when
  no child could be forked.

A child runs no task code before its ``started`` message is on its way: it waits for the
worker's word, sent after that message. So if the worker dies before the daemon reads
``started``, the task did not run and the daemon may send the request to the next worker;
once the daemon has the pid, it watches the child even if the worker dies.

The child is the run's keeper (``_containment.py``): a session leader and a child
subreaper, it forks the process that runs the task and stays until the run ends, so every
process the task starts stays in its tree and ends with the run. The worker is a subreaper
too, and reaps whatever a killed keeper leaves. When the socket closes, the worker kills
every keeper's tree and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import ast

try:  # imported by the daemon, as part of the package
    from . import _cgroups, _containment
except ImportError:  # run as a script by the task interpreter: its folder is on sys.path
    import _cgroups  # type: ignore[no-redef,import-not-found]
    import _containment  # type: ignore[no-redef,import-not-found]

HEADER = struct.Struct(">I")
MAX_FDS = 3


def _recv_exact(sock: socket.socket, size: int, fds: list[int]) -> bytes:
    data = b""
    while len(data) < size:
        chunk, ancdata, _flags, _addr = sock.recvmsg(
            size - len(data), socket.CMSG_SPACE(MAX_FDS * 4)
        )
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text or type(exc).__name__


def _user_frames(exc: BaseException) -> TracebackType | None:
    """The traceback without this file's own frame: the user's code starts one level down."""
    tb = exc.__traceback__
    return tb.tb_next if tb is not None else None


async def _drive(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _run_task(request: dict[str, Any], result_fd: int) -> NoReturn:
    """In the child: exec the code, call execute(), report on result_fd. Never returns."""
    report: dict[str, Any] = {"ok": False, "error": "execute() did not run"}
    try:
        namespace = {"__name__": "__omnimind_task__", "__builtins__": __builtins__}
        exec(compile(request["code"], request["filename"], "exec"), namespace)
        function = namespace.get("execute")
        if not callable(function):
            raise TypeError("'execute' is not callable")
        value = function()
        import inspect

        if inspect.isawaitable(value):
            import asyncio

            value = asyncio.run(_drive(value))
        try:
            report = {"ok": True, "result": json.loads(json.dumps(value, allow_nan=False))}
        except (TypeError, ValueError, RecursionError) as exc:
            report = {"ok": False, "error": f"execute() returned a value that is not JSON: {exc}"}
    except BaseException as exc:
        report = {
            "ok": False,
            "error": _describe(exc),
            "exception": type(exc).__name__,
            "traceback": "".join(traceback.format_exception(type(exc), exc, _user_frames(exc))),
        }
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # fd closed by the task: nothing to flush
            stream.flush()
    try:
        _write_all(result_fd, json.dumps(report).encode())
    except BaseException:
        os._exit(70)
    os._exit(0)


def _child(request: dict[str, Any], fds: list[int], session_w: int, go_r: int) -> NoReturn:
    """The run's keeper (see ``_containment.py``): leads its own session, forks the task's
    process and stays until the run ends; exits as the task's process did."""
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        _containment.prctl(_containment.PR_SET_CHILD_SUBREAPER, 1)
        keeper = os.getpid()
        # Forked before the worker's word, which the task's process waits for: the fork
        # overlaps the round trip to the daemon.
        pid = os.fork()
        if pid == 0:
            os.close(session_w)
            _task_process(request, fds, keeper, go_r)
        os.close(go_r)
        os.write(session_w, b"s")
        os.close(session_w)
    except BaseException:
        os._exit(72)
    for fd in fds[:2]:
        os.close(fd)
    # The keeper itself ignores the terminal's and the task's own group signals (a task
    # may killpg its group): SIGTERM from an operator kills the run's tree and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        status = _containment.keep(pid, fds[2], [signal.SIGTERM])
        if os.WIFSIGNALED(status):  # die of the same signal (without a core file)
            signum = os.WTERMSIG(status)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
            os.kill(os.getpid(), signum)
            os._exit(128 + signum)
        os._exit(os.WEXITSTATUS(status))
    finally:
        os._exit(73)  # never back into the worker's loop


def _task_process(request: dict[str, Any], fds: list[int], keeper: int, go_r: int) -> NoReturn:
    stdout_fd, stderr_fd, result_fd = fds
    try:
        # Dies with its keeper: a task process never outlives its run's keeper.
        _containment.prctl(_containment.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != keeper:
            os._exit(0)
        # The run's cgroup holds the task's processes, not the keeper: killing it leaves
        # the keeper to reap them (their CPU time counts) and report how the task ended.
        _cgroups.enter(request.get("cgroup"))
        # EOF instead of the word: the worker died before the daemon learnt our pid, and
        # the daemon sends the request again, so this child must not run it.
        if os.read(go_r, 1) != b"g":
            os._exit(0)
        os.close(go_r)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.set_inheritable(result_fd, False)
        os.closerange(3, result_fd)
        os.closerange(result_fd + 1, 1 << 16)
        if request.get("nice"):
            os.nice(int(request["nice"]))
        if request.get("max_memory_mb"):
            limit = int(request["max_memory_mb"]) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if request.get("max_cpu_seconds"):
            seconds = int(request["max_cpu_seconds"])
            resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        env = request.get("env") or {}
        os.environ.update(env)
        if env.get("PYTHONPATH"):  # as an interpreter started with it would have it
            sys.path[:0] = [p for p in env["PYTHONPATH"].split(os.pathsep) if p]
        os.chdir(request["cwd"])
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        # Line-buffered, as on a terminal: a print() shows in the live output when its
        # line ends, not when 8 KiB have piled up (or the run ends).
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.argv = [request["filename"]]
    except BaseException as exc:
        try:
            _write_all(result_fd, json.dumps({"ok": False, "error": f"setup: {exc}"}).encode())
        finally:
            os._exit(71)
    _run_task(request, result_fd)


def describe_code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a task, as the one sentence the API answers; None if it can.

    It must parse (with this interpreter's grammar) and bind ``execute`` at top level to
    something callable without arguments. The code is parsed, never run.
    """
    import ast

    try:
        tree = ast.parse(code, filename="<task>", mode="exec")
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        return f"Syntax error in code{where}: {exc.msg}"
    except (RecursionError, MemoryError):  # the parser's own stack overflowed
        return "Code cannot be parsed: it is nested too deeply"
    except ValueError as exc:
        return f"Code cannot be parsed: {exc}"
    execute: ast.stmt | None = None
    for node in tree.body:
        if "execute" in _bound_names(node):
            execute = node
    if execute is None:
        return "Code must define an 'execute()' function"
    if isinstance(execute, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = execute.args
        required = len(args.posonlyargs) + len(args.args) - len(args.defaults)
        required_kw = sum(1 for default in args.kw_defaults if default is None)
        if required > 0 or required_kw > 0:
            return "execute() must be callable without arguments"
    return None


def _bound_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds (the forms a task would use for execute)."""
    import ast

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    return []


def main() -> None:
    if sys.argv[1:] == ["--check"]:
        code = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
        sys.stdout.write(json.dumps({"problem": describe_code_problem(code)}))
        return
    # Tasks must not import this package's modules by accident: drop our own folder,
    # which Python put first on sys.path because it runs this file as a script.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if sys.argv[2:] != ["--cold"]:  # what every child may need, loaded once for all
        import ast  # noqa: F401
        import asyncio  # noqa: F401
        import inspect  # noqa: F401
    sock = socket.socket(fileno=int(sys.argv[1]))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _containment.prctl(_containment.PR_SET_CHILD_SUBREAPER, 1)
    # The daemon decides when this process ends (by closing the socket), not a terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: dict[int, str] = {}  # pid -> execution id
    _send(sock, {"op": "ready", "id": "", "python": sys.version.split()[0]})
    try:
        while True:
            readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
            if wake_r in readable:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                _reap(sock, children)
            if sock.fileno() not in readable:
                continue
            fds: list[int] = []
            try:
                (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size, fds))
                request = json.loads(_recv_exact(sock, size, fds))
            except (EOFError, ConnectionError):
                break
            if request["op"] == "check":
                problem = describe_code_problem(request["code"])
                _send(sock, {"op": "checked", "id": request["id"], "problem": problem})
                continue
            if len(fds) != MAX_FDS:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"op": "failed", "id": request["id"], "error": "missing pipes"})
                continue
            session_r, session_w = os.pipe()
            go_r, go_w = os.pipe()
            try:
                pid = os.fork()
            except OSError as exc:
                for fd in (*fds, session_r, session_w, go_r, go_w):
                    os.close(fd)
                _send(sock, {"op": "failed", "id": request["id"], "error": f"fork: {exc}"})
                continue
            if pid == 0:
                sock.close()
                os.close(wake_r)
                os.close(wake_w)
                os.close(session_r)
                os.close(go_w)
                _child(request, fds, session_w, go_r)
            for fd in (*fds, session_w, go_r):
                os.close(fd)
            # Report the child only once it leads its own session: from then on a killpg
            # or SIGSTOP of its group reaches it (before, the group did not exist yet).
            # EOF instead of a byte means it died first; the exit message will say how.
            os.read(session_r, 1)
            os.close(session_r)
            children[pid] = request["id"]
            _send(sock, {"op": "started", "id": request["id"], "pid": pid})
            with contextlib.suppress(BrokenPipeError):  # it died already
                os.write(go_w, b"g")
            os.close(go_w)
    finally:
        for pid in children:
            _containment.kill_tree(pid)


def _reap(sock: socket.socket, children: dict[int, str]) -> None:
    """Reap the keepers that ended (and report them), and the orphans of killed keepers."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        execution_id = children.pop(pid, None)
        if execution_id is None:
            continue
        _send(
            sock,
            {
                "op": "exit",
                "id": execution_id,
                "status": status,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
            },
        )


if __name__ == "__main__":
    main()
