"""On AC or on battery, from fake ``/sys/class/power_supply`` folders, and from psutil
when there is no such folder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from omnimind_trio.models import Reading
from omnimind_trio.sensors import from_psutil, read_power


def supplies(root: Path, **entries: dict[str, str]) -> Path:
    """A power-supply folder: one folder per supply, one file per attribute."""
    root.mkdir(exist_ok=True)
    for name, attributes in entries.items():
        (root / name).mkdir()
        for attribute, value in attributes.items():
            (root / name / attribute).write_text(f"{value}\n")
    return root


LAPTOP_BATTERY = {"type": "Battery", "status": "Discharging", "capacity": "64", "scope": "System"}
MOUSE = {"type": "Battery", "status": "Discharging", "scope": "Device"}


def test_a_laptop_plugged_in_and_unplugged(tmp_path: Path) -> None:
    root = supplies(tmp_path, AC={"type": "Mains", "online": "1"}, BAT0=LAPTOP_BATTERY)
    assert read_power(root) == Reading(True, "sysfs", "AC (Mains) is online")
    (root / "AC" / "online").write_text("0\n")
    assert read_power(root) == Reading(False, "sysfs", "no external supply is online (AC (Mains))")


def test_a_desktop_without_battery_is_on_ac(tmp_path: Path) -> None:
    empty = supplies(tmp_path / "empty")
    assert read_power(empty) == Reading(
        True, "sysfs", f"no power supply in {empty}: a machine with no battery is on AC"
    )
    # A desktop's USB-C ports with nothing plugged in, and a wireless mouse's battery.
    ports = supplies(
        tmp_path / "ports",
        **{"ucsi-source-psy-USBC000:001": {"type": "USB", "online": "0"}},
        hidpp_battery_0=MOUSE,
    )
    assert read_power(ports) == Reading(
        True, "sysfs", f"no battery in {ports}: a machine with no battery is on AC"
    )


def test_a_peripherals_battery_is_ignored(tmp_path: Path) -> None:
    root = supplies(tmp_path, AC={"type": "Mains", "online": "1"}, hidpp_battery_0=MOUSE)
    assert read_power(root).value is True
    root = supplies(
        tmp_path / "laptop", ADP1={"type": "Mains", "online": "1"}, BAT1=LAPTOP_BATTERY, m=MOUSE
    )
    assert read_power(root).value is True


def test_a_laptop_charged_over_usb_c(tmp_path: Path) -> None:
    root = supplies(
        tmp_path,
        ADP1={"type": "Mains", "online": "0"},
        **{"ucsi-source-psy-USBC000:001": {"type": "USB", "online": "2"}},  # 2: programmable
        BAT0={**LAPTOP_BATTERY, "status": "Charging"},
    )
    assert read_power(root) == Reading(True, "sysfs", "ucsi-source-psy-USBC000:001 (USB) is online")


@pytest.mark.parametrize(
    ("status", "value"),
    [("Discharging", False), ("Charging", True), ("Full", True), ("Not charging", True)],
)
def test_with_batteries_only_their_status_tells(tmp_path: Path, status: str, value: bool) -> None:
    root = supplies(tmp_path, BAT0={**LAPTOP_BATTERY, "status": status})
    assert read_power(root).value is value


def test_a_battery_status_that_says_nothing_is_unknown(tmp_path: Path) -> None:
    root = supplies(tmp_path, BAT0={**LAPTOP_BATTERY, "status": "Unknown"})
    assert read_power(root) == Reading(
        None,
        "sysfs",
        "no external supply listed and the battery status says nothing (BAT0 Unknown)",
    )


NO_BATTERY = "psutil finds no battery: a machine with no battery is on AC"


@pytest.mark.parametrize(
    ("battery", "value", "detail"),
    [
        (None, True, NO_BATTERY),
        ((55.0, False), False, "on battery, battery at 55 %"),
        ((80.0, True), True, "plugged in, battery at 80 %"),
        # psutil says power_plugged None when the battery is full on some machines
        ((100.0, None), True, "plug state unknown, battery at 100 % (full): taken as on AC"),
        (
            (42.0, None),
            None,
            "psutil cannot tell whether a charger is plugged in (battery at 42 %)",
        ),
    ],
)
def test_without_the_folder_psutil_tells(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    battery: tuple[float, bool | None] | None,
    value: bool | None,
    detail: str,
) -> None:
    answer = None
    if battery is not None:
        percent, plugged = battery
        answer = SimpleNamespace(percent=percent, secsleft=-2, power_plugged=plugged)
    monkeypatch.setattr("psutil.sensors_battery", lambda: answer)
    missing = tmp_path / "missing"
    assert read_power(missing) == Reading(
        value, "psutil", f"{missing}: No such file or directory; {detail}"
    )


def test_psutil_that_cannot_read_batteries_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr("psutil.sensors_battery")
    assert from_psutil() == Reading(None, "psutil", "psutil cannot read batteries on this system")

    def broken() -> None:
        raise RuntimeError("no ACPI")

    monkeypatch.setattr("psutil.sensors_battery", broken, raising=False)
    assert from_psutil() == Reading(None, "psutil", "psutil failed to read the battery: no ACPI")


def test_an_unreadable_folder_falls_back_to_psutil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("psutil.sensors_battery", lambda: None)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert read_power(not_a_folder) == Reading(
        True,
        "psutil",
        f"{not_a_folder}: Not a directory; {NO_BATTERY}",
    )
