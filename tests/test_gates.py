"""Gates: hysteresis in time, the sleep window, and the priority rules."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from omnimind_trio.models import Priority
from omnimind_trio.scheduling import Gate, GateSet, SleepWindow


def epoch(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_gate_opens_only_after_the_condition_held_for_the_open_dwell() -> None:
    gate = Gate(open_seconds=5, close_seconds=3)
    assert not gate.update(True, 0)
    assert not gate.update(True, 4.9)
    assert gate.remaining(4.9) == pytest.approx(0.1)
    assert gate.update(True, 5.0)
    assert gate.is_open


def test_gate_closes_only_after_the_opposite_held_for_the_close_dwell() -> None:
    gate = Gate(open_seconds=0, close_seconds=3, is_open=True)
    assert not gate.update(False, 10)
    assert not gate.update(False, 12)
    assert gate.update(False, 13)
    assert not gate.is_open


def test_a_load_hovering_at_the_threshold_does_not_make_the_gate_flap() -> None:
    gate = Gate(open_seconds=5, close_seconds=3)
    flips = sum(gate.update(second % 2 == 0, float(second)) for second in range(120))
    assert flips == 0
    assert not gate.is_open


def test_zero_dwell_follows_the_condition_at_once() -> None:
    gate = Gate(open_seconds=0, close_seconds=0)
    assert gate.update(True, 0) and gate.is_open
    assert gate.update(False, 0) and not gate.is_open


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        ("00:00-06:00", "2026-01-01T00:00:00", True),
        ("00:00-06:00", "2026-01-01T05:59:59", True),
        ("00:00-06:00", "2026-01-01T06:00:00", False),
        ("00:00-06:00", "2026-01-01T23:59:59", False),
        ("22:30-06:00", "2026-01-01T23:00:00", True),
        ("22:30-06:00", "2026-01-01T03:00:00", True),
        ("22:30-06:00", "2026-01-01T12:00:00", False),
        ("22:30-06:00", "2026-01-01T22:29:00", False),
    ],
)
def test_sleep_window_contains_wraps_midnight(window: str, moment: str, inside: bool) -> None:
    assert SleepWindow.parse(window, "UTC").contains(epoch(moment)) is inside


def test_sleep_window_is_judged_in_its_time_zone() -> None:
    window = SleepWindow.parse("00:00-06:00", "America/New_York")
    assert window.contains(epoch("2026-07-01T05:00:00"))  # 01:00 in New York (EDT)
    assert not window.contains(epoch("2026-07-01T11:00:00"))  # 07:00 in New York


@pytest.mark.parametrize("text", ["", "0-6", "25:00-06:00", "00:00-06:61", "00:00"])
def test_sleep_window_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="sleep window"):
        SleepWindow.parse(text)


def make_gates() -> GateSet:
    return GateSet.create(
        idle_cpu_percent=20,
        low_activity_cpu_percent=50,
        window=SleepWindow.parse("00:00-06:00", "UTC"),
        open_seconds=0,
        close_seconds=0,
    )


def test_priority_rules() -> None:
    gates = make_gates()
    day = epoch("2026-01-01T12:00:00")
    night = epoch("2026-01-01T01:00:00")

    gates.update(10, 0, day)  # idle
    assert gates.open_priorities() == {Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM}

    gates.update(35, 1, day)  # low activity, not idle
    assert gates.open_priorities() == {Priority.CRITICAL, Priority.MEDIUM}
    assert "idle" in (gates.closed_reason(Priority.HIGH) or "")

    gates.update(90, 2, day)  # busy
    assert gates.open_priorities() == {Priority.CRITICAL}
    assert "sleep window (00:00-06:00)" in (gates.closed_reason(Priority.LOW) or "")

    gates.update(90, 3, night)  # busy, but night: LOW and MEDIUM may run
    assert gates.open_priorities() == {Priority.CRITICAL, Priority.MEDIUM, Priority.LOW}


def test_update_reports_only_real_changes() -> None:
    gates = make_gates()
    day = epoch("2026-01-01T12:00:00")
    assert gates.update(10, 0, day)
    assert not gates.update(12, 1, day)
    assert gates.update(60, 2, day)


def test_weekdays_belong_to_the_night_they_start() -> None:
    # 2026-01-02 is a Friday.
    window = SleepWindow.parse("22:00-06:00", "UTC", "mon-fri")
    assert window.contains(epoch("2026-01-02T23:00:00"))  # Friday night
    assert window.contains(epoch("2026-01-03T05:00:00"))  # ... until Saturday 06:00
    assert not window.contains(epoch("2026-01-03T23:00:00"))  # Saturday night: off
    assert not window.contains(epoch("2026-01-05T03:00:00"))  # Monday 03:00 is Sunday's night
    assert window.contains(epoch("2026-01-05T23:00:00"))  # Monday night


@pytest.mark.parametrize(
    ("text", "days"),
    [("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("fri-mon", {4, 5, 6, 0}), ("wed", {2})],
)
def test_parse_weekdays(text: str, days: set[int]) -> None:
    assert SleepWindow.parse("00:00-06:00", None, text).weekdays == days


def test_bad_weekdays_are_refused() -> None:
    with pytest.raises(ValueError, match="sleep weekdays must look like"):
        SleepWindow.parse("00:00-06:00", None, "weekends")


BERLIN = "Europe/Berlin"


def test_dst_nights_keep_local_times() -> None:
    # 2026-03-29: 02:00 -> 03:00 in Berlin; the window 01:00-04:00 lasts two hours that night.
    window = SleepWindow.parse("01:00-04:00", BERLIN)
    assert window.contains(epoch("2026-03-29T01:30:00", BERLIN))
    assert window.contains(epoch("2026-03-29T03:30:00", BERLIN))
    assert not window.contains(epoch("2026-03-29T04:00:00", BERLIN))
    start, end = epoch("2026-03-29T01:00:00", BERLIN), epoch("2026-03-29T04:00:00", BERLIN)
    assert end - start == 2 * 3600
    # 2026-10-25: 03:00 -> 02:00; the same window lasts four hours.
    start, end = epoch("2026-10-25T01:00:00", BERLIN), epoch("2026-10-25T04:00:00", BERLIN)
    assert end - start == 4 * 3600
    inside = [window.contains(start + minutes * 60) for minutes in range(0, 4 * 60, 10)]
    assert all(inside)


def test_next_start() -> None:
    window = SleepWindow.parse("00:00-06:00", "UTC", "sat,sun")
    friday_noon = epoch("2026-01-02T12:00:00")
    assert window.next_start(friday_noon) == epoch("2026-01-03T00:00:00")
    inside = epoch("2026-01-03T02:00:00")
    assert window.next_start(inside) == inside
    # A start that does not exist (DST gap in Berlin at 02:00-03:00) falls forward.
    gap = SleepWindow.parse("02:30-05:00", BERLIN)
    assert gap.next_start(epoch("2026-03-28T12:00:00", BERLIN)) == epoch(
        "2026-03-29T03:30:00", BERLIN
    )
