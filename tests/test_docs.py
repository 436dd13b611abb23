"""The documents' examples run against a real daemon, so a document that drifts fails.

Each document gets one ``omnimind serve``, started in an empty directory (``~/omnimind``
of a temporary home), which generates its credentials there; every example runs from that
directory, in document order, so the document tells one story (a task is added before it
is shown). A transcript's commands run in ``bash -c`` with ``omnimind`` on ``PATH`` and
``OMNIMIND_URL`` naming the daemon; a curl block runs after the document's ``PASS=...``
line. ``tests/doc_examples.py`` says what is compared and what is normalised (ids, times,
measurements, passwords, the port, the temporary path).

The runs are made deterministic: the machine's local time is around noon (the zone is
chosen for the hour the test runs at), so the default sleep window (00:00-06:00) is far
and a LOW task waits for it; the idle and low-activity gates need a day of quiet to open,
so HIGH and MEDIUM tasks never start by themselves (CRITICAL ones start at once, and
``run`` starts any). Between two commands the test waits until the daemon has settled, as
a person typing the next command would: no task is starting, and no run that started less
than a second ago is still running.

``OMNIMIND_DOCS_REGENERATE=1 .venv/bin/pytest tests/test_docs.py`` writes the actual
outputs into the documents instead of failing (the port back to 8000, the temporary home
as ``/home/me``, ids as the document showed them where it did): review with ``git diff``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest

from .doc_examples import DOC_PORT, Example, Fence, Ids, compare, examples, regenerate, rewritten
from .test_process import Served, free_port, launch, wait_for

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = os.environ.get("OMNIMIND_DOCS_REGENERATE") == "1"
SHOWN_HOME = "/home/me"
COMMAND_TIMEOUT = 30.0
"""A command without a ``timeout`` directive that runs longer has hung."""


def noon_zone() -> str:
    """A fixed-offset zone where it is now between 12:00 and 13:00: the sleep window
    (00:00-06:00) is half a day away whenever the test runs."""
    offset = 12 - datetime.now(UTC).hour  # from -11 to +12 hours
    # The Etc zones' signs are POSIX's: Etc/GMT-3 is three hours ahead of UTC.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@dataclass
class Sandbox:
    """The temporary home, the daemon's directory in it, and the daemon."""

    home: Path
    cwd: Path
    served: Served
    env: dict[str, str]
    """The environment of the documents' commands."""

    def password(self) -> tuple[str, str] | None:
        try:
            stored = json.loads((self.cwd / "config" / "dashboard_auth.json").read_text())
        except (OSError, ValueError):
            return None
        return str(stored["user"]), str(stored["pass"])

    def shown(self, text: str) -> str:
        """Output as the documents show it: the port 8000, the home ``/home/me``."""
        text = text.replace(str(self.home), SHOWN_HOME)
        return re.sub(rf"(?<![\d.]){self.served.port}(?!\d)", str(DOC_PORT), text)

    def real(self, command: str) -> str:
        return re.sub(rf"(?<![\d.]){DOC_PORT}(?!\d)", str(self.served.port), command)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    home, run = tmp_path / "home", tmp_path / "run"
    cwd = home / "omnimind"
    cwd.mkdir(parents=True)
    run.mkdir(mode=0o700)
    zone, port = noon_zone(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    base.update(
        HOME=str(home),
        TZ=zone,
        COLUMNS="80",
        LC_ALL="C.UTF-8",
        XDG_RUNTIME_DIR=str(run),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    daemon_env = dict(
        base,
        OMNIMIND_PORT=str(port),
        OMNIMIND_TIMEZONE=zone,
        # HIGH and MEDIUM never start by themselves: the gates need a day of quiet.
        OMNIMIND_GATE_OPEN_SECONDS="86400",
        OMNIMIND_NODE_NAME="desktop",  # the documents' machine, whatever the host's name
    )
    served = launch(cwd, daemon_env, port=port, logs=tmp_path / "serve")
    # The commands' default port is the daemon's, as 8000 is in the documents.
    env = dict(base, OMNIMIND_URL=served.url, OMNIMIND_PORT=str(port))
    try:
        served.wait_serving()
        # Its generated credentials are printed once start-up is over, a moment after the
        # port first answers (the first transcript shows them).
        wait_for(lambda: "pass: " in served.stdout(), 10, "the daemon's credentials")
        yield Sandbox(home, cwd, served, env)
    finally:
        served.kill_all()


def settle(sandbox: Sandbox, limit: float = 10.0) -> None:
    """Wait until no task is starting and no run younger than a second is running, the
    same over two looks: the daemon has done what the last command set off."""
    auth = sandbox.password()
    if auth is None:
        return
    deadline, before, since = time.monotonic() + limit, None, time.monotonic()
    with httpx.Client(base_url=sandbox.served.url, auth=auth, timeout=5.0) as client:
        while time.monotonic() < deadline:
            tasks = client.get("/daemon/dashboard/tasks")
            running = client.get("/daemon/executions", params={"outcome": "running"})
            if tasks.status_code != 200 or running.status_code != 200:
                return  # credentials just rotated: nothing to wait for
            starting = [
                t["task_id"]
                for t in tasks.json()["tasks"]
                if (t.get("waiting") or {}).get("reason") == "starting"
            ]
            young = [
                r["execution_id"]
                for r in running.json()["executions"]
                if time.time() - _epoch(r["started_at"]) < 1.0
            ]
            now = ([t["status"] for t in tasks.json()["tasks"]], running.text)
            if not starting and not running.json()["executions"]:
                return
            if starting or young or now != before:
                before, since = now, time.monotonic()
            elif time.monotonic() - since >= 0.3:  # a run being cancelled has ended by then
                return
            time.sleep(0.05)


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else 0.0


def connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or a child) holds a connection to ``port``."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return any(
            c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
            for p in procs
            for c in p.net_connections()
        )
    except psutil.Error:
        return False


