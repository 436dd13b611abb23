"""Shared helpers: figures and their targets, percentiles, a temporary ``omnimind serve``
on a free loopback port, a task database filled before start, and process accounting.

Every server the benchmarks start listens on 127.0.0.1 only, and every request loop is
bounded in count and in time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from omnimind_trio import Priority

HOST = "127.0.0.1"
USER = "bench"
PASSWORD = "bench-pass"
AUTH_HEADER = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TRIVIAL_CODE = "def execute():\n    import time\n    return time.time()\n"
"""The trivial task everywhere: it records the wall time at its entry and returns it."""

# -- figures -----------------------------------------------------------------------

TOLERANCE = 0.10
"""A figure fails the run when it misses its target by more than this fraction."""


@dataclass
class Figure:
    """One row of the table: the runs, their median, and an optional target."""

    id: str
    name: str
    unit: str
    runs: list[float]
    target: tuple[str, float] | None = None
    """``("<", 5.0)`` or ``(">=", 200.0)``; None for an informational figure."""
    note: str = ""
    crashed: bool = False
    median: float | None = field(init=False)

    def __post_init__(self) -> None:
        finite = [r for r in self.runs if r is not None and not math.isnan(r)]
        self.median = statistics.median(finite) if finite else None

    @property
    def status(self) -> str:
        """``PASS``, ``MISS`` (misses by at most 10 %), ``FAIL``, ``INFO`` or ``N/A``."""
        if self.crashed:
            return "FAIL"
        if self.median is None:
            return "N/A"
        if self.target is None:
            return "INFO"
        op, limit = self.target
        value = self.median
        if op in ("<", "<="):
            ok = value < limit if op == "<" else value <= limit
            close = value <= limit * (1 + TOLERANCE)
        else:
            ok = value > limit if op == ">" else value >= limit
            close = value >= limit * (1 - TOLERANCE)
        if ok:
            return "PASS"
        return "MISS" if close else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "runs": self.runs,
            "target": None if self.target is None else f"{self.target[0]} {self.target[1]:g}",
            "status": self.status,
            "note": self.note,
        }


def skipped(id_: str, name: str, unit: str, reason: str, target: Any = None) -> Figure:
    """A figure that could not be measured (a missing tool): reported as N/A."""
    return Figure(id_, name, unit, [], target, note=reason)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


# -- mode --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """Sizes of one benchmark run: ``quick`` (under 3 minutes) or ``full``."""

    name: str
    repeats: int
    exec_latency_n: int
    cold_latency_n: int
    exec_throughput_n: int
    cold_throughput_n: int
    footprint_tasks: int
    footprint_window: float
    footprint_separate_servers: bool
    scale_sizes: tuple[int, ...]
    scale_page_requests: dict[int, int]
    scale_page_seconds: float
    sched_due: int
    api_seconds: float
    api_connections: int
    api_repeats: int
    """D alternates short runs between servers: more pairs, so a noisy stretch of the host
    that hits one server's run moves the median ratio less."""
    accuracy_tasks: int
    accuracy_spread: float
    accuracy_slow_spread: float | None
    """Full mode: the same tasks spread wider too (half the rate), reported beside."""
    peers_latency_n: int
    peers_throughput_n: int
    stop_in_flight: int

    @classmethod
    def quick(cls) -> Mode:
        return cls(
            name="quick",
            repeats=3,
            exec_latency_n=200,
            cold_latency_n=30,
            exec_throughput_n=300,
            cold_throughput_n=60,
            footprint_tasks=1000,
            footprint_window=5.0,
            footprint_separate_servers=False,
            scale_sizes=(1_000, 10_000, 100_000),
            scale_page_requests={1_000: 100, 10_000: 100, 100_000: 100},
            scale_page_seconds=3.0,
            sched_due=1000,
            api_seconds=2.0,
            api_connections=32,
            api_repeats=5,
            accuracy_tasks=1000,
            accuracy_spread=5.0,
            accuracy_slow_spread=None,
            peers_latency_n=30,
            peers_throughput_n=200,
            stop_in_flight=50,
        )

    @classmethod
    def full(cls) -> Mode:
        return cls(
            name="full",
            repeats=3,
            exec_latency_n=1000,
            cold_latency_n=100,
            exec_throughput_n=2000,
            cold_throughput_n=200,
            footprint_tasks=1000,
            footprint_window=60.0,
            footprint_separate_servers=True,
            scale_sizes=(1_000, 10_000, 100_000),
            scale_page_requests={1_000: 1000, 10_000: 1000, 100_000: 1000},
            scale_page_seconds=20.0,
            sched_due=1000,
            api_seconds=10.0,
            api_connections=32,
            api_repeats=5,
            accuracy_tasks=1000,
            accuracy_spread=5.0,
            accuracy_slow_spread=10.0,
            peers_latency_n=100,
            peers_throughput_n=1000,
            stop_in_flight=50,
        )


