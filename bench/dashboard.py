"""L. Dashboard (issue 12): the web page in Chromium (Playwright) against ``omnimind serve``.

Debian's ``/usr/bin/chromium``, headless, as ``tests/test_dashboard_browser.py`` drives
it, but with the Basic credentials sent as a header on every request (what a browser does
once logged in) rather than through Playwright's ``http_credentials``: Playwright answers
those challenges by intercepting every request, which routes each through its driver and
turns the browser's HTTP cache off. Two daemons:

- 10,000 LOW tasks filled into the database before start (``fill_tasks``), due in an hour
  or more, so nothing runs: the first 100 rows of the tasks page with the browser cache
  cold (a new context, L1) and warm (a second navigation in the same context, L2), timed
  inside the page; then the daemon's CPU with the tasks and machine pages open (L7-10k)
  and without any page (L8-10k).
- 20 such tasks: a CRITICAL task run now (``POST /daemon/tasks/{id}/run``) while the tasks
  page is open, from the record's ``started_at`` / ``finished_at`` to the row showing
  ``running`` / ``succeeded`` (L3, L4); the daemon's CPU with no page (L8), the tasks page
  (L7-tasks) and the tasks and machine pages (L7) open; the run page of a finished run
  whose log is 10 MB (L5); and the page's responsiveness while a run prints flat out
  (L6).

The 20-task daemon starts first and idles, with no client, while the other is measured.
The machine page fetches the daemon's whole CPU history (one sample a second, 10 minutes
kept) every second, so its cost grows for the first 10 minutes of the daemon's life:
``--full`` waits until then before measuring L7.

Times inside the page come from ``performance.now()`` (relative to the navigation's
start) or ``Date.now()`` (the same clock as the daemon's records), taken by a
``MutationObserver`` when the DOM holds what is measured and by the first
``requestAnimationFrame`` after it: the frame that paints it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from omnimind_trio import Priority

from .common import (
    AUTH_HEADER,
    Figure,
    Mode,
    Server,
    base_env,
    cpu_clock_seconds,
    fill_tasks,
    free_port,
    iso_epoch,
    log,
    omnimind_command,
    percentile,
    running_server,
    skipped,
    temp_home,
    window_excluding_now,
)
from .footprint import settle
from .output import FLOOD, LINES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [  # as tests/test_browser.py
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIG = 10_000
SMALL = 20
SETTLE_SECONDS = 5.0
"""A page's own start (modules, first fetches, the WebSocket) ends before its CPU counts."""
PULSE = "pulse"
PULSE_CODE = (
    "import random, time\ndef execute():\n    time.sleep(0.3 + random.random() / 4)\n    return 1\n"
)
"""Long enough for the row to show ``running``; a random length, so that the end falls
anywhere in the page's 250 ms refetch interval."""
LAST_LINE = f"{LINES - 1:099d}\n"
"""The last line the FLOOD task prints."""
STREAM_SECONDS = 8.0
STREAM = f"""
import sys, time
def execute():
    write = sys.stdout.write
    end = time.monotonic() + {STREAM_SECONDS}
    i = 0
    while time.monotonic() < end:
        for _ in range(1000):
            write(f"{{i:099d}}\\n")
            i += 1
    return i
"""
"""Prints 100-byte lines flat out for STREAM_SECONDS."""
PROBE_SECONDS = 3.0
HISTORY_SECONDS = 610.0
"""Full mode measures L7 once the daemon holds its full CPU history (10 minutes): the
machine page fetches it every second, and its cost grows with it."""

ROWS_SCRIPT = """
(() => {
  window.__bench = {dom: null, frame: null};
  const seen = () => document.querySelectorAll('table.tasks tbody tr[data-task]').length >= 100;
  const observer = new MutationObserver(() => {
    if (window.__bench.dom !== null || !seen()) return;
    observer.disconnect();
    window.__bench.dom = performance.now();
    requestAnimationFrame(() => { window.__bench.frame = performance.now(); });
  });
  observer.observe(document, {childList: true, subtree: true});
})();
"""
"""Init script: when the first 100 task rows are in the DOM, and the frame after."""

