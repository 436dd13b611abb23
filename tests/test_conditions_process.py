"""Task conditions for real: a daemon process, a CPU-bound task, the person's idle time from
the command source (``OMNIMIND_USER_IDLE_COMMAND``) and a fake power-supply folder. The task
is frozen (process state T) within a sample of the person's first input, and thawed when
they leave again; going on battery freezes an ``on_ac_power`` task the same way."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .test_idle import burn_code, detail, state
from .test_process import Served, add, read_marker, spawn, wait_for

__all__ = ["spawn"]

pytestmark = pytest.mark.slow

SAMPLE = 0.5  # OMNIMIND_CONDITION_SAMPLE_SECONDS's default
FREEZE_BOUND = 1.0
"""The issue's bound: frozen under 1 s after the source reports a fresh input."""


def write(path: Path, text: str) -> None:
    """Replace a file at once (a reader never sees it half written)."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)


def frozen_within(pid: int, bound: float) -> float:
    started = time.monotonic()
    wait_for(lambda: state(pid) == "T", bound + 5.0, "the task to be frozen", interval=0.005)
    return time.monotonic() - started


def thawed_within(pid: int, bound: float) -> float:
    started = time.monotonic()
    wait_for(lambda: state(pid) != "T", bound + 5.0, "the task to be thawed", interval=0.005)
    return time.monotonic() - started


def start_burner(served: Served, task_id: str, **fields: Any) -> int:
    marker = served.workspace / f"{task_id}.json"
    with served.client() as client:
        add(client, task_id, burn_code(str(marker)), priority="CRITICAL", **fields)
    pid = int(read_marker(marker, timeout=20)["pid"])
    assert state(pid) in "RS"
    return pid


def test_the_persons_first_input_freezes_a_user_away_task_within_a_sample(
    spawn: Callable[..., Served], tmp_path: Path
) -> None:
    idle_ms = tmp_path / "idle_ms"
    write(idle_ms, "600000\n")  # ten minutes without input: away
    served = spawn(
        env={
            "OMNIMIND_USER_IDLE_SOURCES": "command",
            "OMNIMIND_USER_IDLE_COMMAND": f"cat {idle_ms}",
        }
    )
    pid = start_burner(served, "render", conditions={"user_away": True}, timeout_seconds=120)
    try:
        seen = detail(served, "render")
        assert seen["status"] == "running"
        [status] = seen["conditions_status"]
        assert (status["name"], status["holds"], status["source"]) == ("user_away", True, "command")
        assert status["value"] == pytest.approx(600.0, abs=5)

        write(idle_ms, "40\n")  # a key press
        frozen_after = frozen_within(pid, FREEZE_BOUND)
        seen = detail(served, "render")
        assert seen["status"] == "frozen"
        waiting = seen["waiting"]
        assert (waiting["reason"], waiting["condition"], waiting["source"]) == (
            "frozen",
            "user_away",
            "command",
        )
        assert waiting["value"] < 5
        time.sleep(2 * SAMPLE)
        assert state(pid) == "T"  # stays frozen while the person works

        write(idle_ms, "200000\n")  # gone again for 200 s (away after 180 s)
        thawed_after = thawed_within(pid, FREEZE_BOUND)
        with served.client() as client:
            metrics = client.get("/metrics").text
            execution = client.get(
                f"/daemon/executions/{detail(served, 'render')['running_execution_id']}"
            ).json()
        assert "omnimind_user_idle_seconds 200" in metrics
        assert len(execution["pauses"]) == 1
        print(f"\nuser_away: frozen {frozen_after:.3f} s, thawed {thawed_after:.3f} s")
        assert frozen_after < FREEZE_BOUND
        assert thawed_after < FREEZE_BOUND
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def supply(root: Path, name: str, **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        write(folder / key, value + "\n")
    return folder


def test_unplugging_freezes_an_on_ac_power_task_and_plugging_in_thaws_it(
    spawn: Callable[..., Served], tmp_path: Path
) -> None:
    root = tmp_path / "power_supply"
    adapter = supply(root, "ADP1", type="Mains", online="1")
    battery = supply(root, "BAT0", type="Battery", status="Charging", capacity="80")
    close, open_ = 1.0, 2.0  # the dwell, shortened
    served = spawn(
        env={
            "OMNIMIND_POWER_SUPPLY_DIR": str(root),
            "OMNIMIND_GATE_CLOSE_SECONDS": str(close),
            "OMNIMIND_GATE_OPEN_SECONDS": str(open_),
        }
    )
    pid = start_burner(served, "encode", conditions={"on_ac_power": True}, timeout_seconds=120)
    try:
        [status] = detail(served, "encode")["conditions_status"]
        assert (status["value"], status["source"]) == (True, "sysfs")

        write(adapter / "online", "0\n")
        write(battery / "status", "Discharging\n")
        frozen_after = frozen_within(pid, close + FREEZE_BOUND)
        waiting = detail(served, "encode")["waiting"]
        assert (waiting["reason"], waiting["condition"], waiting["value"]) == (
            "frozen",
            "on_ac_power",
            False,
        )

        write(adapter / "online", "1\n")
        write(battery / "status", "Charging\n")
        thawed_after = thawed_within(pid, open_ + FREEZE_BOUND)
        print(f"\non_ac_power: frozen {frozen_after:.3f} s, thawed {thawed_after:.3f} s")
        assert close <= frozen_after < close + FREEZE_BOUND
        assert open_ <= thawed_after < open_ + FREEZE_BOUND
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
