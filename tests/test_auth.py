"""Credentials: environment first, then the file, generated safely on first start; the
viewer; the check of a header, the same work whatever it holds; unsafe files refused."""

from __future__ import annotations

import base64
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from omnimind_trio.config import Settings
from omnimind_trio.credentials import Credentials, CredentialsError, Role, load_credentials
from omnimind_trio.credentials import _check as checking

from .conftest import make_settings


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_environment_wins(tmp_path: Path) -> None:
    creds = load_credentials(make_settings(tmp_path))
    assert (creds.user, creds.password, creds.source) == ("tester", "secret-pass", "environment")
    assert not (tmp_path / "config").exists()


def test_generated_file_is_private_from_the_start_and_reused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, dashboard_user=None, dashboard_pass=None)
    first = load_credentials(settings)
    assert first.source == "generated"
    path = tmp_path / "config" / "dashboard_auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"user": first.user, "pass": first.password}
    assert len(first.password) >= 24
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    again = load_credentials(settings)
    assert (again.user, again.password, again.source) == (first.user, first.password, "file")


def test_an_existing_file_from_an_earlier_install_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir()
    path.write_text('{"user": "fabricio", "pass": "old-secret"}')
    path.chmod(0o600)
    creds = load_credentials(make_settings(tmp_path, dashboard_user=None, dashboard_pass=None))
    assert (creds.user, creds.password) == ("fabricio", "old-secret")


def test_a_broken_file_is_a_clear_error_not_a_silent_new_password(tmp_path: Path) -> None:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir()
    path.write_text('{"user": "x"}')
    path.chmod(0o600)
    with pytest.raises(RuntimeError, match="must hold"):
        load_credentials(make_settings(tmp_path, dashboard_user=None, dashboard_pass=None))


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (basic("alice", "s3cret:with:colons"), True),
        (basic("alice", "wrong"), False),
        (basic("alicex", "s3cret:with:colons"), False),
        (basic("", ""), False),
        ("Basic " + base64.b64encode(b"alice").decode(), False),
        ("basic " + base64.b64encode(b"alice:s3cret:with:colons").decode(), True),
        ("Basic ???", False),
        ("Bearer x", False),
        ("", False),
        (None, False),
    ],
)
def test_check_header(header: str | None, ok: bool) -> None:
    assert Credentials("alice", "s3cret:with:colons", "environment").check_header(header) is ok


# -- the viewer, and the same work whatever the header ----------------------------------------

ADMIN = ("alice", "s3cret:with:colons")
VIEWER = ("bob", "look-only")


def both() -> Credentials:
    return Credentials(*ADMIN, "environment", viewer=VIEWER)


@pytest.mark.parametrize(
    ("header", "role"),
    [
        (basic(*ADMIN), Role.ADMIN),
        (basic(*VIEWER), Role.VIEWER),
        ("basic  " + base64.b64encode(b"bob:look-only").decode(), Role.VIEWER),
        (basic("alice", "look-only"), None),
        (basic("bob", "s3cret:with:colons"), None),
        (basic("bob", "wrong"), None),
        (basic("", ""), None),
        (None, None),
    ],
)
def test_authenticate_tells_the_role(header: str | None, role: Role | None) -> None:
    assert both().authenticate(header) is role


def test_no_viewer_means_no_viewer_can_match() -> None:
    creds = Credentials(*ADMIN, "environment")
    assert creds.fingerprint(Role.VIEWER) is None
    assert creds.authenticate(basic(*VIEWER)) is None


def test_a_viewer_equal_to_the_admin_is_refused() -> None:
    with pytest.raises(CredentialsError, match="must differ"):
        Credentials(*ADMIN, "environment", viewer=ADMIN)


def counting_comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the lengths of every constant-time comparison the check makes."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(checking.hmac, "compare_digest", compare)
    return calls


