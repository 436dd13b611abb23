"""The dashboard credentials: from the environment, else from ``config/dashboard_auth.json``,
which is generated with random values on first start.

The file is created with mode 0600 from its first byte (``O_CREAT | O_EXCL`` with the mode,
then linked into place), so it is never readable by others, not even for an instant.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .config import Settings


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    source: str
    """``"environment"``, ``"file"`` or ``"generated"``."""
    path: Path | None = None

    @cached_property
    def _expected_header(self) -> bytes:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}".encode()

    def check_header(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials (constant time)."""
        if not header:
            return False
        # Every request carries the same header: compare it whole first (cheap); other
        # spellings of the same credentials (scheme case, spaces) take the long way.
        if hmac.compare_digest(header.encode(), self._expected_header):
            return True
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # Compare both halves every time: the work done does not depend on which is wrong.
        user_ok = hmac.compare_digest(user, self.user.encode())
        pass_ok = hmac.compare_digest(password, self.password.encode())
        return bool(sep) and user_ok and pass_ok


def load_credentials(settings: Settings) -> Credentials:
    """Environment first, then the file; generate the file when neither exists."""
    if settings.dashboard_user and settings.dashboard_pass:
        return Credentials(settings.dashboard_user, settings.dashboard_pass, "environment")
    path = settings.auth_file
    existing = read_credentials_file(path)
    if existing is not None:
        return existing
    user = "omnimind"
    password = secrets.token_urlsafe(24)
    if _create(path, json.dumps({"user": user, "pass": password}, indent=2) + "\n"):
        return Credentials(user, password, "generated", path)
    # Another process created it between our read and our create: theirs wins.
    raced = read_credentials_file(path)
    if raced is None:
        raise RuntimeError(f"credentials file {path} exists but cannot be read")
    return raced


def read_credentials_file(path: Path) -> Credentials | None:
    """The credentials in ``path`` (``{"user": ..., "pass": ...}``); None if there is no
    such file. Raises RuntimeError when it cannot be read or holds something else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read credentials file {path}: {exc}") from exc
    if not (isinstance(data, dict) and isinstance(data.get("user"), str)):
        raise RuntimeError(f"credentials file {path} must hold {{'user': ..., 'pass': ...}}")
    if not isinstance(data.get("pass"), str) or not data["user"] or not data["pass"]:
        raise RuntimeError(f"credentials file {path} must hold {{'user': ..., 'pass': ...}}")
    return Credentials(data["user"], data["pass"], "file", path)


def _create(path: Path, content: str) -> bool:
    """Write ``content`` to ``path`` (mode 0600) unless it exists; False if it did."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing file
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
