"""The command line for schedules: ``omnimind next``, and ``add``/``edit`` with ``--cron``,
``--repeat-minutes``, ``--after`` against a real daemon."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omnimind_trio.cli._client import OmniMindClient

from .test_cli import QUICK, api, at, block, clean_env, cli, ok, served, write
from .test_process import Served

__all__ = ["api", "clean_env", "served"]  # the fixtures, re-used


def test_next_previews_a_cron_expression_in_a_zone(capsys: pytest.CaptureFixture[str]) -> None:
    ran = ok(capsys, "next", "*/30 1 * * *", "--timezone", "America/New_York", "-n", "3")
    lines = dict(line.strip().split(": ", 1) for line in ran.out.splitlines())
    assert lines["Original form"] == "*/30 1 * * *"
    assert lines["In words"] == "Every 30th minute from 01:00 through 01:59"
    assert lines["Time zone"] == "America/New_York"
    # 01:00 and 01:30 New York time, whatever the hour the test runs at (EST or EDT)
    first, second = lines["Next elapse"], lines["Iter. #2"]
    assert re.search(r" 01:[03]0:00 E[SD]T$", first) and re.search(r" 01:[03]0:00 E[SD]T$", second)
    assert first[-12:-4] != second[-12:-4]
    assert lines["From now"].endswith(" left")

    as_json = ok(capsys, "--json", "next", "@weekly", "--timezone", "Asia/Tokyo", "-n", "2")
    data = as_json.json()
    assert data["normalized"] == "0 0 * * 0" and data["timezone"] == "Asia/Tokyo"
    # Sunday 00:00 in Tokyo is Saturday 15:00 UTC.
    assert [t[10:] for t in data["upcoming"]] == ["T15:00:00Z", "T15:00:00Z"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["61 * * * *"], "omnimind: '61 * * * *': Bad minute\n"),
        (["@daily", "--timezone", "Nowhere/City"], "unknown time zone 'Nowhere/City'"),
        (["@daily", "-n", "0"], "argument --iterations/-n: must be 1 to 1000, not 0"),
    ],
)
def test_next_refuses_what_is_not_valid_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ran = cli(capsys, "next", *args)
    assert ran.code == 2 and message in ran.err and ran.out == ""


@pytest.mark.slow
def test_add_and_edit_schedules_from_the_command_line(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path, api: OmniMindClient
) -> None:
    code = write(tmp_path / "task.py", QUICK)
    ok(capsys, *at(served, "add", code, "--id", "fetch", "--priority", "LOW"))
    ok(capsys, *at(served, "add", code, "--id", "clean", "--priority", "LOW"))
    ok(
        capsys,
        *at(served, "add", code, "--id", "nightly", "--priority", "LOW"),
        *("--cron", "30 2 * * 1-5", "--timezone", "Europe/Paris"),
    )
    ok(capsys, *at(served, "add", code, "--id", "report", "--after", "fetch,clean"))
    nightly = api.get_task("nightly")
    assert (nightly["cron"], nightly["timezone"]) == ("30 2 * * 1-5", "Europe/Paris")
    assert nightly["execution_count"] == 0 and len(nightly["upcoming"]) == 5
    assert api.get_task("report")["after"] == ["fetch", "clean"]
    shown = block(ok(capsys, *at(served, "show", "nightly")).out)
    assert shown["schedule"] == "At 02:30 on Monday through Friday (Europe/Paris)"
    times = shown["upcoming"].split(", ")  # in local time, like every other time shown
    assert len(times) == 5 and all(len(t) == len("2026-12-01 02:30:00") for t in times)

    # A schedule option replaces the schedule: the cron task becomes a 10-minute one.
    ok(capsys, *at(served, "edit", "nightly", "--repeat-minutes", "10"))
    edited = api.get_task("nightly")
    assert (edited["cron"], edited["repeat_minutes"]) == (None, 10)
    assert edited["timezone"] == "Europe/Paris"  # not a schedule of its own: kept

    both = cli(
        capsys, *at(served, "add", code, "--id", "x", "--cron", "@daily"), "--repeat-hours=2"
    )
    assert both.code == 1
    assert "cron and repeat_hours are mutually exclusive" in both.err

    refused = cli(capsys, *at(served, "rm", "fetch"))
    assert refused.code == 1 and "in the after list of report" in refused.err
