"""The embedding example in contrib/ runs as documented in docs/embedding.md."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import far_window

EXAMPLE = Path(__file__).parents[1] / "contrib" / "embedding" / "embedded_daemon.py"


def window_around_now() -> str:
    """A sleep window (UTC) that holds now, and for the next hour at least."""
    start = datetime.now(UTC) - timedelta(hours=1)
    return f"{start:%H:00}-{start + timedelta(hours=3):%H:00}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("window", "state"),
    [(far_window(), "idle"), (window_around_now(), "sleeping")],
    ids=["by-day", "in-the-sleep-window"],
)
def test_the_embedding_example_runs_tasks_and_serves_the_api(
    tmp_path: Path, window: str, state: str
) -> None:
    """At any hour: in the sleep window its LOW tasks start by themselves, and the example
    waits for those runs."""
    env = {**os.environ, "OMNIMIND_SLEEP_WINDOW": window, "OMNIMIND_TIMEZONE": "UTC"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "remember: succeeded {'runs': 1}"
    assert lines[1].startswith("count_files: succeeded {'status': 'done', 'files': ")
    assert lines[2] == "count_files: 1 run(s), status done"
    assert lines[3] == f"over HTTP: state {state}, 3 tasks"
    assert (tmp_path / "omnimind.db").exists()
