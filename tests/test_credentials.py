"""Rotation of the credentials file, their reloading into a Keyring (on request and when the
file changes, on a fake clock), and the failed-authentication throttle's window."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio.cli import main
from omnimind_trio.credentials import (
    Credentials,
    CredentialsError,
    Keyring,
    Role,
    load_credentials,
    reload_credentials,
    rotate_credentials,
    watch_credentials_file,
)
from omnimind_trio.credentials import _file as credentials_file
from omnimind_trio.http._throttle import FailureThrottle, client_key

from .conftest import make_settings


def file_settings(tmp_path: Path, **overrides: Any) -> Any:
    return make_settings(tmp_path, dashboard_user=None, dashboard_pass=None, **overrides)


def stored(tmp_path: Path) -> dict[str, str]:
    return dict(json.loads((tmp_path / "config" / "dashboard_auth.json").read_text()))


def write(tmp_path: Path, data: dict[str, str], mode: int = 0o600) -> Path:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


# -- rotate --------------------------------------------------------------------------------------


def test_rotate_writes_new_passwords_0600_and_keeps_user_and_viewer(tmp_path: Path) -> None:
    write(tmp_path, {"user": "fab", "pass": "old", "viewer_user": "v", "viewer_pass": "vp"})
    new = rotate_credentials(file_settings(tmp_path))
    assert (new.user, new.viewer) == ("fab", ("v", "vp"))
    assert new.password != "old" and len(new.password) >= 32
    assert stored(tmp_path) == {
        "user": "fab", "pass": new.password, "viewer_user": "v", "viewer_pass": "vp"
    }  # fmt: skip
    path = tmp_path / "config" / "dashboard_auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert load_credentials(file_settings(tmp_path)).password == new.password


def test_a_generated_password_never_begins_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--password -xyz`` reads as an option: CI once drew such a password (1 in 64) and
    ``omnimind --password "$(cat file)" status`` failed with 'expected one argument'."""
    drawn = iter(["-dash1", "_fine1", "-dash2", "-dash3", "_fine2", "_fine3"])
    monkeypatch.setattr(credentials_file.secrets, "token_urlsafe", lambda n: next(drawn))
    new = rotate_credentials(file_settings(tmp_path), viewer="new")
    assert new.viewer is not None
    assert {new.password, new.viewer[1]} == {"_fine1", "_fine2"}


def test_rotate_can_renew_or_drop_the_viewer_and_creates_a_missing_file(tmp_path: Path) -> None:
    first = rotate_credentials(file_settings(tmp_path), viewer="new")
    assert first.user == "omnimind" and first.viewer is not None
    assert first.viewer[0] == "viewer"
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o700
    second = rotate_credentials(file_settings(tmp_path), viewer="new")
    assert second.viewer is not None and second.viewer[1] != first.viewer[1]
    third = rotate_credentials(file_settings(tmp_path), viewer="drop")
    assert third.viewer is None and set(stored(tmp_path)) == {"user", "pass"}


def test_rotate_is_atomic_and_private_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"user": "u", "pass": "old"})
    seen: list[tuple[int, dict[str, str]]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # At the rename: the new file is complete and private, the old one intact.
        seen.append((stat.S_IMODE(os.stat(src).st_mode), json.loads(Path(src).read_text())))
        assert json.loads(path.read_text())["pass"] == "old"
        real_replace(src, dst)

    monkeypatch.setattr(credentials_file.os, "replace", replace)
    new = rotate_credentials(file_settings(tmp_path))
    assert seen == [(0o600, {"user": "u", "pass": new.password})]


def test_rotate_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "secrets" / "omnimind.json"
    target.parent.mkdir()
    target.write_text('{"user": "u", "pass": "old"}')
    target.chmod(0o600)
    link = tmp_path / "config" / "dashboard_auth.json"
    link.parent.mkdir()
    link.symlink_to(target)
    new = rotate_credentials(file_settings(tmp_path))
    assert link.is_symlink() and json.loads(target.read_text())["pass"] == new.password


def test_rotate_refuses_environment_credentials_and_unsafe_files(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="come from the environment, which wins"):
        rotate_credentials(make_settings(tmp_path))
    path = write(tmp_path, {"user": "u", "pass": "old"}, mode=0o644)
    with pytest.raises(CredentialsError, match=r"permissions 0644 .* are too open"):
        rotate_credentials(file_settings(tmp_path))
    assert json.loads(path.read_text())["pass"] == "old"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_rotate_command_prints_the_new_credentials_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OMNIMIND_")]:
        monkeypatch.delenv(name)
    write(tmp_path, {"user": "fab", "pass": "old", "viewer_user": "v", "viewer_pass": "vp"})
    code, out, err = run_cli(capsys, "credentials", "rotate", "--home", str(tmp_path))
    new = stored(tmp_path)
    assert (code, err) == (0, "")
    assert out == (
        f"New dashboard credentials (stored in {tmp_path}/config/dashboard_auth.json, "
        "mode 0600):\n"
        f"  user: fab\n  pass: {new['pass']}\n"
        "  viewer user: v (password unchanged)\n"
        "A running daemon takes them up within 2 s (at once on SIGHUP); the old passwords "
        "no longer work.\n"
    )
    monkeypatch.setenv("OMNIMIND_HOME", str(tmp_path))
    code, out, _ = run_cli(capsys, "--json", "credentials", "rotate", "--viewer")
    new = stored(tmp_path)
    assert code == 0 and json.loads(out) == {
        "path": f"{tmp_path}/config/dashboard_auth.json",
        "user": "fab",
        "pass": new["pass"],
        "viewer_user": "v",
        "viewer_pass": new["viewer_pass"],
    }
    monkeypatch.setenv("OMNIMIND_DASHBOARD_USER", "env")
    monkeypatch.setenv("OMNIMIND_DASHBOARD_PASS", "env-pass")
    code, out, err = run_cli(capsys, "credentials", "rotate")
    assert (code, out) == (1, "")
    assert "come from the environment, which wins over" in err
    assert stored(tmp_path) == new


# -- the keyring and reloading -------------------------------------------------------------------


async def test_reload_puts_new_credentials_in_force_and_wakes_the_revoked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "omnimind_trio.credentials")
    settings = file_settings(tmp_path)
    keyring = Keyring(load_credentials(settings))
    old = keyring.current
    woken: list[Role] = []

    async def wait(role: Role) -> None:
        await keyring.wait_revoked(role, old.fingerprint(role))
        woken.append(role)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, Role.ADMIN)
        nursery.start_soon(wait, Role.VIEWER)
        await trio.testing.wait_all_tasks_blocked()
        assert not await reload_credentials(keyring, settings, "SIGHUP")  # unchanged
        rotate_credentials(settings)
        assert await reload_credentials(keyring, settings, "SIGHUP")
        await trio.testing.wait_all_tasks_blocked()
        assert woken == [Role.ADMIN]  # no viewer before or after: nothing to revoke
        nursery.cancel_scope.cancel()
    assert keyring.current.password == stored(tmp_path)["pass"] != old.password
    messages = [r.getMessage() for r in caplog.records]
    assert "SIGHUP: credentials unchanged" in messages
    assert "SIGHUP: new credentials in force (admin changed); the old ones no longer work" in (
        messages
    )


