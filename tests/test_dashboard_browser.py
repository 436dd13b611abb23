"""The dashboard in a browser: Chromium (Playwright) against a real ``omnimind serve``,
logged in with the browser's own Basic credentials (``http_credentials``), as a user would.

Every page is watched: no console error, no uncaught exception, and no request to any host
but the daemon's. One browser for the module (Debian's ``chromium``, as in
``test_browser.py``), one daemon per test. Skipped without Playwright or Chromium.

Every test here needs the dashboard's backend (the ``execution_output`` events, the log
route, ``/daemon/dashboard/tasks`` and ``/daemon/machine``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import SLEEP_WINDOW
from .test_browser import CHROMIUM, CHROMIUM_ARGS, sync_api
from .test_process import PASS, USER, Served, spawn, wait_for

__all__ = ["spawn"]  # the fixture, re-used

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
expect = sync_api.expect

VIEWER_USER, VIEWER_PASS = "peek", "only-look-1234"
ACTIONS = ["Run now", "Pause", "Resume", "Cancel", "Delete", "Start", "Stop", "Add task"]
"""The actions' accessible names: buttons an admin gets and a viewer never sees."""
TICKER = (
    "import time\n"
    "def execute():\n"
    "    for i in range(300):\n"
    "        print(f'tick {i}', flush=True)\n"
    "        time.sleep(0.2)\n"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Session:
    """A page logged in to the dashboard, and what it did wrong."""

    page: Any
    served: Served
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def check(self, *expected: tuple[int, str]) -> None:
        """No console error or page error but the ``expected`` failed requests (status,
        path; Chromium logs each as "Failed to load resource: ... status of 400 (...)"),
        and no request to another host."""

        def allowed(error: str) -> bool:
            return any(
                f"status of {status} " in error and error.endswith(f" at {self.served.url}{path}")
                for status, path in expected
            )

        assert [error for error in self.errors if not allowed(error)] == []
        assert self.foreign == []


def open_dashboard(
    browser: Any, served: Served, credentials: tuple[str, str] = (USER, PASS), **context: Any
) -> Session:
    ctx = browser.new_context(
        http_credentials={"username": credentials[0], "password": credentials[1]},
        base_url=served.url,
        locale="en-US",
        **context,
    )
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    session = Session(page, served)
    origin = f"127.0.0.1:{served.port}/"

    def console(message: Any) -> None:
        if message.type == "error":
            session.errors.append(f"{message.text} at {message.location.get('url', '')}")

    def request(sent: Any) -> None:
        session.requests.append(sent.url)
        if not sent.url.startswith(f"http://{origin}"):
            session.foreign.append(sent.url)

    page.on("console", console)
    page.on("pageerror", lambda error: session.errors.append(f"page error: {error}"))
    page.on("request", request)
    page.on(
        "websocket",
        lambda ws: None if ws.url.startswith(f"ws://{origin}") else session.foreign.append(ws.url),
    )
    page.goto("/")
    expect(page.locator("#live")).to_have_text("live")
    return session


def add(served: Served, task_id: str, code: str, **extra: Any) -> None:
    body = {"task_id": task_id, "name": f"The {task_id}", "description": "", "code": code}
    body.setdefault("priority", "CRITICAL")
    response = served.client().post("/daemon/tasks/add", json={**body, **extra})
    assert response.status_code == 200, response.text


def region(page: Any, name: str) -> Any:
    return page.get_by_role("region", name=name)


def test_an_admin_adds_a_task_through_the_form_and_watches_it_succeed(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    session = open_dashboard(browser, served, viewport={"width": 1200, "height": 900})
    page = session.page
    expect(page.get_by_role("link", name="database_optimization")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    page.get_by_role("link", name="New task").click()
    page.get_by_label("task_id", exact=True).fill("from_the_form")
    page.get_by_label("name", exact=True).fill("From the form")
    page.get_by_label("description", exact=True).fill("added in the browser")
    page.get_by_label("priority", exact=True).select_option("CRITICAL")
    page.get_by_label("code", exact=True).fill(
        "def execute():\n    print('hi from the form')\n    return {'ok': True}\n"
    )
    page.get_by_label("repeat_hours", exact=True).fill("0")
    page.get_by_role("button", name="Add task").click()
    # The API's own message, next to its field, and the field marked invalid.
    field = page.locator(".field", has=page.get_by_label("repeat_hours", exact=True))
    expect(field.locator(".field-error")).to_have_text(
        "repeat_hours: Input should be greater than or equal to 1"
    )
    expect(page.get_by_label("repeat_hours", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("repeat_hours", exact=True)).to_be_focused()
    assert page.locator(".field-error:visible").count() == 1

    page.get_by_label("repeat_hours", exact=True).fill("")
    page.get_by_role("button", name="Add task").click()
    expect(page).to_have_url(re.compile(r"#/task/from_the_form$"))
    latest = region(page, "Latest run")
    expect(latest.get_by_text("succeeded", exact=True)).to_be_visible()
    expect(latest.locator("pre.log")).to_contain_text("hi from the form")
    expect(region(page, "Definition").locator("pre.code")).to_contain_text("hi from the form")
    expect(region(page, "Definition")).to_contain_text("on_busy")
    assert page.evaluate("window.notReloaded") is True  # all of it live, no reload

    # The keyboard reaches the actions, with a visible focus ring, and runs them.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Run now":
            break
    else:
        pytest.fail("Tab never reached the Run now button")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="will run now")).to_be_visible()
    expect(region(page, "Schedule")).to_contain_text("2 (2 succeeded, 0 failed)")

    # Edit: the API's error at its field, then the change applied.
    page.get_by_role("button", name="Edit").click()
    editing = page.get_by_role("region", name="Edit")
    editing.get_by_label("repeat_hours", exact=True).fill("often")
    editing.get_by_role("button", name="Save changes").click()
    expect(editing.locator(".field", has_text="repeat_hours").locator(".field-error")).to_have_text(
        "repeat_hours: Input should be a valid integer"
    )
    editing.get_by_label("repeat_hours", exact=True).fill("3")
    editing.get_by_role("button", name="Save changes").click()
    expect(region(page, "Schedule")).to_contain_text("every 3 hours")
    expect(page.get_by_role("region", name="Edit")).to_have_count(0)

    # The task list shows it with its last outcome and its runs.
    page.get_by_role("link", name="Tasks", exact=True).click()
    row = page.locator("tr", has=page.get_by_role("link", name="from_the_form"))
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("every 3 hours")
    expect(row.get_by_role("img", name=re.compile(r"^Last 2 runs: 2 succeeded"))).to_be_visible()

    # Delete, after the confirmation.
    page.get_by_role("link", name="from_the_form").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"#/tasks$"))
    expect(page.get_by_role("link", name="database_optimization")).to_be_visible()
    expect(page.get_by_role("link", name="from_the_form")).to_have_count(0)

    # The machine: stop, then start again.
    page.get_by_role("link", name="Machine").click()
    expect(page.get_by_role("button", name="Start")).to_be_disabled()
    page.get_by_role("button", name="Stop").click()
    expect(region(page, "Daemon")).to_contain_text("stopped")
    page.get_by_role("button", name="Start").click()
    expect(region(page, "Daemon")).to_contain_text("running")
    expect(page.get_by_role("img", name=re.compile("^CPU outside the daemon"))).to_be_visible()
    session.check((400, "/daemon/tasks/add"), (400, "/daemon/tasks/from_the_form"))