# -- the product as a process ------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def window_excluding_now(hours_ahead: int = 6) -> str:
    """A one-hour sleep window (UTC) that starts ``hours_ahead`` hours from now."""
    start = datetime.now(UTC) + timedelta(hours=hours_ahead)
    end = start + timedelta(hours=1)
    return f"{start:%H}:00-{end:%H}:00"


def base_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a benchmark daemon: its own home, credentials and port."""
    # PYTHONDONTWRITEBYTECODE (set on some CI and sandbox machines) would make every start
    # recompile the package from source; an installed daemon has its bytecode cached.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OMNIMIND_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        {
            "OMNIMIND_HOME": str(home),
            "OMNIMIND_WORKSPACE": str(home),
            "OMNIMIND_HOST": HOST,
            "OMNIMIND_PORT": str(port),
            "OMNIMIND_DASHBOARD_USER": USER,
            "OMNIMIND_DASHBOARD_PASS": PASSWORD,
            "OMNIMIND_TIMEZONE": "UTC",
        }
    )
    env.update(extra)
    return env


class Server:
    """A running server process on ``HOST:port`` (``omnimind serve`` or another app)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.ready_seconds = math.nan
        """From spawning the process to its first successful answer."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": AUTH_HEADER}, timeout=timeout
        )

    def wait_ready(self, started: float, path: str, timeout: float) -> None:
        deadline = started + timeout
        with httpx.Client(base_url=self.url, headers={"Authorization": AUTH_HEADER}) as http:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited early; log:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(path, timeout=2.0).status_code == 200:
                        self.ready_seconds = time.perf_counter() - started
                        return
                time.sleep(0.005)
        raise RuntimeError(f"server not ready after {timeout} s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def tree(self) -> list[psutil.Process]:
        """The server process and all its descendants (fork server, task processes)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL of the whole process group if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


REPO = Path(__file__).resolve().parent.parent


def with_repo_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the repository on PYTHONPATH, so a child can import ``bench``."""
    paths = [p for p in (env.get("PYTHONPATH"), str(REPO)) if p]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def omnimind_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "omnimind_trio", "serve", *args]


@contextlib.contextmanager
def running_server(
    command: list[str],
    env: dict[str, str],
    port: int,
    *,
    ready_path: str = "/daemon/status",
    ready_timeout: float = 60.0,
    cpu: int | None = None,
    log_dir: Path | None = None,
) -> Iterator[Server]:
    """Start ``command`` in its own session, wait until ``ready_path`` answers 200, and
    stop it (and everything it started) on exit. ``cpu`` pins it to one core."""
    own_dir = log_dir is None
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="omnimind-bench-log-"))
    log = log_dir / f"server-{port}.log"
    preexec: Callable[[], None] | None = None
    if cpu is not None:
        preexec = _pin(cpu)
    with log.open("wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    server = Server(process, port, log)
    try:
        server.wait_ready(started, ready_path, ready_timeout)
        yield server
    finally:
        server.stop()
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)


def _pin(cpu: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def pinnable() -> tuple[int, int] | None:
    """Two distinct cores for server and load generator, if this machine has them."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