BREAKDOWN = """
() => {
  const navigation = performance.getEntriesByType('navigation')[0];
  const rows = performance.getEntriesByType('resource')
    .find((entry) => entry.name.includes('/daemon/dashboard/tasks'));
  const files = performance.getEntriesByType('resource')
    .filter((entry) => entry.name.includes('/dashboard/'));
  return {dom: window.__bench.dom, frame: window.__bench.frame,
    document: navigation.responseEnd, asked: rows?.startTime ?? null,
    answered: rows?.responseEnd ?? null, files: files.length,
    fetched: files.filter((entry) => entry.transferSize > 0).length};
}
"""

TAIL_SCRIPT = """
(() => {
  const last = %s;
  window.__bench = {dom: null, frame: null, bottom: null};
  const shown = () => {
    const pre = document.querySelector('pre.log');
    return pre !== null && (pre.lastChild?.textContent ?? '').endsWith(last) ? pre : null;
  };
  const observer = new MutationObserver(() => {
    const pre = window.__bench.dom === null ? shown() : null;
    if (pre === null) return;
    observer.disconnect();
    window.__bench.dom = performance.now();
    requestAnimationFrame(() => {
      window.__bench.frame = performance.now();
      window.__bench.bottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    });
  });
  observer.observe(document, {childList: true, subtree: true, characterData: true});
})();
"""
"""Init script: when the output element ends with the log's last line, and the frame after
(and whether the element is scrolled to its end then)."""

HASH_TO_RUN = """
([hash, last]) => new Promise((resolve) => {
  const start = performance.now();
  const observer = new MutationObserver(() => {
    const pre = document.querySelector('pre.log');
    if (pre === null || !(pre.lastChild?.textContent ?? '').endsWith(last)) return;
    observer.disconnect();
    const dom = performance.now() - start;
    requestAnimationFrame(() => resolve([dom, performance.now() - start]));
  });
  observer.observe(document.getElementById('main'),
    {childList: true, subtree: true, characterData: true});
  location.hash = hash;
})
"""
"""In-app navigation (a click on a link to the run): from the hash change to the last line."""

ROW_WATCH = """
(taskId) => {
  const watch = {armed: false, running: null, done: null};
  window.__pulse = watch;
  const look = () => {
    if (!watch.armed || watch.done !== null) return;
    const row = document.querySelector(`tr[data-task="${taskId}"]`);
    if (row === null) return;
    const state = row.querySelector('td[data-label="State"] .badge')?.textContent;
    const last = row.querySelector('td[data-label="Last run"] .badge')?.textContent;
    const now = Date.now();
    if (watch.running === null) {
      if (state === 'running') watch.running = now;
    } else if (state !== 'running' && last === 'succeeded') {
      watch.done = now;
    }
  };
  new MutationObserver(look).observe(document.getElementById('main'),
    {childList: true, subtree: true, characterData: true});
}
"""
"""On the tasks page: Date.now() when the row first shows ``running``, then the outcome."""

PROBE = """
() => {
  const probe = {delays: [], longtasks: [], frames: 0, updates: 0, stop: false};
  window.__probe = probe;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) probe.longtasks.push(entry.duration);
  }).observe({type: 'longtask'});
  const tick = () => {
    const sent = performance.now();
    setTimeout(() => {
      probe.delays.push(performance.now() - sent);
      if (!probe.stop) setTimeout(tick, 20);
    }, 0);
  };
  tick();
  const frame = () => {
    probe.frames += 1;
    if (!probe.stop) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new MutationObserver(() => { probe.updates += 1; }).observe(document.querySelector('pre.log'),
    {childList: true, subtree: true, characterData: true});
}
"""
"""While a run streams: setTimeout(0) delays every 20 ms, long tasks, frames, output updates."""