def test_a_running_tasks_output_is_followed_live_paused_resumed_and_cancelled(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    add(served, "ticker", TICKER)
    session = open_dashboard(browser, served)
    page = session.page
    page.goto("/#/task/ticker")
    log = region(page, "Latest run").locator("pre.log")
    expect(log).to_contain_text("tick 2")
    shown = page.evaluate("document.querySelector('pre.log').textContent")
    expect(log).to_contain_text("tick 6")  # more came, live: 0.2 s a line
    assert page.evaluate("document.querySelector('pre.log').textContent").startswith(shown)

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()

    # The run's own page follows it too, and links to the whole log.
    region(page, "Latest run").get_by_role("link", name=re.compile("^[0-9a-f]{32}$")).click()
    output = region(page, "Output").locator("pre.log")
    expect(output).to_contain_text("tick")
    before = output.text_content()
    expect(output).not_to_have_text(before or "")
    link = page.get_by_role("link", name="Full log (text)")
    assert re.fullmatch(r"/daemon/executions/[0-9a-f]{32}/log", link.get_attribute("href"))

    page.get_by_role("button", name="Cancel").click()
    expect(region(page, "Outcome").get_by_text("cancelled", exact=True)).to_be_visible()
    expect(region(page, "Outcome")).to_contain_text("cancelled by request")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    session.check()


def test_a_10_mb_log_is_shown_by_its_tail_and_the_page_stays_responsive(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    flood = (
        "import sys, time\n"
        "def execute():\n"
        "    line = 'x' * 99\n"
        "    for i in range(100_000):\n"  # 10.5 MB at once
        "        sys.stdout.write(f'{i:07d} {line}\\n')\n"
        "    sys.stdout.flush()\n"
        "    for i in range(600):\n"
        "        print(f'after {i}', flush=True)\n"
        "        time.sleep(0.05)\n"
    )
    add(served, "flood", flood)
    client = served.client()
    run = wait_for(
        lambda: client.get("/daemon/tasks/flood").json()["running_execution_id"], 10, "the run"
    )
    wait_for(lambda: "after 5" in client.get(f"/daemon/executions/{run}/log?tail=3").text, 10, "")
    session = open_dashboard(browser, served)
    page = session.page
    page.goto(f"/#/run/{run}")
    output = region(page, "Output").locator("pre.log")
    expect(output).to_contain_text("after")
    expect(region(page, "Output")).to_contain_text("Only the end of the output is shown")
    for _ in range(6):  # while it streams: every check answers at once
        started = time.perf_counter()
        lines, chars = page.evaluate(
            "(() => { const t = document.querySelector('pre.log').textContent;"
            " return [t.split('\\n').length, t.length]; })()"
        )
        assert time.perf_counter() - started < 0.5
        assert lines <= 2001 and chars <= 512 * 1024
        page.wait_for_timeout(250)
    assert "0000000 " not in (output.text_content() or "")  # the start is in the full log
    full = session.page.request.get(f"/daemon/executions/{run}/log")
    assert full.ok and len(full.body()) > 5_000_000
    session.check()


def test_a_viewer_sees_every_page_and_no_action(spawn: Callable[..., Served], browser: Any) -> None:
    served = spawn(env={"OMNIMIND_VIEWER_USER": VIEWER_USER, "OMNIMIND_VIEWER_PASS": VIEWER_PASS})
    add(served, "ticker", TICKER)
    client = served.client()
    run = wait_for(
        lambda: client.get("/daemon/tasks/ticker").json()["running_execution_id"], 10, "the run"
    )
    session = open_dashboard(browser, served, (VIEWER_USER, VIEWER_PASS))
    page = session.page
    expect(page.locator("#who")).to_contain_text("read only")
    expect(page.get_by_role("link", name="New task")).to_have_count(0)
    for hash, shown in (
        ("#/tasks", page.get_by_role("link", name="ticker")),
        ("#/task/ticker", region(page, "Latest run").locator("pre.log", has_text="tick")),
        (f"#/run/{run}", region(page, "Output").locator("pre.log", has_text="tick")),
        ("#/machine", region(page, "Gates").get_by_text("Sleep window")),
        ("#/add", page.get_by_text("This credential can only read")),
    ):
        page.goto(f"/{hash}")
        expect(shown.first).to_be_visible()
        for name in ACTIONS:
            assert page.get_by_role("button", name=name, exact=True).count() == 0, (hash, name)
        assert page.get_by_role("button", name="Edit").count() == 0, hash
    session.check()


SECRET_VALUE = "tok-5ecret-value-991"
NIGHTLY = "def execute():\n    return {'ok': True}\n"


def test_a_cron_task_with_env_secrets_and_notify_through_the_form_and_edited(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    session = open_dashboard(browser, served, viewport={"width": 1200, "height": 900})
    page = session.page
    page.get_by_role("link", name="New task").click()

    def label(name: str) -> Any:
        return page.get_by_label(name, exact=True)

    label("task_id").fill("nightly")
    label("name").fill("Nightly")
    label("priority").select_option("LOW")
    label("code").fill(NIGHTLY)
    label("cron").fill("30 2 * * *")
    label("repeat_hours").fill("3")
    page.get_by_role("button", name="Add task").click()
    # Two schedule fields: the API's message at the first it names.
    cron = page.locator(".field", has=label("cron"))
    expect(cron.locator(".field-error")).to_have_text(
        "cron and repeat_hours are mutually exclusive: give one (null clears the other in a PATCH)"
    )
    expect(label("cron")).to_have_attribute("aria-invalid", "true")
    expect(label("cron")).to_be_focused()
    assert page.locator(".field-error:visible").count() == 1

    label("repeat_hours").fill("")
    label("timezone").fill("Europe/Paris")
    label("env").fill("GREETING=hello\nPLACE=the world")
    label("secrets").fill(f"API_TOKEN={SECRET_VALUE}")
    expect(label("webhook")).to_be_hidden()  # notify is off (null) until ticked
    label("notify").check()
    expect(label("failure")).to_be_checked()  # the API's default: failure, recovery
    label("success").check()
    label("webhook").fill("not a url")
    page.get_by_role("button", name="Add task").click()
    expect(page.locator("div.field", has=label("webhook")).locator(".field-error")).to_have_text(
        "notify.webhook: 'not a url' is not an http:// or https:// URL"
    )
    expect(label("webhook")).to_be_focused()
    label("webhook").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Add task").click()

    expect(page).to_have_url(re.compile(r"#/task/nightly$"))
    schedule = region(page, "Schedule")
    expect(schedule).to_contain_text("At 02:30 every day (Europe/Paris)")
    upcoming = schedule.locator("ul.upcoming li time")
    expect(upcoming).to_have_count(5)  # a cron task waits for its first due time
    due = [time.get_attribute("datetime") for time in upcoming.all()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT0[01]:30:00Z", d or "") for d in due), due
    assert due == sorted(due) and len(set(due)) == 5
    expect(upcoming.first).to_contain_text(re.compile(r"\(in [^)]+\)"))
    definition = region(page, "Definition")
    expect(definition).to_contain_text("GREETING = hello")
    expect(definition).to_contain_text("PLACE = the world")
    expect(definition).to_contain_text("on = failure, recovery, success")
    expect(definition).to_contain_text("webhook = http://127.0.0.1:9/hook")
    expect(definition).to_contain_text("desktop = false")
    expect(definition).to_contain_text("API_TOKEN")
    expect(definition).to_contain_text("Values are write-only")
    assert SECRET_VALUE not in page.content()

    # Edit: the form shows the values (secrets by name only) and sends only what changed.
    patches: list[Any] = []
    page.on("request", lambda r: patches.append(r.post_data_json) if r.method == "PATCH" else None)
    page.get_by_role("button", name="Edit").click()
    editing = page.get_by_role("region", name="Edit")
    expect(editing.get_by_label("webhook", exact=True)).to_have_value("http://127.0.0.1:9/hook")
    expect(editing.get_by_label("secrets", exact=True)).to_have_value("")
    expect(editing).to_contain_text("Set now: API_TOKEN")
    assert SECRET_VALUE not in page.content()
    editing.get_by_label("env", exact=True).fill("GREETING=bonjour")
    editing.get_by_role("button", name="Save changes").click()
    expect(definition).to_contain_text("GREETING = bonjour")
    expect(definition).not_to_contain_text("PLACE")
    assert patches == [{"env": {"GREETING": "bonjour"}}]
    detail = served.client().get("/daemon/tasks/nightly").json()
    assert detail["secrets"] == ["API_TOKEN"]  # not sent: kept
    assert detail["notify"]["on"] == ["failure", "recovery", "success"]

    # The list shows the daemon's words for the schedule.
    page.get_by_role("link", name="Tasks", exact=True).click()
    row = page.locator("tr", has=page.get_by_role("link", name="nightly"))
    expect(row).to_contain_text("At 02:30 every day (Europe/Paris)")
    assert SECRET_VALUE not in page.content()
    session.check((400, "/daemon/tasks/add"))


def test_a_task_after_another_says_what_it_waits_for_with_links(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    add(served, "a", "def execute():\n    return 1\n", priority="LOW", cron="0 3 1 1 *")
    add(served, "b", "def execute():\n    print('after a')\n", after=["a"])
    session = open_dashboard(browser, served)
    page = session.page
    page.goto("/#/task/b")
    schedule = region(page, "Schedule")
    expect(schedule).to_contain_text("after a")
    expect(schedule).to_contain_text("waiting for a succeeded run of a (since its own last start)")
    runs_after = schedule.locator("dl > div", has=page.get_by_text("Runs after"))
    runs_after.get_by_role("link", name="a", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/task/a$"))
    followers = region(page, "Schedule").locator("dl > div", has=page.get_by_text("Followed by"))
    expect(followers.get_by_role("link", name="b", exact=True)).to_be_visible()

    page.get_by_role("button", name="Run now").click()
    expect(region(page, "Latest run").get_by_text("succeeded", exact=True)).to_be_visible()
    followers.get_by_role("link", name="b", exact=True).click()
    expect(region(page, "Latest run").get_by_text("succeeded", exact=True)).to_be_visible()
    history = region(page, "History")
    expect(history.locator("td[data-label=Trigger]")).to_have_text(["upstream"])
    expect(region(page, "Schedule")).to_contain_text("waiting for a succeeded run of a")
    session.check()


def test_a_task_page_follows_its_id_deleted_and_added_again(
    spawn: Callable[..., Served], browser: Any
) -> None:
    """The page of a task whose id is deleted, then added again: it says so, and shows the
    new task, whose history starts empty (the old runs are not its own)."""
    served = spawn()
    add(served, "report", "def execute():\n    return 1\n")
    session = open_dashboard(browser, served)
    page = session.page
    page.goto("/#/task/report")
    history = region(page, "History")
    expect(history.locator("td[data-label=Trigger]")).to_have_text(["schedule"])
    assert served.client().delete("/daemon/tasks/report").status_code == 200
    expect(page.locator(".status-line")).to_have_text("This task was deleted. Its history stays.")
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    add(served, "report", "def execute():\n    return 2\n", priority="LOW")
    expect(page.locator(".status-line")).to_have_text(
        "A new task was added under this id: its history starts empty."
    )
    expect(history).to_contain_text("It has not run yet.")
    expect(region(page, "Latest run")).to_contain_text("It has not run yet.")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    session.check()


WORDS = r"""
async (version) => {
  const form = await import(`/dashboard/${version}/lib/form.js`);
  const widgets = await import(`/dashboard/${version}/lib/widgets.js`);
  const format = await import(`/dashboard/${version}/lib/format.js`);
  const logview = await import(`/dashboard/${version}/lib/logview.js`);
  const names = ['task_id', 'name', 'description', 'priority', 'code', 'repeat_hours',
    'repeat_minutes', 'cron', 'timezone', 'after', 'timeout_seconds', 'max_retries', 'notify',
    'notify.on', 'notify.webhook', 'notify.desktop', 'env', 'secrets', 'python'];
  const mapping = (text) => {
    try {
      return widgets.parseMapping('env', text);
    } catch (error) {
      return error.detail;
    }
  };
  return {
    fields: [
      'repeat_hours: Input should be a valid integer',
      'Missing required field: code',
      'Invalid priority: high',
      'task_id may hold only letters, digits',
      "task_id 'add' is reserved",
      'name: String should have at least 1 character',
      'Syntax error in code at line 2: invalid syntax',
      "Code must define an 'execute()' function",
      'execute() must be callable without arguments',
      'code must be at most 262144 bytes',
      'Task already exists: hello',
      'Unknown field: colour',
      'timeout_seconds: Input should be a finite number',
      'cron and repeat_hours are mutually exclusive: give one (null clears the other in a PATCH)',
      'repeat_hours and repeat_minutes are mutually exclusive: give one',
      "cron: '61 * * * *': Bad minute",
      "after: unknown task 'x'",
      'after: a cycle: a -> b -> a',
      "notify.webhook: 'x' is not an http:// or https:// URL",
      "notify.on.0: Input should be 'failure', 'recovery' or 'success'",
      'notify: Input should be an object',
      'env: TOKEN is also in secrets: give it in one',
      "secrets: 'my var' is not a variable name",
      'python: /usr/bin/python2 is Python 2.7; 3.8+ is needed',
      'Request body must be a JSON object',
    ].map((detail) => form.fieldOf(detail, names)),
    mappings: ['A=1\nB= two=2\r\n\n', '', 'A=1\nnothing', '=x', 'A=1\nA=2'].map(mapping),
    relative: [4, 30, -90, 300, 7200, -86400 * 3].map(
      (s) => format.relative(new Date(Date.now() + s * 1000).toISOString())),
    duration: [null, 0.123, 4.5, 42, 125, 7384].map(format.duration),
    tail: logview.lastLines('a\nb\nc\n', 2),
    // Output events that came while the log loaded: the log was read after the first two.
    early: [
      logview.notYetIn('tick 4\ntick 5\n', [['tick 4\n'], ['tick 5\n'], ['tick 6\n']]),
      logview.notYetIn('tick 3\n', [['tick 4\n'], ['tick 5\n']]),
      logview.notYetIn('tick 5\n', []),
    ].map((chunks) => chunks.map(([text]) => text).join('')),
  };
}
"""


def test_the_pages_words_and_the_field_an_error_names(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn()
    session = open_dashboard(browser, served)
    version = session.page.evaluate(
        "document.querySelector('script[type=module]').src.split('/').at(-2)"
    )
    words = session.page.evaluate(WORDS, version)
    assert words["fields"] == [
        "repeat_hours", "code", "priority", "task_id", "task_id", "name", "code", "code",
        "code", "code", "task_id", None, "timeout_seconds", "cron", "repeat_hours", "cron",
        "after", "after", "notify.webhook", "notify.on", "notify", "env", "secrets", "python",
        None,
    ]  # fmt: skip
    assert words["mappings"] == [
        {"A": "1", "B": " two=2"},
        None,
        "env: line 2 is not NAME=VALUE",
        "env: line 1 is not NAME=VALUE",
        "env: A is given twice",
    ]
    assert words["relative"] == ["now", "in 30 s", "2 min ago", "in 5 min", "in 2 h", "3 d ago"]
    assert words["duration"] == ["—", "0.12 s", "4.5 s", "42 s", "2 min 5 s", "2 h 3 min"]
    assert words["tail"] == "b\nc\n"
    # A line written between the log's read and its answer's arrival is not lost.
    assert words["early"] == ["tick 6\n", "tick 4\ntick 5\n", ""]
    session.check()


def test_ten_thousand_tasks_page_on_the_server_and_bursts_are_coalesced(
    spawn: Callable[..., Served], browser: Any
) -> None:
    served = spawn(env={"OMNIMIND_SLEEP_WINDOW": SLEEP_WINDOW})  # LOW tasks wait, far away
    client = served.client()

    def batch(first: int, count: int) -> None:
        operations = [
            {
                "op": "add",
                "task": {
                    "task_id": f"task-{n:05d}", "name": f"Task {n}", "description": "",
                    "priority": "LOW", "code": "def execute():\n    return 1\n",
                    "repeat_hours": 24,
                },
            }
            for n in range(first, first + count)
        ]  # fmt: skip
        answer = client.post("/daemon/tasks/batch", json={"operations": operations}).json()
        assert answer["applied"] == count

    for first in range(0, 10_000, 1000):
        batch(first, 1000)
    session = open_dashboard(browser, served, viewport={"width": 1200, "height": 900})
    page = session.page
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(100)
    expect(page.locator(".pager")).to_contain_text("1\N{EN DASH}100 of 10,001")
    # A second visit, as every visit after the first: the files come from the cache.
    page.reload()
    expect(page.locator("#live")).to_have_text("live")
    expect(rows).to_have_count(100)
    shown = page.evaluate("performance.getEntriesByName('omnimind:tasks-shown')[0].startTime")
    print(f"10,000 tasks: the first 100 rows shown {shown:.0f} ms after navigation")
    assert shown < 2000  # the target is 500 ms (docs/dashboard.md has the measurements)

    page.get_by_role("button", name="Next page").click()
    expect(page.locator(".pager")).to_contain_text("101\N{EN DASH}200 of 10,001")
    expect(page).to_have_url(re.compile(r"#/tasks\?page=2$"))
    page.get_by_label("Search").fill("task-09999")
    expect(rows).to_have_count(1)
    expect(page.get_by_role("link", name="task-09999")).to_be_visible()
    page.get_by_label("Search").fill("")
    expect(rows).to_have_count(100)

    # 500 tasks added at once: 1,000 events (added, waiting), a few refetches.
    time.sleep(0.5)
    before = len([url for url in session.requests if "/daemon/dashboard/tasks" in url])
    began = time.monotonic()
    batch(10_000, 500)
    expect(page.locator(".pager")).to_contain_text("of 10,501")
    time.sleep(1.0)
    fetched = len([url for url in session.requests if "/daemon/dashboard/tasks" in url]) - before
    # At most one refetch per 150 ms (tasks.js REFETCH_MS) while the events come (a loaded
    # machine stretches the burst), never one per event.
    allowed = (time.monotonic() - began) / 0.15 + 2
    assert 1 <= fetched <= allowed, (fetched, allowed)
    session.check()