class HostProbe:
    """How fast the host lets this machine run right now, on one core.

    On a virtual machine, neighbours on the host slow it down without showing in any of
    its own counters (steal time stays near zero here), and the same server's throughput
    has varied 1.5x within minutes. The probe times a fixed pure-Python loop pinned to
    ``cpu`` (best of 5, about 5 ms each when quiet) while that core is otherwise idle.
    ``factor`` is its time over the best time seen: 1.0 is the host at its fastest.
    """

    SLOW = 1.15
    """A probe this much slower than the best means the host is busy elsewhere."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self.best = min(self._time() for _ in range(5))

    def _time(self) -> float:
        saved = os.sched_getaffinity(0)
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})
        try:
            best = math.inf
            for _ in range(5):
                t0 = time.perf_counter()
                x = 0
                for i in range(100_000):
                    x += i * i
                best = min(best, time.perf_counter() - t0)
            return best
        finally:
            os.sched_setaffinity(0, saved)

    def factor(self) -> float:
        t = self._time()
        self.best = min(self.best, t)
        return t / self.best

    def wait_for_quiet(self, limit: float = 20.0) -> tuple[float, float]:
        """Probe until the host runs at its best speed again, for at most ``limit`` seconds.
        Returns the last factor and the seconds waited."""
        start = time.monotonic()
        while True:
            factor = self.factor()
            waited = time.monotonic() - start
            if factor <= self.SLOW or waited >= limit:
                return factor, waited
            time.sleep(1.0)


@contextlib.contextmanager
def temp_home(prefix: str = "omnimind-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU of these processes, including their reaped children."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def cpu_clock_seconds(processes: Sequence[psutil.Process]) -> float:
    """CPU time of these processes from the kernel's per-process CPU clock (all threads,
    nanosecond resolution): the counter psutil's ``cpu_times`` reads in 10 ms ticks."""
    total = 0
    for process in processes:
        clock = ((~process.pid) << 3) | 2  # CPUCLOCK_SCHED of the whole thread group
        with contextlib.suppress(OSError):
            total += time.clock_gettime_ns(clock)
    return total / 1e9


def rss_mb(processes: Sequence[psutil.Process]) -> float:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            total += process.memory_info().rss
    return total / 2**20


# -- a task database, filled before the daemon starts ------------------------------


def create_database(path: Path) -> None:
    """Create the product's schema at ``path`` through the product's own store (in a
    thread of its own, so that callers may already be inside ``trio.run``)."""
    import threading

    import trio

    from omnimind_trio.store import open_store

    async def create() -> None:
        async with open_store(path):
            pass

    failure: list[BaseException] = []

    def target() -> None:
        try:
            trio.run(create)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def fill_tasks(
    path: Path,
    count: int,
    *,
    priority: Priority | Callable[[int], Priority],
    next_due: Callable[[int], float | None],
    code: str = TRIVIAL_CODE,
    repeat_hours: int | None = None,
    prefix: str = "bench",
) -> None:
    """Insert ``count`` code tasks as rows of the product's ``tasks`` table, in one
    transaction (100k separate adds through the API would take minutes), written as the
    store writes them (its own column list and row conversion). The daemon loads them at
    start like any stored task; callers check it reports them all."""
    from omnimind_trio.models import TaskCounters, TaskSpec, new_registration_id
    from omnimind_trio.store import StoredTask
    from omnimind_trio.store._schema import TASK_COLUMNS, task_row

    if not path.exists():
        create_database(path)
    now = time.time()
    rows = (
        task_row(
            StoredTask(
                TaskSpec(
                    f"{prefix}-{i:06d}",
                    f"Bench task {i}",
                    "benchmark task",
                    priority(i) if callable(priority) else priority,
                    code,
                    repeat_hours,
                ),
                TaskCounters(),
                seq=i + 1,
                paused=False,
                created_at=now,
                next_due=next_due(i),
                registration_id=new_registration_id(),
            )
        )
        for i in range(count)
    )
    names = ", ".join(column.name for column in TASK_COLUMNS)
    db = sqlite3.connect(path)
    try:
        with db:
            db.executemany(
                f"INSERT INTO tasks ({names}) VALUES ({','.join('?' * len(TASK_COLUMNS))})", rows
            )
    finally:
        db.close()


def query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def iso_epoch(iso: str) -> float:
    """An API time (ISO-8601 UTC, ``...Z``) as epoch seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def result_time(result: str | None) -> float | None:
    """The ``time.time()`` a trivial task returned, from an execution's ``result``."""
    if result is None:
        return None
    value = json.loads(result)
    return float(value) if isinstance(value, int | float) else None


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
