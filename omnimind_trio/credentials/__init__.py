"""The dashboard credentials: an admin credential and an optional read-only (viewer) one,
from the environment or ``config/dashboard_auth.json``; checking a header against them;
rotating the file; and the :class:`Keyring` that holds them while the daemon serves, reloaded
on SIGHUP or when the file changes. Imports: config.
"""

from ._check import Credentials, CredentialsError, Role
from ._file import (
    check_private,
    environment_wins,
    load_credentials,
    read_credentials,
    read_credentials_file,
    rotate_credentials,
)
from ._keyring import Keyring, reload_credentials, watch_credentials_file

__all__ = [
    "Credentials",
    "CredentialsError",
    "Keyring",
    "Role",
    "check_private",
    "environment_wins",
    "load_credentials",
    "read_credentials",
    "read_credentials_file",
    "reload_credentials",
    "rotate_credentials",
    "watch_credentials_file",
]
