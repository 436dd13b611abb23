"""``omnimind credentials rotate``: new passwords in the daemon's credentials file.

It works on the file, not through the API: the running daemon notices the new file (it
looks every 2 s, and at once on SIGHUP), and the old passwords stop working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from ..config import Settings
from ..credentials import CredentialsError, rotate_credentials
from ._usage import settings_problems


def rotate(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 refused (environment credentials, a bad or unsafe file),
    2 invalid settings."""
    home = Path(args.home or os.environ.get("OMNIMIND_HOME") or Path.cwd())
    try:
        settings = Settings(home=home)
    except ValidationError as exc:
        print(
            "omnimind: invalid settings:", *settings_problems(exc, {}), sep="\n  ", file=sys.stderr
        )
        return 2
    try:
        new = rotate_credentials(settings, viewer=args.viewer)
    except (CredentialsError, OSError) as exc:
        print(f"omnimind: {exc}", file=sys.stderr)
        return 1
    viewer_is_new = args.viewer == "new"
    if args.json:
        shown: dict[str, str | None] = {
            "path": str(settings.auth_file),
            "user": new.user,
            "pass": new.password,
            "viewer_user": new.viewer[0] if new.viewer else None,
        }
        if viewer_is_new and new.viewer:
            shown["viewer_pass"] = new.viewer[1]
        print(json.dumps(shown, indent=2))
    else:
        print(f"New dashboard credentials (stored in {settings.auth_file}, mode 0600):")
        print(f"  user: {new.user}\n  pass: {new.password}")
        if new.viewer is not None and viewer_is_new:
            print(f"  viewer user: {new.viewer[0]}\n  viewer pass: {new.viewer[1]}")
        elif new.viewer is not None:
            print(f"  viewer user: {new.viewer[0]} (password unchanged)")
        print(
            "A running daemon takes them up within 2 s (at once on SIGHUP); "
            "the old passwords no longer work."
        )
    if settings.viewer_user and args.viewer != "keep":
        print(
            "omnimind: note: OMNIMIND_VIEWER_USER and OMNIMIND_VIEWER_PASS are set here; "
            "where they are set for the daemon, they win over the file's viewer",
            file=sys.stderr,
        )
    return 0
