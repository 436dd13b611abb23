"""Which credentials a client command sends, and passwords kept off the command line.

In order: ``--user`` with ``--password-file FILE`` (``-``: standard input), with
``--password`` (visible to other users in ``ps`` and kept in the shell history, so it warns),
or alone (the password is asked for on the terminal); else ``OMNIMIND_DASHBOARD_USER`` and
``OMNIMIND_DASHBOARD_PASS``; else the daemon's credentials file.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..credentials import read_credentials_file
from ._usage import UsageError

if TYPE_CHECKING:  # the client (httpx) is imported by the client commands only
    from ._client import Auth

Prompt = Callable[[str], str]
"""Asks for ``user``'s password on the terminal."""

MAX_PASSWORD_BYTES: Final = 4096
"""More is not a password file (``--password-file /dev/zero`` must not eat the memory)."""

VISIBLE_WARNING: Final = (
    "omnimind: warning: --password is visible to other users (in ps) and stays in the shell "
    "history; use --password-file FILE (or -), or --user alone to be asked"
)


def resolve_auth(
    user: str | None,
    password: str | None,
    environ: Mapping[str, str],
    *,
    home: Path | None = None,
    password_file: str | None = None,
    prompt: Prompt | None = None,
) -> Auth | None:
    """The credentials to send: ``user`` with the password from ``password_file``, else
    ``password``, else ``prompt`` (None: there is no terminal to ask on); else the daemon's
    environment variables; else its credentials file under ``OMNIMIND_HOME``, else under
    ``home`` (the home of the daemon found by its runtime file), else under the current
    directory; else None. A password without a user, or two of them, is a usage error."""
    if password is not None and password_file is not None:
        raise UsageError("give --password or --password-file, not both")
    if user is None:
        if password is not None or password_file is not None:
            given = "--password" if password is not None else "--password-file"
            raise UsageError(f"{given} needs --user")
    elif password_file is not None:
        return user, read_password_file(password_file)
    elif password is not None:
        return user, password
    elif prompt is None:
        raise UsageError(
            "--user needs its password: --password-file FILE (- for standard input), "
            "or run on a terminal to be asked for it"
        )
    else:
        return user, prompt(user)
    env_user = environ.get("OMNIMIND_DASHBOARD_USER")
    env_pass = environ.get("OMNIMIND_DASHBOARD_PASS")
    if env_user and env_pass:
        return env_user, env_pass
    home = Path(environ.get("OMNIMIND_HOME") or home or Path.cwd())
    try:
        stored = read_credentials_file(home / "config" / "dashboard_auth.json")
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    return None if stored is None else (stored.user, stored.password)


def read_password_file(path: str) -> str:
    """The password in ``path`` (``-``: standard input) without its one trailing newline.
    A pipe works (``--password-file <(pass show omnimind)``); a file that cannot be read, is
    empty, holds more than one line or is too big to be a password is a usage error."""
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_PASSWORD_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_PASSWORD_BYTES + 1)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the password file {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the password file {name} is not UTF-8 text") from None
    if len(raw) > MAX_PASSWORD_BYTES:
        raise UsageError(f"the password file {name} is over {MAX_PASSWORD_BYTES} bytes")
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise UsageError(f"the password file {name} is empty")
    if "\n" in text or "\r" in text:
        raise UsageError(f"the password file {name} holds more than one line")
    return text


def terminal_prompt(url: str) -> Prompt | None:
    """Asks for the password on the terminal, if standard input is one (else None)."""
    if not sys.stdin.isatty():
        return None

    def ask(user: str) -> str:
        try:
            return getpass.getpass(f"Password for {user} at {url}: ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)  # the prompt's line, ended
            raise UsageError("no password given") from None

    return ask
