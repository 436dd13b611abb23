"""A small HTTP/1.1 keep-alive load generator, used for figure D when ``wrk`` is missing.

``python -m bench._loadgen URL PATH CONNECTIONS SECONDS AUTH`` prints one JSON object:
requests, requests_per_second, p50_ms, p99_ms, errors. Loopback only; stops by itself
after SECONDS.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import trio

from .common import percentile


async def connection(
    host: str,
    port: int,
    request: bytes | Callable[[], bytes],
    deadline: float,
    latencies: list[float],
    failed: Callable[[bytes], None] = lambda head: None,
) -> int:
    """One keep-alive connection sending ``request`` (or what the callable makes, one per
    request) until ``deadline``; returns the errors (non-2xx answers, a closed socket)."""
    errors = 0
    stream = await trio.open_tcp_stream(host, port)
    buffer = b""
    async with stream:
        while time.perf_counter() < deadline:
            data = request if isinstance(request, bytes) else request()
            t0 = time.perf_counter()
            await stream.send_all(data)
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return errors + 1
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return errors + 1
                buffer += chunk
            buffer = buffer[length:]
            latencies.append((time.perf_counter() - t0) * 1000)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
                failed(head + b"\r\n\r\n" + buffer[:0])
    return errors


async def main(url: str, path: str, connections: int, seconds: float, auth: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("loopback only")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def one() -> None:
        nonlocal errors
        errors += await connection(host, port, request, deadline, latencies)

    with trio.move_on_after(seconds + 10):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(one)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "requests_per_second": len(latencies) / elapsed,
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    url, path, conns, secs, auth = sys.argv[1:6]
    trio.run(main, url, path, int(conns), float(secs), auth)