@pytest.mark.parametrize("viewer", [VIEWER, None])
def test_the_work_does_not_say_which_credential_matched_nor_which_half_was_wrong(
    monkeypatch: pytest.MonkeyPatch, viewer: tuple[str, str] | None
) -> None:
    creds = Credentials(*ADMIN, "environment", viewer=viewer)
    calls = counting_comparisons(monkeypatch)

    def work(header: str) -> list[tuple[int, int]]:
        calls.clear()
        creds.authenticate(header)
        return list(calls)

    def respelled(user: str, password: str) -> str:  # not the byte-exact header
        return "basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    two, six = [(32, 32)] * 2, [(32, 32)] * 6
    valid = [ADMIN] if viewer is None else [ADMIN, VIEWER]
    # The usual spelling of a valid header: two comparisons of 32-byte digests.
    for pair in valid:
        assert work(basic(*pair)) == two
    # Any other header: the same six comparisons, right or wrong, whichever half.
    headers = [ADMIN, VIEWER, ("alice", "x"), ("x", ADMIN[1]), ("bob", "x"), ("x", "look-only")]
    for user, password in [*headers, ("a-much-longer-user-name", "y" * 200)]:
        assert work(respelled(user, password)) == six, (user, password)
        if (user, password) not in valid:
            assert work(basic(user, password)) == six, (user, password)


# -- the file: private, ours, and its viewer ---------------------------------------------------


def write_file(tmp_path: Path, data: object, mode: int = 0o600) -> Path:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def file_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path, dashboard_user=None, dashboard_pass=None, **overrides)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o004, 0o620])
def test_a_file_others_may_read_or_write_is_refused_as_ssh_does(tmp_path: Path, mode: int) -> None:
    path = write_file(tmp_path, {"user": "u", "pass": "p"}, mode)
    with pytest.raises(CredentialsError) as caught:
        load_credentials(file_settings(tmp_path))
    assert str(caught.value) == f"permissions {mode:04o} for {path} are too open; chmod 600 it"
    assert json.loads(path.read_text()) == {"user": "u", "pass": "p"}  # left alone


def test_a_symlink_to_an_open_file_is_refused_and_to_a_private_one_followed(
    tmp_path: Path,
) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"user": "u", "pass": "p"}')
    target.chmod(0o644)
    link = tmp_path / "config" / "dashboard_auth.json"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(CredentialsError) as caught:
        load_credentials(file_settings(tmp_path))
    assert str(caught.value) == (
        f"permissions 0644 for {link} (a link to {target}) are too open; chmod 600 it"
    )
    target.chmod(0o600)
    assert load_credentials(file_settings(tmp_path)).user == "u"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"user": "u", "pass": "p"})
    os.chown(path, 65534, 65534)
    with pytest.raises(CredentialsError, match="owned by uid 65534, not by this user"):
        load_credentials(file_settings(tmp_path))


def test_a_directory_or_fifo_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config" / "dashboard_auth.json"
    path.parent.mkdir()
    os.mkfifo(path, 0o600)
    with pytest.raises(CredentialsError, match="is not a regular file"):
        load_credentials(file_settings(tmp_path))


def test_the_file_may_hold_a_viewer(tmp_path: Path) -> None:
    write_file(tmp_path, {"user": "u", "pass": "p", "viewer_user": "v", "viewer_pass": "w"})
    creds = load_credentials(file_settings(tmp_path))
    assert creds.viewer == ("v", "w")
    assert creds.authenticate(basic("v", "w")) is Role.VIEWER


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"user": "u", "pass": "p", "viewer_user": "v"}, "go together"),
        ({"user": "u", "pass": "p", "viewer_user": "v", "viewer_pass": ""}, "non-empty"),
        ({"user": "u", "pass": "p", "viewer_user": "u", "viewer_pass": "p"}, "must differ"),
        (["u", "p"], "must hold"),
    ],
)
def test_a_bad_viewer_entry_is_a_clear_error(tmp_path: Path, data: object, message: str) -> None:
    write_file(tmp_path, data)
    with pytest.raises(CredentialsError, match=message):
        load_credentials(file_settings(tmp_path))


def test_the_environment_gives_the_viewer_and_wins_over_the_file(tmp_path: Path) -> None:
    write_file(tmp_path, {"user": "u", "pass": "p", "viewer_user": "v", "viewer_pass": "w"})
    creds = load_credentials(file_settings(tmp_path, viewer_user="ev", viewer_pass="ew"))
    assert (creds.user, creds.viewer, creds.source) == ("u", ("ev", "ew"), "file")
    from_env = load_credentials(make_settings(tmp_path, viewer_user="ev", viewer_pass="ew"))
    assert (from_env.user, from_env.viewer) == ("tester", ("ev", "ew"))


def test_viewer_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="OMNIMIND_VIEWER_USER and OMNIMIND_VIEWER_PASS"):
        make_settings(tmp_path, viewer_user="v")
