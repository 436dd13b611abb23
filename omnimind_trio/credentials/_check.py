"""The credentials in force and the check of an ``Authorization`` header against them: which
role it carries (admin, viewer), if any.

Constant time, and the same work whatever the header: it is hashed (SHA-256) and compared
with both roles' expected headers; a header in another spelling (scheme case, spaces) is
decoded, and both halves are hashed and compared with both roles' halves, all four every
time. So the time taken does not say which credential matched, nor which half was wrong,
nor (hashes having one length) how long the expected values are. A daemon without a viewer
compares against random values that nothing can match.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


class CredentialsError(RuntimeError):
    """Credentials that cannot be used: a broken, unsafe or missing file, a bad pair."""


class Role(enum.Enum):
    """What a credential may do: everything, or read only (GET, ``/metrics``, the WebSocket)."""

    ADMIN = "admin"
    VIEWER = "viewer"


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@dataclass(frozen=True)
class _Expected:
    """The digests a header is compared with."""

    admin_header: bytes
    viewer_header: bytes
    admin_user: bytes
    admin_pass: bytes
    viewer_user: bytes
    viewer_pass: bytes


@dataclass(frozen=True)
class Credentials:
    """The admin credential (``user``, ``password``) and, optionally, a read-only one
    (``viewer``: a user and a password). Raises :class:`CredentialsError` when both are the
    same pair (the viewer would be an admin)."""

    user: str
    password: str
    source: str
    """``"environment"``, ``"file"`` or ``"generated"``: where the admin credential came from."""
    path: Path | None = None
    viewer: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.viewer is not None and self.viewer == (self.user, self.password):
            raise CredentialsError("the viewer credential must differ from the admin one")

    @cached_property
    def _expected(self) -> _Expected:
        viewer_user, viewer_pass = self.viewer or (secrets.token_hex(16), secrets.token_hex(16))
        return _Expected(
            admin_header=_digest(_basic(self.user, self.password)),
            viewer_header=_digest(_basic(viewer_user, viewer_pass)),
            admin_user=_digest(self.user.encode()),
            admin_pass=_digest(self.password.encode()),
            viewer_user=_digest(viewer_user.encode()),
            viewer_pass=_digest(viewer_pass.encode()),
        )

    def authenticate(self, header: str | None) -> Role | None:
        """The role whose credential the ``Authorization`` header carries; None for a
        missing, malformed or wrong one."""
        if not header:
            return None
        expected = self._expected
        # Every client sends the same bytes every time: compare the header whole first.
        seen = _digest(header.encode(errors="surrogateescape"))
        admin = hmac.compare_digest(seen, expected.admin_header)
        viewer = hmac.compare_digest(seen, expected.viewer_header)
        if not (admin or viewer):
            admin, viewer = self._decoded(header, expected)
        return Role.ADMIN if admin else Role.VIEWER if viewer else None

    @staticmethod
    def _decoded(header: str, expected: _Expected) -> tuple[bool, bool]:
        """Another spelling of a Basic header: decode it, then compare each half."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False, False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False, False
        user, sep, password = decoded.partition(b":")
        user_seen, pass_seen = _digest(user), _digest(password)
        # All four, always (``&``, not ``and``): no short cut says which one differed.
        admin_user = hmac.compare_digest(user_seen, expected.admin_user)
        admin_pass = hmac.compare_digest(pass_seen, expected.admin_pass)
        viewer_user = hmac.compare_digest(user_seen, expected.viewer_user)
        viewer_pass = hmac.compare_digest(pass_seen, expected.viewer_pass)
        found = bool(sep)
        return found & admin_user & admin_pass, found & viewer_user & viewer_pass

    def check_header(self, header: str | None) -> bool:
        """Whether ``header`` carries the admin credential."""
        return self.authenticate(header) is Role.ADMIN

    def user_of(self, role: Role) -> str:
        """The user name of ``role``'s credential."""
        return self.viewer[0] if role is Role.VIEWER and self.viewer is not None else self.user

    def fingerprint(self, role: Role) -> bytes | None:
        """A digest that changes when ``role``'s credential changes; None for no viewer.
        What a WebSocket or a token remembers of the credential that opened it."""
        if role is Role.ADMIN:
            return self._expected.admin_header
        return self._expected.viewer_header if self.viewer is not None else None
