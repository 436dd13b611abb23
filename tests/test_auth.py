"""Credentials: environment first, then the file, generated safely on first start."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from omnimind_trio.credentials import Credentials, load_credentials

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
