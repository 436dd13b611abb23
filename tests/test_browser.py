"""A web app on another origin drives a real daemon from Chromium (Playwright), as the API
document's ``fetch`` example does: status, tasks, add, stop and start from a page on an
allowed origin succeed; the same page on an origin that is not allowed gets nothing.

One browser launch (Debian's ``chromium``; ``playwright install`` downloads nothing here)
and one ``omnimind serve``. Skipped when Playwright or Chromium is missing; ``.ci/run``
installs Chromium so CI runs it.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .test_process import PASS, USER, Served, spawn

__all__ = ["spawn"]  # the fixture, re-used

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (the dev extra has it)"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE = b"""<!doctype html>
<title>omnimind web app</title>
<script>
// The API document's fetch example: the page sends its own Authorization header.
async function call(baseUrl, auth, method, path, body) {
  const headers = {'Authorization': `Basic ${auth}`};
  if (body !== null) headers['Content-Type'] = 'application/json';
  try {
    const response = await fetch(`${baseUrl}${path}`, {
      method, headers, body: body === null ? undefined : JSON.stringify(body),
    });
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {error: String(error)};
  }
}
</script>
"""
TASK = {
    "task_id": "from_the_browser",
    "name": "From the browser",
    "description": "Added by a page on another origin",
    "priority": "LOW",
    "code": "def execute():\n    return {'status': 'done'}\n",
}
STEPS: list[tuple[str, str, Any]] = [
    ("GET", "/daemon/status", None),
    ("POST", "/daemon/tasks/add", TASK),
    ("GET", "/daemon/tasks", None),
    ("POST", "/daemon/stop", None),
    ("POST", "/daemon/start", None),
]


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site() -> Iterator[str]:
    """The web app's own dev server: its origin, ``http://127.0.0.1:PORT``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def drive(page: Any, daemon_url: str) -> list[dict[str, Any]]:
    """Run :data:`STEPS` from ``page`` against the daemon; each step's status and body, or
    the error ``fetch`` raised."""
    auth = base64.b64encode(f"{USER}:{PASS}".encode()).decode()
    results = []
    for method, path, body in STEPS:
        results.append(
            page.evaluate(
                "(args) => call(...args)",
                [daemon_url, auth, method, path, body],
            )
        )
    return results


def test_a_page_on_an_allowed_origin_drives_the_daemon_and_another_gets_nothing(
    spawn: Callable[..., Served],
) -> None:
    with static_site() as allowed, static_site() as other:
        served = spawn(env={"OMNIMIND_ALLOWED_ORIGINS": allowed})
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.goto(f"{allowed}/")
                good = drive(page, served.url)
                page.goto(f"{other}/")
                bad = drive(page, served.url)
            finally:
                browser.close()

    status, added, tasks, stopped, started = good
    assert [step.get("status") for step in good] == [200] * 5, json.dumps(good, indent=1)
    assert status["body"]["running"] is True
    assert added["body"]["task_id"] == "from_the_browser"
    assert "from_the_browser" in {task["task_id"] for task in tasks["body"]["tasks"]}
    assert stopped["body"] and started["body"]
    # The browser refuses the other origin's calls before any answer reaches the page.
    assert all("Failed to fetch" in step.get("error", "") for step in bad), bad
    with served.client() as client:
        assert client.get("/daemon/status").json()["running"] is True
        ids = {task["task_id"] for task in client.get("/daemon/tasks").json()["tasks"]}
    assert ids == {"database_optimization", "from_the_browser"}
