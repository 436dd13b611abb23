"""A Trio program that embeds the omnimind daemon and serves its HTTP API.

It registers an in-process task (an async function of this program), adds a code task (run
in its own child process), runs both now and waits for their records, then serves the API
in its own nursery and asks it for the status, as any client would. Run it with::

    python contrib/embedding/embedded_daemon.py [HOME]

HOME (default: a temporary directory) holds the database and the credentials.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
import trio

from omnimind_trio import Priority, Settings, TaskSpec, open_daemon, serve_api

BACKUP_CODE = """
import os

def execute():
    names = sorted(os.listdir(os.environ["OMNIMIND_WORKSPACE"]))
    return {"status": "done", "files": len(names)}
"""


async def main(home: Path) -> None:
    settings = Settings(
        home=home, workspace=home, port=0, dashboard_user="me", dashboard_pass="secret-pass"
    )
    seen: list[str] = []

    async def remember() -> dict[str, int]:
        seen.append("ran")
        return {"runs": len(seen)}

    async with open_daemon(settings) as daemon, trio.open_nursery() as nursery:
        # Each task is run now right after it is registered, with no await in between: the
        # scheduler has not had a turn, so the run is this request's, even in the sleep
        # window where a LOW task would start by itself.
        requested: dict[str, str] = {}
        # An in-process task: this program's own coroutine, scheduled like any task.
        await daemon.register("remember", remember, name="Remember", priority=Priority.LOW)
        requested["remember"] = daemon.run_task_now("remember")  # skips the gates
        # A code task: Python source run in a fresh child process.
        await daemon.add_task(
            TaskSpec("count_files", "Count files", "", Priority.LOW, BACKUP_CODE)
        )
        requested["count_files"] = daemon.run_task_now("count_files")
        for task_id, execution_id in requested.items():
            with trio.fail_after(30):
                record = await daemon.wait_execution(execution_id)
            print(f"{task_id}: {record.outcome} {record.result}")

        task = daemon.get_task("count_files")
        print(f"count_files: {task.execution_count} run(s), status {task.status}")

        # The HTTP API, in this program's nursery; port 0 picks a free port.
        urls = await nursery.start(serve_api, daemon)
        async with httpx.AsyncClient(auth=("me", "secret-pass")) as client:
            status = (await client.get(f"{urls[0]}/daemon/status")).json()
        print(f"over HTTP: state {status['state']}, {status['tasks_registered']} tasks")
        nursery.cancel_scope.cancel()  # stop serving; open_daemon then stops the daemon


if __name__ == "__main__":
    if len(sys.argv) > 1:
        trio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as directory:
            trio.run(main, Path(directory))