def _skipped(reason: str) -> list[Figure]:
    return [
        skipped(
            "L1", "Tasks page, 10,000 tasks: first 100 rows, cache cold", "ms", reason, ("<", 500.0)
        ),
        skipped(
            "L2", "Tasks page, 10,000 tasks: first 100 rows, cache warm", "ms", reason, ("<", 500.0)
        ),
        skipped(
            "L3",
            "Run seen on the tasks page: started_at to row 'running'",
            "ms",
            reason,
            ("<", 200.0),
        ),
        skipped(
            "L4",
            "Run seen on the tasks page: finished_at to 'succeeded'",
            "ms",
            reason,
            ("<", 200.0),
        ),
        skipped(
            "L5",
            "Run page of a 10 MB log: navigation to last line shown",
            "ms",
            reason,
            ("<", 1000.0),
        ),
        skipped("L6", "Run page while a run prints flat out: worst setTimeout(0)", "ms", reason),
        skipped("L7", "Daemon CPU, tasks + machine pages open, idle", "%", reason, ("<", 1.0)),
        skipped("L7-tasks", "Daemon CPU, tasks page open, idle", "%", reason),
        skipped("L8", "Daemon CPU, no page open, idle", "%", reason),
        skipped("L7-10k", "Daemon CPU, 10,000 tasks, two pages open, idle", "%", reason),
        skipped("L8-10k", "Daemon CPU, 10,000 tasks, no page open, idle", "%", reason),
    ]


def run(mode: Mode) -> list[Figure]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return _skipped("Playwright is not installed (the dev extra has it)")
    if CHROMIUM is None:
        return _skipped("no chromium on PATH (Debian: apt-get install chromium)")
    repeats = max(1, min(mode.repeats, 3))
    window = 10.0 if mode.name == "quick" else 20.0
    load = os.getloadavg()
    log(f"L: load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start")
    with sync_playwright() as playwright, ExitStack() as stack:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        stack.callback(browser.close)
        # The small daemon starts first, so that its CPU history (the machine page's
        # chart) is longer by the time its idle CPU is measured; it has no client until then.
        small_server = stack.enter_context(_daemon(SMALL))
        born = time.monotonic()
        big = _big(browser, repeats, window)
        history_at = born + HISTORY_SECONDS if mode.name == "full" else None
        small = _small(browser, small_server, repeats, window, history_at)
    end = os.getloadavg()
    log(f"L: load average {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at end (ours included)")
    figures = {f.id: f for f in [*big, *small]}
    order = ["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L7-tasks", "L8", "L7-10k", "L8-10k"]
    result = [figures[i] for i in order]
    result[0].note += (
        f"; 1-minute load average {load[0]:.2f} before the section (2 cores; at its end"
        f" {end[0]:.2f}, its own browser and daemons included)"
    )
    return result


# -- the daemon and the browser ----------------------------------------------------


@contextmanager
def _daemon(tasks: int) -> Iterator[Server]:
    """``omnimind serve`` with ``tasks`` LOW tasks filled before start, none due for an
    hour, and ``database_optimization`` paused: nothing runs unless asked."""
    with temp_home() as home:
        start = time.time() + 3600
        fill_tasks(
            home / "omnimind.db",
            tasks,
            priority=Priority.LOW,
            next_due=lambda i: start + i * 86400.0 / tasks,
            repeat_hours=24,
        )
        port = free_port()
        env = base_env(home, port, OMNIMIND_SLEEP_WINDOW=window_excluding_now())
        command = omnimind_command("--log-level", "WARNING")
        with running_server(command, env, port, ready_timeout=120) as server:
            settle(server, tasks + 1)
            yield server


