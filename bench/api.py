"""D. API (issue 6.3): ``GET /daemon/status`` at 32 concurrent keep-alive connections,
against a bare hello-world QuartTrio app on the same hypercorn trio worker with the same
hypercorn configuration (``bench/_hello.py``), in the same run.

Three processes: ``omnimind serve`` (default settings, empty home), the hello app, and the
load generator: ``wrk`` (Debian package) with the Basic auth header, or this package's
small trio generator (``bench/_loadgen.py``) where ``wrk`` is missing. On a machine with two
or more cores both servers are pinned to one core and the generator to another, so the
generator does not steal the server's CPU; it is the same generator, same settings, for
both. Each run is a fixed number of seconds against one server, then the other; the
ratio is ours / hello per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

from .common import (
    AUTH_HEADER,
    Figure,
    HostProbe,
    Mode,
    Server,
    base_env,
    free_port,
    log,
    omnimind_command,
    pinnable,
    ratio,
    running_server,
    temp_home,
    with_repo_on_path,
)

PATH = "/daemon/status"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def load(url: str, connections: int, seconds: float, cpu: int | None) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and errors of one bounded load run."""
    preexec = None
    if cpu is not None:

        def preexec() -> None:
            os.sched_setaffinity(0, {cpu})

    wrk = shutil.which("wrk")
    if wrk is not None:
        command = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--latency",
            "-H",
            f"Authorization: {AUTH_HEADER}",
            url + PATH,
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=preexec,
            check=True,
        )
        out = done.stdout
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _latency_ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        p99 = _latency_ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        socket_errors = re.search(r"Socket errors:.*", out)
        errors = float(non2xx.group(1)) if non2xx else 0.0
        if socket_errors:
            errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
        return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}
    command = [
        sys.executable,
        "-m",
        "bench._loadgen",
        url,
        PATH,
        str(connections),
        str(seconds),
        AUTH_HEADER,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=preexec,
        check=True,
        env=with_repo_on_path(dict(os.environ)),
    )
    result = json.loads(done.stdout)
    return {
        "rps": result["requests_per_second"],
        "p50": result["p50_ms"],
        "p99": result["p99_ms"],
        "errors": float(result["errors"]),
    }


def run(mode: Mode) -> list[Figure]:
    cores = pinnable()
    server_cpu, load_cpu = cores if cores else (None, None)
    generator = "wrk -t1" if shutil.which("wrk") else "bench._loadgen (wrk not installed)"
    ours: list[dict[str, float]] = []
    hello: list[dict[str, float]] = []
    fixed: list[dict[str, float]] = []
    hello_command = [sys.executable, "-m", "bench._hello"]
    with temp_home() as home, contextlib.ExitStack() as stack:

        def start(
            command: Callable[[int], list[str]], env_of: Callable[[int], dict[str, str]]
        ) -> Server:
            port = free_port()
            return stack.enter_context(
                running_server(command(port), env_of(port), port, cpu=server_cpu)
            )

        server_ours = start(
            lambda port: omnimind_command("--log-level", "WARNING"),
            lambda port: base_env(home, port),
        )
        servers = [server_ours]
        server_hello = start(
            lambda port: [*hello_command, str(port)],
            lambda port: with_repo_on_path(base_env(home, port)),
        )
        servers.append(server_hello)
        server_fixed = start(
            lambda port: [*hello_command, str(port), "fixed"],
            lambda port: with_repo_on_path(base_env(home, port)),
        )
        servers.append(server_fixed)
        conns = mode.api_connections
        for server in servers:  # warm-up, not counted
            load(server.url, conns, 1.0, load_cpu)
        host = HostProbe(server_cpu)
        waited = 0.0
        slow_starts = 0

        def measure(server: Server) -> dict[str, float]:
            # Each run starts on a quiet host (a probe right after a run would still
            # see the server winding down, so none is taken then).
            nonlocal waited, slow_starts
            factor, seconds = host.wait_for_quiet()
            waited += seconds
            slow_starts += factor > HostProbe.SLOW
            return load(server.url, conns, mode.api_seconds, load_cpu)

        for rep in range(mode.api_repeats):
            ours.append(measure(server_ours))
            hello.append(measure(server_hello))
            fixed.append(measure(server_fixed))
            log(
                f"D run {rep + 1}: ours {ours[-1]['rps']:.0f} req/s p99"
                f" {ours[-1]['p99']:.1f} ms; hello {hello[-1]['rps']:.0f} req/s p99"
                f" {hello[-1]['p99']:.1f} ms; hello, product's connection"
                f" {fixed[-1]['rps']:.0f} req/s p99 {fixed[-1]['p99']:.1f} ms"
            )
    errors = sum(r["errors"] for r in ours + hello + fixed)
    pin = (
        f"servers pinned to CPU {server_cpu}, generator to CPU {load_cpu}"
        if cores
        else "no pinning (one core)"
    )
    note = f"{generator}, {mode.api_connections} connections, {mode.api_seconds:g} s per run; {pin}"
    note += f"; waited {waited:.0f} s in all for a quiet host before runs"
    if slow_starts:
        note += f" ({slow_starts} runs started on a slow host anyway)"
    if errors:
        note += f"; {errors:.0f} non-2xx or socket errors"
    figures = [
        Figure("D1", "GET /daemon/status req/s (omnimind serve)", "/s", [r["rps"] for r in ours]),
        Figure("D2", "hello-world QuartTrio req/s (same worker)", "/s", [r["rps"] for r in hello]),
        Figure(
            "D3",
            "req/s ratio ours / hello-world",
            "x",
            [ratio(o["rps"], h["rps"]) for o, h in zip(ours, hello, strict=True)],
            (">=", 0.90),
            note=note,
        ),
        Figure(
            "D4",
            "GET /daemon/status p99 at 32 connections",
            "ms",
            [r["p99"] for r in ours],
            ("<", 50.0),
        ),
        Figure("D5", "hello-world p99 at 32 connections", "ms", [r["p99"] for r in hello]),
        Figure("D6", "GET /daemon/status p50", "ms", [r["p50"] for r in ours]),
    ]
    return [
        *figures,
        Figure(
            "D7",
            "hello-world, the product's connection class, req/s",
            "/s",
            [r["rps"] for r in fixed],
            note="the bare app served through server.serve_http, as omnimind serve serves",
        ),
        Figure(
            "D8",
            "req/s ratio hello (product's connection) / hello-world",
            "x",
            [ratio(f["rps"], h["rps"]) for f, h in zip(fixed, hello, strict=True)],
            note="what the product's connection class (keep-alive fixes) changes alone",
        ),
        Figure(
            "D9",
            "req/s ratio ours / hello (product's connection)",
            "x",
            [ratio(o["rps"], f["rps"]) for o, f in zip(ours, fixed, strict=True)],
            note="the cost of our handler, auth and after-request hooks alone",
        ),
    ]
