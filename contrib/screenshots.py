"""Screenshots of the dashboard for the README and docs/dashboard.md.

Starts ``omnimind serve`` in a temporary home, adds a few example tasks (some run, one keeps
printing, LOW ones wait for the night), and photographs every page with Chromium
(Playwright): tasks, a task, a run, the machine and the add form in the light theme at
1200 px, and the task list in the dark theme at 360 px. Run it from the repository root:

    .venv/bin/python contrib/screenshots.py [--out docs/screenshots] [--chromium PATH]

It needs the ``dev`` extra (Playwright) and a Chromium (Debian: ``apt-get install
chromium``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect, sync_playwright

USER, PASS = "omnimind", "screenshots-only"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
QUICK = (
    "import random, time\n"
    "def execute():\n"
    "    time.sleep(random.random() / 4)\n"
    "    return {'ok': True}\n"
)
FLAKY = (
    "import random\n"
    "def execute():\n"
    "    if random.random() < 0.3:\n"
    "        raise RuntimeError('the backup disk is not mounted')\n"
    "    print('copied 3 files')\n"
    "    return {'copied': 3}\n"
)
TICKER = (
    "import sys, time\n"
    "def execute():\n"
    "    for i in range(10_000):\n"
    "        print(f'indexing batch {i}: 250 documents', flush=True)\n"
    "        if i % 7 == 3:\n"
    "            print(f'warning: batch {i} had 2 unreadable files', file=sys.stderr, flush=True)\n"
    "        time.sleep(0.25)\n"
)
TASKS: list[dict[str, Any]] = [
    {"task_id": "disk_usage", "name": "Disk usage report", "priority": "CRITICAL",
     "code": QUICK, "repeat_minutes": 15, "description": "How full each disk is"},
    {"task_id": "notes_backup", "name": "Back up the notes", "priority": "CRITICAL",
     "code": FLAKY, "repeat_hours": 24, "description": "Copies ~/notes to the backup disk",
     "env": {"NOTES_DIR": "~/notes", "BACKUP_DIR": "/media/backup/notes"},
     "secrets": {"BACKUP_TOKEN": "screenshots-only"}, "notify": {"desktop": True}},
    {"task_id": "notes_offsite", "name": "Send the backup off-site", "priority": "CRITICAL",
     "code": QUICK, "after": ["notes_backup"], "description": "Uploads each new backup"},
    {"task_id": "search_index", "name": "Rebuild the search index", "priority": "CRITICAL",
     "code": TICKER, "description": "Re-indexes the documents folder", "timeout_seconds": 7200},
    {"task_id": "photo_dedup", "name": "Find duplicate photos", "priority": "HIGH",
     "code": QUICK, "repeat_hours": 168, "description": "Lists photos stored twice"},
    {"task_id": "old_downloads", "name": "Old downloads", "priority": "MEDIUM",
     "code": QUICK, "repeat_hours": 48, "description": "Downloads untouched for 90 days"},
    {"task_id": "video_transcode", "name": "Transcode videos", "priority": "LOW",
     "code": QUICK, "cron": "30 2 * * *", "description": "Shrinks new videos overnight",
     "on_busy": "cancel"},
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def daemon() -> Iterator[str]:
    """``omnimind serve`` in a temporary home; its URL."""
    with tempfile.TemporaryDirectory() as home:
        workspace = Path(home) / "workspace"
        workspace.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
        env.update(
            OMNIMIND_HOME=home,
            OMNIMIND_WORKSPACE=str(workspace),
            OMNIMIND_DASHBOARD_USER=USER,
            OMNIMIND_DASHBOARD_PASS=PASS,
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "omnimind_trio", "serve", "--port", str(port)],
            cwd=home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    httpx.get(f"{url}/daemon/status", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("omnimind serve did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)


def seed(url: str) -> dict[str, str]:
    """The example tasks, with some history; the ids to photograph."""
    with httpx.Client(base_url=url, auth=(USER, PASS), timeout=10) as client:
        for task in TASKS:
            client.post("/daemon/tasks/add", json=task).raise_for_status()
        for _ in range(14):  # history for the sparklines and the duration chart
            for task_id in ("disk_usage", "notes_backup"):
                with contextlib.suppress(httpx.HTTPError):
                    client.post(f"/daemon/tasks/{task_id}/run")
            time.sleep(0.35)
        time.sleep(2.5)  # the ticker prints a screenful
        ticker = client.get("/daemon/tasks/search_index").json()["running_execution_id"]
        return {"task": "notes_backup", "run": ticker}


def shoot(url: str, out: Path, chromium: str) -> None:
    ids = seed(url)
    light = {"viewport": {"width": 1200, "height": 860}, "color_scheme": "light"}
    narrow = {"viewport": {"width": 360, "height": 780}, "color_scheme": "dark"}
    shots = [
        ("tasks", "#/tasks", light, "table.tasks tbody tr"),
        ("task", f"#/task/{ids['task']}", light, "svg.chart"),
        ("run", f"#/run/{ids['run']}", light, "pre.log"),
        ("machine", "#/machine", light, "svg.chart"),
        ("add", "#/add", light, "form.task-form"),
        ("tasks-360-dark", "#/tasks", narrow, "table.tasks tbody tr"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for name, hash, options, ready in shots:
                context = browser.new_context(
                    http_credentials={"username": USER, "password": PASS},
                    locale="en-US",
                    **options,
                )
                page = context.new_page()
                page.goto(f"{url}/{hash}")
                page.locator(ready).first.wait_for()
                expect(page.locator("#live")).to_have_text("live")
                page.wait_for_timeout(600)  # live updates settle
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")
                context.close()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    options = parser.parse_args()
    with daemon() as url:
        shoot(url, options.out, options.chromium)


if __name__ == "__main__":
    main()
