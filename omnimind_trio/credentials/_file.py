"""Where the credentials come from: the environment, else ``config/dashboard_auth.json``,
which is generated with random values on first start and rewritten by ``rotate``.

The file is written with mode 0600 from its first byte (a temporary file created
``O_CREAT | O_EXCL`` with that mode, then linked or renamed into place), so it is never
readable by others, not even for an instant. As ssh does with a private key, a file that
others may read or write (any of the 0o077 bits), or that another user owns, is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from ..config import Settings
from ._check import Credentials, CredentialsError

MAX_FILE_BYTES = 64 * 1024
SHAPE = '{"user": ..., "pass": ...} (and optionally "viewer_user", "viewer_pass")'
ViewerChoice = Literal["keep", "new", "drop"]


def load_credentials(settings: Settings) -> Credentials:
    """Environment first, then the file; generate the file when neither exists.

    Raises :class:`CredentialsError` when the file is broken, unsafe or unreadable.
    """
    existing = read_credentials(settings)
    if existing is not None:
        return existing
    user, password = "omnimind", _new_password()
    if _create(settings.auth_file, _content(user, password, None)):
        return Credentials(user, password, "generated", settings.auth_file, _env_viewer(settings))
    # Another process created it between our read and our create: theirs wins.
    raced = read_credentials(settings)
    if raced is None:
        raise CredentialsError(f"credentials file {settings.auth_file} exists but cannot be read")
    return raced


def read_credentials(settings: Settings) -> Credentials | None:
    """The credentials in force for ``settings``, or None when neither the environment
    nor the file has any. Never creates anything (a reload uses it)."""
    env_viewer = _env_viewer(settings)
    if settings.dashboard_user and settings.dashboard_pass:
        return Credentials(
            settings.dashboard_user, settings.dashboard_pass, "environment", viewer=env_viewer
        )
    stored = read_credentials_file(settings.auth_file, owner=os.geteuid())
    if stored is None or env_viewer is None:
        return stored
    return replace(stored, viewer=env_viewer)


def environment_wins(settings: Settings) -> bool:
    """Whether the admin credential comes from the environment (the file is then unused)."""
    return bool(settings.dashboard_user and settings.dashboard_pass)


def _env_viewer(settings: Settings) -> tuple[str, str] | None:
    if settings.viewer_user and settings.viewer_pass:
        return settings.viewer_user, settings.viewer_pass
    return None


def read_credentials_file(path: Path, *, owner: int | None = None) -> Credentials | None:
    """The credentials in ``path``; None if there is no such file. Raises
    :class:`CredentialsError` when it cannot be read, holds something else, is open to
    others, or (with ``owner``, a uid) is owned by another user. A symlink is followed:
    what is checked is the file read."""
    try:
        # O_NONBLOCK: a FIFO in its place must not hang us; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        check_private(path, os.fstat(fd), owner)
        try:
            raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CredentialsError(f"cannot read credentials file {path}: {exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise CredentialsError(f"credentials file {path} is over {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc}") from exc
    return _parse(path, data)


def check_private(path: Path, status: os.stat_result, owner: int | None) -> None:
    """Refuse a credentials file that is not a regular file, is open to others, or is
    owned by another user than ``owner`` (as ssh refuses a private key)."""
    shown = f"{path} (a link to {path.resolve()})" if path.is_symlink() else str(path)
    if not stat.S_ISREG(status.st_mode):
        raise CredentialsError(f"credentials file {shown} is not a regular file")
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise CredentialsError(f"permissions {mode:04o} for {shown} are too open; chmod 600 it")
    if owner is not None and status.st_uid != owner:
        raise CredentialsError(
            f"credentials file {shown} is owned by uid {status.st_uid}, not by this user "
            f"(uid {owner}): its owner could change the credentials; chown it, or run as "
            "its owner"
        )


def _parse(path: Path, data: Any) -> Credentials:
    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None or (isinstance(value, str) and value):
            return value
        raise CredentialsError(f"credentials file {path}: {key!r} must be a non-empty string")

    if not isinstance(data, dict):
        raise CredentialsError(f"credentials file {path} must hold {SHAPE}")
    user, password = text("user"), text("pass")
    viewer_user, viewer_pass = text("viewer_user"), text("viewer_pass")
    if user is None or password is None:
        raise CredentialsError(f"credentials file {path} must hold {SHAPE}")
    if (viewer_user is None) != (viewer_pass is None):
        raise CredentialsError(
            f"credentials file {path}: 'viewer_user' and 'viewer_pass' go together"
        )
    viewer = (viewer_user, viewer_pass) if viewer_user and viewer_pass else None
    try:
        return Credentials(user, password, "file", path, viewer)
    except CredentialsError as exc:
        raise CredentialsError(f"credentials file {path}: {exc}") from None


def rotate_credentials(settings: Settings, *, viewer: ViewerChoice = "keep") -> Credentials:
    """Write freshly generated credentials to the credentials file (same user names, new
    passwords) and answer them; the viewer entry is kept as it is (``"keep"``), given a new
    password (``"new"``, creating a ``viewer`` user if there was none) or removed
    (``"drop"``). The file is replaced atomically, mode 0600 from its first byte; a
    symlink is kept, and its target replaced.

    Raises :class:`CredentialsError` when the environment sets the admin credential (the
    file would not be used), or when the existing file is broken, unsafe or not ours.
    """
    path = settings.auth_file
    if environment_wins(settings):
        raise CredentialsError(
            "OMNIMIND_DASHBOARD_USER and OMNIMIND_DASHBOARD_PASS are set: the credentials "
            f"come from the environment, which wins over {path}; change them where they "
            "are set, then restart the daemon"
        )
    old = read_credentials_file(path, owner=os.geteuid())
    user = old.user if old is not None else "omnimind"
    kept = old.viewer if old is not None else None
    new_viewer = {
        "keep": kept,
        "new": (kept[0] if kept else "viewer", _new_password()),
        "drop": None,
    }[viewer]
    new = Credentials(user, _new_password(), "file", path, new_viewer)
    _replace(path, _content(new.user, new.password, new.viewer))
    return new


def _new_password() -> str:
    """32 URL-safe characters, never a leading ``-`` (``--password -x...`` reads as an option)."""
    while (password := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return password


def _content(user: str, password: str, viewer: tuple[str, str] | None) -> str:
    data = {"user": user, "pass": password}
    if viewer is not None:
        data.update(viewer_user=viewer[0], viewer_pass=viewer[1])
    return json.dumps(data, indent=2) + "\n"


def _write_private(directory: Path, name: str, content: str) -> Path:
    """A new file in ``directory`` holding ``content``, mode 0600 from its first byte."""
    tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _create(path: Path, content: str) -> bool:
    """Write ``content`` to ``path`` (mode 0600) unless it exists; False if it did."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _write_private(path.parent, path.name, content)
    try:
        os.link(tmp, path)  # atomic, and never replaces an existing file
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _replace(path: Path, content: str) -> None:
    """Replace ``path`` (or a symlink's target) with ``content``, atomically, mode 0600."""
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _write_private(target.parent, target.name, content)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename is durable once the directory is.
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