@pytest.mark.parametrize(
    ("damage", "logged"),
    [
        (lambda p: p.write_text("{not json"), "cannot read credentials file"),
        (lambda p: p.write_text('{"user": "x"}'), "must hold"),
        (lambda p: p.chmod(0o644), "permissions 0644 for"),
        (lambda p: p.unlink(), "is gone; keeping the current credentials"),
    ],
)
async def test_a_reload_that_finds_a_broken_file_keeps_the_old_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any, logged: str
) -> None:
    settings = file_settings(tmp_path)
    keyring = Keyring(load_credentials(settings))
    before = keyring.current
    damage(settings.auth_file)
    assert not await reload_credentials(keyring, settings, "SIGHUP")
    assert keyring.current is before
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged in error.getMessage()
    assert error.getMessage().startswith("SIGHUP: ")


async def test_environment_credentials_are_not_reloaded_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    keyring = Keyring(load_credentials(settings))
    write(tmp_path, {"user": "u", "pass": "from-file"})
    assert not await reload_credentials(keyring, settings, "SIGHUP")
    assert keyring.current.password == "secret-pass"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "come from OMNIMIND_DASHBOARD_USER and OMNIMIND_DASHBOARD_PASS, which win" in (
        warning.getMessage()
    )


async def test_the_file_watch_reloads_within_its_poll(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    settings = file_settings(tmp_path)
    keyring = Keyring(load_credentials(settings))
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_credentials_file, keyring, settings)
        start = trio.current_time()
        new = rotate_credentials(settings)
        await keyring.wait_revoked(Role.ADMIN, keyring.current.fingerprint(Role.ADMIN))
        assert trio.current_time() - start == 2.0  # the next look at the file
        assert keyring.current.password == new.password
        settings.auth_file.write_text("{broken")  # seen, logged, and the keys kept
        await trio.sleep(10)
        assert keyring.current.password == new.password
        nursery.cancel_scope.cancel()


async def test_the_file_watch_does_nothing_for_environment_credentials(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with trio.fail_after(5):  # returns at once
        await watch_credentials_file(Keyring(load_credentials(settings)), settings)


# -- the throttle's window -----------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_and_retry_after_counts_down() -> None:
    clock = FakeTime()
    throttle = FailureThrottle(3, clock=clock)
    assert [throttle.record("1.2.3.4") for _ in range(2)] == [False, False]
    assert throttle.retry_after("1.2.3.4") is None
    clock.now += 10
    assert throttle.record("1.2.3.4") is True  # the third within 60 s
    assert throttle.retry_after("1.2.3.4") == 50
    clock.now += 49.5
    assert throttle.retry_after("1.2.3.4") == 1  # rounded up: never "0"
    clock.now += 0.5
    assert throttle.retry_after("1.2.3.4") is None
    assert throttle.record("1.2.3.4") is False  # the last three: +0 (60 s old), +10, +60
    assert throttle.retry_after("1.2.3.4") is None
    assert throttle.record("1.2.3.4") is True  # +10, +60, +60: three within 60 s
    assert throttle.retry_after("1.2.3.4") == 10


def test_memory_is_bounded_whatever_the_number_of_addresses() -> None:
    clock = FakeTime()
    throttle = FailureThrottle(10, max_addresses=100, clock=clock)
    for i in range(10_000):
        throttle.record(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(throttle) == 100
    clock.now += 61  # all aged out: dropped as the table is next touched
    throttle.record("192.0.2.1")
    assert len(throttle) == 1


def test_ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("<local>") == "<local>"
    throttle = FailureThrottle(2, clock=FakeTime())
    throttle.record("2001:db8::1")
    throttle.record("2001:db8::2")
    assert throttle.retry_after("2001:db8::99") == 60


def test_a_limit_of_zero_turns_the_throttle_off() -> None:
    throttle = FailureThrottle(0, clock=FakeTime())
    assert not any(throttle.record("1.2.3.4") for _ in range(100))
    assert throttle.retry_after("1.2.3.4") is None and len(throttle) == 0


def test_credentials_hold_no_viewer_by_default() -> None:
    assert Credentials("u", "p", "environment").viewer is None
