"""The embedding example in contrib/ runs as documented in docs/embedding.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "contrib" / "embedding" / "embedded_daemon.py"


@pytest.mark.slow
def test_the_embedding_example_runs_tasks_and_serves_the_api(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "remember: succeeded {'runs': 1}"
    assert lines[1].startswith("count_files: succeeded {'status': 'done', 'files': ")
    assert lines[2] == "count_files: 1 run(s), status done"
    assert lines[3] == "over HTTP: state idle, 3 tasks"
    assert (tmp_path / "omnimind.db").exists()