def directive(example: Example) -> tuple[float | None, str | None]:
    """The ``timeout N`` and ``meanwhile: COMMAND`` of an example's directive."""
    timeout = re.search(r"\btimeout (\d+(?:\.\d+)?)", example.directive)
    meanwhile = re.search(r"\bmeanwhile: (.*)$", example.directive)
    return (
        float(timeout.group(1)) if timeout else None,
        meanwhile.group(1) if meanwhile else None,
    )


def run(sandbox: Sandbox, command: str, example: Example) -> tuple[str, int]:
    """Run one command as the document shows it; its stdout and stderr, and its status.
    A command still running when its directive's timeout ends gets Ctrl-C."""
    limit, meanwhile = directive(example)
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=sandbox.cwd,
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if meanwhile is not None:
        wait_for(lambda: connected(proc.pid, sandbox.served.port), 10, "the command to connect")
        time.sleep(1.0)  # its WebSocket's upgrade and first message: a few ms
        subprocess.run(
            ["bash", "-c", sandbox.real(meanwhile)],
            cwd=sandbox.cwd,
            env=sandbox.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
    try:
        out, _ = proc.communicate(timeout=limit or COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT if limit else signal.SIGKILL)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # Ctrl-C did not end it: that is a failure too
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            out += b"[Ctrl-C did not end it within 10 s: killed]\n"
        if not limit:
            out += f"[still running after {COMMAND_TIMEOUT:g} s: killed]\n".encode()
    return out.decode(errors="replace"), proc.returncode


def write_files(sandbox: Sandbox, directive: str, lines: list[str]) -> None:
    """``file NAME...`` writes the block to each NAME; ``file NAME: TEXT`` one line."""
    found = re.fullmatch(r"file ([^:]+)(?:: (.*))?", directive)
    if found is None:
        return
    text = (found.group(2) + "\n") if found.group(2) else "".join(s + "\n" for s in lines)
    for name in found.group(1).split():
        path = sandbox.cwd / Path(name.replace("~", str(sandbox.home), 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def check(
    path: Path, sandbox: Sandbox
) -> tuple[list[str], list[tuple[tuple[int, int], list[str]]]]:
    """Run the examples of ``path``: the mismatches, and the rewrites that would fix them."""
    failures: list[str] = []
    rewrites: list[tuple[tuple[int, int], list[str]]] = []
    ids, prelude = Ids(), ""
    for item in examples(path):
        if isinstance(item, Fence):
            if item.info == "bash" and not item.directive:
                prelude += "\n".join(item.lines) + "\n"
            write_files(sandbox, item.directive, item.lines)
            continue
        if item.directive.startswith("skip"):
            continue
        write_files(sandbox, item.directive, [])
        settle(sandbox)
        if item.directive == "daemon":  # the command the test started the daemon with
            actual, status = sandbox.served.stdout(), 0
            if item.command != "omnimind serve":
                pytest.fail(f"{item.where}: the daemon's block must run `omnimind serve`")
        else:
            cat = re.fullmatch(r"cat (\S+)", item.command)
            if cat and not (sandbox.cwd / cat.group(1)).exists():
                (sandbox.cwd / cat.group(1)).write_text("".join(s + "\n" for s in item.expected))
            command = ids.to_real(sandbox.real(item.command))
            if item.kind == "block":
                command = prelude + command
            actual, status = run(sandbox, command, item)
        actual = sandbox.shown(actual)
        problems = compare(item.expected, actual, ids, item.shown_at)
        if status != item.status:
            problems.append(f"exit status {status}, the document says {item.status}")
        if problems:
            failures.append(f"{item.where}: $ {item.command}\n" + "\n".join(problems))
            rewrites.append((item.span, rewritten(item, ids.to_shown(actual), status)))
    return failures, rewrites


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", ["cli.md", "api.md"])
def test_the_examples_print_what_the_document_shows(name: str, sandbox: Sandbox) -> None:
    path = ROOT / "docs" / name
    failures, rewrites = check(path, sandbox)
    if REGENERATE and rewrites:
        regenerate(path, rewrites)
        print(f"rewrote {len(rewrites)} outputs of {path}")
    elif failures:
        pytest.fail(
            f"{len(failures)} examples of docs/{name} print something else "
            "(OMNIMIND_DOCS_REGENERATE=1 rewrites them):\n\n" + "\n\n".join(failures),
            pytrace=False,
        )


# The comparison itself, without a daemon: what must fail fails.

RUN = "c8b3b9214a674440b212c2f21c160bda"
OTHER = "6151f2c900fd478e8ca8514ebfe0ff01"


def test_a_changed_word_fails_with_a_diff_naming_the_document_lines() -> None:
    problems = compare(
        ["Task 'Backup' paused"], "Task 'Backup' resumed\n", Ids(), "docs/x.md line 7"
    )
    assert problems[:2] == ["--- docs/x.md line 7", "+++ what it printed"]
    assert "-Task 'Backup' paused" in problems and "+Task 'Backup' resumed" in problems


def test_ids_times_measurements_and_column_widths_are_normalised() -> None:
    shown = [
        f"{RUN}  backup  cancelled  2026-11-26 15:11:38     1.71s  cancelled by request",
        "cpu percent:      50.5",
        "  pass: W_3KaKiyPzzmXiuz8aq3eul5hT6A2zqV",
        "backup  LOW  waiting: sleep window  tonight 00:00  every 1d",
    ]
    printed = (
        f"{OTHER}  backup   cancelled  2027-01-02 08:00:01    12.30s  cancelled by request\n"
        "cpu percent:      3\n"
        "  pass: QvTWpk7ZHof8Tu50sMYg2kCJ8bQTiJAR\n"
        "backup  LOW  waiting: sleep window  in 3 h  every 1d\n"
    )
    assert compare(shown, printed, Ids(), "here") == []
    assert compare(shown, printed.replace("every 1d", "every 2d"), Ids(), "here") != []


def test_json_is_compared_as_data_with_its_key_order() -> None:
    shown = ['{"task_id": "backup", "duration_seconds": 1.7,', ' "outcome": "cancelled"}']
    assert (
        compare(
            shown, '{"task_id":"backup","duration_seconds":0.2,"outcome":"cancelled"}', Ids(), "x"
        )
        == []
    )
    assert compare(
        shown, '{"duration_seconds":1.7,"task_id":"backup","outcome":"cancelled"}', Ids(), "x"
    )
    assert compare(
        shown, '{"task_id":"backup","duration_seconds":1.7,"outcome":"failed"}', Ids(), "x"
    )


def test_an_id_shown_stands_for_one_run_everywhere() -> None:
    ids = Ids()
    assert compare([f"execution id: {RUN}"], f"execution id: {OTHER}\n", ids, "x") == []
    assert ids.to_real(f"omnimind logs {RUN}") == f"omnimind logs {OTHER}"
    third = "0" * 32
    assert compare([f"execution id: {RUN}"], f"execution id: {third}\n", ids, "x") == [
        f"{RUN} stood for {OTHER}, here for {third}"
    ]


def test_a_line_of_three_dots_stands_for_any_lines() -> None:
    shown = ["HTTP/1.1 401", "connection: close", "..."]
    assert compare(shown, "HTTP/1.1 401\nconnection: close\ndate: x\n\n{}\n", Ids(), "x") == []
    assert compare(shown, "HTTP/1.1 401\ndate: x\n", Ids(), "x") != []