def _context(browser: Browser, server: Server, script: str | None = None) -> BrowserContext:
    context = browser.new_context(
        # The credentials as a header on every request, as a browser sends them once
        # logged in. Not ``http_credentials``: Playwright answers the challenges by
        # intercepting every request, which also turns the browser's cache off.
        extra_http_headers={"Authorization": AUTH_HEADER},
        base_url=server.url,
        locale="en-US",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(30_000)
    if script is not None:
        context.add_init_script(script)
    return context


def _timed(page: Page, url: str) -> dict[str, float]:
    """Navigate to ``url`` and wait for the init script's marks: ms after the navigation's
    start of the DOM holding what is measured (``dom``), the frame after (``frame``), the
    document's answer, and the rows' request (``asked``, ``answered``) when there is one."""
    page.goto(url)
    page.wait_for_function("() => window.__bench && window.__bench.frame !== null")
    marks: dict[str, Any] = page.evaluate(BREAKDOWN)
    return {k: math.nan if v is None else float(v) for k, v in marks.items()}


# -- 10,000 tasks: first rows, idle CPU --------------------------------------------


def _big(browser: Browser, repeats: int, window: float) -> list[Figure]:
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    own_marks: list[float] = []
    with _daemon(BIG) as server:
        # The daemon's own first answers (file digests, the first page query) are not
        # what a cold browser cache costs: one untimed visit first.
        warm_up = _context(browser, server, ROWS_SCRIPT)
        _timed(warm_up.new_page(), "/")
        warm_up.close()
        with server.client() as http:
            server_ms = []
            for _ in range(10):
                started = time.perf_counter()
                http.get("/daemon/dashboard/tasks?limit=100").raise_for_status()
                server_ms.append((time.perf_counter() - started) * 1000)
        for rep in range(repeats):
            context = _context(browser, server, ROWS_SCRIPT)
            try:
                page = context.new_page()
                cold.append(_timed(page, "/"))
                page.goto("about:blank")
                warm.append(_timed(page, "/"))
                own_marks.append(
                    float(
                        page.evaluate(
                            "performance.getEntriesByName('omnimind:tasks-shown')[0].startTime"
                        )
                    )
                )
                total = page.locator(".pager").inner_text()
                if f"of {BIG + 1:,}" not in total:
                    raise RuntimeError(f"the tasks page says {total!r}")
            finally:
                context.close()
            for name, marks in (("cold", cold[-1]), ("warm", warm[-1])):
                log(
                    f"L1/L2 run {rep + 1}, {name}: rows painted {marks['frame']:.0f} ms (in the"
                    f" DOM {marks['dom']:.0f}); document answered {marks['document']:.0f},"
                    f" rows asked {marks['asked']:.0f}, answered {marks['answered']:.0f};"
                    f" {marks['fetched']:.0f} of {marks['files']:.0f} files from the network"
                )
        idle_open, idle_none, _, history = _idle(browser, server, repeats, window, alone=False)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def steps(runs: list[dict[str, float]]) -> str:
        return (
            f"document answered at {median(runs, 'document'):.0f} ms, rows asked at"
            f" {median(runs, 'asked'):.0f} and answered at {median(runs, 'answered'):.0f},"
            f" in the DOM at {median(runs, 'dom'):.0f}; {max(r['fetched'] for r in runs):.0f} of"
            f" {max(r['files'] for r in runs):.0f} files from the network"
        )

    how = (
        "in the page: performance.now() (from the navigation's start) at the first"
        " animation frame after a MutationObserver saw 100 rows"
    )
    return [
        Figure(
            "L1",
            "Tasks page, 10,000 tasks: first 100 rows, cache cold",
            "ms",
            [r["frame"] for r in cold],
            ("<", 500.0),
            note=f"{how}; a new context each run; {steps(cold)};"
            f" GET /daemon/dashboard/tasks?limit=100 alone (httpx) p50"
            f" {percentile(server_ms, 50):.0f} ms",
        ),
        Figure(
            "L2",
            "Tasks page, 10,000 tasks: first 100 rows, cache warm",
            "ms",
            [r["frame"] for r in warm],
            ("<", 500.0),
            note=f"second navigation in the same context; {steps(warm)}; the page's own"
            f" 'omnimind:tasks-shown' mark {statistics.median(own_marks):.0f} ms",
        ),
        Figure(
            "L7-10k",
            "Daemon CPU, 10,000 tasks, tasks + machine pages open, idle",
            "%",
            idle_open,
            note=f"as L7; {_history_words(history)}",
        ),
        Figure("L8-10k", "Daemon CPU, 10,000 tasks, no page open, idle", "%", idle_none),
    ]


def _history_words(history: list[int]) -> str:
    return (
        f"the machine page's CPU history held {min(history)}-{max(history)} samples; it"
        " fetches it every second and its cost grows with it up to 600 samples (10 minutes"
        " up), where --full measures L7"
    )


# -- daemon CPU while pages are open -----------------------------------------------


def _cpu_window(server: Server, seconds: float) -> float:
    """The daemon process's own CPU (psutil user + system, not its children) over
    ``seconds``, as % of one core."""
    process = psutil.Process(server.pid)
    before = process.cpu_times()
    clock0 = cpu_clock_seconds([process])
    wall0 = time.perf_counter()
    time.sleep(seconds)
    after = process.cpu_times()
    clock1 = cpu_clock_seconds([process])
    wall = time.perf_counter() - wall0
    ticks = (after.user + after.system) - (before.user + before.system)
    log(
        f"    {100 * ticks / wall:.2f} % over {wall:.1f} s"
        f" (ns clock {100 * (clock1 - clock0) / wall:.2f} %)"
    )
    return 100.0 * ticks / wall


def _open_pages(browser: Browser, server: Server, hashes: list[str]) -> BrowserContext:
    context = _context(browser, server)
    for hash_ in hashes:
        page = context.new_page()
        page.goto(f"/{hash_}")
        page.locator("#live", has_text="live").wait_for()
    return context


def _idle(
    browser: Browser, server: Server, repeats: int, window: float, *, alone: bool
) -> tuple[list[float], list[float], list[float], list[int]]:
    """Alternating windows: no page, tasks + machine pages open, (tasks page alone);
    and the length of the CPU history the machine page fetched each time."""
    both: list[float] = []
    none: list[float] = []
    tasks: list[float] = []
    history: list[int] = []
    for rep in range(repeats):
        variants: list[tuple[str, list[str], list[float]]] = [
            ("no page", [], none),
            ("tasks + machine pages", ["#/tasks", "#/machine"], both),
        ]
        if alone:
            variants.append(("tasks page", ["#/tasks"], tasks))
        for name, hashes, into in variants:
            log(f"L idle run {rep + 1}, {name}:")
            if not hashes:
                time.sleep(1.0)  # the last page's connection closed
                into.append(_cpu_window(server, window))
                continue
            context = _open_pages(browser, server, hashes)
            try:
                time.sleep(SETTLE_SECONDS)
                if "#/machine" in hashes:
                    with server.client() as http:
                        history.append(len(http.get("/daemon/machine").json()["cpu_history"]))
                into.append(_cpu_window(server, window))
            finally:
                context.close()
    return both, none, tasks, history


# -- 20 tasks: a run seen on the tasks page, idle CPU, the run page ----------------


def _finished(http: httpx.Client, execution_id: str, timeout: float) -> dict[str, Any]:
    """The execution record once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/daemon/executions/{execution_id}")
        if response.status_code == 200:
            record: dict[str, Any] = response.json()
            if record["outcome"] != "running" and record.get("finished_at"):
                return record
        time.sleep(0.05)
    raise RuntimeError(f"execution {execution_id} did not end in {timeout} s")


def _add(http: httpx.Client, task_id: str, code: str) -> None:
    body = {"task_id": task_id, "name": task_id, "description": "",
            "priority": "CRITICAL", "code": code}  # fmt: skip
    http.post("/daemon/tasks/add", json=body).raise_for_status()


def _running_id(http: httpx.Client, task_id: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = http.get(f"/daemon/tasks/{task_id}").json().get("running_execution_id")
        if running:
            return str(running)
        time.sleep(0.02)
    raise RuntimeError(f"{task_id} did not start in {timeout} s")


def _small(
    browser: Browser, server: Server, repeats: int, window: float, history_at: float | None
) -> list[Figure]:
    with server.client() as http:
        _add(http, PULSE, PULSE_CODE)  # a CRITICAL task added runs at once: let it end
        _finished(http, _running_id(http, PULSE), 30)
        started, finished, missed = _row_latencies(browser, server, http, repeats)
        if history_at is not None and (wait := history_at - time.monotonic()) > 0:
            log(f"L: {wait:.0f} s more until the daemon holds 10 minutes of CPU history")
            time.sleep(wait)
        idle_both, idle_none, idle_tasks, history = _idle(
            browser, server, repeats, window, alone=True
        )
        tail, tail_notes = _tail(browser, server, http, repeats)
        stream, stream_note = _stream(browser, server, http, repeats)
    every_start = [x for group in started for x in group]
    every_finish = [x for group in finished for x in group]
    row_note = (
        f"{len(every_start)} runs of a CRITICAL task (sleeps 0.30-0.55 s) via POST .../run with the"
        f" tasks page open; Date.now() in a MutationObserver on the page minus the record's"
        f" time; all runs p50 {percentile(every_start, 50):.0f} ms, p90"
        f" {percentile(every_start, 90):.0f} ms, max {max(every_start, default=math.nan):.0f}"
        " ms"
    )
    if missed:
        row_note += f"; {missed} runs never showed 'running' on the page (not counted)"
    return [
        Figure(
            "L3",
            "Run seen on the tasks page: started_at to row 'running', p50",
            "ms",
            [percentile(g, 50) for g in started],
            ("<", 200.0),
            note=row_note,
        ),
        Figure(
            "L4",
            "Run seen on the tasks page: finished_at to 'succeeded', p50",
            "ms",
            [percentile(g, 50) for g in finished],
            ("<", 200.0),
            note=f"all runs p50 {percentile(every_finish, 50):.0f} ms, p90"
            f" {percentile(every_finish, 90):.0f} ms, max"
            f" {max(every_finish, default=math.nan):.0f} ms",
        ),
        Figure(
            "L5",
            "Run page of a 10 MB log: navigation to last line shown",
            "ms",
            tail,
            ("<", 1000.0),
            note=tail_notes,
        ),
        Figure(
            "L6",
            "Run page while a run prints flat out: worst setTimeout(0)",
            "ms",
            stream,
            note=stream_note,
        ),
        Figure(
            "L7",
            f"Daemon CPU, {SMALL} tasks, tasks + machine pages open, idle",
            "%",
            idle_both,
            ("<", 1.0),
            note=f"the daemon process only (psutil user + system), {len(idle_both)} windows"
            f" of {window:g} s after {SETTLE_SECONDS:g} s to settle, alternating with L8"
            f" and L7-tasks; two tabs of one headless Chromium; {_history_words(history)}",
        ),
        Figure("L7-tasks", f"Daemon CPU, {SMALL} tasks, tasks page open, idle", "%", idle_tasks),
        Figure("L8", f"Daemon CPU, {SMALL} tasks, no page open, idle", "%", idle_none),
    ]


def _row_latencies(
    browser: Browser, server: Server, http: httpx.Client, repeats: int
) -> tuple[list[list[float]], list[list[float]], int]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started: list[list[float]] = []
    finished: list[list[float]] = []
    missed = 0
    per_group = 20
    for rep in range(repeats):
        context = _context(browser, server)
        group_start: list[float] = []
        group_finish: list[float] = []
        try:
            page = context.new_page()
            page.goto("/#/tasks")
            page.locator(f'tr[data-task="{PULSE}"]').wait_for()
            page.locator("#live", has_text="live").wait_for()
            page.evaluate(ROW_WATCH, PULSE)
            for _ in range(per_group):
                time.sleep(0.3)  # the page's last refetch is over 250 ms ago
                page.evaluate(
                    "Object.assign(window.__pulse, {armed: true, running: null, done: null})"
                )
                answer = http.post(f"/daemon/tasks/{PULSE}/run")
                answer.raise_for_status()
                record = _finished(http, answer.json()["execution_id"], 30)
                if record["outcome"] != "succeeded":
                    raise RuntimeError(f"the pulse run ended {record['outcome']}")
                with contextlib.suppress(PlaywrightTimeout):  # 'running' never shown
                    page.wait_for_function("() => window.__pulse.done !== null", timeout=5_000)
                seen: dict[str, Any] = page.evaluate("window.__pulse.armed = false; window.__pulse")
                if seen["running"] is None or seen["done"] is None:
                    missed += 1
                    continue
                group_start.append(seen["running"] - iso_epoch(record["started_at"]) * 1000)
                group_finish.append(seen["done"] - iso_epoch(record["finished_at"]) * 1000)
        finally:
            context.close()
        started.append(group_start)
        finished.append(group_finish)
        log(
            f"L3/L4 run {rep + 1}: started p50 {percentile(group_start, 50):.0f} ms"
            f" (max {max(group_start, default=math.nan):.0f}), finished p50"
            f" {percentile(group_finish, 50):.0f} ms (max {max(group_finish):.0f})"
        )
    return started, finished, missed


def _tail(
    browser: Browser, server: Server, http: httpx.Client, repeats: int
) -> tuple[list[float], str]:
    """A finished run whose log is 10 MB: its run page, cold cache, as a new document."""
    _add(http, "flood", FLOOD)
    execution_id = _running_id(http, "flood")
    record = _finished(http, execution_id, 120)
    size = len(http.get(f"/daemon/executions/{execution_id}/log").content)
    script = TAIL_SCRIPT % json.dumps(LAST_LINE)
    cold: list[float] = []
    cold_dom: list[float] = []
    warm: list[float] = []
    in_app: list[float] = []
    bottom: list[bool] = []
    for rep in range(repeats):
        context = _context(browser, server, script)
        try:
            page = context.new_page()
            marks = _timed(page, f"/#/run/{execution_id}")
            cold.append(marks["frame"])
            cold_dom.append(marks["dom"])
            bottom.append(bool(page.evaluate("window.__bench.bottom")))
            page.goto("about:blank")
            warm.append(_timed(page, f"/#/run/{execution_id}")["frame"])
            page.goto("/#/tasks")
            page.locator("table.tasks tbody tr").first.wait_for()
            in_app.append(page.evaluate(HASH_TO_RUN, [f"#/run/{execution_id}", LAST_LINE])[1])
        finally:
            context.close()
        log(
            f"L5 run {rep + 1}: cold {cold[-1]:.0f} ms (DOM {cold_dom[-1]:.0f}), warm"
            f" {warm[-1]:.0f} ms, in-app link {in_app[-1]:.0f} ms"
        )
    note = (
        f"a finished run of {LINES:,} lines of 100 bytes (log {size / 1e6:.1f} MB,"
        f" {record['outcome']}); a new context each run (cache cold), the run page as a new"
        f" document; performance.now() at the first frame after the output element ends"
        f" with the last line (in the DOM at {statistics.median(cold_dom):.0f} ms); cache"
        f" warm {statistics.median(warm):.0f} ms; from the tasks page by the hash (a click on"
        f" a link) {statistics.median(in_app):.0f} ms"
    )
    if not all(bottom):
        note += "; the output was NOT scrolled to its end in some runs"
    return cold, note


def _stream(
    browser: Browser, server: Server, http: httpx.Client, repeats: int
) -> tuple[list[float], str]:
    """The run page of a run printing flat out: setTimeout(0) probes and long tasks."""
    worst: list[float] = []
    p99: list[float] = []
    longest: list[float] = []
    long_count: list[int] = []
    fps: list[float] = []
    updates: list[float] = []
    for rep in range(repeats):
        if rep == 0:
            _add(http, "stream", STREAM)
            execution_id = _running_id(http, "stream")
        else:
            answer = http.post("/daemon/tasks/stream/run")
            answer.raise_for_status()
            execution_id = answer.json()["execution_id"]
        context = _context(browser, server)
        try:
            page = context.new_page()
            page.goto(f"/#/run/{execution_id}")
            page.locator("pre.log").filter(has_text="0" * 90).wait_for()
            page.evaluate(PROBE)
            page.wait_for_timeout(PROBE_SECONDS * 1000)
            probe: dict[str, Any] = page.evaluate("window.__probe.stop = true; window.__probe")
            still = http.get(f"/daemon/executions/{execution_id}").json()["outcome"]
        finally:
            context.close()
        if still != "running":
            log(f"L6 run {rep + 1}: the run ended ({still}) before the probe did")
        delays = [float(d) for d in probe["delays"]]
        worst.append(max(delays))
        p99.append(percentile(delays, 99))
        longest.append(max([float(x) for x in probe["longtasks"]], default=0.0))
        long_count.append(len(probe["longtasks"]))
        fps.append(probe["frames"] / PROBE_SECONDS)
        updates.append(probe["updates"] / PROBE_SECONDS)
        log(
            f"L6 run {rep + 1}: setTimeout(0) worst {worst[-1]:.0f} ms, p99 {p99[-1]:.0f} ms"
            f" ({len(delays)} probes); {long_count[-1]} long tasks, longest"
            f" {longest[-1]:.0f} ms; {fps[-1]:.0f} frames/s, {updates[-1]:.1f} output"
            " updates/s"
        )
        _finished(http, execution_id, 60)
    note = (
        f"a task printing 100-byte lines flat out for {STREAM_SECONDS:g} s, its run page"
        f" open; over {PROBE_SECONDS:g} s: a setTimeout(0) every 20 ms, p99 delay"
        f" {statistics.median(p99):.1f} ms; long tasks (> 50 ms) {statistics.median(long_count):g}"
        f" a run, the longest {statistics.median(longest):.0f} ms; {statistics.median(fps):.0f}"
        f" frames/s; the output element updated {statistics.median(updates):.1f} times/s"
    )
    return worst, note
